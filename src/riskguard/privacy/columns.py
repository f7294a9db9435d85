"""Where riskguard's database keeps personal data, and how each place is protected.

The inventory drives ``riskguard keys rotate`` (every sealed value re-encrypted under the active key,
plaintext left by older installations sealed, tokens recomputed under a new token key) and the docs.
Capabilities that add a table with personal data register its columns here with ``register``.

Modes:
- ``fields``: a JSON event envelope whose personal fields are sealed in place (fields.seal_event);
- ``whole``: a JSON document or free text sealed as one value (``kind`` says which);
- ``token``: a keyed token (kind ``value``) whose sealed plaintext lives in ``privacy_vault``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    mode: str  # fields | whole | token
    key: tuple[str, ...]  # the primary key (``fields`` columns need one column, for keyset paging)
    kind: str = "document"  # the kind plaintext rows are sealed as (whole mode)
    seal_plain: bool = True  # token mode: also tokenise plaintext rows (False: only some rows are personal)


COLUMNS: list[SealedColumn] = [
    SealedColumn("events", "payload", "fields", ("event_id",)),
    SealedColumn("decisions", "body", "whole", ("event_id",)),
    SealedColumn("labels", "entity_value", "token", ("id",)),
    SealedColumn("labels", "note", "whole", ("id",), "text"),
    SealedColumn("list_entries", "value", "token", ("list_name", "value")),
    SealedColumn("list_entries", "reason", "whole", ("list_name", "value"), "text"),
    SealedColumn("graph_alerts", "evidence", "whole", ("id",)),
    SealedColumn("complaint_alerts", "evidence", "whole", ("id",)),
    SealedColumn("complaint_records", "payload", "fields", ("id",)),
    SealedColumn("traces", "request", "whole", ("trace_id",)),
    SealedColumn("traces", "document", "whole", ("trace_id",)),
    SealedColumn("consortium_watch", "value", "token", ("token",)),
    SealedColumn("privacy_alerts", "evidence", "whole", ("id",)),
    SealedColumn("privacy_vault", "sealed", "whole", ("token",), "value"),
    # published features keep pseudonymous ids as they are; entities that look personal are tokens
    SealedColumn("published_features", "entity", "token", ("source", "entity"), seal_plain=False),
]


def register(column: SealedColumn) -> None:
    """Adds another capability's column to the inventory (idempotent)."""
    if column not in COLUMNS:
        COLUMNS.append(column)
