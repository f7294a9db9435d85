"""What this installation trusts: attestation roots per provider, app identities, revocation lists, policy.

Loaded from the YAML file named by ``RISKGUARD_DEVICE_CONFIG`` (paths in it are relative to the file), or
built in code (tests and the demo pass PEM bytes). With no configuration, every provider has no roots, so no
key is ever *attested*; unattested software keys can still register and sign (with low trust).

The revocation list uses the format of Google's attestation status list
(``{"entries": {"<hex serial>": {"status": "REVOKED", "reason": "KEY_COMPROMISE"}}}``) and applies to the
certificates of every provider's chains. A file is read again when its modification time changes, so an
operator who refreshes it on disk need not restart the service.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from riskguard.errors import ConfigError

SECURITY_LEVELS = ("strongbox", "secure_enclave", "tee", "hardware", "software", "none")


def load_pem_certificates(data: bytes | str, *, where: str = "roots") -> list[x509.Certificate]:
    raw = data.encode() if isinstance(data, str) else data
    try:
        certs = x509.load_pem_x509_certificates(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: not PEM certificates ({exc})") from None
    return certs


def serial_key(serial: int | str) -> str:
    """A serial number as the status list writes it: lower-case hex without leading zeros."""
    value = int(serial, 16) if isinstance(serial, str) else serial
    return format(value, "x")


class RevocationList:
    """Revoked certificate serial numbers, from status-list files and from code."""

    def __init__(self, files: Iterable[Path] = (), serials: Iterable[int | str] = ()) -> None:
        self.files = list(files)
        self._extra = {serial_key(s) for s in serials}
        self._from_files: set[str] = set()
        self._stamps: dict[Path, float] = {}
        self._lock = threading.Lock()
        self._revoked: frozenset[str] = frozenset(self._extra)
        self.reload()

    def revoke(self, serial: int | str) -> None:
        with self._lock:
            self._extra.add(serial_key(serial))
            self._revoked = frozenset(self._extra | self._from_files)

    def reload(self) -> bool:
        """Reads the files again if any changed; returns whether anything was read."""
        stamps = {}
        for path in self.files:
            try:
                stamps[path] = path.stat().st_mtime
            except FileNotFoundError:
                raise ConfigError(f"revocation list {path} does not exist") from None
        if stamps == self._stamps:
            return False
        revoked: set[str] = set()
        for path in self.files:
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                entries = document.get("entries", {})
            except (ValueError, AttributeError):
                raise ConfigError(f'revocation list {path}: not a status list ({{"entries": {{...}}}})') from None
            for serial, entry in entries.items():
                status = str((entry or {}).get("status", "REVOKED")).upper()
                if status in ("REVOKED", "SUSPENDED"):
                    revoked.add(serial_key(serial))
        with self._lock:
            self._from_files = revoked
            self._stamps = stamps
            self._revoked = frozenset(self._extra | revoked)
        return True

    def is_revoked(self, serial: int | str) -> bool:
        return serial_key(serial) in self._revoked

    def any_revoked(self, serials: Iterable[str]) -> bool:
        revoked = self._revoked
        return any(s in revoked for s in serials)


@dataclass
class OemRoot:
    """A manufacturer's attestation root and what its keys are (by the partnership's terms)."""

    certificate: x509.Certificate
    vendor: str
    security_level: str = "hardware"


@dataclass
class Policy:
    challenge_ttl_s: float = 60.0
    nonce_bytes: int = 32
    patch_old_days: int = 365
    key_new_days: int = 7
    new_device_days: int = 7
    farm_network_devices: int = 8  # distinct devices registered from one network within 24 h
    burst_registrations: int = 10  # registrations (keys) from one network within 1 h
    farm_fingerprint_devices: int = 5  # distinct devices sharing one fingerprint
    many_accounts: int = 3
    many_devices: int = 5

    def check(self) -> None:
        if not (1 <= self.challenge_ttl_s <= 60):
            raise ConfigError("device policy.challenge_ttl_s must be 1..60 seconds")
        if not (16 <= self.nonce_bytes <= 64):
            raise ConfigError("device policy.nonce_bytes must be 16..64")
        for name in ("farm_network_devices", "burst_registrations", "farm_fingerprint_devices", "many_accounts"):
            if getattr(self, name) < 2:
                raise ConfigError(f"device policy.{name} must be at least 2")


@dataclass
class TrustConfig:
    android_roots: list[x509.Certificate] = field(default_factory=list)
    android_packages: dict[str, set[str]] = field(default_factory=dict)  # package → signing digests (hex)
    webauthn_rp_id: str | None = None
    webauthn_origins: list[str] = field(default_factory=list)
    webauthn_roots: list[x509.Certificate] = field(default_factory=list)
    apple_app_ids: list[str] = field(default_factory=list)  # "TEAMID.bundle.id"
    apple_roots: list[x509.Certificate] = field(default_factory=list)
    apple_allow_development: bool = False
    oem_roots: list[OemRoot] = field(default_factory=list)
    revocation: RevocationList = field(default_factory=RevocationList)
    policy: Policy = field(default_factory=Policy)

    def __post_init__(self) -> None:
        self.android_packages = {k: {d.lower() for d in v} for k, v in self.android_packages.items()}
        for root in self.oem_roots:
            if root.security_level not in SECURITY_LEVELS:
                raise ConfigError(f"oem root {root.vendor}: security_level must be one of {', '.join(SECURITY_LEVELS)}")
        self.policy.check()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> TrustConfig:
        file = Path(path)
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"RISKGUARD_DEVICE_CONFIG: {file} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"RISKGUARD_DEVICE_CONFIG: {file} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"RISKGUARD_DEVICE_CONFIG: {file} must be a mapping")
        return cls.from_dict(raw, base=file.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, base: Path = Path(".")) -> TrustConfig:
        known = {"android", "webauthn", "apple", "oem", "revocation", "policy"}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"device config: unknown sections {sorted(unknown)} (known: {sorted(known)})")

        def roots(section: str, entries: Any) -> list[x509.Certificate]:
            out: list[x509.Certificate] = []
            for entry in entries or []:
                path = base / str(entry)
                try:
                    out.extend(load_pem_certificates(path.read_bytes(), where=f"{section}.roots: {path}"))
                except FileNotFoundError:
                    raise ConfigError(f"device config {section}.roots: {path} does not exist") from None
            return out

        android = raw.get("android") or {}
        webauthn = raw.get("webauthn") or {}
        apple = raw.get("apple") or {}
        oem: list[OemRoot] = []
        for index, entry in enumerate(raw.get("oem", {}).get("roots", []) if raw.get("oem") else []):
            if not isinstance(entry, dict) or "file" not in entry or "vendor" not in entry:
                raise ConfigError(f"device config oem.roots[{index}]: give file, vendor and security_level")
            for cert in roots("oem", [entry["file"]]):
                oem.append(OemRoot(cert, str(entry["vendor"]), str(entry.get("security_level", "hardware"))))
        policy_raw = raw.get("policy") or {}
        try:
            policy = Policy(**policy_raw)
        except TypeError as exc:
            raise ConfigError(f"device config policy: {exc}") from None
        return cls(
            android_roots=roots("android", android.get("roots")),
            android_packages={str(k): set(map(str, v or [])) for k, v in (android.get("packages") or {}).items()},
            webauthn_rp_id=webauthn.get("rp_id"),
            webauthn_origins=list(webauthn.get("origins") or []),
            webauthn_roots=roots("webauthn", webauthn.get("roots")),
            apple_app_ids=list(apple.get("app_ids") or []),
            apple_roots=roots("apple", apple.get("roots")),
            apple_allow_development=bool(apple.get("allow_development", False)),
            oem_roots=oem,
            revocation=RevocationList([base / str(p) for p in raw.get("revocation") or []]),
            policy=policy,
        )
