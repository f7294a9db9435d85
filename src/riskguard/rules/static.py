"""What can be known about a CEL condition from its text, before it is evaluated.

Used by ``cel.ExpressionSet`` to evaluate less without changing any result:

- **Guards.** A top-level conjunct ``event.type == "transfer"`` (or ``event.type in ["a", "b"]``, or a
  disjunction of such tests on one variable) makes the whole condition false for any other value,
  whatever the other conjuncts do (CEL's ``false && error`` is ``false``). A condition made only of
  guards is decided by them.
- **Variables.** Which declared variables the text can reference, so an activation carries only those.
- **Strictness.** A condition with no short-circuiting construct (``&&``, ``||``, ``?:``, ``has``, the
  comprehension macros) is an error whenever a variable it references is unbound.

Written by hand because the CEL runtime's Python binding exposes no syntax tree. The analysis is
conservative: anything it does not recognise is simply evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

_IDENT_CHAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*")
_LITERAL = r"""(?:"([^"\\]*)"|'([^'\\]*)')"""
_EQ_LEFT = re.compile(rf"^([A-Za-z_][\w.]*)\s*==\s*{_LITERAL}$")
_EQ_RIGHT = re.compile(rf"^{_LITERAL}\s*==\s*([A-Za-z_][\w.]*)$")
_IN_LIST = re.compile(r"^([A-Za-z_][\w.]*)\s+in\s+\[(.*)\]$", re.S)
_LIST_ITEM = re.compile(rf"^\s*{_LITERAL}\s*$")
_NON_STRICT = ("&&", "||", "?", "has(", ".exists(", ".all(", ".exists_one(", ".map(", ".filter(")


@dataclass(frozen=True)
class Facts:
    guards: tuple[tuple[str, frozenset[str]], ...]  # every one must hold, or the condition is false
    guard_only: bool  # the condition is exactly its guards
    variables: frozenset[str]  # declared variables the text can reference
    strict: bool  # an unbound referenced variable makes the condition an error


def _mask_strings(source: str) -> str:
    """The source with every string literal's content replaced by spaces (positions kept)."""
    out = list(source)
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch in "\"'":
            raw = i > 0 and source[i - 1] in "rR"
            quote = source[i : i + 3] if source[i : i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while j < n and source[j : j + len(quote)] != quote:
                j += 2 if (source[j] == "\\" and not raw) else 1
            for k in range(i + len(quote), min(j, n)):
                out[k] = " "
            i = j + len(quote)
        else:
            i += 1
    return "".join(out)


def _split_top(masked: str, source: str, operator: str) -> list[str] | None:
    """Splits at top-level ``operator``; None when a top-level ternary makes splitting unsafe."""
    parts: list[str] = []
    depth = 0
    start = 0
    i = 0
    while i < len(masked):
        ch = masked[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch == "?" and masked[i - 1 : i] not in (".", "["):
            return None
        elif depth == 0 and masked.startswith(operator, i):
            parts.append(source[start:i])
            start = i + len(operator)
            i += len(operator)
            continue
        i += 1
    parts.append(source[start:])
    return parts


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")"):
        masked = _mask_strings(text)
        depth = 0
        for i, ch in enumerate(masked):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text  # "(a) && (b)": the outer pair does not enclose everything
        text = text[1:-1].strip()
    return text


def _literal(match: re.Match[str], first: int) -> str:
    value = match.group(first)
    return value if value is not None else match.group(first + 1)


def _guard(conjunct: str, declared: Collection[str]) -> tuple[str, frozenset[str]] | None:
    """``VAR == "x"``, ``VAR in ["x", "y"]`` or a disjunction of those on one VAR."""
    text = _strip_parens(conjunct)
    parts = _split_top(_mask_strings(text), text, "||") or [text]
    variable: str | None = None
    values: set[str] = set()
    for part in parts:
        part = _strip_parens(part)
        if (m := _EQ_LEFT.match(part)) is not None:
            name, found = m.group(1), {_literal(m, 2)}
        elif (m := _EQ_RIGHT.match(part)) is not None:
            name, found = m.group(3), {_literal(m, 1)}
        elif (m := _IN_LIST.match(part)) is not None:
            name, found = m.group(1), set()
            for item in m.group(2).split(","):
                if (lm := _LIST_ITEM.match(item)) is None:
                    return None
                found.add(_literal(lm, 1))
        else:
            return None
        if name not in declared or (variable is not None and name != variable):
            return None
        variable = name
        values |= found
    return None if variable is None else (variable, frozenset(values))


def variables_of(source: str, declared: Collection[str]) -> frozenset[str]:
    """Declared variables the source can reference: the longest declared prefix of each name chain."""
    found: set[str] = set()
    for match in _IDENT_CHAIN.finditer(_mask_strings(source)):
        parts = re.sub(r"\s+", "", match.group(0)).split(".")
        for end in range(len(parts), 0, -1):
            name = ".".join(parts[:end])
            if name in declared:
                found.add(name)
                break
    return frozenset(found)


def analyse(source: str, declared: Collection[str]) -> Facts:
    masked = _mask_strings(source)
    conjuncts = _split_top(masked, source, "&&")
    has_or = _split_top(masked, source, "||")
    guards: list[tuple[str, frozenset[str]]] = []
    guard_only = False
    if conjuncts is not None and has_or is not None and len(has_or) == 1:
        recognised = [_guard(c, declared) for c in conjuncts]
        guards = [g for g in recognised if g is not None]
        guard_only = len(guards) == len(conjuncts)
    elif conjuncts is not None:  # a top-level || : the whole condition may still be one guard
        whole = _guard(source, declared)
        if whole is not None:
            guards, guard_only = [whole], True
    strict = not any(token in masked for token in _NON_STRICT)
    return Facts(tuple(guards), guard_only, variables_of(source, declared), strict)
