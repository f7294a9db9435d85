"""Named lists (block, allow, watch) of entity values, with optional expiry and a reason."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from riskguard.errors import ValidationFailed
from riskguard.masking import mask, mask_text
from riskguard.privacy.service import lookup_keys, open_rows, seal_text, token_values
from riskguard.store import audit
from riskguard.store.tables import list_entries, utcnow

LIST_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_list_name(name: str) -> str:
    if not LIST_NAME.match(name):
        raise ValidationFailed(
            [
                {
                    "loc": ["path", "name"],
                    "type": "value_error",
                    "msg": "list names are lower-case letters, digits and _, starting with a letter",
                }
            ]
        )
    return name


class ListRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def add(self, name: str, values: list[str], *, reason: str | None, expires_at: datetime | None, actor: str) -> int:
        check_list_name(name)
        now = utcnow()
        rows = [
            {
                "list_name": name,
                "value": v,
                "reason": reason,
                "expires_at": expires_at,
                "created_at": now,
                "created_by": actor,
            }
            for v in dict.fromkeys(values)
        ]
        statement = self._insert(list_entries)
        statement = statement.on_conflict_do_update(
            index_elements=[list_entries.c.list_name, list_entries.c.value],
            set_={
                "reason": statement.excluded.reason,
                "expires_at": statement.excluded.expires_at,
                "created_at": statement.excluded.created_at,
                "created_by": statement.excluded.created_by,
            },
        )
        with self._engine.begin() as connection:
            stored = token_values(connection, self._engine, [r["value"] for r in rows])  # tokens, sealed in the vault
            connection.execute(
                statement, [{**r, "value": stored[r["value"]], "reason": seal_text(self._engine, reason)} for r in rows]
            )
            audit.record(
                connection,
                actor,
                "list.add",
                name,
                {
                    "count": len(rows),
                    "reason": mask_text(reason),
                    "expires_at": expires_at,
                    "values": [mask(r["value"]) for r in rows][:100],
                },
            )
        return len(rows)

    def remove(self, name: str, values: list[str], *, actor: str) -> int:
        check_list_name(name)
        with self._engine.begin() as connection:
            keys = lookup_keys(self._engine, values)
            result = connection.execute(
                delete(list_entries).where(list_entries.c.list_name == name, list_entries.c.value.in_(keys))
            )
            masked = [mask(v) for v in values[:100]]
            audit.record(connection, actor, "list.remove", name, {"count": result.rowcount, "values": masked})
        return int(result.rowcount or 0)

    def entries(self, name: str | None = None, *, include_expired: bool = False) -> list[dict[str, Any]]:
        query = select(list_entries).order_by(list_entries.c.list_name, list_entries.c.value)
        if name is not None:
            query = query.where(list_entries.c.list_name == name)
        now = utcnow()
        with self._engine.connect() as connection:
            rows = open_rows(connection, [row._asdict() for row in connection.execute(query)], "value", "reason")
        rows.sort(key=lambda r: (r["list_name"], r["value"]))  # stored by token: order by the plaintext
        if not include_expired:
            rows = [r for r in rows if r["expires_at"] is None or r["expires_at"] > now]
        return rows

    def all_live(self) -> dict[str, dict[str, datetime | None]]:
        """Every unexpired entry, as {list: {value: expires_at}} for the in-memory membership index."""
        result: dict[str, dict[str, datetime | None]] = {}
        for row in self.entries():
            result.setdefault(row["list_name"], {})[row["value"]] = row["expires_at"]
        return result
