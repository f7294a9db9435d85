"""Strategy versions and which one is live (and which one shadows it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from riskguard.errors import Conflict, NotFound
from riskguard.store import audit
from riskguard.store.tables import deployments, strategies, utcnow


@dataclass(frozen=True)
class Deployment:
    id: int
    role: str
    name: str | None
    version: int | None
    at: datetime
    by: str


def checksum(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class StrategyRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def save(self, name: str, version: int, document: str, actor: str) -> bool:
        """Stores a version; True when new. The same name and version with other content is refused."""
        digest = checksum(document)
        with self._engine.begin() as connection:
            row = connection.execute(
                select(strategies.c.checksum).where(strategies.c.name == name, strategies.c.version == version)
            ).first()
            if row is not None:
                if row.checksum != digest:
                    raise Conflict(
                        f"strategy {name!r} version {version} is already published with other "
                        f"content; give the changed document a new version number"
                    )
                return False
            connection.execute(
                insert(strategies).values(
                    name=name,
                    version=version,
                    document=document,
                    checksum=digest,
                    created_at=utcnow(),
                    created_by=actor,
                )
            )
            audit.record(connection, actor, "strategy.save", f"{name}@{version}", {"checksum": digest})
        return True

    def get(self, name: str, version: int | None = None) -> dict[str, Any]:
        query = select(strategies).where(strategies.c.name == name)
        if version is None:
            query = query.order_by(strategies.c.version.desc()).limit(1)
        else:
            query = query.where(strategies.c.version == version)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise NotFound(f"no strategy {name!r}" + ("" if version is None else f" version {version}"))
        return row._asdict()

    def versions(self, name: str | None = None) -> list[dict[str, Any]]:
        query = select(
            strategies.c.name,
            strategies.c.version,
            strategies.c.checksum,
            strategies.c.created_at,
            strategies.c.created_by,
        ).order_by(strategies.c.name, strategies.c.version)
        if name:
            query = query.where(strategies.c.name == name)
        with self._engine.connect() as connection:
            return [row._asdict() for row in connection.execute(query)]

    def deploy(self, role: str, name: str | None, version: int | None, actor: str, note: str = "") -> int:
        """Makes a version live (or the shadow); one row, so publication is atomic."""
        with self._engine.begin() as connection:
            if name is not None:
                exists = connection.execute(
                    select(strategies.c.version).where(strategies.c.name == name, strategies.c.version == version)
                ).first()
                if exists is None:
                    raise NotFound(f"no strategy {name!r} version {version}")
            result = connection.execute(
                insert(deployments).values(role=role, name=name, version=version, at=utcnow(), by=actor, note=note)
            )
            audit.record(
                connection, actor, f"strategy.deploy.{role}", f"{name}@{version}" if name else "(none)", {"note": note}
            )
        return int(result.inserted_primary_key[0])

    def current(self, role: str) -> Deployment | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(deployments).where(deployments.c.role == role).order_by(deployments.c.id.desc()).limit(1)
            ).first()
        if row is None or row.name is None:
            return None
        return Deployment(row.id, row.role, row.name, row.version, row.at, row.by)

    def history(self, role: str = "live", limit: int = 50) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            return [
                row._asdict()
                for row in connection.execute(
                    select(deployments).where(deployments.c.role == role).order_by(deployments.c.id.desc()).limit(limit)
                )
            ]

    def last_deployment_id(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.coalesce(func.max(deployments.c.id), 0))).scalar_one())
