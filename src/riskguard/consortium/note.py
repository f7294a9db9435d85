"""Signed notes, checkpoints and cosignatures in the C2SP formats (c2sp.org/signed-note,
c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature), with Ed25519 from ``cryptography``.

A signed note is UTF-8 text ending in a newline, a blank line, then one line per signature:
``— <key name> <base64(key id || signature)>``. A key id is the first four bytes of
SHA-256(name || 0x0A || signature type || public key); type 0x01 is an Ed25519 signature over the text,
type 0x04 a cosignature/v1 (a witness's timestamped signature over ``cosignature/v1\\ntime <t>\\n`` and the
checkpoint text, sent as key id || 8-byte big-endian time || signature). Keys are written as the Go
``sumdb/note`` package writes them: ``name+hash+base64(type || key)``, private keys with a
``PRIVATE+KEY+`` prefix. Hand-written because no maintained Python package implements these formats.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ALG_ED25519 = 0x01
ALG_COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "— "  # an em dash and a space
_NAME = re.compile(r"^[^\s+]+$")
_MAX_SIGNATURES = 100


class NoteError(Exception):
    """A note, key or signature that is malformed or does not verify."""


def key_id(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public).digest()[:4]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("not base64") from None


@dataclass(frozen=True)
class Verifier:
    """A public key under a name: checks note signatures (type 0x01) or cosignatures (type 0x04)."""

    name: str
    public: bytes
    alg: int = ALG_ED25519

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public)

    def __str__(self) -> str:
        blob = base64.b64encode(bytes([self.alg]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        parts = text.strip().split("+", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]) or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise NoteError(f"not a verifier key (name+hash+key): {text[:40]!r}")
        blob = _b64decode(parts[2])
        if len(blob) != 33 or blob[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise NoteError("a verifier key is an Ed25519 key (type 0x01) or a cosignature key (type 0x04)")
        verifier = cls(parts[0], blob[1:], blob[0])
        if verifier.key_id.hex() != parts[1]:
            raise NoteError(f"the key hash of {parts[0]!r} does not match its key")
        verifier.ed25519()  # rejects a malformed point
        return verifier

    def ed25519(self) -> Ed25519PublicKey:
        try:
            return Ed25519PublicKey.from_public_bytes(self.public)
        except ValueError:
            raise NoteError(f"the key of {self.name!r} is not an Ed25519 public key") from None

    def as_cosigner(self) -> Verifier:
        return Verifier(self.name, self.public, ALG_COSIGNATURE_V1)

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self.ed25519().verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Signer:
    """An Ed25519 private key under a name."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        if not _NAME.match(name):
            raise NoteError(f"key names have no spaces or '+': {name!r}")
        self.name = name
        self._private = private
        self.public = _raw_public(private.public_key())

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> Signer:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a private key (PRIVATE+KEY+name+hash+key)")
        blob = _b64decode(parts[4])
        if len(blob) != 33 or blob[0] != ALG_ED25519:
            raise NoteError("a private key is an Ed25519 seed (type 0x01)")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(blob[1:]))
        if signer.verifier.key_id.hex() != parts[3]:
            raise NoteError(f"the key hash of {parts[2]!r} does not match its key")
        return signer

    def __str__(self) -> str:
        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        blob = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{blob}"

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public, ALG_ED25519)

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)


def signature_line(name: str, kid: bytes, signature: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(kid + signature).decode()}\n"


def sign_note(text: str, signers: list[Signer]) -> str:
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text ends with a newline and has no blank line")
    lines = [signature_line(s.name, s.verifier.key_id, s.sign(text.encode())) for s in signers]
    return text + "\n" + "".join(lines)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    blob: bytes  # what follows the key id


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The note's text and its signature lines (unverified)."""
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("a signed note has a blank line before its signatures")
    text, block = note[: cut + 1], note[cut + 2 :]
    signatures = []
    for line in block.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:40]!r}")
        fields = line[len(SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2 or not _NAME.match(fields[0]):
            raise NoteError(f"malformed signature line: {line[:40]!r}")
        blob = _b64decode(fields[1])
        if len(blob) < 5:
            raise NoteError("a signature is a key id and a signature")
        signatures.append(NoteSignature(fields[0], blob[:4], blob[4:]))
    if not signatures or len(signatures) > _MAX_SIGNATURES:
        raise NoteError("a signed note has from 1 to 100 signatures")
    return text, signatures


def open_note(note: str, verifier: Verifier) -> str:
    """The note's text once ``verifier``'s signature over it checks; NoteError otherwise."""
    text, signatures = split_note(note)
    for sig in signatures:
        if sig.name == verifier.name and sig.key_id == verifier.key_id:
            if verifier.verify(text.encode(), sig.blob):
                return text
            raise NoteError(f"the signature of {verifier.name!r} does not verify")
    raise NoteError(f"the note carries no signature by {verifier.name!r}")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog checkpoint: origin, tree size, root hash (and optional extension lines)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        head = f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"
        return head + "".join(line + "\n" for line in self.extensions)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is origin, size and root hash lines")
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", lines[1]):
            raise NoteError("a checkpoint's size is a decimal number")
        root = _b64decode(lines[2])
        if len(root) != 32:
            raise NoteError("a checkpoint's root is a base64 SHA-256 hash")
        return cls(lines[0], int(lines[1]), root, tuple(lines[3:-1]))


def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(text: str, signer: Signer, timestamp: int) -> str:
    """A witness's cosignature/v1 line for a checkpoint text."""
    cosigner = signer.verifier.as_cosigner()
    signature = signer.sign(cosignature_message(text, timestamp))
    return signature_line(signer.name, cosigner.key_id, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(text: str, signature: NoteSignature, verifier: Verifier) -> int | None:
    """The cosignature's timestamp if it is ``verifier``'s valid cosignature over ``text``, else None."""
    cosigner = verifier.as_cosigner()
    if signature.name != cosigner.name or signature.key_id != cosigner.key_id or len(signature.blob) != 72:
        return None
    (timestamp,) = struct.unpack(">Q", signature.blob[:8])
    if not cosigner.verify(cosignature_message(text, timestamp), signature.blob[8:]):
        return None
    return int(timestamp)


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as a note: the log's signature and the witnesses' cosignatures."""

    checkpoint: Checkpoint
    note: str

    @classmethod
    def open(cls, note: str, log: Verifier) -> SignedCheckpoint:
        return cls(Checkpoint.parse(open_note(note, log)), note)

    def cosigners(self, witnesses: list[Verifier]) -> dict[str, int]:
        """Witness name → timestamp of each valid cosignature by one of ``witnesses``."""
        text, signatures = split_note(self.note)
        found: dict[str, int] = {}
        for sig in signatures:
            for witness in witnesses:
                timestamp = verify_cosignature(text, sig, witness)
                if timestamp is not None:
                    found[witness.name] = timestamp
        return found

    def with_cosignature(self, line: str) -> SignedCheckpoint:
        if line in self.note:
            return self
        return SignedCheckpoint(self.checkpoint, self.note + line)
