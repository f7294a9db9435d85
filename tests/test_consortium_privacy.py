"""Privacy: OPRF subject tokens (RFC 9497 vectors), the token service's rate limits and audit trail,
identifier normalisation, free-text screening, PSI queries and crypto-shredded details."""

from __future__ import annotations

import hashlib

import pytest
from voprf import ristretto

from riskguard.consortium.details import DetailKeys, DetailsErased, seal, unseal
from riskguard.consortium.entries import EntryError, Evidence, Report, sign_entry
from riskguard.consortium.note import Signer
from riskguard.consortium.privacy import PrivacyError, check_text
from riskguard.consortium.psi import PsiClient, PsiError, PsiServer
from riskguard.consortium.tokens import RateLimited, TokenClient, TokenError, TokenService, normalise
from riskguard.store.db import migrate, open_engine

# RFC 9497 Appendix A.1.2: OPRF(ristretto255, SHA-512), VOPRF mode
SEED = bytes.fromhex("a3" * 32)
KEY_INFO = bytes.fromhex("74657374206b6579")
PK_SM = "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
VECTORS = {
    bytes.fromhex("00"): "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d"
    "a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c",
    bytes.fromhex("5a" * 17): "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60"
    "356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6",
}


def test_the_voprf_library_reproduces_rfc_9497_vectors() -> None:
    server = ristretto.Evaluator.from_seed(SEED, KEY_INFO)  # DeriveKeyPair
    assert server.public_key.serialize().hex() == PK_SM
    for message, output in VECTORS.items():
        assert server.evaluate_known_input(message).hex() == output
        client, blinded = ristretto.Client.blind(message)  # the blind is random; the output is not
        assert client.finalize(server.evaluate(blinded), server.public_key).hex() == output
    other = ristretto.Evaluator.from_seed(bytes(32), KEY_INFO)
    client, blinded = ristretto.Client.blind(b"\x00")
    with pytest.raises(ValueError):
        client.finalize(other.evaluate(blinded), server.public_key)  # a proof against the wrong key fails


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    engine = open_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_tokens_are_stable_blind_rate_limited_and_audited(engine) -> None:  # type: ignore[no-untyped-def]
    service = TokenService(engine, bytes(range(32)), limit=5, window_s=3600)
    seen: list[bytes] = []

    def transport(blinded: list[bytes]) -> bytes:
        seen.extend(blinded)
        return service.evaluate("bank-b", blinded)

    client = TokenClient(service.public_key, transport)
    one, two = client.tokens("phone", ["+86 138 1234 5678", "13812345678"])
    assert one == two and len(one) == 64  # the same person, however the number is written
    assert client.token("account", "6222 0210 0000 7781") != client.token("payee", "6222 0210 0000 7781")
    assert not any(b"1381234" in blob for blob in seen)  # the service only ever saw blinded elements
    with pytest.raises(RateLimited):
        client.tokens("phone", ["13900000001", "13900000002"])
    audit = service.audit("bank-b")
    assert [(row["count"], row["allowed"]) for row in audit] == [(2, False), (1, True), (1, True), (2, True)]
    assert service.used("bank-b") == 4
    stranger = TokenClient(TokenService(engine, bytes(32)).public_key, transport)
    with pytest.raises(TokenError):
        stranger.tokens("phone", ["13800000000"])  # answers from another key do not verify


@pytest.mark.parametrize(
    ("kind", "value", "normal"),
    [
        ("phone", "+86 138-1234-5678", "+8613812345678"),
        ("phone", "0086 13812345678", "+8613812345678"),
        ("phone", "(138) 1234 5678", "+8613812345678"),
        ("card", "6222 0210 0000 7781", "6222021000007781"),
        ("account", " 6222-0210-0000-7781 ", "6222021000007781"),
        ("account", "ACC-42", "ACC-42"),
        ("device", "dev-7", "dev-7"),
    ],
)
def test_normalisation(kind: str, value: str, normal: str) -> None:
    assert normalise(kind, value) == normal


@pytest.mark.parametrize(("kind", "value"), [("phone", "12"), ("card", "1234"), ("account", " "), ("email", "x")])
def test_what_cannot_be_tokenised_is_refused(kind: str, value: str) -> None:
    with pytest.raises(TokenError):
        normalise(kind, value)


@pytest.mark.parametrize(
    "text",
    [
        "customer 13812345678",
        "card 6222 0210 0000 7781",
        "id 11010519491231002X",
        "mail li.lei@example.com",
        "phone 138-1234-5678",
    ],
)
def test_identifiers_in_free_text_are_refused(text: str) -> None:
    with pytest.raises(PrivacyError):
        check_text("legal_basis", text)
    signer = Signer.generate("bank-a")
    body = Report(
        subject="ab" * 32,
        subject_kind="account",
        category="mule",
        severity=3,
        evidence=Evidence(hash="cd" * 32, held_by="bank-a"),
        legal_basis=text,
        expires_at="2030-01-01T00:00:00Z",
    )
    with pytest.raises(EntryError):
        sign_entry(signer, "report", body)


def test_text_without_identifiers_passes() -> None:
    assert check_text("legal_basis", "AML law art. 16; agreement s.4 (2026)") == "AML law art. 16; agreement s.4 (2026)"


def test_a_subject_must_be_a_token_never_an_identifier() -> None:
    body = Report(
        subject="13812345678",
        subject_kind="phone",
        category="telecom-fraud",
        severity=3,
        evidence=Evidence(hash="cd" * 32, held_by="bank-a"),
        legal_basis="law",
        expires_at="2030-01-01T00:00:00Z",
    )
    with pytest.raises(EntryError, match="token"):
        sign_entry(Signer.generate("bank-a"), "report", body)


def test_psi_finds_the_intersection_without_sending_the_tokens() -> None:
    reported = [hashlib.sha256(b"r%d" % i).hexdigest() for i in range(3000)]
    server = PsiServer()
    server.update(reported)
    ours = [hashlib.sha256(b"r%d" % i).hexdigest() for i in range(2990, 3010)]
    client = PsiClient()
    request = client.request(ours)
    assert not any(token.encode() in request for token in ours)
    _, setups = server.setups()
    assert len(setups) == 1
    assert client.intersect(ours, setups, server.process(request)) == ours[:10]
    # a new report goes to the small delta setup; a withdrawn one rebuilds the main setup
    server.update([*reported, ours[-1]])
    _, setups = server.setups()
    assert len(setups) == 2 and client.intersect(ours, setups, server.process(request)) == [*ours[:10], ours[-1]]
    server.update(reported[1:])
    _version, setups = server.setups()
    assert len(setups) == 1 and client.intersect(ours, setups, server.process(request)) == ours[:10]
    with pytest.raises(PsiError):
        client.request(["00" * 32] * 10_001)
    with pytest.raises(PsiError):
        server.process(b"not a request")


def test_details_are_erased_by_deleting_the_key(engine) -> None:  # type: ignore[no-untyped-def]
    keys = DetailKeys(engine)
    sealed, key = seal("e" * 32, {"account": "6222021000007781", "note": "rented"})
    keys.put("e" * 32, key)
    assert b"6222021000007781" not in sealed.ciphertext.encode()
    assert unseal("e" * 32, sealed, keys.get("e" * 32))["note"] == "rented"
    with pytest.raises(DetailsErased):
        unseal("f" * 32, sealed, key)  # bound to its entry
    assert keys.erase("e" * 32) and not keys.erase("e" * 32)
    with pytest.raises(DetailsErased):
        keys.get("e" * 32)
