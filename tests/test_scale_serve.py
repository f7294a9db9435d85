"""``riskguard serve --workers N``: the layouts it refuses, and the one-time preparation (schema, starter
strategy, first admin key) that several processes starting together do once, not N times."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from riskguard.cli.main import app
from riskguard.config import Settings
from riskguard.errors import ConfigError
from riskguard.scale.serve import Prepared, check_layout, prepare
from riskguard.store.tables import api_keys, deployments

from conftest import make_settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"database_url": "sqlite:///x.db", "feature_backend": "redis"}, "needs PostgreSQL"),
        ({"database_url": "postgresql://h/db"}, "RISKGUARD_FEATURE_BACKEND=redis"),
        ({"database_url": "postgresql://h/db", "feature_backend": "redis", "decision_claims": "off"}, "decided twice"),
    ],
)
def test_several_workers_need_the_shared_back_ends(overrides: dict[str, str], message: str) -> None:
    settings = Settings.from_env(environ={}, **overrides)
    check_layout(settings, 1)  # one worker is always fine
    with pytest.raises(ConfigError, match=message):
        check_layout(settings, 3)


def test_serve_refuses_workers_on_the_memory_back_end_with_a_clear_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["serve", "--workers", "2"],
        env={"RISKGUARD_DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite", "RISKGUARD_FEATURE_BACKEND": "memory"},
    )
    assert result.exit_code != 0
    assert "needs PostgreSQL" in result.output and "--workers 1" in result.output
    assert "Traceback" not in result.output


def test_workers_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="RISKGUARD_WORKERS"):
        Settings.from_env(environ={"RISKGUARD_WORKERS": "0"})
    with pytest.raises(ConfigError, match="RISKGUARD_CLAIM_TTL_S"):
        Settings.from_env(environ={"RISKGUARD_CLAIM_TTL_S": "2"})  # shorter than the commit timeout
    with pytest.raises(ConfigError, match="RISKGUARD_CHANGE_NOTICES"):
        Settings.from_env(environ={"RISKGUARD_CHANGE_NOTICES": "kafka"})


def test_processes_starting_together_prepare_the_installation_once(postgres_url: str, tmp_path: Path) -> None:
    settings = make_settings(postgres_url, keyring_file=str(tmp_path / "keyring.json"))
    prepared: list[Prepared] = []
    start = threading.Barrier(4)

    def starting_worker() -> None:
        start.wait(10)
        prepared.append(prepare(settings))

    threads = [threading.Thread(target=starting_worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(prepared) == 4
    assert sum(p.admin_key is not None for p in prepared) == 1  # one admin key, shown once
    assert sum(p.console_password is not None for p in prepared) == 1  # one console admin
    assert sum(p.keyring_path is not None for p in prepared) == 1  # one keyring, shared by all
    from sqlalchemy import create_engine

    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(api_keys)).scalar() == 1
        assert connection.execute(select(func.count()).select_from(deployments)).scalar() == 1
    engine.dispose()
