"""Published features: values batch jobs compute per entity, read by live decisions."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from riskguard.app import RiskGuard
from riskguard.errors import StrategyError, ValidationFailed

from conftest import make_settings, transfer

STRATEGY = """
name: graph_aware
version: 1
features:
  - {name: payee_risk, aggregate: published, source: graph.risk, entity: counterparty_id}
  - {name: payee_n_1h, entity: counterparty_id, aggregate: count, window: 1h}
  - {name: risk_per_payment, aggregate: ratio, of: [payee_risk, payee_n_1h]}
rules:
  - id: risky_payee
    when: 'features.payee_risk >= 0.8'
    action: review
    score: 60
    reason: The payee sits close to confirmed fraud on the entity graph
thresholds: {block: 90, review: 60, challenge: 40}
"""


def test_a_published_value_changes_the_decision(guard: RiskGuard) -> None:
    guard.publish(STRATEGY, actor="test")
    assert guard.decide(transfer("e1", counterparty_id="mule-1"), with_explain=True)["decision"] == "allow"
    assert guard.publish_features("graph.risk", {"mule-1": 0.93, "shop-2": 0.1}) == 2
    body = guard.decide(transfer("e2", counterparty_id="mule-1"), with_explain=True)
    assert body["decision"] == "review"
    assert body["explain"]["features"]["payee_risk"] == "0.93"
    assert float(body["explain"]["features"]["risk_per_payment"]) == pytest.approx(0.465)
    other = guard.decide(transfer("e3", counterparty_id="shop-2"), with_explain=True)
    assert other["decision"] == "allow"
    unknown = guard.decide(transfer("e4", counterparty_id="nobody"), with_explain=True)
    assert "payee_risk" in unknown["explain"]["missing_features"]


def test_replace_drops_earlier_values_and_other_processes_see_them(db_url: str) -> None:
    with RiskGuard(make_settings(db_url), background=False) as writer:
        writer.publish(STRATEGY, actor="test")
        with RiskGuard(make_settings(db_url), background=False) as reader:
            writer.publish_features("graph.risk", {"mule-1": 0.9})
            reader.refresh()
            assert reader.decide(transfer("e1", counterparty_id="mule-1"))["decision"] == "review"
            writer.publish_features("graph.risk", {"mule-2": 0.95}, replace=True)
            reader.refresh()
            assert reader.decide(transfer("e2", counterparty_id="mule-1"))["decision"] == "allow"
            assert reader.decide(transfer("e3", counterparty_id="mule-2"))["decision"] == "review"
        (source,) = writer.published.sources()
        assert (source["source"], source["version"], source["entities"]) == ("graph.risk", 2, 1)
        assert writer.audit.recent(action="features.publish")[0]["target"] == "graph.risk"


@pytest.mark.parametrize(
    ("source", "values", "field"),
    [
        ("Graph.Risk", {"a": 1}, "source"),
        ("graph", {"a": 1}, "source"),
        ("graph.risk", {"a": "high"}, "values.a"),
        ("graph.risk", {"a": float("nan")}, "values.a"),
        ("graph.risk", {"": 1.0}, "values"),
    ],
)
def test_bad_publications_name_the_field(guard: RiskGuard, source: str, values: dict, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        guard.publish_features(source, values)
    assert ".".join(map(str, caught.value.errors[0]["loc"])) == field


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ("{name: f, aggregate: published, entity: account_id}", "source"),
        ("{name: f, aggregate: published, source: graph.risk, entity: [account_id, device_id]}", "entity"),
        ("{name: f, aggregate: published, source: graph.risk, entity: account_id, window: 1h}", "window"),
        ("{name: f, aggregate: count, source: graph.risk, entity: account_id, window: 1h}", "source"),
    ],
)
def test_strategies_with_malformed_published_features_are_refused(guard: RiskGuard, feature: str, message: str) -> None:
    rule = "{id: r, when: 'true', score: 10, reason: Always}"
    doc = f"name: s\nversion: 1\nfeatures:\n  - {feature}\nrules:\n  - {rule}\n"
    with pytest.raises(StrategyError, match=message):
        guard.compile(doc)


def test_http_publish_and_list(client: TestClient, guard: RiskGuard) -> None:
    guard.publish(STRATEGY, actor="test")
    response = client.put("/v1/published/graph.risk", json={"values": {"mule-1": 0.99}, "replace": True})
    assert response.status_code == 200, response.text
    assert response.json() == {"source": "graph.risk", "published": 1, "replace": True}
    assert client.get("/v1/published").json()["sources"][0]["entities"] == 1
    decided = client.post("/v1/decisions", json=transfer("h1", counterparty_id="mule-1")).json()
    assert decided["decision"] == "review"
    bad = client.put("/v1/published/graph.risk", json={"values": {"x": "high"}})
    assert bad.status_code == 422
    assert client.put("/v1/published/GRAPH", json={"values": {}}).status_code == 422
