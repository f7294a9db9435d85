"""kill -9 under load loses no acknowledged event: the server process is killed mid-load, restarted,
and every event it answered 200 (decided) or 202 (accepted) must be in the store, and decided."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from riskguard.app import RiskGuard
from riskguard.config import Settings

from conftest import transfer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RISKGUARD_DATABASE_URL": db_url, "RISKGUARD_AUTH": "off",
           "RISKGUARD_LOG_LEVEL": "WARNING", "RISKGUARD_STRATEGY_POLL_MS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "riskguard.cli.main", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early: {log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start in 60 s")


def load(port: int, worker: int, stop: threading.Event, decided: list[str], accepted: list[str]) -> None:
    """Sends decisions (and every 10th request a batch of 5 async events) until stopped or refused."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not stop.is_set() and i < 5000:
        i += 1
        try:
            if i % 10 == 0:
                ids = [f"w{worker}-async-{i}-{k}" for k in range(5)]
                body = json.dumps({"events": [transfer(x, account_id=f"acc-{worker}") for x in ids]})
                connection.request("POST", "/v1/events", body, {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 202:
                    accepted.extend(ids)
            else:
                event_id = f"w{worker}-{i}"
                body = json.dumps(transfer(event_id, account_id=f"acc-{worker}-{i % 7}", amount=f"{i}.01"))
                connection.request("POST", "/v1/decisions", body, {"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    decided.append(event_id)
        except (OSError, http.client.HTTPException):
            return  # the server died: whatever was acknowledged is recorded in the lists


def test_kill_9_under_load_loses_no_acknowledged_event(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    server = start_server(db_url, port, log)
    stop = threading.Event()
    decided: list[str] = []
    accepted: list[str] = []
    workers = [threading.Thread(target=load, args=(port, w, stop, decided, accepted)) for w in range(8)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 20
        while len(decided) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)  # mid-load, with requests in flight
        server.wait(10)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
        if server.poll() is None:
            server.kill()
    assert len(decided) >= 300, log.read_text()[-2000:]
    assert accepted, "no asynchronous batch was acknowledged before the kill"

    guard = RiskGuard(Settings.from_env(environ={}, database_url=db_url), background=False)
    try:
        guard.drain(timeout=60)
        for event_id in decided:
            result = guard.get_decision(event_id)
            assert result["status"] == "decided", event_id
        for event_id in accepted:
            result = guard.get_decision(event_id)  # accepted before the crash, decided after the restart
            assert result["status"] == "decided", event_id
    finally:
        guard.close()

    restarted = start_server(db_url, port, log)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", f"/v1/decisions/{decided[0]}")
        response = connection.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["event_id"] == decided[0]
    finally:
        restarted.terminate()
        restarted.wait(10)


def test_sigterm_shuts_down_in_order_and_writes_the_feature_snapshot(tmp_path: Path) -> None:
    port = free_port()
    process = start_server(f"sqlite:///{tmp_path / 'rg.db'}", port, tmp_path / "server.log")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/v1/decisions", json.dumps(transfer("t1")), {"content-type": "application/json"})
        assert connection.getresponse().status == 200
    finally:
        process.terminate()
        code = process.wait(30)
    assert code == 0, (tmp_path / "server.log").read_text()[-2000:]
    assert (tmp_path / "rg.features").exists()  # close() ran: the final snapshot is on disk
