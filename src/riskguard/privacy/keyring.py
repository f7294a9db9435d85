"""The keyring: AES-256 field keys by id (one active) and HMAC token keys by id (one active).

It comes from configuration — ``RISKGUARD_KEYRING`` (the JSON text below, for secret managers that inject
environment variables) or the file ``RISKGUARD_KEYRING_FILE`` (``auto``: beside a SQLite database, else
``./var/riskguard.keyring.json``). On the first run of an installation with neither, a keyring with fresh
random keys is written to that file with permissions 0600 and the log says so; riskguard never runs on a
built-in key. Format::

    {"format": 1, "active": "k3f2a9c1d", "keys": {"k3f2a9c1d": "<base64 of 32 bytes>"},
     "active_token": "t71be02aa", "token_keys": {"t71be02aa": "<base64 of 32 bytes>"}, "retired": []}
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskguard.errors import ConfigError

log = logging.getLogger("riskguard.privacy")
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    active: str
    token_keys: dict[str, bytes]
    active_token: str
    retired: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": 1,
                "active": self.active,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
                "active_token": self.active_token,
                "token_keys": {k: base64.b64encode(v).decode() for k, v in self.token_keys.items()},
                "retired": list(self.retired),
            },
            indent=2,
        )

    def with_new_key(self) -> Keyring:
        key_id = new_key_id("k")
        return Keyring(
            {**self.keys, key_id: secrets.token_bytes(32)}, key_id, self.token_keys, self.active_token, self.retired
        )

    def with_new_token_key(self) -> Keyring:
        key_id = new_key_id("t")
        keys = {**self.token_keys, key_id: secrets.token_bytes(32)}
        return Keyring(self.keys, self.active, keys, key_id, self.retired)

    def without(self, key_ids: set[str]) -> Keyring:
        """The keyring with ``key_ids`` (field or token keys, never the active ones) retired."""
        if self.active in key_ids or self.active_token in key_ids:
            raise ValueError("an active key cannot be retired")
        return Keyring(
            {k: v for k, v in self.keys.items() if k not in key_ids},
            self.active,
            {k: v for k, v in self.token_keys.items() if k not in key_ids},
            self.active_token,
            tuple(dict.fromkeys([*self.retired, *sorted(key_ids)])),
        )


def new_key_id(prefix: str) -> str:
    return prefix + secrets.token_hex(4)


def generate() -> Keyring:
    key, token = new_key_id("k"), new_key_id("t")
    return Keyring({key: secrets.token_bytes(32)}, key, {token: secrets.token_bytes(32)}, token)


def parse(text: str, *, source: str) -> Keyring:
    """A keyring from its JSON text; ConfigError naming ``source`` and the problem otherwise."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: the keyring is not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != 1:
        raise ConfigError(f'{source}: the keyring must be a JSON object with "format": 1')
    keys = _keys(data.get("keys"), f"{source}: keys")
    token_keys = _keys(data.get("token_keys"), f"{source}: token_keys")
    active, active_token = data.get("active"), data.get("active_token")
    if active not in keys:
        raise ConfigError(f"{source}: active key {active!r} is not among keys {sorted(keys)}")
    if active_token not in token_keys:
        raise ConfigError(f"{source}: active_token {active_token!r} is not among token_keys {sorted(token_keys)}")
    retired = data.get("retired", [])
    if not isinstance(retired, list) or not all(isinstance(r, str) for r in retired):
        raise ConfigError(f"{source}: retired must be a list of key ids")
    return Keyring(keys, active, token_keys, active_token, tuple(retired))


def _keys(raw: Any, where: str) -> dict[str, bytes]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where} must be an object of key id → base64 key, with at least one key")
    keys: dict[str, bytes] = {}
    for key_id, text in raw.items():
        if not KEY_ID.match(str(key_id)):
            raise ConfigError(f"{where}: key id {key_id!r} must be 1-32 letters, digits, '_' or '-'")
        try:
            key = base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{where}: key {key_id!r} is not base64") from None
        if len(key) != 32:
            raise ConfigError(f"{where}: key {key_id!r} must be 256 bits (32 bytes), got {len(key)} bytes")
        keys[key_id] = key
    return keys


def keyring_path(keyring_file: str, database_url: str) -> Path:
    """Where the keyring file is: ``auto`` puts it beside a SQLite database file, else under ./var."""
    value = keyring_file.strip()
    if value.lower() != "auto":
        return Path(value).expanduser()
    match = re.match(r"^sqlite(?:\+\w+)?:///(.+)$", database_url)
    if match and match.group(1) != ":memory:":
        return Path(match.group(1)).expanduser().with_suffix(".keyring.json")
    return Path("var") / "riskguard.keyring.json"


def read_file(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the keyring {path}: {exc.strerror}") from None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("the keyring %s is readable by others (mode %o); chmod 600 it", path, mode)
    return parse(text, source=str(path))


def write_file(path: Path, keyring: Keyring, *, create: bool = False) -> None:
    """Writes the keyring with permissions 0600, atomically (a crash leaves the old or the new file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if create:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # two first runs: one wins
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(keyring.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        return
    temporary = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(keyring.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load(inline: str, keyring_file: str, database_url: str, *, may_create: bool) -> tuple[Keyring, Path | None, bool]:
    """(keyring, its file or None when inline, created now). ``may_create``: this installation has no
    sealed data yet, so a missing keyring file may be generated."""
    if inline.strip():
        return parse(inline, source="RISKGUARD_KEYRING"), None, False
    path = keyring_path(keyring_file, database_url)
    if path.exists():
        return read_file(path), path, False
    if not may_create:
        raise ConfigError(
            f"no keyring at {path}, but this database holds values sealed with keys; restore the keyring "
            "(RISKGUARD_KEYRING_FILE or RISKGUARD_KEYRING) — a new one could not open them"
        )
    keyring = generate()
    try:
        write_file(path, keyring, create=True)
    except FileExistsError:  # another process of the same installation generated it first
        return read_file(path), path, False
    log.info(  # `riskguard serve` says so on the console too, as it does for the first API key
        "generated a new keyring for field encryption at %s (mode 0600): back it up with the database; "
        "without it the encrypted personal data cannot be read",
        path,
    )
    return keyring, path, True
