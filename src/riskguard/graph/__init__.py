"""Malicious-account mining on the entity graph: rings, guilt by association, dense blocks, laundering
motifs, a supervised model, graph features for live decisions, alerts, and ``graph evaluate``.

Start with :class:`riskguard.graph.build.EntityGraph` (the graph) and :func:`riskguard.graph.refresh.refresh`
(everything at once); docs/graph.md is the user's guide.
"""
