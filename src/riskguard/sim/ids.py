"""Identifiers: integers inside the simulator, strings of the API's shape on the way out.

Every entity (account, device, card, merchant) is an integer index while a world is built; it becomes a
string only when written, through a keyed permutation of the ``W``-digit numbers (a four-round Feistel
network with cycle walking, keyed by the seed and the kind), so that identifiers reveal neither the order
of creation nor who made an account (a gang's accounts look like anyone's), and an account's number says
nothing about its phone's or device's.
Phones are 11-digit Chinese mobile numbers and IPs are 32-bit integers, both formatted the usual way.

Address ranges: people's home broadband and mobile carrier NAT addresses come from 100.64.0.0/10 (the
shared address space carriers use for NAT); gangs' proxies, data centres and device-farm ranges from
198.18.0.0/15. Neither range routes on the internet, so a world never names a real host.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_MULT = 1_234_567_891  # odd: ``x * _MULT + b`` is a bijection modulo any power of two (home addresses)
_ROUNDS = 4

#: (prefix, width of the scrambled number) per entity kind
FORMATS: dict[str, tuple[str, int]] = {
    "account": ("acc-", 10),
    "device": ("dev-", 10),
    "card": ("card-", 10),
    "merchant": ("mch-", 6),
    "phone": ("", 8),  # the eight digits after an operator prefix
}

HOME_IP_BASE = (100 << 24) | (64 << 16)  # 100.64.0.0, 2^21 home addresses
MOBILE_IP_BASE = (100 << 24) | (96 << 16)  # 100.96.0.0, carrier NAT pool
GANG_IP_BASE = (198 << 24) | (18 << 16)  # 198.18.0.0/15

#: mobile number prefixes of the three network operators (people's own numbers)
OPERATOR_PREFIXES = np.array([130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 158, 159, 186, 187, 188, 189])
#: virtual network operators' prefixes: cheap, lightly verified, favoured by device farms
VIRTUAL_PREFIXES = (170, 171, 162, 165, 167)


def _round_keys(kind: str, salt: int) -> list[int]:
    seq = np.random.SeedSequence([salt % 2**63, sum(ord(c) << (8 * i) for i, c in enumerate(kind))])
    return [int(k) for k in seq.generate_state(_ROUNDS, dtype=np.uint32)]


def _feistel(x: np.ndarray, half: int, keys: list[int]) -> np.ndarray:
    mask = np.uint64((1 << half) - 1)
    left, right = x >> np.uint64(half), x & mask
    for key in keys:
        mixed = (right * np.uint64(0x9E3779B1) + np.uint64(key)) & np.uint64(0xFFFFFFFF)
        mixed ^= mixed >> np.uint64(15)
        mixed = (mixed * np.uint64(0x85EBCA77)) & np.uint64(0xFFFFFFFF)
        left, right = right, left ^ (mixed & mask)
    return (left << np.uint64(half)) | right


def scramble(values: np.ndarray, kind: str, salt: int) -> np.ndarray:
    """The number shown for each index: a keyed bijection of ``[0, 10^W)`` (``-1`` stays ``-1``)."""
    _, width = FORMATS[kind]
    limit = 10**width
    bits = (limit - 1).bit_length()
    half = (bits + 1) // 2
    keys = _round_keys(kind, salt)
    x = (values.astype(np.int64) % limit).astype(np.uint64)
    x[values < 0] = 0
    out = _feistel(x, half, keys)
    outside = out >= np.uint64(limit)
    while outside.any():  # cycle walking: stay inside [0, 10^W) and keep the map a bijection
        out[outside] = _feistel(out[outside], half, keys)
        outside = out >= np.uint64(limit)
    result = out.astype(np.int64)
    result[values < 0] = -1
    return result


def id_strings(values: np.ndarray, kind: str, salt: int) -> pl.Series:
    """Formatted identifiers of a kind (null where the index is ``-1``)."""
    prefix, width = FORMATS[kind]
    numbers = pl.Series(scramble(values, kind, salt))
    text = pl.select(pl.lit(prefix) + numbers.cast(pl.String).str.zfill(width)).to_series()
    return text.set(numbers < 0, None)


def phone_strings(values: np.ndarray) -> pl.Series:
    numbers = pl.Series(values.astype(np.int64))
    return pl.select(pl.lit("+86") + numbers.cast(pl.String)).to_series().set(numbers < 0, None)


def ip_strings(values: np.ndarray) -> pl.Series:
    v = values.astype(np.int64)
    parts = [pl.Series((v >> shift) & 255).cast(pl.String) for shift in (24, 16, 8, 0)]
    text = pl.select(pl.concat_str(parts, separator=".")).to_series()
    return text.set(pl.Series(v < 0), None)


def is_virtual(phones: np.ndarray) -> np.ndarray:
    prefix = phones // 10**8
    return np.isin(prefix, VIRTUAL_PREFIXES)


def person_phones(index: np.ndarray, salt: int) -> np.ndarray:
    """A distinct operator number per index (index < 10^8)."""
    prefixes = OPERATOR_PREFIXES[index % len(OPERATOR_PREFIXES)]
    return prefixes.astype(np.int64) * 10**8 + scramble(index, "phone", salt)


def home_ips(index: np.ndarray, salt: int) -> np.ndarray:
    """A distinct broadband address in 100.64.0.0/11 per index (index < 2^21)."""
    offset = (index.astype(np.uint64) * np.uint64(_MULT) + np.uint64(salt % (1 << 21))) % np.uint64(1 << 21)
    return HOME_IP_BASE + offset.astype(np.int64)
