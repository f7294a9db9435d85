"""The account × identifier matrix the algorithms run on: hubs cut, attack tools and their sessions set apart,
each link weighted by the identifier's rarity.

Four cleaning steps turn the raw links (``build.py``) into links that *bind* accounts together:

1. **Hubs**: an identifier linked to more accounts than ``GraphConfig.max_degree[kind]`` (public Wi-Fi, a
   carrier NAT address, a popular shop) is cut.
2. **Attack tools**: a device or address with failed logins on at least ``attack_min_accounts`` accounts
   and a success share of at most ``attack_max_success`` is a credential-stuffing tool. Its links bind
   nobody: the accounts it got into are its victims, not its accomplices.
3. **Rotating addresses**: an account that used several addresses of one /24 range (a carrier NAT pool, a
   DHCP range) is not bound by any of them: they name a network, not a person. (They still link it in the
   tables and the investigator's view.)
4. **Compromised accounts**: once an attack tool has logged into an account, every identifier first seen on
   that account from then on (the attacker's phone number, the attacker's card for a withdrawal) is the
   attacker's, not the owner's, and binds nobody either. The account is reported as compromised.

What remains is weighted by rarity, ``1 / log2(1 + degree)``: an identifier shared by two accounts weighs
0.63, by thirty 0.2 (the Adamic–Adar weighting of link prediction).

Everything runs on the integer codes of ``encode.py`` (numpy: counts, masks and one sort of the
few duplicated account–identifier pairs); names come back only for the hubs, tools and compromised
accounts it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from riskguard.graph.build import KINDS, RELATIONS, EntityGraph, GraphConfig
from riskguard.graph.encode import Encoded, dense_codes, distinct, encode

USES, CONTACT, FAILED = (RELATIONS.index(r) for r in ("uses", "contact", "failed_login"))
DEVICE, IP = KINDS.index("device"), KINDS.index("ip")
NEVER = np.iinfo(np.int64).max


@dataclass
class Bipartite:
    """Rows are the encoded accounts (``0..n_accounts-1``, every account of the graph, linked or not) and
    columns the encoded identifiers (``0..n_idents-1``; hubs and tools have no entries); one entry per
    binding link: ``row``, ``col``, its ``weight`` (rarity), first and last time, and whether it is an
    address the account rotates through."""

    encoded: Encoded
    idents: pl.DataFrame  # kind, value, degree (binding accounts; 0 for hubs, tools and unused) of each column
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    first_ms: np.ndarray
    last_ms: np.ndarray
    hubs: pl.DataFrame  # kind, value, degree: cut
    attack: pl.DataFrame  # kind, value, accounts, success_share
    compromised: pl.DataFrame  # account, since_ms
    compromised_since: np.ndarray  # per account code: since when an attack tool is in it (int64 max: never)
    attack_ident: np.ndarray  # bool per identifier code: a credential-stuffing tool
    rotating: np.ndarray  # bool per link: an address the account rotates through (a carrier NAT pool)

    @property
    def accounts(self) -> pl.Series:
        return self.encoded.accounts

    @property
    def n_accounts(self) -> int:
        return self.encoded.n_accounts

    @property
    def n_idents(self) -> int:
        return self.encoded.n_idents

    @property
    def degree(self) -> np.ndarray:
        return self.idents["degree"].to_numpy()

    def restrict(self, kinds: tuple[str, ...]) -> Bipartite:
        """The same matrix with only the links to identifiers of ``kinds``."""
        wanted = np.isin(self.encoded.ident_kind, [KINDS.index(k) for k in kinds])
        view = self.subset(wanted[self.col])
        view.idents = self.idents.with_columns(pl.when(pl.Series(wanted)).then(pl.col("degree")).otherwise(0))
        view.hubs = self.hubs.filter(pl.col("kind").is_in(list(kinds)))
        return view

    def subset(self, keep: np.ndarray) -> Bipartite:
        """The same matrix with only the links where ``keep`` is true (identifier degrees unchanged)."""
        return replace(
            self,
            row=self.row[keep],
            col=self.col[keep],
            weight=self.weight[keep],
            first_ms=self.first_ms[keep],
            last_ms=self.last_ms[keep],
            rotating=self.rotating[keep],
        )


def _attack_tools(e: Encoded, config: GraphConfig) -> tuple[np.ndarray, pl.DataFrame]:
    """Devices and addresses that look like credential-stuffing tools (see the module docstring)."""
    is_login_kind = (e.ident_kind == DEVICE) | (e.ident_kind == IP)
    failed_rows = (e.link_relation == FAILED) & is_login_kind[e.link_ident]
    failed = np.bincount(e.link_ident[failed_rows], minlength=e.n_idents)
    candidate = failed >= config.attack_min_accounts
    rows = candidate[e.link_ident] & ((e.link_relation == FAILED) | (e.link_relation == USES))
    ident, account, relation = e.link_ident[rows], e.link_account[rows], e.link_relation[rows]
    uses = np.bincount(ident[relation == USES], minlength=e.n_idents)
    pairs = distinct(ident * np.int64(e.n_accounts) + account)
    accounts = np.bincount(pairs // e.n_accounts, minlength=e.n_idents)
    share = np.divide(uses, accounts, out=np.zeros(e.n_idents), where=accounts > 0)
    tool = candidate & (share <= config.attack_max_success)
    codes = np.flatnonzero(tool)
    table = e.idents[codes].with_columns(
        accounts=pl.Series(accounts[codes], dtype=pl.UInt32), success_share=pl.Series(share[codes])
    )
    return tool, table


def _merge_pairs(
    account: np.ndarray, ident: np.ndarray, first: np.ndarray, last: np.ndarray, n_idents: int, contact: np.ndarray
) -> tuple[np.ndarray, ...]:
    """One entry per (account, identifier): a phone both used and given as a contact counts once (earliest
    first, latest last time). Only pairs that have a contact row can repeat, so only those are grouped."""
    if not contact.any():
        return account, ident, first, last
    key = account * np.int64(n_idents) + ident
    repeated = np.isin(key, key[contact])
    if not repeated.any():
        return account, ident, first, last
    keys, inverse = np.unique(key[repeated], return_inverse=True)
    lo = np.full(len(keys), NEVER)
    hi = np.full(len(keys), np.iinfo(np.int64).min)
    np.minimum.at(lo, inverse, first[repeated])
    np.maximum.at(hi, inverse, last[repeated])
    single = ~repeated
    return (
        np.concatenate([account[single], keys // n_idents]),
        np.concatenate([ident[single], keys % n_idents]),
        np.concatenate([first[single], lo]),
        np.concatenate([last[single], hi]),
    )


def _rotating(e: Encoded, account: np.ndarray, ident: np.ndarray) -> np.ndarray:
    """Per link: an IPv4 address of a /24 range through which the account used more than one address."""
    is_ip = e.ident_kind[ident] == IP
    out = np.zeros(len(ident), dtype=bool)
    if not is_ip.any():
        return out
    ip_codes = np.flatnonzero(e.ident_kind == IP)
    ranges = e.idents["value"].gather(ip_codes).str.extract(r"^(\d+\.\d+\.\d+)\.", 1).fill_null("")
    range_code, _ = dense_codes(ranges.to_frame("range"))
    range_of = np.full(e.n_idents, -1, dtype=np.int64)
    range_of[ip_codes] = np.where((ranges == "").to_numpy(), -1, range_code)
    rng = range_of[ident[is_ip]]
    key = account[is_ip] * np.int64(int(range_code.max()) + 2) + (rng + 1)
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    out[np.flatnonzero(is_ip)] = (counts[inverse] > 1) & (rng >= 0)
    return out


def binding_of(e: Encoded, config: GraphConfig) -> Bipartite:
    """The cleaned, weighted account × identifier matrix of an encoded graph."""
    attack_ident, attack = _attack_tools(e, config)
    tool_uses = (e.link_relation == USES) & attack_ident[e.link_ident]
    since = np.full(e.n_accounts, NEVER)
    np.minimum.at(since, e.link_account[tool_uses], e.link_first[tool_uses])
    hit = np.flatnonzero(since < NEVER)
    compromised = pl.DataFrame({"account": e.accounts.gather(hit), "since_ms": since[hit]})
    usable = (
        ((e.link_relation == USES) | (e.link_relation == CONTACT))
        & ~attack_ident[e.link_ident]
        & (e.link_first < since[e.link_account])
    )
    account, ident, first, last = _merge_pairs(
        e.link_account[usable],
        e.link_ident[usable],
        e.link_first[usable],
        e.link_last[usable],
        e.n_idents,
        e.link_relation[usable] == CONTACT,
    )
    degree = np.bincount(ident, minlength=e.n_idents)
    caps = np.array([config.cap(kind) for kind in KINDS], dtype=np.int64)
    hub = degree > caps[np.minimum(e.ident_kind, len(KINDS) - 1)]
    hub_codes = np.flatnonzero(hub)
    hubs = e.idents[hub_codes].with_columns(degree=pl.Series(degree[hub_codes], dtype=pl.UInt32))
    keep = ~hub[ident]
    account, ident, first, last = account[keep], ident[keep], first[keep], last[keep]
    degree = np.where(hub, 0, degree)
    return Bipartite(
        encoded=e,
        idents=e.idents.with_columns(degree=pl.Series(degree, dtype=pl.UInt32)),
        row=account,
        col=ident,
        weight=1.0 / np.log2(1.0 + degree[ident]),
        first_ms=first,
        last_ms=last,
        hubs=hubs,
        attack=attack,
        compromised=compromised,
        compromised_since=since,
        attack_ident=attack_ident,
        rotating=_rotating(e, account, ident),
    )


def binding(graph: EntityGraph, *, kinds: tuple[str, ...] | None = None) -> Bipartite:
    """The cleaned, weighted account × identifier matrix of ``graph`` (optionally only some kinds)."""
    view = binding_of(encode(graph), graph.config)
    return view.restrict(kinds) if kinds is not None else view
