"""Published features: per-entity numbers computed outside the decision path (graph mining, mule scoring,
the consortium ledger) and stored so that every decision process can read them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from riskguard.errors import ValidationFailed
from riskguard.privacy.cipher import is_token
from riskguard.privacy.fields import kind_of_value
from riskguard.privacy.service import token_values, vault_open
from riskguard.store import audit
from riskguard.store.tables import published_features, published_sources, utcnow

SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,46}\.[a-z][a-z0-9_]{0,46}$")
CHUNK = 5_000


def _invalid(loc: list[Any], msg: str) -> ValidationFailed:
    return ValidationFailed([{"loc": loc, "type": "value_error", "msg": msg}])


def check_source(source: str) -> str:
    if not isinstance(source, str) or not SOURCE.match(source):
        raise _invalid(
            ["source"], "a source is <namespace>.<name> in lower-case letters, digits and _ (e.g. graph.risk)"
        )
    return source


def check_values(values: Mapping[str, Any]) -> dict[str, float]:
    """Entity id → finite number (booleans become 0 or 1)."""
    if not isinstance(values, Mapping):
        raise _invalid(["values"], "values are an object of entity id → number")
    clean: dict[str, float] = {}
    for entity, value in values.items():
        if not isinstance(entity, str) or not entity or len(entity) > 256:
            raise _invalid(["values"], "entity ids are non-empty strings of at most 256 characters")
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _invalid(["values", entity], "a published value is a number or a boolean")
        number = float(value)
        if not math.isfinite(number):
            raise _invalid(["values", entity], "a published value is a finite number")
        clean[entity] = number
    return clean


class PublishedRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def publish(self, source: str, values: Mapping[str, Any], *, replace: bool, actor: str) -> int:
        """Stores ``values`` under ``source`` (replacing all earlier ones when ``replace``) in one
        transaction, and bumps the source's version so that every process reloads it."""
        check_source(source)
        clean = check_values(values)
        now = utcnow()
        upsert = self._insert(published_features)
        upsert = upsert.on_conflict_do_update(
            index_elements=[published_features.c.source, published_features.c.entity],
            set_={"value": upsert.excluded.value, "published_at": upsert.excluded.published_at},
        )
        with self._engine.begin() as connection:
            # entities that look personal (phones, e-mails, IPs, card numbers) are kept as tokens
            personal = token_values(connection, self._engine, [k for k in clean if kind_of_value(k)])
            rows = [
                {"source": source, "entity": personal.get(k, k), "value": v, "published_at": now}
                for k, v in clean.items()
            ]
            if replace:
                connection.execute(delete(published_features).where(published_features.c.source == source))
            for start in range(0, len(rows), CHUNK):
                connection.execute(upsert, rows[start : start + CHUNK])
            count = connection.execute(
                select(func.count()).select_from(published_features).where(published_features.c.source == source)
            ).scalar_one()
            version = connection.execute(
                select(published_sources.c.version).where(published_sources.c.source == source)
            ).scalar()
            head = self._insert(published_sources).values(
                source=source, version=(version or 0) + 1, entities=count, published_at=now, published_by=actor
            )
            head = head.on_conflict_do_update(
                index_elements=[published_sources.c.source],
                set_={
                    "version": head.excluded.version,
                    "entities": head.excluded.entities,
                    "published_at": head.excluded.published_at,
                    "published_by": head.excluded.published_by,
                },
            )
            connection.execute(head)
            audit.record(connection, actor, "features.publish", source, {"entities": len(rows), "replace": replace})
        return len(rows)

    def versions(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            return dict(connection.execute(select(published_sources.c.source, published_sources.c.version)).all())

    def sources(self) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(published_sources).order_by(published_sources.c.source))
            return [row._asdict() for row in rows]

    def load(self, source: str) -> dict[str, float]:
        query = select(published_features.c.entity, published_features.c.value).where(
            published_features.c.source == source
        )
        with self._engine.connect() as connection:
            found = dict(connection.execute(query).all())
            plain = vault_open(connection, [k for k in found if is_token(k)])
        return {plain.get(k, k): v for k, v in found.items()}
