"""A strategy's rules over a whole history, in bulk, with the production CEL runtime.

Evaluating every rule for every event through the runtime costs about 80 µs an event; a replay must do
50,000 events a second. Nothing here re-implements CEL: every value still comes from the strategy's own
compiled expressions. What changes is how often they are called — once per *class* of events that the
expression cannot tell apart — using three facts that hold for any CEL expression:

1. **A top-level conjunction is decided conjunct by conjunct.** CEL's ``&&`` is commutative with respect
   to errors (``false && error`` and ``error && false`` are both ``false``; ``true && error`` is the
   error), so ``a && b && c`` is false if any conjunct is false, else an error if any is, else true.
   Each conjunct (``event.type == "transfer"``, ``event.amount > 5000.0``, ...) is compiled on its own
   in the strategy's environment and evaluated only for the events that no earlier conjunct made false.
2. **An expression is a function of the variables it references.** Events with equal values of those
   variables (and the same of them bound) get the same result, so a conjunct is evaluated once per
   distinct combination, on one representative event, and the result is copied to the others.
3. **A number compared only with literals matters only by its place among those literals.** Where every
   occurrence of a numeric variable ``v`` in a conjunct has the form ``v OP LITERAL`` (or ``LITERAL OP v``)
   with nothing that binds tighter around it, two values on the same side of every literal (or equal to
   the same one) give every comparison the same outcome, so events are grouped by that place instead of
   the value. The same holds for ``int(event.attributes.K)`` when the attribute is an integer, for
   ``event.F in lists.L`` (only whether the value is on the list matters), and an attribute object read
   only as ``event.attributes.K`` is grouped by the values of those keys.

Floats are grouped on exact float64 values and integers only below 2**53 (where float64 is exact);
anything the text analysis does not recognise is grouped by its exact value, which is always correct and
only slower. tests/test_replay_equality.py holds the result to the live pipeline event by event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskguard.replay.columns import Columns
from riskguard.rules.cel import EvalError, Expression
from riskguard.rules.static import _IDENT_CHAIN, _mask_strings, _split_top, _strip_parens, variables_of
from riskguard.rules.strategy import CompiledStrategy

_NUM = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_OP = r"(==|!=|>=|<=|>|<)"
_AFTER = re.compile(rf"\s*{_OP}\s*({_NUM})")
_BEFORE = re.compile(rf"({_NUM})\s*{_OP}\s*$")
_IN_LIST = re.compile(r"\s+in\s+(lists\.[a-z][a-z0-9_]*)")
_LEFT_OK = set("(&|?:,[")
_RIGHT_OK = set(")&|?:,]")
_CHEAP = {"event.type", "event.channel", "event.currency", "event.locale"}

FALSE, TRUE, ERROR = 0, 1, 2


def _left_ok(masked: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and masked[i].isspace():
        i -= 1
    return i < 0 or masked[i] in _LEFT_OK


def _right_ok(masked: str, end: int) -> bool:
    i = end
    while i < len(masked) and masked[i].isspace():
        i += 1
    return i >= len(masked) or masked[i] in _RIGHT_OK


def _comparison(masked: str, start: int, end: int) -> float | None:
    """The literal the token at [start, end) is compared with, when that is all the token takes part in."""
    after = _AFTER.match(masked, end)
    if after is not None and _left_ok(masked, start) and _right_ok(masked, after.end()):
        return float(after.group(2))
    before = _BEFORE.search(masked[:start])
    if before is not None and _left_ok(masked, before.start()) and _right_ok(masked, end):
        return float(before.group(1))
    return None


@dataclass
class Part:
    """One component of a conjunct's grouping key."""

    kind: str  # cell | raw | member | attr_cell | attr_raw
    name: str
    literals: tuple[float, ...] = ()
    list_name: str = ""


def plan_conjunct(source: str, declared: dict[str, str]) -> list[Part] | None:
    """How to group events for one conjunct; None when it references no variable (a constant)."""
    masked = _mask_strings(source)
    uses: dict[str, list[tuple[str, Any]]] = {}  # variable → [(use kind, detail)]
    for match in _IDENT_CHAIN.finditer(masked):
        chain = match.group(0)
        parts = chain.split(".") if not any(c.isspace() for c in chain) else None
        if parts is None:
            for name in declared:
                if chain.replace(" ", "").startswith(name):
                    uses.setdefault(name, []).append(("raw", None))
            continue
        name = None
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in declared:
                name, rest = ".".join(parts[:end]), parts[end:]
                break
        if name is None:
            continue
        start = match.start()
        stop = start + len(name)
        if name == "event.attributes":
            if not rest:
                uses.setdefault(name, []).append(("raw", None))
                continue
            key, key_end = rest[0], stop + 1 + len(rest[0])
            if len(rest) == 1 and masked[:start].endswith("has(") and masked[key_end : key_end + 1] == ")":
                uses.setdefault(name, []).append(("has", key))
            elif (
                len(rest) == 1
                and masked[:start].endswith("int(")
                and masked[key_end : key_end + 1] == ")"
                and (literal := _comparison(masked, start - 4, key_end + 1)) is not None
            ):
                uses.setdefault(name, []).append(("int_cmp", (key, literal)))
            else:
                uses.setdefault(name, []).append(("key", key))
            continue
        if rest:
            uses.setdefault(name, []).append(("raw", None))
            continue
        kind = declared[name]
        literal = _comparison(masked, start, stop) if kind in ("int", "double") else None
        if literal is not None:
            uses.setdefault(name, []).append(("cmp", literal))
            continue
        listed = _IN_LIST.match(masked, stop)
        if (
            listed is not None
            and name.startswith("event.")
            and listed.group(1) in declared
            and _left_ok(masked, start)
            and _right_ok(masked, listed.end())
        ):
            uses.setdefault(name, []).append(("member", listed.group(1)))
            uses.setdefault(listed.group(1), []).append(("listed", None))
            continue
        if name.startswith("lists.") and masked[:start].rstrip().endswith(" in"):
            uses.setdefault(name, []).append(("listed_raw", None))
            continue
        uses.setdefault(name, []).append(("raw", None))
    if not uses:
        return None
    plan: list[Part] = []
    for name, found in sorted(uses.items()):
        kinds = {k for k, _ in found}
        if name == "event.attributes":
            if "raw" in kinds:
                plan.append(Part("raw", name))
                continue
            keys: dict[str, set[str]] = {}
            literals: dict[str, set[float]] = {}
            for kind, detail in found:
                key = detail[0] if kind == "int_cmp" else detail
                keys.setdefault(key, set()).add(kind)
                if kind == "int_cmp":
                    literals.setdefault(key, set()).add(detail[1])
            for key, used in sorted(keys.items()):
                if used <= {"has", "int_cmp"} and "int_cmp" in used:
                    plan.append(Part("attr_cell", key, tuple(sorted(literals[key]))))
                else:
                    plan.append(Part("attr_raw", key))
            continue
        if kinds == {"cmp"}:
            plan.append(Part("cell", name, tuple(sorted({d for _, d in found}))))
        elif kinds == {"member"} and name.removeprefix("event.") in _IDENTIFIERS:
            for list_name in sorted({d for _, d in found}):
                plan.append(Part("member", name, list_name=list_name.removeprefix("lists.")))
        elif kinds == {"listed"}:
            continue  # decided through the member parts of the fields tested against it
        else:
            plan.append(Part("raw", name))
    # a list read other than through `event.F in lists.L` needs its own raw part; so does a field that is
    # a member somewhere and raw elsewhere (handled above as raw)
    for part in list(plan):
        if part.kind == "member":
            field_uses = {k for k, _ in uses[part.name]}
            if field_uses != {"member"}:
                plan = [p for p in plan if not (p.kind == "member" and p.name == part.name)] + [Part("raw", part.name)]
    return plan


_IDENTIFIERS = ("account_id", "counterparty_id", "merchant_id", "device_id", "ip", "phone", "card_id")


def _cells(values: np.ndarray, literals: tuple[float, ...]) -> np.ndarray:
    """The place of each value among sorted literals: 2k for below literal k, 2k+1 for equal to it."""
    table = np.asarray(literals, dtype=np.float64)
    below = np.searchsorted(table, values, side="left")
    equal = (below < len(table)) & (table[np.minimum(below, len(table) - 1)] == values)
    return 2 * below + equal


class Conjunct:
    """One conjunct of one rule: its compiled expression and how events are grouped for it."""

    def __init__(self, expression: Expression, plan: list[Part] | None, variables: frozenset[str]) -> None:
        self.expression = expression
        self.plan = plan
        self.variables = sorted(variables)

    @property
    def cost(self) -> int:
        if not self.plan:
            return 0
        return sum(1 if p.kind in ("cell", "member", "attr_cell") or p.name in _CHEAP else 100 for p in self.plan)

    def key(self, columns: Columns, rows: np.ndarray) -> np.ndarray:
        """A grouping key per row (one int64 column per part)."""
        assert self.plan is not None
        out = np.empty((len(rows), len(self.plan)), dtype=np.int64)
        for j, part in enumerate(self.plan):
            out[:, j] = _part_codes(part, columns, rows)
        return out

    def activation(self, columns: Columns, row: int) -> dict[str, Any]:
        bindings: dict[str, Any] = {}
        for name in self.variables:
            column = columns.get(name)
            if column.bound[row]:
                bindings[name] = column.value(row)
        return bindings


def _part_codes(part: Part, columns: Columns, rows: np.ndarray) -> np.ndarray:
    if part.kind == "member":
        column = columns.get(part.name)
        member = columns.member(part.name.removeprefix("event."), part.list_name)
        return np.where(column.bound[rows], member[rows].astype(np.int64), -1)
    if part.kind in ("attr_cell", "attr_raw"):
        column = columns.attribute(part.name)
        codes = column.codes[rows]
        if part.kind == "attr_cell":
            is_int = column.int_rows[rows]  # type: ignore[index]
            cells = _cells(np.where(is_int, column.numeric[rows], 0.0), part.literals)  # type: ignore[index]
            return np.where(is_int, cells, np.where(codes >= 0, -3 - codes, -1))
        return codes
    column = columns.get(part.name)
    if part.kind == "cell" and column.numeric is not None and column.exact_numeric:
        cells = _cells(np.nan_to_num(column.numeric[rows]), part.literals)
        return np.where(column.bound[rows], cells, -1)
    return column.codes[rows]


def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of equal keys: (first row of each distinct key, each row's key index)."""
    n, width = keys.shape
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    low = keys.min(axis=0)
    span = keys.max(axis=0) - low + 1
    if float(np.prod(span.astype(np.float64))) < 2.0**62:
        radix = np.ones(width, dtype=np.int64)
        for j in range(width - 2, -1, -1):
            radix[j] = radix[j + 1] * span[j + 1]
        flat = (keys - low) @ radix
        size = int(flat.max()) + 1
        if size <= 4 * n + 4096:
            present = np.zeros(size, dtype=bool)
            present[flat] = True
            ids = np.cumsum(present) - 1
            inverse = ids[flat]
            first = np.empty(int(ids[-1]) + 1, dtype=np.int64)
            first[inverse[::-1]] = np.arange(n - 1, -1, -1)
            return first, inverse
        _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


class BulkRules:
    """Every evaluated rule of a compiled strategy, ready to run over ``Columns``."""

    def __init__(self, strategy: CompiledStrategy) -> None:
        self.strategy = strategy
        declared = strategy.environment.variables
        self.rules: list[list[Conjunct]] = []
        for index, rule in enumerate(strategy.evaluated):
            masked = _mask_strings(rule.when)
            pieces = _split_top(masked, rule.when, "&&") or [rule.when]
            conjuncts = []
            for piece in pieces:
                text = _strip_parens(piece)
                expression = strategy.environment.compile(text, where=f"rules[{index}] ({rule.id}) conjunct")
                plan = plan_conjunct(text, declared)
                conjuncts.append(Conjunct(expression, plan, variables_of(text, declared)))
            conjuncts.sort(key=lambda c: c.cost)
            self.rules.append(conjuncts)
        self.evaluations = 0

    def run(self, columns: Columns) -> np.ndarray:
        """An (events × rules) array: 1 where the rule matched, 0 where not, 2 where it errored."""
        n = len(columns)
        out = np.empty((n, len(self.rules)), dtype=np.int8)
        for j, conjuncts in enumerate(self.rules):
            out[:, j] = self._rule(conjuncts, columns, n)
        return out

    def _rule(self, conjuncts: list[Conjunct], columns: Columns, n: int) -> np.ndarray:
        state = np.full(n, TRUE, dtype=np.int8)  # TRUE so far; FALSE decides; ERROR unless a later FALSE
        for conjunct in conjuncts:
            alive = np.flatnonzero(state != FALSE)
            if len(alive) == 0:
                break
            values = self._conjunct(conjunct, columns, alive)
            current = state[alive]
            state[alive] = np.where(values == FALSE, FALSE, np.where(values == ERROR, ERROR, current))
        return state

    def _conjunct(self, conjunct: Conjunct, columns: Columns, rows: np.ndarray) -> np.ndarray:
        if conjunct.plan is None:
            return np.full(len(rows), self._evaluate(conjunct, {}), dtype=np.int8)
        first, inverse = factorize(conjunct.key(columns, rows))
        results = np.fromiter(
            (self._evaluate(conjunct, conjunct.activation(columns, int(rows[i]))) for i in first),
            dtype=np.int8,
            count=len(first),
        )
        return results[inverse]

    def _evaluate(self, conjunct: Conjunct, activation: dict[str, Any]) -> int:
        self.evaluations += 1
        value = conjunct.expression.evaluate(activation)
        if isinstance(value, EvalError):
            return ERROR
        return TRUE if value is True else FALSE
