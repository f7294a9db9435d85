"""Structured logging: one JSON object per line, personal identifiers masked before they are written."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from riskguard.masking import mask

# Phone numbers (7+ digits), IPv4 addresses and e-mail addresses that slip into a message are masked.
_SENSITIVE = re.compile(r"\b\d{7,}\b|\b\d{1,3}(?:\.\d{1,3}){3}\b|[\w.+-]+@[\w-]+\.[\w.]+")


def scrub(text: str) -> str:
    return _SENSITIVE.sub(lambda m: mask(m.group(0)) or "", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info).splitlines()[-1])
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("riskguard")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
