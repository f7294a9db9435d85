"""The HTTP client one member node uses to talk to another. Every request is signed with the member's
Ed25519 key (``X-Consortium-Member``, ``-Time``, ``-Signature`` over the method, path, time and body
hash), so a node knows which member asks — for rate limits, audit and access to detail keys — without
any shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import httpx
import msgspec

from riskguard.consortium.note import Signer

REQUEST_PREFIX = "riskguard-consortium/request/v1"
MAX_SKEW_S = 300


class PeerError(Exception):
    """Another node refused a request or could not be reached; ``status`` is its HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def request_message(method: str, path: str, timestamp: int, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{REQUEST_PREFIX}\n{method.upper()}\n{path}\n{timestamp}\n{digest}".encode()


def sign_request(signer: Signer, method: str, path: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = signer.sign(request_message(method, path, timestamp, body))
    return {
        "X-Consortium-Member": signer.name,
        "X-Consortium-Time": str(timestamp),
        "X-Consortium-Signature": base64.b64encode(signature).decode(),
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


class NodeClient:
    def __init__(self, signer: Signer, *, timeout: float = 10.0) -> None:
        self.signer = signer
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, base: str, path: str, payload: Any = None, *, raw: bytes | None = None) -> Any:
        body = raw if raw is not None else (b"" if payload is None else msgspec.json.encode(payload))
        url = base.rstrip("/") + path
        signed_path = httpx.URL(url).raw_path.decode()
        headers = sign_request(self.signer, method, signed_path, body)
        headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(method, url, content=body or None, headers=headers)
        except httpx.HTTPError as exc:
            raise PeerError(f"{base} is unreachable: {exc}") from None
        if response.headers.get("content-type", "").startswith("text/plain"):
            text = response.text
            if response.status_code >= 400:
                raise PeerError(f"{base}{path}: {response.status_code} {text[:200]}", response.status_code, text)
            return text
        data = response.json() if response.content else None
        if response.status_code >= 400:
            detail = data.get("message", data) if isinstance(data, dict) else data
            raise PeerError(f"{base}{path}: {response.status_code} {detail}", response.status_code, data)
        return data

    # ------------------------------------------------------------------ the log
    def checkpoint(self, base: str) -> str:
        return self.call("GET", base, "/consortium/v1/checkpoint")

    def entries(self, base: str, start: int, end: int) -> list[bytes]:
        data = self.call("GET", base, f"/consortium/v1/entries?start={start}&end={end}")
        return [unb64(e) for e in data["entries"]]

    def submit(self, base: str, data: bytes) -> dict[str, Any]:
        return self.call("POST", base, "/consortium/v1/entries", raw=data)

    def inclusion(self, base: str, index: int, size: int) -> list[bytes]:
        data = self.call("GET", base, f"/consortium/v1/proof/inclusion?index={index}&size={size}")
        return [unb64(p) for p in data["proof"]]

    def consistency(self, base: str, first: int, second: int) -> list[bytes]:
        data = self.call("GET", base, f"/consortium/v1/proof/consistency?first={first}&second={second}")
        return [unb64(p) for p in data["proof"]]

    # ------------------------------------------------------------------ witnessing, tokens, PSI, details
    def add_checkpoint(self, base: str, note: str, old_size: int, proof: list[bytes]) -> str:
        payload = {"note": note, "old_size": old_size, "proof": [b64(p) for p in proof]}
        return self.call("POST", base, "/consortium/v1/witness/add-checkpoint", payload)["cosignature"]

    def evaluate(self, base: str, blinded: list[bytes]) -> bytes:
        data = self.call("POST", base, "/consortium/v1/tokens", {"blinded": [b64(b) for b in blinded]})
        return unb64(data["evaluation"])

    def psi_setup(self, base: str) -> tuple[int, list[bytes]]:
        data = self.call("GET", base, "/consortium/v1/psi/setup")
        return data["version"], [unb64(s) for s in data["shards"]]

    def psi(self, base: str, request: bytes) -> bytes:
        return unb64(self.call("POST", base, "/consortium/v1/psi", {"request": b64(request)})["response"])

    def detail_key(self, base: str, entry_id: str) -> bytes:
        return unb64(self.call("GET", base, f"/consortium/v1/details/{entry_id}/key")["key"])
