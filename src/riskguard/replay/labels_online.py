"""Label events online: when labels are recorded, each becomes an internal ``label`` event folded into the
feature state at its ``labelled_at`` (features/label_events.py), so label-aware features see it from then
on — exactly where a replay places it. Only done when a declared feature counts label events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from riskguard.events.schema import Event, from_stored
from riskguard.features.label_events import admits_labels, label_event
from riskguard.rules.activation import event_variables


def label_events(guard: Any, items: list[dict[str, Any]], ids: list[int]) -> Iterator[Event]:
    """The label events of labels (rows as stored, or as recorded with their ids), in the given order;
    labels of events riskguard never saw, or of entity kinds no event field holds, give none."""
    wanted = [item["event_id"] for item in items if item.get("event_id")]
    payloads = guard.events.payloads(wanted) if wanted else {}
    for item, label_id in zip(items, ids, strict=True):
        original = from_stored(payloads[item["event_id"]]) if item.get("event_id") in payloads else None
        if item.get("event_id") and original is None:
            continue  # a label of an event riskguard never saw: nothing to fold
        event = label_event(
            label_id=str(label_id),
            label=item["label"],
            labelled_at=item["labelled_at"],
            typology=item.get("typology"),
            original=original,
            entity_kind=item.get("entity_kind"),
            entity_value=item.get("entity_value"),
        )
        if event is not None:
            yield event


def counts_labels(guard: Any) -> bool:
    """Whether any declared feature counts label events."""
    return any(admits_labels(f.spec.when) for f in guard.feature_engine.features)


def fold_labels(guard: Any, items: list[dict[str, Any]], ids: list[int]) -> int:
    """Folds the label events of newly recorded labels; returns how many were folded."""
    if not counts_labels(guard):
        return 0
    engine = guard.feature_engine
    folded = 0
    for event in label_events(guard, items, ids):
        with guard._lock:
            engine.observe(engine.prepare(event, event_variables(event)))
        folded += 1
    return folded
