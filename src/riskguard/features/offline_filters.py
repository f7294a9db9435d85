"""``when`` filters over a whole history, evaluated by the same CEL runtime as online, in bulk.

A filter reads a few event fields. Its guards (``event.type == "transfer"``, found by rules/static.py)
decide most events in one vectorised comparison; the rest are grouped by the values of the fields the
filter reads, and the compiled expression is evaluated once per distinct combination, with the bindings
rules/activation.py would give an event carrying those values. Logins of a history carry a handful of
distinct attribute objects, so a filter on ``event.attributes.success`` is evaluated a handful of times,
not once per login.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from riskguard.features.offline_input import TEXT_FIELDS, Events
from riskguard.rules.activation import EVENT_DECLARATIONS
from riskguard.rules.cel import Environment
from riskguard.rules.static import analyse


def filter_mask(events: Events, source: str, environment: Environment, *, where: str) -> np.ndarray:
    """Whether each event passes the filter (its expression evaluates to true)."""
    expression = environment.compile(source, where=where)
    facts = analyse(source, EVENT_DECLARATIONS)
    n = len(events)
    mask = pl.Series(np.ones(n, dtype=bool))
    decided = facts.guard_only
    for variable, allowed in facts.guards:
        column = variable.removeprefix("event.")
        if column in TEXT_FIELDS:  # an unbound field fails its guard, as `error && x` is never true
            mask = mask & events.column(column).is_in(list(allowed)).fill_null(False)
        else:
            decided = False
    if decided:
        return mask.to_numpy()
    names = sorted(v.removeprefix("event.") for v in facts.variables)
    rows = mask.arg_true()
    result = np.zeros(n, dtype=bool)
    if len(rows) == 0:
        return result
    if not names:
        result[rows.to_numpy()] = expression.evaluate({}) is True
        return result
    picked = events.frame.select(names).with_columns(_row=pl.Series(np.arange(n))).filter(mask)
    groups = picked.group_by(names).agg(pl.col("_row"))
    passing: list[Any] = []
    for values, members in zip(groups.select(names).iter_rows(), groups.get_column("_row"), strict=True):
        bindings = {}
        for name, raw in zip(names, values, strict=True):
            value = events.parse(name, raw)
            if value is not None:
                bindings["event." + name] = float(value) if name == "amount" else value
        if expression.evaluate(bindings) is True:
            passing.append(members)
    if passing:
        result[pl.concat(passing).to_numpy()] = True
    return result
