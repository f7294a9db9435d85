"""The memory feature engine survives a restart: snapshot plus replay of what was decided since."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskguard.app import RiskGuard
from riskguard.config import Settings

from conftest import EXAMPLE_STRATEGY, make_settings, transfer


def _decide(rg: RiskGuard, first: int, count: int) -> list[dict]:
    return [
        rg.decide(
            transfer(
                f"t{i}",
                account_id=f"acc-{i % 3}",
                device_id="dev-shared",
                counterparty_id=f"payee-{i % 5}",
                occurred_at=f"2026-11-25T10:{i:02d}:00Z",
            ),
            with_explain=True,
        )["explain"]["features"]
        for i in range(first, first + count)
    ]


def test_a_crashed_service_restores_its_snapshot_and_replays_the_rest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rg.db'}"
    with RiskGuard(make_settings(url), background=False) as reference:
        reference.publish(EXAMPLE_STRATEGY, actor="test")
        want = _decide(reference, 0, 40)
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    first = RiskGuard(make_settings(url), background=False)
    first.publish(EXAMPLE_STRATEGY, actor="test")
    _decide(first, 0, 25)
    assert first.snapshot_features()
    first._snapshots.wait()
    _decide(first, 25, 10)  # decided after the snapshot: only in the log
    # the process dies here: no close, no final snapshot
    second = RiskGuard(make_settings(url), background=False)
    try:
        got = _decide(second, 35, 5)
    finally:
        second.close()
        first.writer.close()
    assert got == want[35:]
    assert second.feature_restore is not None
    assert second.feature_restore["replayed"] >= 10  # the ten after the snapshot (and the overlap before it)


def test_an_unreadable_snapshot_is_set_aside_and_state_rebuilt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rg.db'}"
    with RiskGuard(make_settings(url), background=False) as rg:
        rg.publish(EXAMPLE_STRATEGY, actor="test")
        _decide(rg, 0, 10)
    snapshot = tmp_path / "rg.features"
    assert snapshot.exists()  # written at shutdown
    snapshot.write_bytes(b"not a snapshot")
    with RiskGuard(make_settings(url), background=False) as rg:
        values = _decide(rg, 10, 1)[0]
    assert values["device_accounts_7d"] == 3  # rebuilt from the log instead
    assert (tmp_path / "rg.features.unreadable").exists()


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        ("sqlite:///./var/riskguard.db", "auto", Path("var/riskguard.features")),
        ("postgresql+psycopg://u@h/db", "auto", None),
        ("sqlite:///x.db", "off", None),
        ("postgresql+psycopg://u@h/db", "/srv/rg/features.snap", Path("/srv/rg/features.snap")),
    ],
)
def test_where_the_snapshot_lives(url: str, setting: str, expected: Path | None) -> None:
    settings = Settings.from_env(environ={}, database_url=url, feature_snapshot_path=setting)
    assert settings.feature_snapshot == expected


LABEL_AWARE = """
name: label_aware
version: 1
features:
  - {name: payee_frauds_30d, entity: counterparty_id, aggregate: count, window: 30d,
     when: 'event.type == "label" && event.attributes.label == "fraud"'}
rules:
  - {id: known_fraud_payee, when: 'features.payee_frauds_30d >= 1', action: review, score: 60,
     reason: The payee received money in a confirmed fraud}
"""


def _fraud(event_id: str, at: str) -> dict:
    from datetime import datetime

    return {
        "event_id": event_id,
        "entity_kind": None,
        "entity_value": None,
        "label": "fraud",
        "source": "victim_report",
        "typology": "telecom_fraud",
        "note": None,
        "labelled_at": datetime.fromisoformat(at),
    }


@pytest.mark.parametrize("snapshot", ["off", "auto"])
def test_label_aware_features_survive_a_restart(tmp_path: Path, snapshot: str) -> None:
    url = f"sqlite:///{tmp_path / 'rg.db'}"
    settings = make_settings(url, feature_snapshot_path=snapshot)
    with RiskGuard(settings, background=False) as rg:
        rg.publish(LABEL_AWARE, actor="test")
        rg.decide(transfer("f1", counterparty_id="mule-1", occurred_at="2026-11-25T10:00:00Z"))
        if snapshot == "auto":
            assert rg.snapshot_features()
            rg._snapshots.wait()  # the label below is recorded after the snapshot: replayed on start
        rg.add_labels([_fraud("f1", "2026-11-25T11:00:00+00:00")])
        live = rg.decide(transfer("f2", counterparty_id="mule-1", occurred_at="2026-11-25T12:00:00Z"))
        assert live["decision"] == "review"
        rg._snapshots.path = None  # a crash: no snapshot at shutdown
    with RiskGuard(settings, background=False) as rg:
        after = rg.decide(transfer("f3", counterparty_id="mule-1", occurred_at="2026-11-25T12:30:00Z"))
    assert after["decision"] == "review"  # the label was folded again, from the log or after the snapshot
