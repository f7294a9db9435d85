"""Integer codes for the graph's accounts and identifiers, so that every algorithm runs on numpy arrays.

The link and flow tables hold text (account ids, ``kind``/``value`` pairs). Grouping, joining and sorting
10 M rows of text is what made a refresh slow; the algorithms only need to know which rows name the same
account or identifier. :func:`encode` gives each distinct account (over links and both ends of flows) and
each distinct ``(kind, value)`` a dense code ``0..n-1`` once per refresh; everything downstream works on
``int64`` arrays and turns codes back into names only for what it reports.

How: a 64-bit hash of each value (polars, vectorised), dense ranks of the hashes, and a check that every
row's text equals the text of the first row with the same code. A hash collision (about one chance in
10^7 for 10^6 distinct values) fails the check and the codes are then computed exactly from the text
(slower: a categorical cast). Written here because no library offers "dense codes of text columns" at
this speed: polars' categorical cast and ``rank`` on text are 2 and 15 times slower than hashing.
Codes follow the hash order: deterministic for a polars version, unrelated to the text's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from riskguard.graph.build import KINDS, RELATIONS, EntityGraph

FLOW_RELATIONS: tuple[str, ...] = ("transfer", "refund_to")
_SEED = 0x5EED


def dense_codes(frame: pl.DataFrame, *, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, first)``: ``codes[i]`` numbers row ``i`` of ``frame`` densely by its values (all columns),
    ``first[code]`` is the first row with that code (so ``frame[first]`` lists the distinct rows)."""
    if frame.height == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if exact:
        distinct = frame.unique(maintain_order=True).with_row_index("_code")
        joined = frame.join(distinct, on=frame.columns, how="left", maintain_order="left", nulls_equal=True)
        codes = joined["_code"].to_numpy().astype(np.int64)
    else:
        codes = (frame.hash_rows(seed=_SEED).rank("dense") - 1).to_numpy().astype(np.int64)
    first = np.empty(int(codes.max()) + 1, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the first row of each code (last write wins)
    if not exact:
        again = frame[first][codes]
        same = (again[c].eq_missing(frame[c]).all() for c in frame.columns)
        if not all(same):  # a hash collision: number the rows by their values instead
            return dense_codes(frame, exact=True)
    return codes, first


def distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer array. ``np.unique`` does the same, but from numpy 2.3 on it
    uses a hash set that is several times slower than one sort on the tens of millions of keys here."""
    if len(values) == 0:
        return values.copy()
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]


def small_codes(values: pl.Series, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Position of each value in ``vocabulary`` (a handful of words: kinds, relations) as ``uint8``."""
    out = np.full(len(values), 255, dtype=np.uint8)
    for i, word in enumerate(vocabulary):
        out[(values == word).fill_null(False).to_numpy()] = i
    return out


@dataclass
class Encoded:
    """The graph's links and flows as arrays of codes (see the module docstring).

    Accounts: ``accounts[code]`` is the account id. Identifiers: ``idents`` (``kind``, ``value``) row
    ``code``; ``ident_kind[code]`` is the position of its kind in ``build.KINDS``. Links, one entry per row of
    ``graph.links``: ``link_account``, ``link_ident``, ``link_relation`` (position in ``build.RELATIONS``),
    ``link_first``, ``link_last``, ``link_events``. Flows, one entry per row of ``graph.flows``:
    ``flow_src``, ``flow_dst``, ``flow_relation`` (position in ``FLOW_RELATIONS``), ``flow_ts`` and
    ``flow_amount`` (the exact amounts, a polars Decimal series).
    """

    accounts: pl.Series
    idents: pl.DataFrame
    ident_kind: np.ndarray
    link_account: np.ndarray
    link_ident: np.ndarray
    link_relation: np.ndarray
    link_first: np.ndarray
    link_last: np.ndarray
    link_events: np.ndarray
    flow_src: np.ndarray
    flow_dst: np.ndarray
    flow_relation: np.ndarray
    flow_ts: np.ndarray
    flow_amount: pl.Series

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)

    @property
    def n_idents(self) -> int:
        return self.idents.height

    def account_codes(self, names: pl.Series) -> np.ndarray:
        """Codes of the given account ids (-1 for ids not in the graph)."""
        index = pl.DataFrame({"account": self.accounts, "code": np.arange(self.n_accounts)})
        found = pl.DataFrame({"account": names.cast(pl.String)}).join(
            index, on="account", how="left", maintain_order="left"
        )
        return found["code"].fill_null(-1).to_numpy().astype(np.int64)


def encode(graph: EntityGraph) -> Encoded:
    links, flows = graph.links, graph.flows
    n_links, n_flows = links.height, flows.height
    names = pl.concat([links["account"], flows["src"], flows["dst"]]).rename("account").to_frame()
    account_codes, first_account = dense_codes(names)
    ident_codes, first_ident = dense_codes(links.select("kind", "value"))
    idents = links.select("kind", "value")[first_ident]
    return Encoded(
        accounts=names["account"].gather(first_account),
        idents=idents,
        ident_kind=small_codes(idents["kind"], KINDS),
        link_account=account_codes[:n_links],
        link_ident=ident_codes,
        link_relation=small_codes(links["relation"], RELATIONS),
        link_first=links["first_ms"].to_numpy(),
        link_last=links["last_ms"].to_numpy(),
        link_events=links["events"].to_numpy(),
        flow_src=account_codes[n_links : n_links + n_flows],
        flow_dst=account_codes[n_links + n_flows :],
        flow_relation=small_codes(flows["relation"], FLOW_RELATIONS),
        flow_ts=flows["ts_ms"].to_numpy(),
        flow_amount=flows["amount"],
    )
