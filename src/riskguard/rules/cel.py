"""The one interface to the CEL runtime: declare variables, compile with type-checking, evaluate.

Runtime chosen by measurement (bench/cel_runtime.py): ``cel-expr-python`` wraps Google's C++ CEL with
its type-checker, so an unknown name or a type error rejects a strategy at load time, and evaluates a
50-rule set in about 70 µs; ``common-expression-language`` (Rust) has no checker (``features.nope``
compiles) and took about 130 µs for the same set. Nothing outside this module imports the runtime.

Variables are declared with qualified names (``event.amount``, ``features.device_accounts_7d``): the
checker then rejects ``features.typo``. A variable that an event does not carry is left unbound; a
condition that needs it evaluates to a CEL error, which the rule engine treats as "did not match" and
reports in ``explain``. The strings (``lowerAscii``, ``split``, ...) and math extensions are on.
CEL's logical operators absorb errors (``false && error`` is ``false``), so a
guard such as ``event.type == "transfer" && event.amount > 5000.0`` is safe on a login.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_math, ext_strings

from riskguard.errors import StrategyError

T = cel.Type

#: Our names for CEL types, used in declarations across the code base.
TYPES: dict[str, Any] = {
    "bool": T.BOOL,
    "int": T.INT,
    "double": T.DOUBLE,
    "string": T.STRING,
    "timestamp": T.TIMESTAMP,
    "duration": T.DURATION,
    "map": T.Map(T.STRING, T.DYN),
    "set": T.Map(T.STRING, T.BOOL),
    "list": T.List(T.DYN),
    "dyn": T.DYN,
}


class Environment:
    """Declared variables → compiled, type-checked expressions."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        unknown = {name: kind for name, kind in variables.items() if kind not in TYPES}
        if unknown:
            raise ValueError(f"unknown CEL type names: {unknown}")
        self.variables = dict(variables)
        self._env = cel.NewEnv(
            variables={name: TYPES[kind] for name, kind in variables.items()},
            extensions=[ext_strings.ExtStrings(), ext_math.ExtMath()],
        )
        self._lock = threading.Lock()

    def compile(self, source: str, *, where: str, expect: str | None = "bool") -> Expression:
        """Parses and type-checks ``source``; ``where`` names its place in the document for messages."""
        if not isinstance(source, str) or not source.strip():
            raise StrategyError(f"{where}: empty expression")
        try:
            with self._lock:
                compiled = self._env.compile(source)
        except RuntimeError as exc:
            raise StrategyError(f"{where}: {_clean(str(exc))}") from None
        if expect is not None:
            result_type = compiled.return_type()
            if result_type != TYPES[expect] and result_type != T.DYN:
                raise StrategyError(f"{where}: must be a {expect} expression, but is {result_type.name()}")
        return Expression(source, compiled)

    def compile_set(self, sources: Sequence[tuple[str, str]]) -> ExpressionSet:
        """Compiles boolean expressions for evaluation together (one runtime call per activation)."""
        members = [self.compile(source, where=where) for source, where in sources]
        return ExpressionSet(members, self)


class Expression:
    __slots__ = ("_compiled", "source")

    def __init__(self, source: str, compiled: Any) -> None:
        self.source = source
        self._compiled = compiled

    def evaluate(self, activation: Mapping[str, Any] | Any) -> Any:
        """The value, or an ``EvalError`` when the expression failed (missing field, no such key, ...).

        ``activation`` is a mapping of variable bindings, or a runtime activation already built from
        one (``ExpressionSet`` builds it once for all its members).
        """
        if isinstance(activation, Mapping):
            value = self._compiled.eval(data=activation)
        else:
            value = self._compiled.eval(activation)
        if value.type() == T.ERROR:
            return EvalError(str(value.value()))
        return value.plain_value()


class EvalError:
    """A CEL evaluation error, carried as a value: the rule did not match, and here is why."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = _clean(message)

    def __repr__(self) -> str:
        return f"EvalError({self.message!r})"

    def __bool__(self) -> bool:
        return False


class ExpressionSet:
    """Many boolean expressions evaluated together, with each member's own outcome kept exact.

    A CEL list fails as a whole when one member errors (a rule that reads a field the event lacks), so
    the set learns, per *shape* of activation (which variables are bound), which members error: those
    are evaluated one by one, the rest in one combined call. When the combined call errors anyway, every
    member is evaluated on its own for that activation and the plan is corrected. Results are identical
    to evaluating each member separately; only the number of runtime calls differs.
    """

    MAX_PLANS = 1024

    def __init__(self, members: list[Expression], environment: Environment) -> None:
        self.members = members
        self._environment = environment
        self._plans: dict[frozenset[str], _Plan] = {}
        self.fallbacks = 0
        self.compile_seconds = 0.0  # spent learning plans; stage budgets leave it out (a one-off per shape)
        self._everything = self._plan(list(range(len(members))), [])

    def _plan(self, combined: list[int], solo: list[int]) -> _Plan:
        compiled = None
        if combined:
            started = time.perf_counter()
            source = "[" + ", ".join(f"({self.members[i].source})" for i in combined) + "]"
            with self._environment._lock:
                compiled = self._environment._env.compile(source)
            self.compile_seconds += time.perf_counter() - started
        return _Plan(combined, solo, compiled)

    def evaluate(self, activation: Mapping[str, Any]) -> list[bool | EvalError]:
        if not self.members:
            return []
        shape = frozenset(activation)
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._everything
            if len(self._plans) < self.MAX_PLANS:
                self._plans[shape] = plan
        results: list[bool | EvalError] = [False] * len(self.members)
        built = self._environment._env.Activation(activation)  # converted once, used by every call below
        if plan.compiled is not None:
            value = plan.compiled.eval(built)
            if value.type() == T.ERROR:
                return self._relearn(shape, built)
            for index, item in zip(plan.combined, value.plain_value(), strict=True):
                results[index] = item is True
        for index in plan.solo:
            outcome = self.members[index].evaluate(built)
            results[index] = outcome if isinstance(outcome, EvalError) else outcome is True
        return results

    def _relearn(self, shape: frozenset[str], activation: Any) -> list[bool | EvalError]:
        self.fallbacks += 1
        results: list[bool | EvalError] = []
        for member in self.members:
            outcome = member.evaluate(activation)
            results.append(outcome if isinstance(outcome, EvalError) else outcome is True)
        previous = self._plans.get(shape, self._everything)
        solo = sorted(set(previous.solo) | {i for i, r in enumerate(results) if isinstance(r, EvalError)})
        combined = [i for i in range(len(self.members)) if i not in set(solo)]
        if shape in self._plans or len(self._plans) < self.MAX_PLANS:
            self._plans[shape] = self._plan(combined, solo)
        return results


class _Plan:
    __slots__ = ("combined", "compiled", "solo")

    def __init__(self, combined: list[int], solo: list[int], compiled: Any) -> None:
        self.combined = combined
        self.solo = solo
        self.compiled = compiled


def _clean(message: str) -> str:
    """Shortens the runtime's messages: drops status prefixes and the "(in container '')" noise."""
    text = message.replace("INVALID_ARGUMENT: ", "").replace(" (in container '')", "")
    text = text.replace(" [INVALID_ARGUMENT]", "").replace("ERROR: <input>:", "at ")
    return " ".join(text.split())
