"""Batch jobs on Apache Spark: the graph refresh's components and propagation score, and the replay's
rule evaluation, run on a Spark cluster (``local[N]`` on one machine) instead of in-process.

``session.py`` builds the SparkSession from the settings; ``components.py`` and ``propagation.py`` are
the two graph-wide iterative steps written with DataFrame operations; ``graph.py`` runs them on a graph
and hands the results to the in-process refresh; ``replay.py`` evaluates a strategy per partition of a
history. docs/spark.md explains when to use which and what cluster a data size needs.
"""
