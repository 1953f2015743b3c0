"""JSON helpers that behave like the real server's JavaScript: parsing, canonical JSON, times."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from types import ModuleType
from typing import Any

__all__ = [
    "MAX_SAFE",
    "JsonError",
    "canonical_json",
    "dumps",
    "gc_paused",
    "iso",
    "js_len",
    "loads",
    "loads_unchecked",
    "now_ms",
    "only_safe_integers",
    "sha256_hex",
]


class JsonError(ValueError):
    """The text is not JSON the way ``JSON.parse`` sees it."""


def _import_orjson() -> ModuleType | None:
    # orjson comes with the ``server`` extra only (the SDK never imports it); without it every
    # text takes the standard library's path, which gives the same answers, slower
    try:
        import orjson
    except ImportError:
        return None
    return orjson


_ORJSON = _import_orjson()
# texts from this long are parsed with the collector paused (gc_paused)
_PAUSE_GC_FROM = 1 << 16


def _reject_constant(name: str) -> Any:
    raise JsonError(f"invalid JSON constant {name}")


#: Number.MAX_SAFE_INTEGER + 1: every integer up to it in magnitude is an exact double, so
#: JavaScript reads it as written
MAX_SAFE = 2**53
# Number tokens are looked for in the UTF-8 bytes with every ASCII digit marked "0", "," and "["
# marked ":" and whitespace marked " ": a regex whose first byte is a literal scans a 2.5 MB
# manifest about 3 times faster than one that starts with a character class. A false match only
# costs speed (the exact path).
_MARKS = bytes.maketrans(b"0123456789,[\t\n\r\x0b\x0c", b"0000000000::     ")
# a float token (between ``:``/``,``/``[`` and ``,``/``]``/``}``) in encoder output
_FLOAT_TOKEN = re.compile(rb":-?(?:0+(?:\.0+(?:[eE][-+]?0+)?|[eE][-+]?0+)|Infinity|NaN)[:\]}]")
# a number token of 16+ digits (after ``:``, ``,`` or ``[``), looked for where 16 digits are
_SIXTEEN = b"0" * 16
_DIGIT, _MINUS, _SPACE, _COLON = b"0- :"


def _marked(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass").translate(_MARKS)


def _js_int(text: str) -> int | float:
    """An integer literal as ``JSON.parse`` reads it: exact while a double can hold it, else the
    nearest double (``Infinity`` for a 4,000-digit one), so validators that require a finite or
    safe integer answer 400 naming the field; int() of such text would raise or loop instead."""
    if len(text.lstrip("-")) <= 15:
        return int(text)
    nearest = float(text)
    return int(text) if abs(nearest) <= MAX_SAFE else nearest


def _reporting_js_int(floats: list[str]) -> Any:
    def parse_int(literal: str) -> int | float:
        value = _js_int(literal)
        if type(value) is float:
            floats.append(literal)
        return value

    return parse_int


def _has_long_number(marked: bytes) -> bool:
    """Whether a number token of 16+ digits may be in the text ``marked`` came from (a false
    alarm only costs speed).

    Runs of 16 digits are found with bytes.find and only their left context is matched: a
    manifest has a few hundred such runs inside hashes, and a regex tried at every ``:`` cost
    ~15 ms more on 20,000 files."""
    at = marked.find(_SIXTEEN)
    while at >= 0:
        # back over the rest of the digits, a minus sign and whitespace, to a ":" (or "," "[")
        before = at - 1
        while before >= 0 and marked[before] == _DIGIT:
            before -= 1
        if before >= 0 and marked[before] == _MINUS:
            before -= 1
        while before >= 0 and marked[before] == _SPACE:
            before -= 1
        if before >= 0 and marked[before] == _COLON:
            return True
        at = marked.find(_SIXTEEN, at + 16)
    return False


def loads(text: str | bytes, *, floats: list[str] | None = None) -> Any:
    """``JSON.parse``: no NaN/Infinity; raises :class:`JsonError` on anything invalid.

    With ``floats``, the text of every number that became a float is appended to it (float
    literals, and integer literals past 2**53, which JavaScript rounds): a value parsed with
    none holds no float, which :func:`canonical_json` can then skip looking for."""
    hooks: dict[str, Any] = {"parse_constant": _reject_constant}
    if floats is not None:

        def parse_float(literal: str) -> float:
            floats.append(literal)
            return float(literal)

        hooks["parse_float"] = parse_float
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        # the int hook costs a call per number; only a body with a long number needs it
        if _has_long_number(_marked(text)):
            hooks["parse_int"] = _js_int if floats is None else _reporting_js_int(floats)
        # Not orjson: telling whether a text holds a float literal (which orjson cannot report)
        # took longer than the standard parser's whole pass, whose hook sees each one for free.
        with gc_paused() if len(text) >= _PAUSE_GC_FROM else contextlib.nullcontext():
            return json.loads(text, **hooks)
    except (ValueError, RecursionError) as exc:
        raise JsonError(str(exc)) from None


def loads_unchecked(raw: bytes) -> Any | None:
    """orjson's parse of ``raw`` (half the time of :func:`loads` on a large manifest), or
    ``None`` where orjson is not installed or refuses the text (invalid JSON or UTF-8, NaN,
    lone surrogates, integers past 64 bits, deep nesting: :func:`loads` then has the last word).

    Not yet ``JSON.parse``: a float literal leaves no trace, and an integer past 2**53 stays
    exact where JavaScript rounds it. The value is what :func:`loads` returns (with no float
    literal to report) once it is shown to hold neither, by :func:`only_safe_integers` or by a
    pass of the caller's own that looks at every number."""
    if _ORJSON is None:
        return None
    try:
        with gc_paused() if len(raw) >= _PAUSE_GC_FROM else contextlib.nullcontext():
            return _ORJSON.loads(raw)
    except _ORJSON.JSONDecodeError:
        return None


def only_safe_integers(value: Any) -> bool:
    """Whether parsed JSON ``value`` holds no float and no integer past 2**53 in magnitude."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float or (kind is int and not -MAX_SAFE <= item <= MAX_SAFE):
            return False
    return True


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector over a burst of allocation: parsing a manifest makes 80,000
    containers and no cycle, which a running collector passes over again and again (what is
    freed before the pause ends is never looked at). A collector paused elsewhere stays paused.
    The chunker has the same helper; the emulator imports only the SDK's public API."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def dumps(value: Any) -> str:
    """``JSON.stringify`` for response bodies (compact, raw non-ASCII)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_js_default)


def _js_default(value: Any) -> Any:
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _js_number(value: float) -> str:
    """A float formatted the way JavaScript's ``Number.prototype.toString`` does."""
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) <= MAX_SAFE:
        # past 2**53 a double's exact integer (12345678901234567168) is not what JavaScript
        # writes (12345678901234567000): the shortest digits below, padded with zeros
        return str(int(value))
    sign = "-" if value < 0 else ""
    parsed = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in parsed.digits)
    exponent = int(parsed.exponent)
    point = len(digits) + exponent  # value = 0.<digits> * 10**point
    n = point
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp_str = f"e+{e}" if e >= 0 else f"e-{-e}"
    if k == 1:
        return sign + digits + exp_str
    return sign + digits[0] + "." + digits[1:] + exp_str


def _utf16_key(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _canonical(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_js_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _canonical(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_key)):
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _canonical(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def canonical_json(value: Any, *, floats: bool = True) -> str:
    """``JSON.stringify`` after recursively sorting object keys (UTF-16 order), as the server hashes.

    ``floats=False``: the caller vouches that ``value`` holds no float (as :func:`loads` tells
    by reporting none), and the encoder output is not searched for one."""
    out: list[str] = []
    if not isinstance(value, dict | list):  # a lone scalar: no container around a float token
        _canonical(value, out)
        return "".join(out)
    if not floats and _ORJSON is not None:
        encoded = _orjson_canonical(_ORJSON, value)
        if encoded is not None:
            return encoded
    try:
        fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        fast = None
    # The C encoder's output is the canonical one unless a float is in it (JavaScript formats
    # numbers differently) or a character from U+E000 up (where code-point order and UTF-16
    # order can disagree). Both are looked for in the output: a float token sits between
    # ``:``/``,``/``[`` and ``,``/``]``/``}``; a false alarm (a string holding ":1.5,") only takes
    # the exact encoder. For a 20,000-file manifest this is ~30 ms, not ~1 s.
    if (
        fast is not None
        and (not floats or _FLOAT_TOKEN.search(_marked(fast)) is None)
        and (fast.isascii() or max(fast) < "\ue000")
    ):
        return fast
    _canonical(value, out)
    return "".join(out)


# for a value without floats, orjson's sorted output differs from JavaScript's only through key
# order: characters from U+E000 up (UTF-8 lead bytes 0xEE-0xF4) sort apart in UTF-16
_HIGH_UTF8 = re.compile(rb"[\xee-\xff]")


def _orjson_canonical(orjson: ModuleType, value: Any) -> str | None:
    """orjson's sorted encoding of a value without floats where it is provably the standard
    encoder's, which is what :func:`canonical_json` gives for such a value without characters
    from U+E000 up; ``None`` when not sure. A parsed value holds only dicts with string keys, lists,
    strings, ints, floats, bools and ``None``: orjson refuses (so ``None`` here) subclasses,
    dataclasses, dates, non-string keys, ints past 64 bits, lone surrogates and deep nesting."""
    try:
        encoded: bytes = orjson.dumps(
            value,
            option=orjson.OPT_SORT_KEYS
            | orjson.OPT_PASSTHROUGH_SUBCLASS
            | orjson.OPT_PASSTHROUGH_DATACLASS
            | orjson.OPT_PASSTHROUGH_DATETIME,
        )
    except orjson.JSONEncodeError:
        return None
    if not encoded.isascii() and _HIGH_UTF8.search(encoded) is not None:
        return None
    return encoded.decode("utf-8")


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def iso(ms: int | float | None) -> str | None:
    """``new Date(ms).toISOString()``: always milliseconds and ``Z``."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(int(ms) / 1000.0, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def js_len(text: str) -> int:
    """``string.length``: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
