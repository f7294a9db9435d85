"""The breached-password corpus and its k-anonymity range API (the scheme "Have I Been Pwned" made
common): a client hashes the password with SHA-1, sends the first 5 hex digits, and gets back every
suffix of the corpus under that prefix with its count; it looks for its own suffix locally, so neither
the password nor its full hash leaves the client.

Import reads the range format itself — ``HASH:COUNT`` lines (40 hex digits), or per-prefix files named
by their 5-digit prefix holding ``SUFFIX:COUNT`` lines (what the public downloader writes) — as a
stream, and writes batches through the driver's ``executemany`` with an upsert, so importing the same
corpus again (or a newer one with higher counts) leaves one row per hash with the latest count.

Padding: with ``pad=True`` the answer is filled with random suffixes of count 0 up to ``pad_to`` lines
(or the next multiple of 100 above a larger real answer), and all lines are sorted together, so the
response size no longer tells an observer of the encrypted connection how many hashes the prefix
holds — which would narrow down the prefix. Clients ignore lines with count 0.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from riskguard.accountsec.tables import breach_hashes
from riskguard.errors import ValidationFailed

PREFIX = re.compile(r"^[0-9A-Fa-f]{5}$")
_FULL = re.compile(r"^([0-9A-Fa-f]{40})(?::(\d{1,18}))?$")
_SUFFIX = re.compile(r"^([0-9A-Fa-f]{35})(?::(\d{1,18}))?$")
BATCH = 10_000
MAX_BAD_SHOWN = 5


def check_prefix(prefix: str, loc: tuple[str, ...] = ("path", "prefix")) -> str:
    """The prefix in upper case; a 422 naming the field when it is not 5 hex digits."""
    if not PREFIX.match(prefix):
        raise ValidationFailed(
            [{"loc": list(loc), "type": "value_error", "msg": "must be the first 5 hexadecimal digits of a SHA-1 hash"}]
        )
    return prefix.upper()


@dataclass
class ImportResult:
    lines: int = 0
    hashes: int = 0  # rows written (new or updated)
    files: int = 0
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines,
            "hashes": self.hashes,
            "rejected": self.bad,
            "rejected_examples": self.bad_examples,
        }


def _rows(path: Path, result: ImportResult) -> Iterator[tuple[str, str, int]]:
    """(prefix, suffix, count) of one file; a file named by a 5-digit prefix holds suffix lines."""
    stem = path.name.split(".", 1)[0]
    prefix = stem.upper() if PREFIX.match(stem) else None
    pattern = _SUFFIX if prefix else _FULL
    result.files += 1
    with path.open("r", encoding="ascii", errors="replace", newline="") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line:
                continue
            result.lines += 1
            match = pattern.match(line)
            if match is None:
                result.bad += 1
                if len(result.bad_examples) < MAX_BAD_SHOWN:
                    result.bad_examples.append(f"{path.name}:{number}")
                continue
            digest = match.group(1).upper()
            count = int(match.group(2)) if match.group(2) is not None else 1
            if prefix:
                yield prefix, digest, count
            else:
                yield digest[:5], digest[5:], count


def corpus_files(path: Path) -> list[Path]:
    """The file itself, or a directory's regular files in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return [path]


class BreachCorpus:
    """The corpus in riskguard's database: import, range lookup, size."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        mark = "?" if self.dialect == "sqlite" else "%s"
        self._upsert = (
            f"INSERT INTO breach_hashes (prefix, suffix, count) VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT (prefix, suffix) DO UPDATE SET count = excluded.count"
        )
        self._range_sql = f"SELECT suffix, count FROM breach_hashes WHERE prefix = {mark} ORDER BY suffix"
        if self.dialect == "sqlite":  # the answer's text made by the database, not row by row in Python
            self._text_sql = (
                "SELECT group_concat(line, char(13, 10)) FROM (SELECT suffix || ':' || count AS line "
                "FROM breach_hashes WHERE prefix = ? ORDER BY suffix)"
            )
        else:
            self._text_sql = (
                "SELECT string_agg(suffix || ':' || count, E'\\r\\n' ORDER BY suffix) FROM breach_hashes "
                "WHERE prefix = %s"
            )

    def import_path(self, path: Path, *, batch: int = BATCH) -> ImportResult:
        """Imports a range-format file or a directory of per-prefix files (streaming, batched upserts)."""
        result = ImportResult()
        files = corpus_files(path)
        self._write((row for f in files for row in _rows(f, result)), result, batch)
        return result

    def import_rows(self, rows: Iterable[tuple[str, str, int]], *, batch: int = BATCH) -> ImportResult:
        result = ImportResult()
        self._write(iter(rows), result, batch)
        return result

    def _write(self, rows: Iterator[tuple[str, str, int]], result: ImportResult, batch: int) -> None:
        raw: Any = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            pending: dict[tuple[str, str], int] = {}  # a hash given twice in one batch: the last count wins
            for prefix, suffix, count in rows:
                pending[(prefix, suffix)] = count
                if len(pending) >= batch:
                    cursor.executemany(self._upsert, [(p, s, c) for (p, s), c in pending.items()])
                    raw.commit()
                    result.hashes += len(pending)
                    pending.clear()
            if pending:
                cursor.executemany(self._upsert, [(p, s, c) for (p, s), c in pending.items()])
                raw.commit()
                result.hashes += len(pending)
            cursor.close()
        except Exception:
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
        finally:
            raw.close()

    def range(self, prefix: str) -> list[tuple[str, int]]:
        """(suffix, count) under ``prefix`` (already checked, upper case), in suffix order."""
        raw: Any = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(self._range_sql, (prefix,))
            rows = [(suffix, int(count)) for suffix, count in cursor.fetchall()]
            cursor.close()
            return rows
        finally:
            raw.close()

    def range_text(self, prefix: str) -> str:
        """The unpadded answer under ``prefix``: ``render_range(self.range(prefix))``, built by the database."""
        raw: Any = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(self._text_sql, (prefix,))
            row = cursor.fetchone()
            cursor.close()
            return (row[0] if row else None) or ""
        finally:
            raw.close()

    def size(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(breach_hashes)).scalar_one())


def render_range(rows: list[tuple[str, int]], *, pad: bool = False, pad_to: int = 1000) -> str:
    """The range body: ``SUFFIX:COUNT`` lines joined by CRLF, padded with count-0 lines when asked."""
    lines = [f"{suffix}:{count}" for suffix, count in rows]
    if pad:
        target = pad_to if len(rows) <= pad_to else -(-len(rows) // 100) * 100
        real = {suffix for suffix, _ in rows}
        while len(lines) < target:
            need = target - len(lines)
            noise = secrets.token_hex(18 * need).upper()  # one call: 35 of every 36 digits make a suffix
            for k in range(need):
                fake = noise[36 * k : 36 * k + 35]
                if fake not in real:
                    real.add(fake)
                    lines.append(fake + ":0")
        lines.sort()
    return "\r\n".join(lines)
