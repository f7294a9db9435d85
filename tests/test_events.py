"""Event validation: exact money, per-type fields, limits."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from riskguard.errors import ValidationFailed
from riskguard.events.schema import EVENT_TYPES, REQUIRED_BY_TYPE, from_stored, to_json
from riskguard.events.validate import parse_batch, parse_event
from riskguard.masking import mask

from conftest import transfer

amounts = st.decimals(min_value=0, max_value=Decimal("999999999999999.99999999"), places=8,
                      allow_nan=False, allow_infinity=False)


@given(amount=amounts, as_number=st.booleans())
def test_amounts_are_exact_from_json_to_storage(amount: Decimal, as_number: bool) -> None:
    text = format(amount, "f")
    raw = msgspec.json.encode(transfer("m", amount="X")).replace(b'"X"', text.encode() if as_number
                                                                 else f'"{text}"'.encode())
    event = parse_event(raw)
    assert event.amount == amount
    assert from_stored(to_json(event)).amount == amount


def test_every_type_has_its_required_fields_checked() -> None:
    for event_type in EVENT_TYPES:
        body = {"event_id": "e", "type": event_type, "occurred_at": "2026-11-25T10:00:00+08:00", "account_id": "a"}
        required = REQUIRED_BY_TYPE[event_type]
        if required:
            with pytest.raises(ValidationFailed) as caught:
                parse_event(msgspec.json.encode(body))
            assert {e["loc"][-1] for e in caught.value.errors} == set(required)
        else:
            assert parse_event(msgspec.json.encode(body)).type == event_type


def test_timestamps_keep_their_instant() -> None:
    event = parse_event(msgspec.json.encode(transfer("t", occurred_at="2026-11-25T18:00:00+08:00")))
    assert event.occurred_at.timestamp() == parse_event(
        msgspec.json.encode(transfer("t", occurred_at="2026-11-25T10:00:00Z"))).occurred_at.timestamp()


def test_batch_errors_name_the_index() -> None:
    body = msgspec.json.encode({"events": [transfer("a"), transfer("b", type="nope")]})
    with pytest.raises(ValidationFailed) as caught:
        parse_batch(body, max_events=10)
    assert caught.value.errors[0]["loc"] == ["body", "events", 1, "type"]
    with pytest.raises(ValidationFailed, match="at least one"):
        parse_batch(b'{"events": []}', max_events=10)


def test_masking() -> None:
    assert mask("13812345678") == "13*******78"
    assert mask("acc-1") == "ac*-1"
    assert mask("abc") == "****"
    assert mask("6222021234567890123") == "622*************123"
    assert mask(None) is None
