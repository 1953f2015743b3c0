"""Ignore patterns for the pure-Python chunker: the native core's grammar, token for token.

The grammar is documented in :mod:`roost.chunker`; ``rust/src/pattern.rs`` implements the same
parser and produces the same regex text (a Hypothesis test compares both, and their matches).
A leading ``!`` negates a pattern (the matcher's concern: :func:`compile_pattern` sees the rest);
the last pattern that matches an entry decides, as in git.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from ._errors import PatternError
from ._model import DEFAULT_IGNORES

__all__ = ["Compiled", "IgnoreMatcher", "compile_pattern"]

_SLASH = ord("/")
_NEVER = "[^\\x00-\\U0010FFFF]"


@dataclass(frozen=True, slots=True)
class _Lit:
    char: str


@dataclass(frozen=True, slots=True)
class _Any:
    pass


@dataclass(frozen=True, slots=True)
class _Stars:
    count: int


@dataclass(frozen=True, slots=True)
class _Class:
    negated: bool
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class _Sep:
    pass


_Tok = Union[_Lit, _Any, _Stars, _Class, _Sep]  # noqa: UP007 - runtime alias on 3.10


class _ReasonError(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def _tokenize(pattern: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "\\":
            if i >= n:
                raise _ReasonError("trailing backslash")
            if pattern[i] == "/":
                raise _ReasonError("a '/' cannot be escaped")
            toks.append(_Lit(pattern[i]))
            i += 1
        elif c == "/":
            toks.append(_Sep())
        elif c == "?":
            toks.append(_Any())
        elif c == "*":
            count = 1
            while i < n and pattern[i] == "*":
                count += 1
                i += 1
            toks.append(_Stars(count))
        elif c == "[":
            tok, i = _parse_class(pattern, i)
            toks.append(tok)
        else:
            toks.append(_Lit(c))
    return toks


def _parse_class(p: str, i: int) -> tuple[_Class, int]:
    unclosed = "unclosed character class"
    n = len(p)
    negated = False
    if i < n and p[i] in "!^":
        negated = True
        i += 1
    ranges: list[tuple[int, int]] = []
    first = True
    while True:
        if i >= n:
            raise _ReasonError(unclosed)
        c = p[i]
        i += 1
        if c == "]" and not first:
            break
        if c == "\\":
            if i >= n:
                raise _ReasonError(unclosed)
            c = p[i]
            i += 1
        lo = c
        if i + 1 < n and p[i] == "-" and p[i + 1] != "]":
            i += 1
            h = p[i]
            i += 1
            if h == "\\":
                if i >= n:
                    raise _ReasonError(unclosed)
                h = p[i]
                i += 1
            if h < lo:
                raise _ReasonError("invalid character range")
            ranges.append((ord(lo), ord(h)))
        else:
            ranges.append((ord(lo), ord(lo)))
        first = False
    return _Class(negated, tuple(ranges)), i


@dataclass(frozen=True, slots=True)
class Compiled:
    """One parsed pattern: path or component pattern, directories only, and its regex body."""

    is_path: bool
    dir_only: bool
    body: str


def compile_pattern(pattern: str) -> Compiled:
    """Parse one pattern (raises :class:`PatternError`, a ``ValueError``)."""
    try:
        pattern.encode("utf-8")
    except UnicodeEncodeError:
        raise PatternError(
            pattern.encode("utf-8", "backslashreplace").decode("ascii"), "not valid UTF-8"
        ) from None
    try:
        toks = _tokenize(pattern)
    except _ReasonError as e:
        raise PatternError(pattern, e.reason) from None
    anchored = bool(toks) and isinstance(toks[0], _Sep)
    if anchored:
        toks.pop(0)
    dir_only = bool(toks) and isinstance(toks[-1], _Sep)
    if dir_only:
        toks.pop()
    if not toks:
        raise PatternError(pattern, "empty pattern")
    is_path = anchored or any(isinstance(t, _Sep) for t in toks)
    comps: list[list[_Tok]] = [[]]
    for t in toks:
        if isinstance(t, _Sep):
            comps.append([])
        else:
            comps[-1].append(t)
    if any(not c for c in comps):
        raise PatternError(pattern, "empty path component")
    body = _path_body(comps) if is_path else _atoms(toks)
    return Compiled(is_path, dir_only, body)


def _is_rec(comp: Sequence[_Tok]) -> bool:
    return len(comp) == 1 and comp[0] == _Stars(2)


def _path_body(comps: list[list[_Tok]]) -> str:
    merged: list[list[_Tok]] = []
    for c in comps:
        if _is_rec(c) and merged and _is_rec(merged[-1]):
            continue
        merged.append(c)
    n = len(merged)
    if n == 1 and _is_rec(merged[0]):
        return ".*"
    out: list[str] = []
    for i, comp in enumerate(merged):
        if _is_rec(comp):
            if i == 0:
                out.append("(?:.*/)?")
            elif i == n - 1:
                out.append("/.*")
            else:
                out.append("(?:/.*)?")
        else:
            if i > 0 and not (i == 1 and _is_rec(merged[0])):
                out.append("/")
            out.append(_atoms(comp))
    return "".join(out)


def _esc(c: str) -> str:
    if (c.isascii() and c.isalnum()) or c == "_":
        return c
    return f"\\U{ord(c):08X}"


def _atoms(toks: Sequence[_Tok]) -> str:
    out: list[str] = []
    for t in toks:
        if isinstance(t, _Lit):
            out.append(_esc(t.char))
        elif isinstance(t, _Any):
            out.append("[^/]")
        elif isinstance(t, _Stars):
            out.append("[^/]*")
        elif isinstance(t, _Class):
            out.append(_class(t))
        else:
            out.append("/")
    return "".join(out)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _class(t: _Class) -> str:
    items = list(t.ranges)
    if t.negated:
        items.append((_SLASH, _SLASH))
    items = _merge(items)
    if not t.negated:
        split: list[tuple[int, int]] = []
        for a, b in items:
            if a <= _SLASH <= b:
                if a < _SLASH:
                    split.append((a, _SLASH - 1))
                if b > _SLASH:
                    split.append((_SLASH + 1, b))
            else:
                split.append((a, b))
        items = split
    if not items:
        return _NEVER
    parts = ["[", "^" if t.negated else ""]
    for a, b in items:
        parts.append(f"\\U{a:08X}")
        if b != a:
            parts.append(f"-\\U{b:08X}")
    parts.append("]")
    return "".join(parts)


def _build(bodies: list[str]) -> re.Pattern[str] | None:
    if not bodies:
        return None
    return re.compile("(?s)(?:" + "|".join(bodies) + ")")


class IgnoreMatcher:
    """The compiled ignore set: ``is_ignored(name, rel, is_dir)``, as in the native core.

    The patterns are tried as one regex per kind first (an entry that none matches, the common
    case, costs four regex calls whatever the number of patterns); only a hit walks the patterns
    from the last one, which decides. Every pattern that matched an entry is remembered, for
    :meth:`unmatched`.
    """

    __slots__ = ("_defaults", "_hit", "_name_any", "_name_dir", "_path_any", "_path_dir", "_rules", "_texts")

    def __init__(self, patterns: Sequence[str], *, defaults: bool = True):
        groups: list[list[str]] = [[], [], [], []]
        texts = [*(DEFAULT_IGNORES if defaults else ()), *patterns]
        rules: list[tuple[bool, bool, bool, re.Pattern[str]]] = []
        for p in texts:
            negated = p.startswith("!")
            try:
                c = compile_pattern(p[1:] if negated else p)
            except PatternError as e:
                raise PatternError(p, e.reason) from None
            groups[int(c.is_path) * 2 + int(c.dir_only)].append(c.body)
            rules.append((c.is_path, c.dir_only, negated, re.compile("(?s)(?:" + c.body + ")")))
        self._defaults = len(DEFAULT_IGNORES) if defaults else 0
        self._texts = texts
        self._rules = rules
        self._hit = [False] * len(rules)
        self._name_any = _build(groups[0])
        self._name_dir = _build(groups[1])
        self._path_any = _build(groups[2])
        self._path_dir = _build(groups[3])

    def _any(self, name: str, rel: str, is_dir: bool) -> bool:
        if self._name_any is not None and self._name_any.fullmatch(name):
            return True
        if self._path_any is not None and self._path_any.fullmatch(rel):
            return True
        if is_dir:
            if self._name_dir is not None and self._name_dir.fullmatch(name):
                return True
            if self._path_dir is not None and self._path_dir.fullmatch(rel):
                return True
        return False

    def is_ignored(self, name: str, rel: str, is_dir: bool) -> bool:
        if not self._any(name, rel, is_dir):
            return False
        decision: bool | None = None
        for i in range(len(self._rules) - 1, -1, -1):
            is_path, dir_only, negated, rx = self._rules[i]
            if dir_only and not is_dir:
                continue
            if rx.fullmatch(rel if is_path else name):
                self._hit[i] = True
                if decision is None:
                    decision = not negated
        return bool(decision)

    def unmatched(self) -> list[str]:
        """The given patterns (not the defaults) that matched no entry so far, in order."""
        return [t for i, t in enumerate(self._texts) if i >= self._defaults and not self._hit[i]]
