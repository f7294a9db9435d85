"""Scoring reported rings against a simulated world's ground truth (``truth.parquet``).

A gang counts as **found** when at least ``purity`` (80 %) of a reported ring's members belong to it. Per
typology, *recall* is the share of its gangs found, *precision* the share of reported rings whose largest
gang is of that typology that are at least ``purity`` pure. Rings whose members mostly belong to no gang are
false rings of no typology; they count against the overall precision.

Members are compared as entities (accounts, devices, addresses, phones, cards, shops: the kinds ``truth``
lists); /24 ranges are derived, not entities, and are left out. ``coverage`` is the share of a found
gang's accounts inside its ring.
"""

from __future__ import annotations

import polars as pl

from riskguard.graph.rings import Rings


def score_rings(rings: Rings, truth: pl.DataFrame, *, purity: float = 0.8) -> dict[str, object]:
    members = rings.members.join(rings.reported().select("ring"), on="ring", how="semi").filter(
        pl.col("kind") != "ip24"
    )
    owners = truth.select(
        pl.col("entity_kind").alias("kind"), pl.col("entity_value").alias("value"), "gang_id", "typology"
    ).unique()
    joined = members.join(owners, on=["kind", "value"], how="left")
    sizes = members.group_by("ring").agg(pl.len().alias("size"))
    by_gang = (
        joined.filter(pl.col("gang_id").is_not_null())
        .group_by("ring", "gang_id", "typology")
        .agg(pl.len().alias("in_gang"), (pl.col("kind") == "account").sum().alias("gang_accounts"))
        .join(sizes, on="ring")
        .with_columns(share=pl.col("in_gang") / pl.col("size"))
    )
    best = by_gang.sort("share", descending=True).unique("ring", keep="first")
    ring_table = sizes.join(best, on="ring", how="left").with_columns(
        pl.col("share").fill_null(0.0), pure=pl.col("share").fill_null(0.0) >= purity
    )
    gangs = truth.select("gang_id", "typology").unique()
    gang_accounts = truth.filter(pl.col("entity_kind") == "account").group_by("gang_id").agg(pl.len().alias("accounts"))
    found = (
        by_gang.filter(pl.col("share") >= purity)
        .sort("gang_accounts", descending=True)
        .unique("gang_id", keep="first")
        .join(gang_accounts, on="gang_id", how="left")
        .with_columns(coverage=pl.col("gang_accounts") / pl.col("accounts"))
    )
    rows = []
    for typology in sorted(gangs["typology"].unique().to_list()):
        total = gangs.filter(pl.col("typology") == typology).height
        hit = found.filter(pl.col("typology") == typology)
        reported = ring_table.filter(pl.col("typology") == typology)
        rows.append(
            {
                "typology": typology,
                "gangs": total,
                "found": hit.height,
                "recall": hit.height / total if total else 0.0,
                "rings": reported.height,
                "pure_rings": int(reported["pure"].sum()),
                "precision": float(reported["pure"].mean()) if reported.height else 0.0,
                "coverage": float(hit["coverage"].mean()) if hit.height else 0.0,
            }
        )
    unattributed = ring_table.filter(pl.col("typology").is_null()).height
    return {
        "per_typology": rows,
        "rings": ring_table.height,
        "pure_rings": int(ring_table["pure"].sum()),
        "false_rings": unattributed,
        "precision": float(ring_table["pure"].mean()) if ring_table.height else 0.0,
        "recall": found.height / gangs.height if gangs.height else 0.0,
    }
