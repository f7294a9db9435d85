"""CEL runtimes compared on the starter strategy's rule conditions: µs per evaluation of all its rules.

Activations are real: the event mix of bench/decision.py goes through riskguard's feature engine (after a history
of warm-up events) and list index, and each activation binds what the rule stage would bind. Measured:

* cel-expr-python (Google's C++ CEL, what riskguard uses), through ``riskguard.rules.cel.Environment`` with the
  strategy's declarations: one ``Expression.evaluate`` per rule; the same with one prebuilt ``cel.Activation``
  shared by the rules; the combined ``ExpressionSet`` as riskguard runs it (one call, per-rule fallback when any
  member errors, e.g. ``event.phone`` absent); and the combined call on "complete" events, where every optional
  identifier is present, so it never falls back.
* common-expression-language (Rust ``cel`` crate; import name ``cel``), if installed: the same modes with nested
  activations (``{"event": {...}, "features": {...}, "lists": {...}}``). It does not type-check.

Run:  .venv/bin/python bench/cel_runtime.py [--events N] [--repeat R] [--quick]
For the Rust runtime:  .venv/bin/pip install common-expression-language   (measurement only; not a dependency)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for bench/decision.py: the shared event mix
from decision import make_events, parsed
from riskguard.config import STARTER_STRATEGY
from riskguard.decision.stages import ListIndex
from riskguard.errors import StrategyError
from riskguard.features.memory import MemoryFeatureEngine
from riskguard.rules.activation import EVENT_DECLARATIONS, event_variables
from riskguard.rules.cel import Environment, EvalError
from riskguard.rules.strategy import declarations, load_strategy

Activation = dict[str, Any]


def build_activations(doc: Any, count: int, history: int) -> tuple[list[Activation], list[Activation]]:
    """Rule-stage bindings for ``count`` events as they arrive, and for the same events made complete."""
    engine = MemoryFeatureEngine()
    engine.declare(doc.features, Environment(EVENT_DECLARATIONS))
    index = ListIndex()
    index.replace(
        {
            "blocked_devices": {f"dev-{i:04d}": None for i in range(0, 3000, 97)},
            "blocked_accounts": {f"acc-{i:05d}": None for i in range(0, 5000, 113)},
            "watch_payees": {f"acc-{i:05d}": None for i in range(7, 5000, 61)},
            "blocked_ips": {"10.3.17.1": None},
        }
    )
    names = tuple(spec.name for spec in doc.lists)
    now = datetime.now(UTC)

    def bind(event: Any, event_vars: Activation) -> Activation:
        bindings = dict(event_vars)  # as Context.activation in decision/stages.py
        for name, value in engine.compute(engine.prepare(event, event_vars), doc.features).items():
            bindings["features." + name] = value if isinstance(value, int) else float(value)
        for name, members in index.members(names, event, now).items():
            bindings["lists." + name] = members
        return bindings

    real: list[Activation] = []
    complete: list[Activation] = []
    for i, event in enumerate(parsed(make_events(history + count, seed=3, prefix="c"))):
        event_vars = event_variables(event)
        if i >= history:
            real.append(bind(event, event_vars))
            full = msgspec.structs.replace(
                event,
                phone=event.phone or "+8613000000000",
                card_id=event.card_id or "card-none",
                device_id=event.device_id or "dev-none",
                ip=event.ip or "10.255.255.1",
            )
            complete.append(bind(full, event_variables(full)))
        engine.observe(engine.prepare(event, event_vars))
    return real, complete


def timed(label: str, activations: list[Activation], repeat: int, run: Callable[[Activation], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for activation in activations:
            run(activation)
        best = min(best, (time.perf_counter() - t0) / len(activations) * 1e6)
    print(f"  {label:66} {best:9.1f} µs", flush=True)
    return best


def google(
    doc: Any, rules: list[Any], real: list[Activation], complete: list[Activation], repeat: int
) -> list[list[bool]]:
    env = Environment(declarations(doc))
    ruleset = env.compile_set([(rule.when, rule.id) for rule in rules])
    members = ruleset.members
    raw_env = env._env  # the runtime's own environment, for the shared-activation variant only
    print(f"cel-expr-python ({len(members)} rules, type-checked)")
    try:
        env.compile("features.nope > 1", where="demo")
        print("  type check: features.nope > 1 was accepted (unexpected)")
    except StrategyError as exc:
        print(f"  type check: features.nope > 1 is refused at compile time: {exc}")

    def shared(activation: Activation) -> list[Any]:
        prebuilt = raw_env.Activation(data=activation)
        return [m._compiled.eval(activation=prebuilt).plain_value() for m in members]

    per_rule = timed("per rule: Expression.evaluate x N", real, repeat, lambda a: [m.evaluate(a) for m in members])
    timed("per rule, one prebuilt cel.Activation shared by the rules", real, repeat, shared)
    before = ruleset.fallbacks
    combined = timed("combined: ExpressionSet.evaluate, riskguard's path", real, repeat, ruleset.evaluate)
    share = (ruleset.fallbacks - before) / (repeat * len(real))
    before = ruleset.fallbacks
    timed("combined, complete events (every optional identifier bound)", complete, repeat, ruleset.evaluate)
    complete_share = (ruleset.fallbacks - before) / (repeat * len(complete))
    errors = Counter(
        rule.id for a in real for rule, m in zip(rules, members, strict=True) if isinstance(m.evaluate(a), EvalError)
    )
    print(f"  ExpressionSet fell back to all-per-rule on {share:.0%} of events ({complete_share:.0%} of complete ones)")
    print(f"  rules erroring (unbound variable) on these events: {dict(errors.most_common(6))}")
    print(f"  combined is {per_rule / combined:.1f}x faster than per rule on these events")
    return [[m.evaluate(a) is True for m in members] for a in real]


def nested(activation: Activation) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"event": {}, "features": {}, "lists": {}}
    for name, value in activation.items():
        group, _, field = name.partition(".")
        out[group][field] = value
    return out


def rust(
    rules: list[Any], real: list[Activation], complete: list[Activation], repeat: int, expected: list[list[bool]]
) -> None:
    try:
        import cel  # common-expression-language
        from cel.stdlib import add_stdlib_to_context
    except ImportError:
        print("common-expression-language: not installed; to compare, run")
        print("  .venv/bin/pip install common-expression-language   (import name `cel`; not a riskguard dependency)")
        return
    programs = [cel.compile(rule.when) for rule in rules]
    combined = cel.compile("[" + ", ".join(f"({rule.when})" for rule in rules) + "]")
    print(f"common-expression-language ({len(programs)} rules, no type checker)")
    demo = cel.compile("features.nope > 1")
    try:
        outcome = f"evaluates to {demo.execute({'features': {}})!r}"
    except Exception as exc:
        outcome = f"fails only at evaluation: {type(exc).__name__}: {exc}"
    print(f"  type check: none; features.nope > 1 compiles ({demo!r}) and {outcome}")

    def context(activation: Activation) -> Any:
        ctx = cel.Context()
        add_stdlib_to_context(ctx, ["strings"])  # lowerAscii (pure Python in this package)
        ctx.update(nested(activation))
        return ctx

    def each(ctx: Any) -> list[Any]:
        results: list[Any] = []
        for program in programs:
            try:
                results.append(program.execute(ctx))
            except Exception as exc:  # an evaluation error: the rule did not match
                results.append(exc)
        return results

    def together(activation: Activation) -> list[Any]:
        ctx = context(activation)
        try:
            return list(combined.execute(ctx))
        except Exception:
            return each(ctx)

    timed("per rule: one Context per event, Program.execute x N", real, repeat, lambda a: each(context(a)))
    timed("combined list (falls back to per rule on an error)", real, repeat, together)
    timed("combined, complete events", complete, repeat, together)
    differ: Counter[str] = Counter()
    reasons: dict[str, str] = {}
    for activation, want in zip(real, expected, strict=True):
        for rule, got, ok in zip(rules, each(context(activation)), want, strict=True):
            if (got is True) != ok:
                differ[rule.id] += 1
                reasons.setdefault(rule.id, f"{type(got).__name__}: {str(got).split('. ')[0]}")
    if differ:
        print(f"  outcomes differing from cel-expr-python: {dict(differ)}")
        for rule_id, reason in reasons.items():
            print(f"    {rule_id}: {reason}")
    else:
        print("  outcomes agree with cel-expr-python on every rule and event")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="activations to evaluate (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="passes over them; the best is reported (default 3)")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of a few seconds")
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeat = min(args.events, 200), 1
    doc = load_strategy(STARTER_STRATEGY.read_text(encoding="utf-8"))
    rules = [rule for rule in doc.rules if rule.mode != "off"]
    wrapper = sys.modules[Environment.__module__].__file__
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; riskguard's CEL wrapper {wrapper}")
    real, complete = build_activations(doc, args.events, history=max(500, 2 * args.events))
    size, load = sum(map(len, real)) // len(real), os.getloadavg()[0]
    print(f"{len(real)} activations of ~{size} variables; best of {args.repeat} passes; 1-min load {load:.2f}")
    expected = google(doc, rules, real, complete, args.repeat)
    rust(rules, real, complete, args.repeat, expected)


if __name__ == "__main__":
    main()
