"""The propagation score (personalised PageRank of ``graph/association.py``) with Spark DataFrame operations.

The same power iteration as ``association.personalised_pagerank``, written as joins: the score vector is a
table ``node, score`` holding only non-zero entries, the adjacency a table ``i, j, w`` (both directions of
every link, duplicates summed by the aggregation exactly as the sparse matrix sums them). One iteration:

    spread[j] = Σ_i w(i, j) · score[i] · (1 / degree[i])
    dangling  = Σ score[i] over nodes without links (degree 0)
    new       = (1 - restart) · (spread + dangling · start) + restart · start

stopping after ``iterations`` rounds or when the L1 change falls below ``tol``, as in-process. Results
agree with the in-process scores to floating-point summation order (docs/spark.md states the tolerance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def personalised_pagerank(
    adjacency: DataFrame,
    seeds: DataFrame,
    *,
    restart: float = 0.15,
    iterations: int = 30,
    tol: float = 1e-9,
) -> tuple[DataFrame, int]:
    """``(scores, iterations run)``: ``node, score`` (non-zero entries) of a walk on the symmetric weighted
    ``adjacency`` (``i, j, w``; every link given in both directions) restarting at ``seeds`` (``node, s``,
    non-negative, normalised here; a node listed twice counts twice)."""
    from pyspark.sql import functions as F

    spark = adjacency.sparkSession
    parts = int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
    seeds = seeds.groupBy("node").agg(F.sum("s").alias("s")).where(F.col("s") > 0)
    total = seeds.agg(F.sum("s")).first()[0]
    if not total or total <= 0:
        return spark.createDataFrame([], "node long, score double"), 0
    degree = adjacency.groupBy(F.col("i").alias("node")).agg(F.sum("w").alias("degree"))
    inverse = degree.where(F.col("degree") > 0).select("node", (F.lit(1.0) / F.col("degree")).alias("inverse"))
    # the transition weights w(i, j) / degree(i), partitioned by i: each iteration shuffles only the scores
    links = (
        adjacency.join(inverse.withColumnRenamed("node", "i"), on="i")
        .select("i", "j", (F.col("w") * F.col("inverse")).alias("p"))
        .repartition(parts, "i")
        .localCheckpoint()
    )
    # only a seed can be dangling (no links): every other node with a score got it over a link it has
    start = (
        seeds.join(inverse, on="node", how="left")
        .select(
            "node",
            (F.col("s") / F.lit(float(total))).alias("start"),
            F.col("inverse").isNull().alias("dangling"),
        )
        .localCheckpoint()
    )
    score = start.select("node", F.col("start").alias("score"))
    dangling = float(start.where("dangling").agg(F.sum("start")).first()[0] or 0.0)
    zero = F.lit(0.0)
    done = 0
    for step in range(1, iterations + 1):
        done = step
        spread = links.join(score.withColumnRenamed("node", "i"), on="i").select(
            F.col("j").alias("node"),
            (F.col("p") * F.col("score")).alias("spread"),
            zero.alias("start"),
            zero.alias("before"),
            F.lit(False).alias("dangling"),
        )
        restarts = start.select("node", zero.alias("spread"), "start", zero.alias("before"), "dangling")
        before = score.select("node", zero.alias("spread"), zero.alias("start"), F.col("score").alias("before"))
        before = before.withColumn("dangling", F.lit(False))
        summed = (
            spread.unionByName(restarts)
            .unionByName(before)
            .groupBy("node")
            .agg(
                F.sum("spread").alias("spread"),
                F.sum("start").alias("start"),
                F.sum("before").alias("before"),
                F.max("dangling").alias("dangling"),
            )
        )
        new = summed.select(
            "node",
            (
                F.lit(1 - restart) * (F.col("spread") + F.lit(dangling) * F.col("start"))
                + F.lit(restart) * F.col("start")
            ).alias("score"),
            "before",
            "dangling",
        ).localCheckpoint(eager=False)
        # one job per iteration: the checkpoint is written while the change and the dangling mass are summed
        change = new.agg(
            F.sum(F.abs(F.col("score") - F.col("before"))).alias("change"),
            F.sum(F.when(F.col("dangling"), F.col("score")).otherwise(zero)).alias("dangling"),
        ).first()
        score = new.where(F.col("score") != 0).select("node", "score")
        dangling = float(change["dangling"] or 0.0)
        if float(change["change"] or 0.0) < tol:
            break
    return score, done
