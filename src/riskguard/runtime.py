"""Process-level tuning for a long-running decision server.

Python's cyclic garbage collector walks every container object it tracks; a full collection over a
large heap stops the whole process (measured here: 150–400 ms with feature state for some 10,000
accounts), which is what a p99 latency sees. Riskguard keeps its long-lived state in untracked arrays
where it can, and a server additionally freezes what start-up built (compiled strategies, state rebuilt
from the log) and collects young objects less often. Decision-path objects are short-lived and freed by
reference counting, so the collector has little to find among them.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Call once after start-up, in a process that serves decisions (``riskguard serve`` does)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, max(gen1, 20), max(gen2, 100))
