"""When and how the memory feature engine's snapshot is written and read back.

A snapshot records the state and the wall-clock time it was taken; on start the service restores it and
replays the events decided since then (less an overlap for decisions that were folded before the snapshot
but committed after it; the engine's idempotency makes the overlap harmless). Where ``os.fork`` exists,
the snapshot is written by a forked child from a copy-on-write image of memory taken under the decision
lock — Redis's BGSAVE technique — so decisions pause only for the fork, not for the pickling.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from riskguard.features.memory import MemoryFeatureEngine

log = logging.getLogger("riskguard")

#: Decisions folded before a snapshot may commit after it: replay starts this much earlier.
SNAPSHOT_OVERLAP = timedelta(minutes=2)


class FeatureSnapshots:
    def __init__(self, engine: MemoryFeatureEngine, path: Path | None) -> None:
        self.engine = engine
        self.path = path
        self._child: int | None = None

    def available(self) -> bool:
        return self.path is not None and self.path.exists()

    def restore(self) -> tuple[datetime, list[Any]] | None:
        """(when the snapshot was taken, declared features it lacks), or None when it cannot be used."""
        assert self.path is not None
        try:
            position, missing = self.engine.restore(self.path)
        except Exception as exc:  # a torn or foreign file: keep it for inspection, rebuild from the log
            aside = self.path.with_suffix(self.path.suffix + ".unreadable")
            self.path.replace(aside)
            log.warning(
                "feature snapshot %s unreadable (%s); moved to %s, rebuilding from the log", self.path, exc, aside
            )
            return None
        if not isinstance(position, datetime):
            return None
        return position, missing

    def write(self, now: datetime, *, background: bool = True) -> bool:
        """Starts writing a snapshot stamped ``now`` (the caller holds the decision lock)."""
        if self.path is None or self.engine.watermark is None:
            return False
        self.reap()
        if self._child is not None:
            return False  # the previous one is still being written
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if background and hasattr(os, "fork"):
            pid = os.fork()
            if pid == 0:  # the child: write and leave at once, touching nothing shared
                code = 0
                try:
                    self.engine.snapshot(self.path, position=now)
                except BaseException:
                    code = 1
                os._exit(code)
            self._child = pid
            return True
        self.engine.snapshot(self.path, position=now)
        return True

    def reap(self) -> None:
        """Collects a finished snapshot child (never blocks)."""
        if self._child is None:
            return
        pid, status = os.waitpid(self._child, os.WNOHANG)
        if pid == 0:
            return
        self._child = None
        if os.waitstatus_to_exitcode(status) != 0:
            log.warning("writing the feature snapshot failed in its child process; the next interval tries again")

    def wait(self) -> None:
        """Blocks until a snapshot being written is finished (tests, shutdown)."""
        if self._child is not None:
            os.waitpid(self._child, 0)
            self._child = None
