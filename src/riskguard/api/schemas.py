"""Request bodies of the HTTP API other than events (events/schema.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Value = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Entity(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["account", "device", "ip", "phone", "card", "merchant", "payee"]
    value: Value


class Label(msgspec.Struct, forbid_unknown_fields=True):
    label: Literal["fraud", "legitimate"]
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    labelled_at: Annotated[datetime, msgspec.Meta(tz=True)]
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    entity: Entity | None = None
    typology: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class LabelBatch(msgspec.Struct, forbid_unknown_fields=True):
    labels: Annotated[list[Label], msgspec.Meta(min_length=1, max_length=1000)]


class Outcome(msgspec.Struct, forbid_unknown_fields=True):
    result: Literal["passed", "failed", "abandoned"]
    method: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] = "unspecified"
    reported_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class ListEntries(msgspec.Struct, forbid_unknown_fields=True):
    values: Annotated[list[Value], msgspec.Meta(min_length=1, max_length=10000)]
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    expires_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None
    ttl_seconds: Annotated[int, msgspec.Meta(gt=0, le=10 * 365 * 86400)] | None = None


class PublishedValues(msgspec.Struct, forbid_unknown_fields=True):
    """Per-entity numbers a batch job computed, under one source (``PUT /v1/published/{source}``)."""

    values: Annotated[dict[str, float | int | bool], msgspec.Meta(max_length=1_000_000)]
    replace: bool = False


class ListRemoval(msgspec.Struct, forbid_unknown_fields=True):
    values: Annotated[list[Value], msgspec.Meta(min_length=1, max_length=10000)]
