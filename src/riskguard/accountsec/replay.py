"""``takeover.*`` and ``account.*`` for ``riskguard replay`` (replay/engine.py): the production sequence
detector run over the history in arrival order, in a throwaway memory store, as a live installation that
started with the history would have bound them. Registered leaks are live-installation state, and a
replay reads none (as it reads no lists unless given): ``account.*`` is the no-leak value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskguard.accountsec.sequence import MemorySequenceStore
from riskguard.accountsec.watch import QUIET
from riskguard.config import Settings

PREFIXES = ("takeover.", "account.")


def accountsec_columns(
    columns: Any,
    names: list[str],
    *,
    window_minutes: float = Settings.takeover_window_minutes,
    memory_days: float = Settings.takeover_device_memory_days,
) -> dict[str, Any]:
    """Replay columns of the declared ``names`` (those starting with ``takeover.`` / ``account.``)."""
    from riskguard.replay.columns import Column
    from riskguard.replay.events import event_at

    names = [n for n in names if n.startswith(PREFIXES)]
    if not names:
        return {}
    events = columns.events
    n = len(events)
    out: dict[str, Any] = {}
    if any(name.startswith("takeover.") for name in names):
        store = MemorySequenceStore(window_s=window_minutes * 60, memory_s=memory_days * 86400)
        rows = [store.evaluate(event_at(events, row)) for row in range(n)]
        every = np.arange(n)
        for name in names:
            if name.startswith("takeover."):
                out[name] = Column.from_distinct(every, [values[name] for values in rows], numeric=True)
    for name in names:
        if name.startswith("account."):
            out[name] = Column.from_distinct(np.zeros(n, dtype=np.int64), [QUIET[name]], numeric=True)
    return out
