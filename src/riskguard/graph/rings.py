"""Rings: groups of accounts bound together by identifiers that people do not share.

What it finds: gangs that operate many accounts from the same few phones, addresses, phone numbers and
cards (mule crews, device farms, loan and complaint agents filing for their clients, card testers), and
the accounts their money ends up with.

How (cost linear in the links, plus one sparse connected-components pass):

1. **Binding identifiers**: identifiers of the kinds in ``RingConfig.kinds`` linked to at least
   ``min_shared`` accounts and at most the hub cap of their kind (``view.py`` already removed hubs, attack
   tools and what attackers brought into compromised accounts). Two people sharing a tablet are a
   household, not a ring, which is why ``min_shared`` defaults to 3.
2. **Components**: connected components of the accounts × binding-identifier graph (scipy).
3. **Money joins**: an account outside every ring that received transfers (or complaint refunds) from at
   least ``money_min_payers`` members of one ring, with at least ``money_min_share`` of all its payers in
   that ring, joins it (the collector of a farm, the agent who takes fees from clients, the recruit who
   receives from other recruits). Money flowing *into* a ring (victims paying mules) never joins the payer.
4. **Stars**: an account holding more identifiers of one kind than a person has (``star_min``: cards,
   phones, devices) brings them into its ring as members (stolen cards on a card tester's account).

A ring is reported when it has at least ``min_accounts`` accounts and ``min_binding`` binding identifiers,
or at least ``star_report`` star identifiers. Each ring carries its members, the identifiers that bind
them (with how many members each binds), its first and last activity, and the labels known on its members.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from riskguard.graph.build import EntityGraph
from riskguard.graph.view import Bipartite, binding


@dataclass(frozen=True)
class RingConfig:
    kinds: tuple[str, ...] = ("device", "ip", "phone", "card")
    min_shared: int = 3
    split_min: int = 8
    resolution: float = 2.0
    seed: int = 7
    strong_kinds: tuple[str, ...] = ("device", "phone", "card")
    money_min_payers: int = 2
    money_min_share: float = 0.5
    star_min: dict[str, int] = field(default_factory=lambda: {"card": 6, "phone": 4, "device": 6})
    min_accounts: int = 3
    min_binding: int = 2
    min_accounts_any: int = 5
    star_report: int = 10


@dataclass
class Rings:
    """``members``: ring, kind, value, role (``account``, ``binding``, ``money``, ``star``);
    ``rings``: one row per ring with its summary; ``compromised``: accounts an attack tool got into."""

    members: pl.DataFrame
    rings: pl.DataFrame
    compromised: pl.DataFrame

    def reported(self) -> pl.DataFrame:
        return self.rings.filter(pl.col("reported"))

    def account_rings(self) -> pl.DataFrame:
        """account → ring id, for every account in a reported ring."""
        keep = self.reported().select("ring")
        return (
            self.members.filter(pl.col("kind") == "account")
            .join(keep, on="ring", how="semi")
            .select(pl.col("value").alias("account"), "ring")
        )


MEMBER_SCHEMA = {"ring": pl.Int64, "kind": pl.String, "value": pl.String, "role": pl.String, "binds": pl.Int64}


def find_rings(graph: EntityGraph, config: RingConfig | None = None, labels: pl.DataFrame | None = None) -> Rings:
    """Rings of ``graph``; ``labels`` (entity_kind, entity_value, label) marks known fraud among members."""
    config = config or RingConfig()
    view = binding(graph, kinds=config.kinds)
    accounts, ring_of, keep = _components(view, config)
    members = _prune_appendages(_base_members(view, accounts, ring_of, keep), view, keep)
    extra = [_money_joins(graph, members, config), _stars(graph, view, members, config)]
    members = pl.concat([members, *(part.cast(MEMBER_SCHEMA) for part in extra)])
    rings = _summaries(graph, members, config, labels)
    return Rings(members=members.cast(MEMBER_SCHEMA), rings=rings, compromised=view.compromised)


def _components(view: Bipartite, config: RingConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accounts bound by at least one binding identifier, their ring ids (components, large ones split into
    communities), and which links bind."""
    degree = view.idents["degree"].to_numpy()
    keep = (degree[view.col] >= config.min_shared) & ~view.rotating
    rows, cols = view.row[keep], view.col[keep]
    n = view.n_accounts + view.n_idents
    matrix = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, view.n_accounts + cols)), shape=(n, n))
    _, labels = connected_components(matrix, directed=False)
    labels = labels.astype(np.int64)
    bound = np.unique(rows)
    sizes = np.bincount(labels[bound], minlength=n)
    large = np.flatnonzero(sizes >= config.split_min)
    if len(large):
        labels = _split(labels, large, rows, view.n_accounts + cols, view.weight[keep], n, config)
    return bound, labels, keep


def _split(
    labels: np.ndarray,
    large: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    n: int,
    config: RingConfig,
) -> np.ndarray:
    """Splits large components into Leiden communities (modularity, rarity-weighted), so that a bridge
    account (a farm account sold to a mule crew, a rented mule's household) does not merge two groups."""
    import random

    import igraph

    inside = np.isin(labels[src], large)
    src, dst, weight = src[inside], dst[inside], weight[inside]
    nodes, local = np.unique(np.concatenate([src, dst]), return_inverse=True)
    edges = local.reshape(2, -1).T
    graph = igraph.Graph(n=len(nodes), edges=edges.tolist(), directed=False)
    igraph.set_random_number_generator(random.Random(config.seed))
    try:
        parts = graph.community_leiden(
            objective_function="modularity", weights=weight.tolist(), resolution=config.resolution, n_iterations=-1
        )
    finally:
        igraph.set_random_number_generator(random)
    out = labels.copy()
    out[nodes] = n + np.asarray(parts.membership, dtype=np.int64)
    return out


def _base_members(view: Bipartite, bound: np.ndarray, labels: np.ndarray, keep: np.ndarray) -> pl.DataFrame:
    accounts = pl.DataFrame(
        {
            "ring": labels[bound].astype(np.int64),
            "kind": "account",
            "value": view.accounts.gather(bound),
            "role": "account",
        }
    ).with_columns(binds=pl.lit(None, dtype=pl.Int64))
    cols, counts = np.unique(view.col[keep], return_counts=True)
    idents = view.idents[cols]
    binding_rows = pl.DataFrame(
        {
            "ring": labels[view.n_accounts + cols].astype(np.int64),
            "kind": idents["kind"],
            "value": idents["value"],
            "role": "binding",
            "binds": counts.astype(np.int64),
        }
    )
    return pl.concat([accounts.cast(MEMBER_SCHEMA), binding_rows.select(accounts.columns).cast(MEMBER_SCHEMA)])


def _prune_appendages(members: pl.DataFrame, view: Bipartite, keep: np.ndarray) -> pl.DataFrame:
    """Drops groups hanging off a ring by a single account (a rented mule's household, a farm account
    sold to a crew, seen from the crew's side).

    The binding identifiers of a ring are grouped into *bundles* (identifiers binding exactly the same
    accounts: a household's tablet and its broadband address are one bundle). A bundle whose accounts
    meet the ring's other bundles in at most one account, and that is not the ring's core (the bundle with
    the most accounts shared with other bundles, then the largest), is removed
    with the accounts only it bound; repeated until nothing changes.
    """
    links = pl.DataFrame(
        {
            "account": view.accounts.gather(view.row[keep]).cast(pl.String),
            "kind": view.idents["kind"].gather(view.col[keep]).cast(pl.String),
            "value": view.idents["value"].gather(view.col[keep]).cast(pl.String),
        }
    )
    idents = members.filter(pl.col("role") == "binding").select("ring", "kind", "value")
    links = links.join(idents, on=["kind", "value"], how="inner")
    for _ in range(10):
        bundles = (
            links.group_by("ring", "kind", "value")
            .agg(pl.col("account").sort())
            .with_columns(bundle=pl.col("account").hash())
        )
        per_bundle = bundles.unique(["ring", "bundle"]).select("ring", "bundle", "account").explode("account")
        shared = per_bundle.group_by("ring", "account").agg(pl.len().alias("bundles"))
        stats = (
            per_bundle.join(shared, on=["ring", "account"])
            .group_by("ring", "bundle")
            .agg(pl.len().alias("size"), (pl.col("bundles") > 1).sum().alias("overlap"))
            .sort("ring", "overlap", "size", "bundle", descending=[False, True, True, False])
            .with_columns(best=pl.int_range(pl.len()).over("ring") == 0, count=pl.len().over("ring"))
        )
        drop = stats.filter((pl.col("count") > 1) & (pl.col("overlap") <= 1) & ~pl.col("best"))
        if drop.height == 0:
            break
        gone = bundles.join(drop.select("ring", "bundle"), on=["ring", "bundle"], how="semi")
        links = links.join(gone.select("ring", "kind", "value"), on=["ring", "kind", "value"], how="anti")
    kept_idents = links.group_by("ring", "kind", "value").agg(pl.len().cast(pl.Int64).alias("binds"))
    kept_accounts = links.select("ring", "account").unique()
    accounts = kept_accounts.select(
        "ring",
        pl.lit("account").alias("kind"),
        pl.col("account").alias("value"),
        pl.lit("account").alias("role"),
        pl.lit(None, dtype=pl.Int64).alias("binds"),
    )
    binding_rows = kept_idents.select("ring", "kind", "value", pl.lit("binding").alias("role"), "binds")
    return pl.concat([accounts.cast(MEMBER_SCHEMA), binding_rows.cast(MEMBER_SCHEMA)])


def _money_joins(graph: EntityGraph, members: pl.DataFrame, config: RingConfig) -> pl.DataFrame:
    ring_accounts = members.filter(pl.col("role") == "account").select(pl.col("value").alias("src"), "ring")
    payers = graph.flows.select("src", "dst").unique()
    all_payers = payers.group_by("dst").agg(pl.len().alias("payers"))
    inside = (
        payers.join(ring_accounts, on="src", how="inner")
        .group_by("dst", "ring")
        .agg(pl.len().alias("ring_payers"))
        .join(all_payers, on="dst")
        .join(ring_accounts.rename({"src": "dst", "ring": "own_ring"}), on="dst", how="anti")
        .filter(
            (pl.col("ring_payers") >= config.money_min_payers)
            & (pl.col("ring_payers") >= config.money_min_share * pl.col("payers"))
        )
        .sort("ring_payers", descending=True)
        .unique("dst", keep="first")
    )
    return inside.select(
        "ring",
        pl.lit("account").alias("kind"),
        pl.col("dst").alias("value"),
        pl.lit("money").alias("role"),
        pl.col("ring_payers").cast(pl.Int64).alias("binds"),
    )


def _stars(graph: EntityGraph, view: Bipartite, members: pl.DataFrame, config: RingConfig) -> pl.DataFrame:
    if not config.star_min:
        return members.clear()
    ring_accounts = members.filter(pl.col("kind") == "account").select(pl.col("value").alias("account"), "ring")
    limits = pl.DataFrame({"kind": list(config.star_min), "limit": list(config.star_min.values())})
    links = graph.links.filter(pl.col("relation") == "uses").join(
        view.compromised.select("account"), on="account", how="anti"
    )
    counts = links.group_by("account", "kind").agg(pl.col("value").unique())
    stars = (
        counts.join(limits, on="kind")
        .filter(pl.col("value").list.len() >= pl.col("limit"))
        .explode("value")
        .unique(["kind", "value"], keep="first")
    )
    # a star account outside every ring starts a ring of its own (numbered after the components)
    start = int(members["ring"].max() or 0) + 1 if members.height else 0
    lonely = stars.join(ring_accounts, on="account", how="anti").select("account").unique().sort("account")
    lonely = lonely.with_columns((pl.int_range(pl.len()) + start).cast(pl.Int64).alias("ring"))
    owners = pl.concat([ring_accounts, lonely])
    stars = stars.join(owners, on="account", how="inner")
    taken = members.select("kind", "value")
    out = stars.join(taken, on=["kind", "value"], how="anti").select(
        "ring", "kind", "value", pl.lit("star").alias("role"), pl.lit(1, dtype=pl.Int64).alias("binds")
    )
    new_accounts = lonely.select(
        "ring",
        pl.lit("account").alias("kind"),
        pl.col("account").alias("value"),
        pl.lit("account").alias("role"),
        pl.lit(None, dtype=pl.Int64).alias("binds"),
    )
    return pl.concat([new_accounts, out])


def _summaries(
    graph: EntityGraph, members: pl.DataFrame, config: RingConfig, labels: pl.DataFrame | None
) -> pl.DataFrame:
    accounts = members.filter(pl.col("kind") == "account")
    activity = pl.concat(
        [
            graph.links.select("account", "first_ms", "last_ms"),
            graph.flows.select(
                pl.col("src").alias("account"), pl.col("ts_ms").alias("first_ms"), pl.col("ts_ms").alias("last_ms")
            ),
        ]
    )
    span = (
        accounts.select("ring", pl.col("value").alias("account"))
        .join(activity, on="account", how="inner")
        .group_by("ring")
        .agg(pl.col("first_ms").min(), pl.col("last_ms").max())
    )
    per_ring = members.group_by("ring").agg(
        (pl.col("kind") == "account").sum().alias("accounts"),
        (pl.col("role") == "binding").sum().alias("binding"),
        ((pl.col("role") == "binding") & pl.col("kind").is_in(list(config.strong_kinds))).sum().alias("strong"),
        (pl.col("role") == "star").sum().alias("stars"),
        pl.len().alias("members"),
    )
    if labels is not None and labels.height:
        fraud = (
            labels.filter(pl.col("label") == "fraud")
            .select(pl.col("entity_kind").alias("kind"), pl.col("entity_value").alias("value"))
            .unique()
        )
        known = (
            members.join(fraud, on=["kind", "value"], how="semi")
            .group_by("ring")
            .agg(pl.len().alias("known_fraud"), (pl.col("kind") == "account").sum().alias("known_fraud_accounts"))
        )
    else:
        known = pl.DataFrame(schema={"ring": pl.Int64, "known_fraud": pl.UInt32, "known_fraud_accounts": pl.UInt32})
    rings = (
        per_ring.join(span, on="ring", how="left")
        .join(known, on="ring", how="left")
        .with_columns(pl.col("known_fraud").fill_null(0), pl.col("known_fraud_accounts").fill_null(0))
        .with_columns(
            reported=((pl.col("accounts") >= config.min_accounts) & (pl.col("strong") >= config.min_binding))
            | ((pl.col("accounts") >= config.min_accounts_any) & (pl.col("binding") >= config.min_binding))
            | (pl.col("stars") >= config.star_report),
            fraud_share=pl.col("known_fraud_accounts") / pl.col("accounts"),
        )
    )
    return rings.sort("members", descending=True)
