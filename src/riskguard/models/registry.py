"""The model registry: versioned model files on disk and one database row per version.

``riskguard train --out models/NAME`` writes version ``N`` under ``models/NAME/vN/`` and registers it as
``NAME`` version ``N``. Strategies and replays name a model as ``NAME`` (its latest version), ``NAME@N``,
or — replays only — a version directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select

from riskguard.errors import NotFound, ValidationFailed
from riskguard.models.serving import LoadedModel
from riskguard.models.tables import model_versions
from riskguard.store.tables import utcnow

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed([{"loc": ["model"], "msg": message, "type": "value_error"}])


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise _invalid(f"{name!r}: letters, digits, '.', '_', '-', starting with a letter")
    return name


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION``."""
    name, sep, version = ref.partition("@")
    if sep and not version.isdigit():
        raise _invalid(f"{ref!r}: write NAME or NAME@VERSION")
    return check_name(name), int(version) if sep else None


def checksum(path: Path) -> str:
    return hashlib.sha256((path / "model.txt").read_bytes()).hexdigest()


class ModelRegistry:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cache: dict[tuple[str, int], LoadedModel] = {}

    def next_version(self, name: str) -> int:
        with self._engine.connect() as connection:
            current = connection.execute(
                select(func.max(model_versions.c.version)).where(model_versions.c.name == name)
            ).scalar()
        return int(current or 0) + 1

    def register(self, name: str, version: int, path: Path, card: dict[str, Any], actor: str) -> dict[str, Any]:
        row = {
            "name": check_name(name),
            "version": version,
            "path": str(path.resolve()),
            "checksum": checksum(path),
            "card": json.dumps(card, sort_keys=True),
            "created_at": utcnow(),
            "created_by": actor,
        }
        with self._engine.begin() as connection:
            connection.execute(insert(model_versions).values(**row))
        return {k: v for k, v in row.items() if k != "card"}

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        query = select(model_versions).order_by(model_versions.c.name, model_versions.c.version)
        if name is not None:
            query = query.where(model_versions.c.name == name)
        with self._engine.connect() as connection:
            rows = [r._asdict() for r in connection.execute(query)]
        for row in rows:
            card = json.loads(row.pop("card"))
            row["metrics"] = card.get("metrics", {})
            row["window"] = card.get("data", {}).get("window")
        return rows

    def get(self, name: str, version: int | None = None) -> dict[str, Any]:
        query = select(model_versions).where(model_versions.c.name == name)
        query = query.where(model_versions.c.version == version) if version is not None else query
        query = query.order_by(model_versions.c.version.desc()).limit(1)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            what = f"{name}@{version}" if version is not None else name
            raise NotFound(f"no model {what!r} in the registry (train one with `riskguard train`)")
        return row._asdict()

    def load(self, ref: str) -> LoadedModel:
        """A registered version by ``NAME`` / ``NAME@N``, or a version directory; cached by version."""
        path = Path(ref)
        if "@" not in ref and path.is_dir():
            return LoadedModel.load(path)
        name, version = parse_ref(ref)
        row = self.get(name, version)
        key = (row["name"], int(row["version"]))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = LoadedModel.load(Path(row["path"]), name=row["name"], version=row["version"])
            if checksum(found.path) != row["checksum"]:
                del self._cache[key]
                raise _invalid(f"{ref}: model.txt changed since it was registered")
        return found


def load_model(ref: str, registry: ModelRegistry | None = None) -> LoadedModel:
    """A model by directory, or through the registry."""
    path = Path(ref)
    if path.is_dir():
        return LoadedModel.load(path)
    if registry is None:
        raise NotFound(f"{ref}: no such model directory")
    return registry.load(ref)
