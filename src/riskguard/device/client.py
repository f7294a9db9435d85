"""The reference client: what an app on a phone does, in Python, for tests, the demo and integrators.

``DeviceClient(account_id, device_id, transport, kind="android", authority=TestAuthority())`` keeps a P-256
key, registers it with a test attestation of its ``kind`` (android, apple, webauthn, oem or software),
asks for a challenge per transaction and signs it::

    client = DeviceClient("acc-1", "phone-1", InProcessTransport(rg.devices), authority=authority)
    client.register()
    body = client.sign({"event_id": "e1", "type": "transfer", "account_id": "acc-1", "amount": "6000.00",
                        "currency": "CNY", "counterparty_id": "acc-2", "occurred_at": ...})
    rg.decide(body)   # body["attributes"]["device_signature"] is set

On a real phone the key lives in the Keystore / Secure Enclave / authenticator and the attestation comes
from the platform; here the test authority plays the platform. Transports: ``InProcessTransport`` (a
``DeviceService``) and ``HttpTransport`` (``POST /v1/devices/challenge`` and ``/v1/devices/register``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from collections import deque
from datetime import datetime
from typing import Any, Protocol

import cbor2
import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from riskguard.device.digest import challenge_bytes, digest_of_fields, registration_digest, signed_message
from riskguard.device.keys import b64, key_id, spki, unb64
from riskguard.device.providers.apple import AAGUID_DEVELOPMENT, AAGUID_PRODUCTION, point_of
from riskguard.device.testing import TEST_APP_ID, TEST_ORIGIN, TEST_RP_ID, AndroidFacts, TestAuthority

KINDS = ("android", "apple", "webauthn", "oem", "software")
_ECDSA = ec.ECDSA(hashes.SHA256())
TEST_AAGUID = hashlib.sha256(b"riskguard test authenticator").digest()[:16]


class Transport(Protocol):
    def challenge(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def register(self, body: dict[str, Any]) -> dict[str, Any]: ...


class InProcessTransport:
    """Calls a ``DeviceService`` in this process.

    ``durable=False`` answers a registration as soon as the service has indexed it and queued its row for
    the group commit (decisions made after it see it, and are committed in the same batch or a later one),
    as ``RiskGuard.submit`` does for decisions: a stream of registrations then shares commits. ``settle()``
    waits for every queued registration and raises the first refusal or failure.
    """

    def __init__(self, service: Any, *, durable: bool = True) -> None:
        self.service = service
        self.durable = durable
        self._queued: deque[Any] = deque()

    def challenge(self, body: dict[str, Any]) -> dict[str, Any]:
        from riskguard.device.service import ChallengeRequest

        return self.service.challenge(msgspec.convert(body, ChallengeRequest))  # type: ignore[no-any-return]

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        from riskguard.device.service import RegisterRequest

        request = msgspec.convert(body, RegisterRequest)
        if self.durable:
            return self.service.register(request)  # type: ignore[no-any-return]
        registration = self.service.submit_registration(request)
        self._queued.append(registration)
        while self._queued and (self._queued[0].ticket is None or self._queued[0].ticket.done):
            self.service.settle_registration(self._queued.popleft())
        return registration.answer  # type: ignore[no-any-return]

    def settle(self) -> None:
        """Waits until every queued registration is stored; raises the first that was not."""
        while self._queued:
            self.service.settle_registration(self._queued.popleft())


class HttpTransport:
    def __init__(self, url: str, key: str | None = None, *, client: Any = None) -> None:
        import httpx

        headers = {"authorization": f"Bearer {key}"} if key else {}
        self.client = client or httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=10.0)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(path, content=json.dumps(body, default=str))
        if response.status_code >= 400:
            raise RuntimeError(f"{path}: {response.status_code} {response.text}")
        return response.json()  # type: ignore[no-any-return]

    def challenge(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/v1/devices/challenge", body)

    def register(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._post("/v1/devices/register", body)


def _cose(key: ec.EllipticCurvePublicKey) -> bytes:
    numbers = key.public_numbers()
    return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


class DeviceClient:
    def __init__(
        self,
        account_id: str,
        device_id: str,
        transport: Transport,
        *,
        kind: str = "android",
        authority: TestAuthority | None = None,
        facts: AndroidFacts | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        fingerprint: str | None = None,
        environment: dict[str, bool] | None = None,
        ip: str | None = None,
        development: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if kind != "software" and authority is None:
            raise ValueError(f"a {kind} client needs a TestAuthority to attest its key")
        self.account_id = account_id
        self.device_id = device_id
        self.transport = transport
        self.kind = kind
        self.authority = authority
        self.facts = facts or AndroidFacts()
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.fingerprint = fingerprint
        self.environment = environment or {}
        self.ip = ip
        self.development = development
        self.counter = 0
        self.credential_id = hashlib.sha256(point_of(self.key.public_key())).digest()
        self._batch: tuple[ec.EllipticCurvePrivateKey, list[bytes]] | None = None

    @property
    def key_id(self) -> str:
        return key_id(spki(self.key.public_key()))

    # ------------------------------------------------------------------ registration
    def register(self, *, occurred_at: datetime | None = None, rebind: bool = False) -> dict[str, Any]:
        answer = self.transport.challenge({"account_id": self.account_id, "device_id": self.device_id})
        nonce = unb64(answer["nonce"], field="nonce")
        challenge = challenge_bytes(nonce, registration_digest(self.account_id, self.device_id))
        body: dict[str, Any] = {
            "account_id": self.account_id,
            "device_id": self.device_id,
            "nonce": answer["nonce"],
            "attestation": self.attestation(challenge),
            "environment": self.environment,
            "rebind": rebind,
        }
        if occurred_at is not None:
            body["occurred_at"] = occurred_at.isoformat()
        if self.ip is not None:
            body["ip"] = self.ip
        if self.fingerprint is not None:
            body["fingerprint"] = self.fingerprint
        return self.transport.register(body)

    def attestation(self, challenge: bytes) -> dict[str, Any]:
        """The attestation statement of this client's kind for ``challenge``."""
        public = self.key.public_key()
        if self.kind == "software":
            return {
                "format": "none",
                "public_key": b64(spki(public)),
                "signature": b64(self.key.sign(challenge, _ECDSA)),
            }
        authority = self.authority
        assert authority is not None
        if self.kind == "android":
            chain = authority.android_chain(public, challenge, self.facts)
            return {"format": "android-key", "certificates": [b64(c) for c in chain]}
        if self.kind == "oem":
            chain = authority.chain(authority.leaf(public, subject="OEM device key"))
            return {
                "format": "oem",
                "certificates": [b64(c) for c in chain],
                "signature": b64(self.key.sign(challenge, _ECDSA)),
            }
        if self.kind == "apple":
            return self._app_attest(challenge)
        return self._webauthn_create(challenge)

    def _auth_data(self, rp: str, flags: int, counter: int, attested: bytes | None = None) -> bytes:
        head = hashlib.sha256(rp.encode()).digest() + bytes([flags]) + struct.pack(">I", counter)
        return head + (attested or b"")

    def _attested_data(self, aaguid: bytes) -> bytes:
        cid = self.credential_id
        return aaguid + struct.pack(">H", len(cid)) + cid + _cose(self.key.public_key())

    def _app_attest(self, challenge: bytes) -> dict[str, Any]:
        assert self.authority is not None
        aaguid = AAGUID_DEVELOPMENT if self.development else AAGUID_PRODUCTION
        auth = self._auth_data(TEST_APP_ID, 0x40, 0, self._attested_data(aaguid))
        nonce = hashlib.sha256(auth + hashlib.sha256(challenge).digest()).digest()
        x5c = self.authority.app_attest_certificate(self.key.public_key(), nonce)
        document = cbor2.dumps({"fmt": "apple-appattest", "attStmt": {"x5c": x5c, "receipt": b""}, "authData": auth})
        return {"format": "apple-appattest", "key_id": b64(self.credential_id), "attestation": b64(document)}

    def _webauthn_create(self, challenge: bytes) -> dict[str, Any]:
        assert self.authority is not None
        if self._batch is None:
            self._batch = self.authority.batch_certificate()
        batch_key, x5c = self._batch
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": b64(challenge), "origin": TEST_ORIGIN, "crossOrigin": False}
        ).encode()
        auth = self._auth_data(TEST_RP_ID, 0x45, 0, self._attested_data(TEST_AAGUID))
        signature = batch_key.sign(auth + hashlib.sha256(client_data).digest(), _ECDSA)
        document = cbor2.dumps(
            {"fmt": "packed", "attStmt": {"alg": -7, "sig": signature, "x5c": x5c}, "authData": auth}
        )
        cid = b64(self.credential_id)
        return {
            "format": "webauthn",
            "credential": {
                "id": cid,
                "rawId": cid,
                "type": "public-key",
                "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(document)},
            },
        }

    # ------------------------------------------------------------------ signing
    def challenge(self, body: dict[str, Any]) -> bytes:
        """Asks the server for a nonce bound to ``body``'s digest."""
        answer = self.transport.challenge({"digest": digest_of_fields(body).hex()})
        return unb64(answer["nonce"], field="nonce")

    def sign(self, body: dict[str, Any], *, nonce: bytes | None = None, counter: int | None = None) -> dict[str, Any]:
        """A copy of the event ``body`` carrying this device's signature (asks for a nonce unless given)."""
        if nonce is None:
            nonce = self.challenge(body)
        if counter is None:
            self.counter += 1
            counter = self.counter
        signed = copy.deepcopy(body)
        signed.setdefault("device_id", self.device_id)
        signed.setdefault("attributes", {})["device_signature"] = self.signature(digest_of_fields(body), nonce, counter)
        return signed

    def signature(self, digest: bytes, nonce: bytes, counter: int) -> dict[str, Any]:
        out: dict[str, Any] = {"key_id": self.key_id, "nonce": b64(nonce)}
        challenge = challenge_bytes(nonce, digest)
        if self.kind == "apple":
            auth = self._auth_data(TEST_APP_ID, 0x00, counter)
            message = hashlib.sha256(auth + hashlib.sha256(challenge).digest()).digest()
            out.update(signature=b64(self.key.sign(message, _ECDSA)), authenticator_data=b64(auth))
        elif self.kind == "webauthn":
            client_data = json.dumps(
                {"type": "webauthn.get", "challenge": b64(challenge), "origin": TEST_ORIGIN}
            ).encode()
            auth = self._auth_data(TEST_RP_ID, 0x05, counter)
            signature = self.key.sign(auth + hashlib.sha256(client_data).digest(), _ECDSA)
            out.update(signature=b64(signature), authenticator_data=b64(auth), client_data_json=b64(client_data))
        else:
            out.update(signature=b64(self.key.sign(signed_message(nonce, digest, counter), _ECDSA)), counter=counter)
        return out
