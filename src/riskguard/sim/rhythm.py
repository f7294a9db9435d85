"""The daily rhythm: when in a Beijing day people act, and helpers to draw times from it."""

from __future__ import annotations

import numpy as np

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

#: relative activity per hour of the Beijing day: quiet before dawn, peaks at lunch and in the evening
HOURLY = np.array(
    [
        *(0.9, 0.5, 0.3, 0.2, 0.2, 0.3, 0.9, 2.2, 3.6, 4.4, 4.8, 5.3),  # 00:00 - 11:59
        *(6.4, 5.4, 4.7, 4.5, 4.6, 5.0, 5.8, 6.6, 7.2, 6.8, 4.9, 2.4),  # 12:00 - 23:59
    ]
)
HOURLY_CDF = np.cumsum(HOURLY) / HOURLY.sum()

#: night hours (Beijing) that device farms and scripted attacks favour
NIGHT_HOURS = np.array([0, 1, 2, 3, 4, 5])


def times_in_day(rng: np.random.Generator, day_start_ms: int, n: int) -> np.ndarray:
    """``n`` instants of one day, following the hourly rhythm."""
    hours = np.searchsorted(HOURLY_CDF, rng.random(n), side="right")
    return day_start_ms + hours.astype(np.int64) * HOUR_MS + rng.integers(0, HOUR_MS, n)


def time_in_window(rng: np.random.Generator, start_ms: int, end_ms: int, *, night: bool = False) -> int:
    """One instant in ``[start_ms, end_ms)``: on the daily rhythm, or in the small hours with ``night``."""
    days = max(1, (end_ms - start_ms) // DAY_MS)
    day = start_ms + int(rng.integers(days)) * DAY_MS
    hour = int(rng.choice(NIGHT_HOURS)) if night else int(np.searchsorted(HOURLY_CDF, rng.random(), side="right"))
    t = day + hour * HOUR_MS + int(rng.integers(HOUR_MS))
    return min(max(t, start_ms), end_ms - 1)
