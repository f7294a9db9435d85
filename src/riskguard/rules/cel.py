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
from riskguard.rules.static import analyse

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

    Per *plan key* — which variables are bound, and the values of guard variables (rules/static.py) —
    the set keeps a plan, made once:

    - members whose guard fails are false, and members made only of guards are true, without the
      runtime (``event.type == "transfer"`` on a login);
    - a strict member that reads an unbound variable is the error it was when the plan was made;
    - the rest go into one combined runtime call, except members that have errored for this key before,
      which are called one by one (a CEL list fails as a whole when one element errors); if the combined
      call errors anyway, every member is evaluated on its own and the plan is corrected;
    - the runtime activation carries only the variables the evaluated members can reference.

    Results are identical to evaluating each member separately; only the number of runtime calls and
    conversions differs.
    """

    MAX_PLANS = 2048

    def __init__(self, members: list[Expression], environment: Environment) -> None:
        self.members = members
        self._environment = environment
        declared = environment.variables
        self._facts = [analyse(member.source, declared) for member in members]
        self._guard_vars = tuple(sorted({name for facts in self._facts for name, _ in facts.guards}))
        self._plans: dict[tuple[frozenset[str], tuple[Any, ...]], _Plan] = {}
        self.fallbacks = 0
        self.compile_seconds = 0.0  # spent making plans; stage budgets leave it out (a one-off per key)

    def evaluate(self, activation: Mapping[str, Any]) -> list[bool | EvalError]:
        if not self.members:
            return []
        key = (frozenset(activation), tuple(activation.get(name) for name in self._guard_vars))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._make_plan(key, activation, set())
        results = list(plan.static)
        if plan.keys is None:
            return results
        built = self._environment._env.Activation({name: activation[name] for name in plan.keys})
        if plan.compiled is not None:
            value = plan.compiled.eval(built)
            if value.type() == T.ERROR:
                return self._relearn(key, activation, plan)
            for index, item in zip(plan.combined, value.plain_value(), strict=True):
                results[index] = item is True
        for index in plan.solo:
            outcome = self.members[index].evaluate(built)
            results[index] = outcome if isinstance(outcome, EvalError) else outcome is True
        return results

    def _make_plan(self, key: Any, activation: Mapping[str, Any], solo: set[int]) -> _Plan:
        started = time.perf_counter()
        bound = key[0]
        static: list[bool | EvalError] = [False] * len(self.members)
        dynamic: list[int] = []
        for index, facts in enumerate(self._facts):
            decided = self._decided_by_guards(facts, activation)
            if decided is not None:
                static[index] = decided
            elif facts.strict and not facts.variables <= bound:
                outcome = self.members[index].evaluate(activation)  # the error, once, for its message
                if isinstance(outcome, EvalError):
                    static[index] = outcome
                else:
                    dynamic.append(index)
            else:
                dynamic.append(index)
        combined = [i for i in dynamic if i not in solo]
        keys = None
        if dynamic:
            wanted = frozenset().union(*(self._facts[i].variables for i in dynamic))
            keys = tuple(sorted(wanted & bound))
        compiled = None
        if combined:
            source = "[" + ", ".join(f"({self.members[i].source})" for i in combined) + "]"
            with self._environment._lock:
                compiled = self._environment._env.compile(source)
        plan = _Plan(static, combined, sorted(i for i in dynamic if i in solo), compiled, keys)
        if key in self._plans or len(self._plans) < self.MAX_PLANS:
            self._plans[key] = plan
        self.compile_seconds += time.perf_counter() - started
        return plan

    @staticmethod
    def _decided_by_guards(facts: Any, activation: Mapping[str, Any]) -> bool | None:
        """False if a guard fails, True if the member is only guards and all hold, else None."""
        if not facts.guards:
            return None
        for name, allowed in facts.guards:
            value = activation.get(name)
            if value is None:
                return None  # unbound: the member's own evaluation decides (it may be an error)
            if value not in allowed:
                return False
        return True if facts.guard_only else None

    def _relearn(self, key: Any, activation: Mapping[str, Any], plan: _Plan) -> list[bool | EvalError]:
        self.fallbacks += 1
        results = list(plan.static)
        errored = set(plan.solo)
        for index in plan.combined + plan.solo:
            outcome = self.members[index].evaluate(activation)
            results[index] = outcome if isinstance(outcome, EvalError) else outcome is True
            if isinstance(outcome, EvalError):
                errored.add(index)
        self._make_plan(key, activation, errored)
        return results


class _Plan:
    __slots__ = ("combined", "compiled", "keys", "solo", "static")

    def __init__(
        self,
        static: list[bool | EvalError],
        combined: list[int],
        solo: list[int],
        compiled: Any,
        keys: tuple[str, ...] | None,
    ) -> None:
        self.static = static  # outcome of each member known without the runtime (others: placeholders)
        self.combined = combined
        self.solo = solo
        self.compiled = compiled
        self.keys = keys  # variables the runtime activation needs; None when nothing is evaluated


def _clean(message: str) -> str:
    """Shortens the runtime's messages: drops status prefixes and the "(in container '')" noise."""
    text = message.replace("INVALID_ARGUMENT: ", "").replace(" (in container '')", "")
    text = text.replace(" [INVALID_ARGUMENT]", "").replace("ERROR: <input>:", "at ")
    return " ".join(text.split())
