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
5. **Takeover crews**: the credential-stuffing tools that got into accounts (``view.py``) are grouped by
   the victims they share (a gang's devices and proxies log into the same accounts) into one attacker
   each. The attacker's ring holds its tools (role ``tool``), the devices, phones and cards
   (``strong_kinds``) that appeared after the compromise on at least ``takeover_min_victims`` of its
   victims (the phone it binds, the card it withdraws to: role ``attacker``; a victim's own card shows on
   one account only; addresses are left out: a victim's own later logins come from a carrier's shared
   addresses), and the accounts
   that received transfers from at least ``takeover_min_victims`` victims within ``takeover_hours`` of
   their compromise (the first-layer mules: role ``payee``); the money step then adds the deeper layers.
   The victims are never members. A crew of a few mules run from one phone looks like a household to
   step 1; the money it drains from compromised accounts is what gives it away.

A ring is reported when it has at least ``min_accounts`` accounts and ``min_binding`` binding identifiers
of the ``strong_kinds`` (tools and attacker identifiers count as binding), or ``min_accounts_any``
accounts and ``min_binding`` binding identifiers of any kind, or at least ``star_report`` star
identifiers. Each ring carries its members, the identifiers that bind
them (with how many members each binds), its first and last activity, and the labels known on its members.

Everything runs on the integer codes of ``encode.py``; member names are looked up once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from riskguard.graph.build import KINDS, EntityGraph
from riskguard.graph.encode import FLOW_RELATIONS, distinct
from riskguard.graph.view import CONTACT, NEVER, USES, Bipartite, binding

HOUR_MS = 3_600_000
BINDING_ROLES = ("binding", "tool", "attacker")


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
    takeover_hours: float = 24.0
    takeover_min_victims: int = 2


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
#: members while the rings are built: ``code`` is the account's or the identifier's code (``encode.py``)
CODED_SCHEMA = {"ring": pl.Int64, "kind": pl.String, "code": pl.Int64, "role": pl.String, "binds": pl.Int64}


def find_rings(
    graph: EntityGraph,
    config: RingConfig | None = None,
    labels: pl.DataFrame | None = None,
    *,
    view: Bipartite | None = None,
    components: np.ndarray | None = None,
) -> Rings:
    """Rings of ``graph``; ``labels`` (entity_kind, entity_value, label) marks known fraud among members.
    ``view``: the graph's binding matrix when the caller already has it (``view.binding``); ``components``:
    the connected components of the binding links when computed elsewhere (on Spark: ``spark/graph.py``),
    numbered as scipy numbers them."""
    config = config or RingConfig()
    full = view if view is not None else binding(graph)
    view = full.restrict(config.kinds)
    ring_of, keep = _components(view, config, components)
    members = _prune_appendages(view, ring_of, keep)
    members = pl.concat([members, _takeovers(full, members, config)])
    members = pl.concat([members, _money_joins(view, members, config)])
    members = pl.concat([members, _stars(view, members, config)])
    named = _names(view, members)
    rings = _summaries(view, members, named, config, labels)
    return Rings(members=named, rings=rings, compromised=view.compromised)


def _components(
    view: Bipartite, config: RingConfig, given: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ring id of every node (accounts, then identifiers): components of the binding links (``given`` when
    computed elsewhere), large ones split into communities; and which links bind."""
    keep = (view.degree[view.col] >= config.min_shared) & ~view.rotating
    rows, cols = view.row[keep], view.col[keep]
    n = view.n_accounts + view.n_idents
    if given is None:
        matrix = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, view.n_accounts + cols)), shape=(n, n))
        _, labels = connected_components(matrix, directed=False)
        labels = labels.astype(np.int64)
    else:
        labels = given.astype(np.int64)
    sizes = np.bincount(labels[distinct(rows)], minlength=n)
    large = np.flatnonzero(sizes >= config.split_min)
    if len(large):
        labels = _split(labels, large, rows, view.n_accounts + cols, view.weight[keep], view, config)
    return labels, keep


def _node_names(view: Bipartite, nodes: np.ndarray) -> np.ndarray:
    """A sortable name per node (accounts, then identifiers), for a numbering independent of the codes."""
    idents = view.encoded.idents
    is_account = nodes < view.n_accounts
    codes = nodes[~is_account] - view.n_accounts
    names = np.empty(len(nodes), dtype=object)
    names[is_account] = ("0" + view.accounts.gather(nodes[is_account])).to_numpy()
    names[~is_account] = ("1" + idents["kind"].gather(codes) + "\x1f" + idents["value"].gather(codes)).to_numpy()
    return names


def _split(
    labels: np.ndarray,
    large: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    view: Bipartite,
    config: RingConfig,
) -> np.ndarray:
    """Splits large components into Leiden communities (modularity, rarity-weighted), so that a bridge
    account (a farm account sold to a mule crew, a rented mule's household) does not merge two groups."""
    import random

    import igraph

    inside = np.isin(labels[src], large)
    src, dst, weight = src[inside], dst[inside], weight[inside]
    nodes, local = np.unique(np.concatenate([src, dst]), return_inverse=True)
    # Leiden's result depends on the order of nodes and edges: number them by name, not by code
    order = np.argsort(_node_names(view, nodes), kind="stable")
    rank = np.empty(len(nodes), dtype=np.int64)
    rank[order] = np.arange(len(nodes))
    nodes, local = nodes[order], rank[local]
    edges = local.reshape(2, -1).T
    by_name = np.lexsort((edges[:, 1], edges[:, 0]))
    edges, weight = edges[by_name], weight[by_name]
    graph = igraph.Graph(n=len(nodes), edges=edges, directed=False)
    igraph.set_random_number_generator(random.Random(config.seed))
    try:
        parts = graph.community_leiden(
            objective_function="modularity", weights=weight, resolution=config.resolution, n_iterations=-1
        )
    finally:
        igraph.set_random_number_generator(random)
    out = labels.copy()
    out[nodes] = len(labels) + np.asarray(parts.membership, dtype=np.int64)
    return out


def _prune_appendages(view: Bipartite, ring_of: np.ndarray, keep: np.ndarray) -> pl.DataFrame:
    """The rings' accounts and binding identifiers, without the groups hanging off a ring by a single
    account (a rented mule's household, a farm account sold to a crew, seen from the crew's side).

    A binding link belongs to the ring of its identifier. The binding identifiers of a ring are grouped
    into *bundles* (identifiers binding exactly the same accounts: a household's tablet and its broadband
    address are one bundle). A bundle whose accounts meet the ring's other bundles in at most one account,
    and that is not the ring's core (the bundle with the most accounts shared with other bundles, then the
    largest), is removed with the accounts only it bound; repeated until nothing changes.
    """
    cols = view.col[keep]
    links = pl.DataFrame(
        {"ring": ring_of[view.n_accounts + cols], "account": view.row[keep], "ident": cols},
        schema={"ring": pl.Int64, "account": pl.Int64, "ident": pl.Int64},
    )
    for _ in range(10):
        bundles = links.group_by("ring", "ident").agg(pl.col("account").sort()).with_columns(
            bundle=pl.col("account").hash()
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
        links = links.join(gone.select("ring", "ident"), on=["ring", "ident"], how="anti")
    kinds = pl.Series(KINDS)
    accounts = links.select("ring", "account").unique().select(
        "ring",
        pl.lit("account").alias("kind"),
        pl.col("account").alias("code"),
        pl.lit("account").alias("role"),
        pl.lit(None, dtype=pl.Int64).alias("binds"),
    )
    idents = links.group_by("ring", "ident").agg(pl.len().cast(pl.Int64).alias("binds"))
    idents = idents.select(
        "ring",
        kinds.gather(view.encoded.ident_kind[idents["ident"].to_numpy()]).alias("kind"),
        pl.col("ident").alias("code"),
        pl.lit("binding").alias("role"),
        "binds",
    )
    return pl.concat([accounts.cast(CODED_SCHEMA), idents.cast(CODED_SCHEMA)])


def _ring_accounts(members: pl.DataFrame) -> pl.DataFrame:
    return members.filter(pl.col("kind") == "account").select(pl.col("code").alias("account"), "ring")


def _takeovers(view: Bipartite, members: pl.DataFrame, config: RingConfig) -> pl.DataFrame:
    """Takeover crews (step 5 of the module docstring), as new rings numbered after the others."""
    e = view.encoded
    since = view.compromised_since
    tool_uses = (e.link_relation == USES) & view.attack_ident[e.link_ident]
    if not tool_uses.any():
        return members.clear()
    victims, tools = e.link_account[tool_uses], e.link_ident[tool_uses]
    n = e.n_accounts + e.n_idents
    matrix = coo_matrix((np.ones(len(victims), dtype=np.int8), (victims, e.n_accounts + tools)), shape=(n, n))
    _, attacker = connected_components(matrix, directed=False)
    attacker = attacker.astype(np.int64)
    # first-layer payees: transfers out of victims soon after their compromise
    src, dst, ts = e.flow_src, e.flow_dst, e.flow_ts
    soon = (
        (e.flow_relation == FLOW_RELATIONS.index("transfer"))
        & (ts >= since[src])
        & (ts - since[src] <= config.takeover_hours * HOUR_MS)
        & (since[dst] == NEVER)
    )
    payees = _by_attacker(attacker[src[soon]], src[soon], dst[soon], "payee", config.takeover_min_victims)
    payees = payees.with_columns(kind=pl.lit("account"))
    # the attacker's identifiers: new on several of its victims after their compromise; of the kinds
    # people do not share (a victim's own later logins come from addresses its neighbours share too)
    ring_kind = np.isin(e.ident_kind, [KINDS.index(k) for k in config.strong_kinds])
    later = (
        ((e.link_relation == USES) | (e.link_relation == CONTACT))
        & (e.link_first >= since[e.link_account])
        & ~view.attack_ident[e.link_ident]
        & ring_kind[e.link_ident]
    )
    victim = e.link_account[later]
    brought = _by_attacker(attacker[victim], victim, e.link_ident[later], "attacker", config.takeover_min_victims)
    idents = pl.concat([brought, _by_attacker(attacker[victims], victims, tools, "tool", 1)])
    idents = idents.with_columns(kind=pl.Series(KINDS).gather(e.ident_kind[idents["code"].to_numpy()]))
    found = payees.select("attacker").unique()  # an attacker without payees is no ring (no accounts)
    crews = pl.concat([payees, idents.join(found, on="attacker", how="semi")], how="diagonal")
    start = int(members["ring"].max() or 0) + 1 if members.height else 0
    numbers = found.sort("attacker").with_columns(ring=(pl.int_range(pl.len()) + start).cast(pl.Int64))
    return crews.join(numbers, on="attacker").select(list(CODED_SCHEMA)).cast(CODED_SCHEMA)


def _by_attacker(attacker: np.ndarray, victim: np.ndarray, code: np.ndarray, role: str, least: int) -> pl.DataFrame:
    """``attacker, code, binds, role``: how many distinct victims of each attacker involve each code (at
    least ``least``)."""
    return (
        pl.DataFrame({"attacker": attacker, "victim": victim, "code": code})
        .group_by("attacker", "code")
        .agg(pl.col("victim").n_unique().alias("binds"))
        .filter(pl.col("binds") >= least)
        .with_columns(role=pl.lit(role))
    )


def _money_joins(view: Bipartite, members: pl.DataFrame, config: RingConfig) -> pl.DataFrame:
    e = view.encoded
    n = np.int64(e.n_accounts)
    pairs = distinct(e.flow_src * n + e.flow_dst)
    payers = pl.DataFrame({"src": pairs // n, "dst": pairs % n})
    all_payers = payers.group_by("dst").agg(pl.len().alias("payers"))
    ring_accounts = _ring_accounts(members)
    inside = (
        payers.join(ring_accounts.rename({"account": "src"}), on="src", how="inner")
        .group_by("dst", "ring")
        .agg(pl.len().alias("ring_payers"))
        .join(all_payers, on="dst")
        .join(ring_accounts.rename({"account": "dst"}), on="dst", how="anti")
        .filter(
            (pl.col("ring_payers") >= config.money_min_payers)
            & (pl.col("ring_payers") >= config.money_min_share * pl.col("payers"))
        )
        .sort("ring_payers", "ring", "dst", descending=[True, False, False])
        .unique("dst", keep="first")
    )
    return inside.select(
        "ring",
        pl.lit("account").alias("kind"),
        pl.col("dst").alias("code"),
        pl.lit("money").alias("role"),
        pl.col("ring_payers").cast(pl.Int64).alias("binds"),
    ).cast(CODED_SCHEMA)


def _stars(view: Bipartite, members: pl.DataFrame, config: RingConfig) -> pl.DataFrame:
    """Identifiers of accounts that hold more of one kind than a person has (cards of a card tester)."""
    e = view.encoded
    limit = np.full(len(KINDS) + 1, np.iinfo(np.int64).max)
    for kind, value in config.star_min.items():
        limit[KINDS.index(kind)] = value
    kind = np.minimum(e.ident_kind[e.link_ident], len(KINDS)).astype(np.int64)
    rows = (e.link_relation == USES) & (view.compromised_since[e.link_account] == NEVER) & (limit[kind] < NEVER)
    if not config.star_min or not rows.any():
        return members.clear()
    key = e.link_account[rows] * (len(KINDS) + 1) + kind[rows]
    counts = np.bincount(key)
    star = counts[key] >= limit[kind[rows]]
    stars = pl.DataFrame({"account": e.link_account[rows][star], "ident": e.link_ident[rows][star]})
    stars = stars.sort("ident", "account").unique("ident", keep="first")
    ring_accounts = _ring_accounts(members)
    # a star account outside every ring starts a ring of its own (numbered after the others)
    start = int(members["ring"].max() or 0) + 1 if members.height else 0
    lonely = stars.join(ring_accounts, on="account", how="anti").select("account").unique().sort("account")
    lonely = lonely.with_columns((pl.int_range(pl.len()) + start).cast(pl.Int64).alias("ring"))
    stars = stars.join(pl.concat([ring_accounts, lonely]), on="account", how="inner")
    taken = members.filter(pl.col("kind") != "account").select(pl.col("code").alias("ident"))
    stars = stars.join(taken, on="ident", how="anti")
    kinds = pl.Series(KINDS)
    out = stars.select(
        "ring",
        kinds.gather(e.ident_kind[stars["ident"].to_numpy()]).alias("kind"),
        pl.col("ident").alias("code"),
        pl.lit("star").alias("role"),
        pl.lit(1, dtype=pl.Int64).alias("binds"),
    )
    new_accounts = lonely.select(
        "ring",
        pl.lit("account").alias("kind"),
        pl.col("account").alias("code"),
        pl.lit("account").alias("role"),
        pl.lit(None, dtype=pl.Int64).alias("binds"),
    )
    return pl.concat([new_accounts.cast(CODED_SCHEMA), out.cast(CODED_SCHEMA)])


def _names(view: Bipartite, members: pl.DataFrame) -> pl.DataFrame:
    """Members with their account ids and identifier values instead of codes."""
    is_account = (members["kind"] == "account").to_numpy()
    codes = members["code"].to_numpy()
    values = np.empty(members.height, dtype=object)
    values[is_account] = view.accounts.gather(codes[is_account]).to_numpy()
    values[~is_account] = view.encoded.idents["value"].gather(codes[~is_account]).to_numpy()
    return members.with_columns(value=pl.Series(values, dtype=pl.String)).select(list(MEMBER_SCHEMA))


def _summaries(
    view: Bipartite, members: pl.DataFrame, named: pl.DataFrame, config: RingConfig, labels: pl.DataFrame | None
) -> pl.DataFrame:
    e = view.encoded
    in_ring = np.zeros(e.n_accounts, dtype=bool)
    accounts = members.filter(pl.col("kind") == "account")
    in_ring[accounts["code"].to_numpy()] = True
    linked, paid = in_ring[e.link_account], in_ring[e.flow_src]
    activity = pl.DataFrame(
        {
            "code": np.concatenate([e.link_account[linked], e.flow_src[paid]]),
            "first_ms": np.concatenate([e.link_first[linked], e.flow_ts[paid]]),
            "last_ms": np.concatenate([e.link_last[linked], e.flow_ts[paid]]),
        }
    )
    span = (
        accounts.select("ring", "code")
        .join(activity, on="code", how="inner")
        .group_by("ring")
        .agg(pl.col("first_ms").min(), pl.col("last_ms").max())
    )
    per_ring = members.group_by("ring").agg(
        (pl.col("kind") == "account").sum().alias("accounts"),
        pl.col("role").is_in(BINDING_ROLES).sum().alias("binding"),
        (pl.col("role").is_in(BINDING_ROLES) & pl.col("kind").is_in(list(config.strong_kinds))).sum().alias("strong"),
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
            named.join(fraud, on=["kind", "value"], how="semi")
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
    return rings.sort("members", "ring", descending=[True, False])
