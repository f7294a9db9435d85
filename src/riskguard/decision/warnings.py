"""The catalogue of user-facing risk warnings, in zh-CN and en, keyed by name."""

from __future__ import annotations

from pathlib import Path

import yaml

from riskguard.errors import ConfigError

LOCALES = ("en", "zh-CN")


class WarningCatalogue:
    def __init__(self, entries: dict[str, dict[str, dict[str, str]]]) -> None:
        for key, texts in entries.items():
            for locale in LOCALES:
                text = texts.get(locale)
                if not isinstance(text, dict) or not text.get("title") or not text.get("text"):
                    raise ConfigError(f"warning {key!r} needs a title and a text in {locale}")
        self._entries = entries

    @classmethod
    def from_file(cls, path: str | Path) -> WarningCatalogue:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read the warnings catalogue {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the warnings catalogue {path} must map names to texts")
        return cls(data)

    def keys(self) -> set[str]:
        return set(self._entries)

    def render(self, key: str, locale: str) -> dict[str, str]:
        texts = self._entries[key][locale if locale in LOCALES else "en"]
        return {"key": key, "title": texts["title"], "text": texts["text"]}
