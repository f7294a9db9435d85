"""A load generator for a running service: starts ``riskguard serve`` as a child process and drives
``POST /v1/decisions`` from this one over loopback (bench/load.py prints the table; the CI test
tests/test_scale_load.py checks what was acknowledged against what was stored).

Bounded in both count and time: at most ``len(events)`` requests, and none started after
``max_seconds``. The event mix is fixed by a seed, so every configuration sees the same events.
The figures must come from a second process, not from calls inside the server, and ``wrk`` is not
installed. The driver speaks HTTP/1.1 keep-alive over asyncio streams itself (uvloop, which uvicorn brings):
a general client (httpx) spent ~5 ms of CPU per request here and, on a 2-core machine, measured itself
rather than the service.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import uvloop


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A ``riskguard serve`` child process on loopback; ``env`` holds its RISKGUARD_* settings."""

    env: dict[str, str]
    workers: int = 1
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Starts the process without waiting (start several, then ``wait_ready`` on each)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RISKGUARD_")}
        env.update(self.env)
        env.update({"RISKGUARD_HOST": "127.0.0.1", "RISKGUARD_PORT": str(self.port)})
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        command = [sys.executable, "-m", "riskguard.cli.main", "serve", "--workers", str(self.workers)]
        self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out, start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> None:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"riskguard serve exited with {self.process.returncode}; see {self.log_path}")
            if self.ready():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"riskguard serve did not answer within {timeout:.0f}s; see {self.log_path}")

    def ready(self) -> bool:
        """Every worker answers: with N workers, N health checks in a row must succeed (a worker that is
        still starting refuses nothing, the listening socket is the parent's, so probe a few times)."""
        try:
            for _ in range(max(1, self.workers) * 2):
                if httpx.get(self.url + "/healthz", timeout=2.0).status_code != 200:
                    return False
        except httpx.HTTPError:
            return False
        return True

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # the parent stops its workers, each closes its RiskGuard
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def cpu_seconds(self) -> float:
        """User + system CPU of the service's processes so far (Linux /proc), parent and workers."""
        if self.process is None:
            return 0.0
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in _process_tree(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _process_tree(root: int) -> Iterator[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    stack = [root]
    while stack:
        pid = stack.pop()
        yield pid
        stack.extend(children.get(pid, []))


def event_mix(count: int, *, prefix: str, seed: int = 7, accounts: int = 500) -> list[dict[str, Any]]:
    """``count`` events over ``accounts`` accounts: transfers, payments, logins and withdrawals in the
    proportions 5:2:2:1, within the last hour (features see realistic windows)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    events: list[dict[str, Any]] = []
    for i in range(count):
        account = f"acc-{rng.randrange(accounts)}"
        kind = rng.choices(("transfer", "payment", "login", "withdrawal"), (5, 2, 2, 1))[0]
        event: dict[str, Any] = {
            "event_id": f"{prefix}-{i}",
            "type": kind,
            "occurred_at": (now - timedelta(seconds=3600 - i * 3600 // max(count, 1))).isoformat(),
            "account_id": account,
            "device_id": f"dev-{rng.randrange(accounts * 2)}",
            "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        }
        if kind == "transfer":
            event.update(
                amount=f"{rng.randrange(100, 20000)}.00", currency="CNY", counterparty_id=f"payee-{rng.randrange(300)}"
            )
        elif kind == "payment":
            event.update(amount=f"{rng.randrange(5, 3000)}.50", currency="CNY", merchant_id=f"m-{rng.randrange(50)}")
        elif kind == "withdrawal":
            event.update(amount=f"{rng.randrange(100, 5000)}.00", currency="CNY")
        events.append(event)
    return events


@dataclass
class Result:
    event_id: str
    status: int
    body: dict[str, Any] | None
    latency_s: float


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


async def _drive(
    url: str, token: str, events: list[dict[str, Any]], concurrency: int, max_seconds: float
) -> list[Result]:
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    head = (
        f"POST /v1/decisions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
    )
    requests = []
    for event in events:
        body = msgspec.json.encode(event)
        requests.append((event["event_id"], f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body))
    pending = iter(requests)
    results: list[Result] = []
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for event_id, request in pending:
            if time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            status, body = 0, None
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                writer.write(request)
                status, raw = await asyncio.wait_for(_read_response(reader), 30.0)
                body = msgspec.json.decode(raw) if status == 200 else None
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError, msgspec.DecodeError):
                if connection is not None:
                    connection[1].close()
                connection = None  # a fresh connection for the next request
            results.append(Result(event_id, status, body, time.perf_counter() - started))
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def drive(
    url: str, token: str, events: list[dict[str, Any]], *, concurrency: int = 16, max_seconds: float = 60.0
) -> list[Result]:
    """Sends ``events`` with ``concurrency`` requests in flight; returns one Result per request sent."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_drive(url, token, events, concurrency, max_seconds))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def installation(database_url: str, *, keyring_file: str, **settings: str) -> tuple[dict[str, str], str]:
    """The RISKGUARD_* environment of a fresh installation, prepared (schema, starter strategy) here,
    and its first admin key's token. ``settings`` are further settings by field name."""
    from riskguard.config import Settings
    from riskguard.scale.serve import prepare

    env = {"RISKGUARD_DATABASE_URL": database_url, "RISKGUARD_KEYRING_FILE": keyring_file, "RISKGUARD_LOG_JSON": "off"}
    env.update({"RISKGUARD_" + name.upper(): str(value) for name, value in settings.items()})
    token = prepare(Settings.from_env(environ=env)).admin_key
    if token is None:
        raise RuntimeError("the installation already has API keys; the load generator needs a fresh one")
    return env, token
