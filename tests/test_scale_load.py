"""The multi-worker load test, bounded: ``riskguard serve --workers 2`` on PostgreSQL + Redis driven from
this process over loopback with a few hundred decisions (some ids sent twice at once); every decision
acknowledged is stored exactly once and the counts match. No timing assertion (bench/load.py measures)."""

from __future__ import annotations

import uuid
from pathlib import Path

import redis
from sqlalchemy import create_engine, func, select

from riskguard.features.redis_backend import clear_namespace
from riskguard.scale.loadgen import Service, drive, event_mix, installation
from riskguard.store.tables import decisions


def test_two_workers_under_load_store_each_acknowledged_decision_once(
    postgres_url: str, redis_server: str, tmp_path: Path
) -> None:
    namespace = "scale_" + uuid.uuid4().hex[:10]
    env, token = installation(
        postgres_url,
        keyring_file=str(tmp_path / "keyring.json"),
        feature_backend="redis",
        redis_url=redis_server,
        feature_namespace=namespace,
    )
    events = event_mix(300, prefix="load")
    repeated = events[::10]  # every tenth event sent twice, concurrently with its first copy
    sends = [*events[:150], *repeated, *events[150:]]
    try:
        with Service(env, workers=2, log_path=tmp_path / "serve.log") as service:
            results = drive(service.url, token, sends, concurrency=12, max_seconds=120)
    finally:
        client = redis.Redis.from_url(redis_server)
        clear_namespace(client, namespace)
        client.close()
    assert len(results) == len(sends)  # bounded by count, and nothing was cut off by the time limit
    acknowledged = [r for r in results if r.status == 200]
    assert all(r.status in (200, 503) for r in results), {r.status for r in results}
    assert len(acknowledged) >= len(sends) * 0.95
    answers: dict[str, dict] = {}
    for result in acknowledged:
        assert result.body is not None and result.body["event_id"] == result.event_id
        earlier = answers.setdefault(result.event_id, result.body)
        assert earlier == result.body  # a repeated id got the same decision from whichever worker
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        stored = dict(
            connection.execute(select(decisions.c.event_id, func.count()).group_by(decisions.c.event_id)).all()
        )
        stored_decisions = dict(connection.execute(select(decisions.c.event_id, decisions.c.decision)).all())
    engine.dispose()
    assert set(answers) <= set(stored)  # every acknowledged decision is stored…
    assert all(count == 1 for count in stored.values())  # …exactly once
    unanswered = {r.event_id for r in results} - set(answers)
    assert set(stored) - set(answers) <= unanswered  # nothing stored that was never sent
    assert len(stored) <= len(events)
    assert all(stored_decisions[event_id] == body["decision"] for event_id, body in answers.items())
