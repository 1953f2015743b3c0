"""orjson in ``roost.testing._jsonutil``: the same bytes and values as the standard library path.

``canonical_json`` takes orjson only where its answer is provably the standard path's; these
properties run both paths (orjson, and the module with orjson taken away) on the same input.
``loads`` stays on the standard parser: its hooks are what tell a float literal (and an integer
JavaScript rounds) apart. ``loads_unchecked`` is orjson's parse, trusted only once
``only_safe_integers`` finds no number it could have read differently."""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from roost.testing import _jsonutil
from roost.testing._jsonutil import (
    JsonError,
    _canonical,
    canonical_json,
    gc_paused,
    loads,
    loads_unchecked,
    only_safe_integers,
)

ROOT = Path(__file__).resolve().parents[2]

# strings with what JSON and UTF-16 make hard: control characters, quotes, U+2028/U+2029,
# characters around U+E000 (code point vs UTF-16 order), non-BMP ones and lone surrogates
_CHARS = st.one_of(
    st.characters(),
    st.sampled_from(["\x00", "\x1f", "\x7f", '"', "\\", "/", "\u2028", "\u2029", "\ud800", "\udfff"]),
    st.sampled_from(["\ue000", "\uffff", "\U00010000", "\U0001f600", "\ufeff"]),
)
_TEXT = st.text(_CHARS, max_size=8)
_KEYS = st.one_of(_TEXT, st.sampled_from(["a", "b", "path", "size", "hash", "\U0001f600", "\uff61"]))
_INTS = st.one_of(
    st.integers(-(2**53), 2**53),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
)
_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e21, 1e-7, 5e-324, 2.0**53 + 2, 1.5, 0.1]),
)
# what loads makes from text without a float literal: floats only for integers past 2**53
_BIG_INT_FLOATS = st.one_of(
    st.floats(min_value=2.0**53 + 2, max_value=1.7e308),
    st.floats(max_value=-(2.0**53) - 2, min_value=-1.7e308),
    st.sampled_from([math.inf, -math.inf, 2.0**53 + 2, 9.999999999999998e15, 1e16]),
)


def _values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(_KEYS, inner, max_size=4),
        ),
        max_leaves=12,
    )


_PARSED = _values(st.one_of(st.none(), st.booleans(), _INTS, _TEXT))
_PARSED_BIG = _values(st.one_of(st.none(), st.booleans(), _INTS, _TEXT, _BIG_INT_FLOATS))
_ANY = _values(st.one_of(st.none(), st.booleans(), _INTS, _TEXT, _FLOATS))


@pytest.fixture(autouse=True)
def _orjson_present() -> None:
    assert _jsonutil._ORJSON is orjson, "the server extra brings orjson; these tests compare against it"


def _without_orjson(call: Callable[[], Any]) -> Any:
    saved = _jsonutil._ORJSON
    _jsonutil._ORJSON = None
    try:
        return call()
    finally:
        _jsonutil._ORJSON = saved


def _outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """What a call gives, comparable: ``repr`` keeps types (1 against 1.0) and key order."""
    try:
        return ("value", repr(call()))
    except JsonError:
        return ("JsonError", None)
    except (TypeError, ValueError, RecursionError, UnicodeError) as exc:
        return (type(exc).__name__, None)


def _same_canonical(value: Any, floats: bool) -> None:
    fast = _outcome(lambda: canonical_json(value, floats=floats))
    slow = _outcome(lambda: _without_orjson(lambda: canonical_json(value, floats=floats)))
    assert fast == slow


# -- canonical_json ------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(_PARSED)
@example({"b": 1, "a": [True, None, "x\u2028\x01"]})
@example({"\U0001f600": 1, "\uff61": 2})  # code point order and UTF-16 order disagree
@example({"a": 2**64})
@example({"lone": "\ud800"})
def test_canonical_json_of_a_value_without_floats_is_the_standard_paths(value: Any) -> None:
    _same_canonical(value, floats=False)


@settings(max_examples=200, deadline=None)
@given(st.one_of(_ANY, _PARSED_BIG))
@example({"size": 2.0**53 + 2, "far": 1e300, "inf": math.inf})
def test_canonical_json_with_any_float_is_the_standard_paths(value: Any) -> None:
    _same_canonical(value, floats=True)


def _exact(value: Any) -> str:
    out: list[str] = []
    _canonical(value, out)
    return "".join(out)


# what a client may send: any JSON text, integers of any length included
_SENT = _values(
    st.one_of(st.none(), st.booleans(), _INTS, _TEXT, st.floats(allow_nan=False, allow_infinity=False))
)


@settings(max_examples=300, deadline=None)
@given(_SENT)
@example({"size": 12345678901234567890, "n": 9007199254740993})
@example([1e21, 2.0**53, 0.5])
def test_canonical_json_of_a_parsed_text_is_the_exact_encoders(sent: Any) -> None:
    """As the publish route uses them: ``floats`` says whether ``loads`` made any float."""
    text = json.dumps(sent, ensure_ascii=False)
    floats: list[str] = []
    value = loads(text, floats=floats)
    assert canonical_json(value, floats=bool(floats)) == _exact(value)


@settings(max_examples=300, deadline=None)
@given(_SENT)
@example({"size": 12, "chunks": [{"hash": "a", "size": 12}]})
@example({"big": 2**60})
def test_an_orjson_value_is_trusted_only_where_it_is_the_exact_parsers(sent: Any) -> None:
    raw = json.dumps(sent, ensure_ascii=False).encode("utf-8", "surrogatepass")
    fast = loads_unchecked(raw)
    if fast is None or not only_safe_integers(fast):
        return
    floats: list[str] = []
    exact = loads(raw, floats=floats)
    assert floats == []
    assert repr(fast) == repr(exact)


def test_canonical_json_takes_orjson_for_a_plain_manifest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = _jsonutil._orjson_canonical

    def spy(module: Any, value: Any) -> str | None:
        answer = real(module, value)
        calls.append(answer)
        return answer

    monkeypatch.setattr(_jsonutil, "_orjson_canonical", spy)
    value = {"files": [{"path": "a/b.bin", "size": 3, "chunks": [{"hash": "0" * 64, "size": 3}]}]}
    assert canonical_json(value, floats=False) == json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert len(calls) == 1
    assert calls[0] is not None


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        {"k": (1, 2)},
        {1: "int key"},
        {"deep": _nested(300)},
        type("S", (str,), {})("a str subclass"),
        {"b": 1, "a": type("D", (dict,), {})(z=1, y=2)},
    ],
)
def test_canonical_json_of_other_shapes_is_the_standard_paths(value: Any) -> None:
    _same_canonical(value, floats=False)
    _same_canonical(value, floats=True)


# -- without orjson ------------------------------------------------------------------------


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_emulator_json_works_without_orjson() -> None:
    text = '{"b": [1, 2.50, 12345678901234567890], "a": "\\ud800"}'
    out = _python(
        "import sys; sys.modules['orjson'] = None\n"
        "from roost.testing import _jsonutil as j\n"
        "assert j._ORJSON is None\n"
        "floats = []\n"
        f"v = j.loads({text!r}, floats=floats)\n"
        "print(floats, ascii(j.canonical_json(v)), j.canonical_json({'k': [1, 'x']}, floats=False))\n"
    )
    floats: list[str] = []
    expected = ascii(canonical_json(loads(text, floats=floats)))
    assert floats == ["2.50", "12345678901234567890"]
    assert out == f"['2.50', '12345678901234567890'] {expected} " + '{"k":[1,"x"]}'


def test_the_sdk_never_imports_orjson() -> None:
    # every SDK module, the emulator (roost.testing, the server extra) aside
    out = _python(
        "import importlib, pkgutil, sys\n"
        "def walk(package):\n"
        "    for info in pkgutil.iter_modules(package.__path__, package.__name__ + '.'):\n"
        "        if info.name == 'roost.testing' or info.name.endswith('__main__'):\n"
        "            continue\n"
        "        module = importlib.import_module(info.name)\n"
        "        if info.ispkg:\n"
        "            walk(module)\n"
        "walk(importlib.import_module('roost'))\n"
        "print('orjson' in sys.modules, len([m for m in sys.modules if m.startswith('roost.')]))\n"
    )
    imported, count = out.split()
    assert imported == "False"
    assert int(count) > 10


def test_gc_paused_restores_the_collector_as_it_found_it() -> None:
    seen: list[bool] = []

    def fail_inside() -> None:
        with gc_paused():
            seen.append(gc.isenabled())
            raise RuntimeError("inside")

    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        fail_inside()
    assert seen == [False]
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
