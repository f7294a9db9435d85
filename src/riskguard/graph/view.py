"""The account × identifier matrix the algorithms run on: hubs cut, attack tools and their sessions set apart,
each link weighted by the identifier's rarity.

Three cleaning steps turn the raw links (``build.py``) into links that *bind* accounts together:

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from riskguard.graph.build import EntityGraph, GraphConfig

BINDING_RELATIONS = ("uses", "contact")


@dataclass
class Bipartite:
    """Accounts are rows ``0..n_accounts-1``, identifiers columns ``0..n_idents-1``; one entry per link."""

    accounts: pl.Series  # account id of each row
    idents: pl.DataFrame  # kind, value, degree of each column
    row: np.ndarray
    col: np.ndarray
    weight: np.ndarray
    first_ms: np.ndarray
    last_ms: np.ndarray
    hubs: pl.DataFrame  # kind, value, degree: cut
    attack: pl.DataFrame  # kind, value, accounts, success_share
    compromised: pl.DataFrame  # account, since_ms
    rotating: np.ndarray  # bool per link: an address the account rotates through (a carrier NAT pool)

    @property
    def n_accounts(self) -> int:
        return len(self.accounts)

    @property
    def n_idents(self) -> int:
        return self.idents.height

    def account_index(self) -> dict[str, int]:
        return {a: i for i, a in enumerate(self.accounts.to_list())}


def attack_tools(links: pl.DataFrame, config: GraphConfig) -> pl.DataFrame:
    """Devices and addresses that look like credential-stuffing tools (see the module docstring)."""
    logins = links.filter(pl.col("kind").is_in(["device", "ip"]) & pl.col("relation").is_in(["uses", "failed_login"]))
    stats = logins.group_by("kind", "value").agg(
        (pl.col("relation") == "failed_login").sum().alias("failed_accounts"),
        pl.col("account").n_unique().alias("accounts"),
        ((pl.col("relation") == "uses").sum() / pl.col("account").n_unique()).alias("success_share"),
    )
    return stats.filter(
        (pl.col("failed_accounts") >= config.attack_min_accounts)
        & (pl.col("success_share") <= config.attack_max_success)
    ).select("kind", "value", "accounts", "success_share")


def binding(graph: EntityGraph, *, kinds: tuple[str, ...] | None = None) -> Bipartite:
    """The cleaned, weighted account × identifier matrix of ``graph`` (optionally only some kinds)."""
    config = graph.config
    links = graph.links
    attack = attack_tools(links, config)
    tool_links = links.join(attack.select("kind", "value"), on=["kind", "value"], how="semi").filter(
        pl.col("relation") == "uses"
    )
    compromised = tool_links.group_by("account").agg(pl.col("first_ms").min().alias("since_ms"))
    usable = links.filter(pl.col("relation").is_in(BINDING_RELATIONS))
    if kinds is not None:
        usable = usable.filter(pl.col("kind").is_in(list(kinds)))
    usable = usable.join(attack.select("kind", "value"), on=["kind", "value"], how="anti")
    usable = (
        usable.join(compromised, on="account", how="left")
        .filter(pl.col("since_ms").is_null() | (pl.col("first_ms") < pl.col("since_ms")))
        .drop("since_ms")
    )
    # one entry per (account, identifier): a phone that is both used and a contact counts once
    usable = usable.group_by("account", "kind", "value").agg(
        pl.col("first_ms").min(), pl.col("last_ms").max(), pl.col("events").sum()
    )
    degree = usable.group_by("kind", "value").agg(pl.len().alias("degree"))
    caps = pl.DataFrame(
        {"kind": list(config.max_degree), "cap": list(config.max_degree.values())},
        schema={"kind": pl.String, "cap": pl.Int64},
    )
    degree = degree.join(caps, on="kind", how="left").with_columns(pl.col("cap").fill_null(10**9))
    hubs = degree.filter(pl.col("degree") > pl.col("cap")).select("kind", "value", "degree")
    kept = degree.filter(pl.col("degree") <= pl.col("cap")).select("kind", "value", "degree")
    kept = kept.sort("kind", "value").with_row_index("col")
    usable = usable.join(kept, on=["kind", "value"], how="inner")
    accounts = usable.select(pl.col("account").unique().sort()).with_row_index("row")
    usable = usable.join(accounts, on="account", how="inner")
    deg = usable["degree"].to_numpy().astype(np.float64)
    rotating = (
        usable.with_columns(range24=pl.col("value").str.extract(r"^(\d+\.\d+\.\d+)\.", 1))
        .with_columns(
            rotating=(pl.col("kind") == "ip")
            & pl.col("range24").is_not_null()
            & (pl.col("value").n_unique().over("account", "kind", "range24") > 1)
        )["rotating"]
        .to_numpy()
    )
    return Bipartite(
        accounts=accounts["account"],
        idents=kept.select("kind", "value", "degree"),
        row=usable["row"].to_numpy().astype(np.int64),
        col=usable["col"].to_numpy().astype(np.int64),
        weight=1.0 / np.log2(1.0 + deg),
        first_ms=usable["first_ms"].to_numpy(),
        last_ms=usable["last_ms"].to_numpy(),
        hubs=hubs,
        attack=attack,
        compromised=compromised,
        rotating=rotating,
    )
