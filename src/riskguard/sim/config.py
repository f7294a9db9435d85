"""What a simulated world is made of: its size, seed, start, and how hard each gang typology attacks.

A world is fully determined by a :class:`WorldConfig`: the same configuration gives the same files, byte
for byte. Nothing here reads the clock; :meth:`WorldConfig.check_in_past` is the one place that compares a
world with the present (the service refuses events from the future).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

from riskguard.errors import ConfigError

#: The seven typologies, in the order their gangs are simulated (farms first: telecom gangs buy their accounts).
TYPOLOGIES: tuple[str, ...] = (
    "fake_account_farm",
    "telecom_fraud",
    "account_takeover",
    "loan_intermediary",
    "proxy_rights_agent",
    "card_testing",
    "mule_recruitment",
)

#: Beijing time: the population lives on it (daily rhythm, midnight boundaries, the ``+08:00`` in ``occurred_at``).
#: China has had no daylight saving time since 1991, so a fixed offset is exact.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

#: The default first day of a world. Fixed (not "today minus N days") so that a seed alone gives the same
#: files on any day; choose ``start`` so that the world ends before now (the service refuses future events).
DEFAULT_START = date(2026, 1, 1)

MAX_ACCOUNTS = 5_000_000
MAX_DAYS = 366


@dataclass(frozen=True)
class WorldConfig:
    """The parameters of one world.

    ``intensity`` maps a typology to a multiplier of its number of gangs (1.0 by default, 0 turns the
    typology off). At intensity 1 a typology has one gang per ``GANG_ACCOUNTS[typology]`` accounts, and at
    least one in any world.
    """

    accounts: int = 3_000
    days: int = 7
    seed: int = 1
    start: date = DEFAULT_START
    intensity: dict[str, float] = field(default_factory=dict)
    part_rows: int = 1_000_000

    def __post_init__(self) -> None:
        if not (100 <= self.accounts <= MAX_ACCOUNTS):
            raise ConfigError(f"accounts must be 100..{MAX_ACCOUNTS:,}, got {self.accounts:,}")
        if not (1 <= self.days <= MAX_DAYS):
            raise ConfigError(f"days must be 1..{MAX_DAYS}, got {self.days}")
        if not (0 <= self.seed < 2**63):
            raise ConfigError(f"seed must be a non-negative integer below 2**63, got {self.seed}")
        if self.part_rows < 1000:
            raise ConfigError("part_rows must be at least 1000")
        for name, value in self.intensity.items():
            if name not in TYPOLOGIES:
                raise ConfigError(f"unknown typology {name!r}; known: {', '.join(TYPOLOGIES)}")
            if not (0.0 <= value <= 100.0):
                raise ConfigError(f"intensity of {name} must be 0..100, got {value}")

    def intensity_of(self, typology: str) -> float:
        return float(self.intensity.get(typology, 1.0))

    @property
    def start_ms(self) -> int:
        """Midnight Beijing time of the first day, in milliseconds since the epoch."""
        return int(datetime(self.start.year, self.start.month, self.start.day, tzinfo=BEIJING).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.days * 86_400_000

    def canonical(self) -> dict[str, object]:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["intensity"] = {name: self.intensity_of(name) for name in TYPOLOGIES}
        return data

    @property
    def world_id(self) -> str:
        """A short fingerprint of the configuration; it prefixes every event id, so two different worlds
        streamed into one service never reuse an event id."""
        text = json.dumps(self.canonical(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def check_in_past(self, now: datetime | None = None, *, margin: timedelta = timedelta(days=7)) -> None:
        """Raises unless the world (and the victim reports that follow it) ends before ``now``."""
        now = now or datetime.now(UTC)
        end = datetime.fromtimestamp(self.end_ms / 1000, UTC)
        if end + margin > now:
            raise ConfigError(
                f"a world of {self.days} days from {self.start} ends {end:%Y-%m-%d}, less than {margin.days} days "
                f"before now; the service refuses events from the future: choose an earlier --start"
            )


def parse_intensities(items: list[str]) -> dict[str, float]:
    """``["telecom_fraud=2", "card_testing=0"]`` → ``{"telecom_fraud": 2.0, "card_testing": 0.0}``."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--intensity {item!r}: write TYPOLOGY=NUMBER, e.g. telecom_fraud=2")
        name = name.strip()
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError(f"--intensity {item!r}: {value!r} is not a number") from None
        if name not in TYPOLOGIES:
            raise ConfigError(f"--intensity: unknown typology {name!r}; known: {', '.join(TYPOLOGIES)}")
    return out
