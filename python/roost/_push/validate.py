"""Every check on a push's arguments that needs no I/O beyond one ``stat`` of the root.

Run before the first file is opened and before any request, so that a typo costs nothing: each
failure is a ``ValueError`` (``TypeError`` for a wrong kind of object) naming the field, the rule
and the value. The rules mirror what the server would refuse at publish time (see
``server-semantics.md`` §5.2 and the id grammar of ``api-contract.md``) plus the engine's own limits.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence

from .types import PushOptions, PushSourceNotADirectoryError, PushSourceNotFoundError

__all__ = [
    "MAX_BANDWIDTH_LIMIT",
    "MAX_CONCURRENCY",
    "MAX_DESCRIPTION_UNITS",
    "MAX_STALL_TIMEOUT_S",
    "MIN_BANDWIDTH_LIMIT",
    "check_number",
    "shown",
    "validate_push",
]

ROOST_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
SITE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: The server measures the raw description with JavaScript's ``length``: UTF-16 code units.
MAX_DESCRIPTION_UNITS = 500
#: ``concurrency x 8 MiB`` of hashed chunk bytes may be held at once (see ``engine.held_budget``):
#: 256 is already 2 GiB.
MAX_CONCURRENCY = 256
#: Below 1 KiB/s a 4 MiB chunk takes over an hour: a unit mistake rather than a wish.
MIN_BANDWIDTH_LIMIT = 1024
MAX_BANDWIDTH_LIMIT = 1 << 40
MAX_STALL_TIMEOUT_S = 3600.0
_VERIFY = ("stat", "fast")
_FLAGS = ("dry_run", "cache", "default_ignores", "allow_unportable_paths", "skip_unchanged")


def shown(value: object) -> str:
    """``value`` for an error message: its repr, cut to 80 characters (an integer too long to
    print, past Python's 4,300-digit limit, is described by its size)."""
    if isinstance(value, int) and value.bit_length() > 4000:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def _fail(field: str, rule: str, value: object, verb: str = "push") -> ValueError:
    return ValueError(f"{verb}: {field} {rule}, got {shown(value)}")


def _check_id(value: object, field: str, pattern: re.Pattern[str], grammar: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise _fail(field, f"must match {grammar}", value)
    return value


def _check_text(value: object, field: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _fail(field, "must be None or a non-blank string", value)


def _check_targets(value: object) -> None:
    field = "PushOptions.targets"
    if value is None:
        return
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _fail(field, "must be None or a list of machine ids", value)
    if not value:
        raise _fail(
            field, "must be None (keep the roost's targets) or a non-empty list of machine ids", value
        )
    for index, target in enumerate(value):
        if not isinstance(target, str) or not target.strip():
            raise _fail(f"{field}[{index}]", "must be a non-blank machine id", target)


def _check_description(value: object) -> None:
    field = "PushOptions.description"
    if value is None:
        return
    if not isinstance(value, str):
        raise _fail(field, "must be None or a string", value)
    units = len(value.encode("utf-16-le", "surrogatepass")) // 2
    if units > MAX_DESCRIPTION_UNITS:
        raise ValueError(
            f"push: {field} must be at most {MAX_DESCRIPTION_UNITS} characters (UTF-16 code units, "
            f"as the server counts them), got {units}: {shown(value)}"
        )


def check_number(
    value: object, field: str, low: float, high: float, *, integer: bool, verb: str = "push"
) -> None:
    """``ValueError`` (naming ``verb``, the field, the range and the value) unless ``value`` is a
    number (an integer with ``integer``) in ``[low, high]``; however large an integer, it is
    compared exactly, never turned into a float."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        rule = f"must be {'an integer' if integer else 'a number'} in [{low:g}, {high:g}]"
        raise _fail(field, rule, value, verb)
    if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
        raise _fail(field, f"must be in [{low:g}, {high:g}]", value, verb)


def _check_options(opts: PushOptions) -> None:
    _check_id(opts.site_id, "PushOptions.site_id", SITE_ID, "[A-Za-z0-9_-]{1,128}")
    _check_text(opts.name, "PushOptions.name")
    _check_targets(opts.targets)
    if opts.extract_path is not None and not isinstance(opts.extract_path, str):
        raise _fail("PushOptions.extract_path", "must be None or a string", opts.extract_path)
    _check_description(opts.description)
    if opts.on_progress is not None and not callable(opts.on_progress):
        raise TypeError(f"push: PushOptions.on_progress must be callable, got {shown(opts.on_progress)}")
    ignore = opts.ignore
    if isinstance(ignore, (str, bytes)) or not isinstance(ignore, Sequence):
        raise _fail("PushOptions.ignore", "must be a sequence of patterns, not a single string", ignore)
    for index, pattern in enumerate(ignore):
        if not isinstance(pattern, str):
            raise _fail(f"PushOptions.ignore[{index}]", "must be a string", pattern)
    if opts.ignore_file is not None and not isinstance(opts.ignore_file, (str, os.PathLike)):
        raise _fail("PushOptions.ignore_file", "must be None or a path", opts.ignore_file)
    check_number(opts.concurrency, "PushOptions.concurrency", 1, MAX_CONCURRENCY, integer=True)
    if opts.bandwidth_limit is not None:
        check_number(
            opts.bandwidth_limit,
            "PushOptions.bandwidth_limit (bytes per second)",
            MIN_BANDWIDTH_LIMIT,
            MAX_BANDWIDTH_LIMIT,
            integer=True,
        )
    check_number(opts.stall_timeout_s, "PushOptions.stall_timeout_s", 0, MAX_STALL_TIMEOUT_S, integer=False)
    if opts.stall_timeout_s <= 0:
        raise _fail("PushOptions.stall_timeout_s", "must be greater than 0", opts.stall_timeout_s)
    if opts.verify_cache not in _VERIFY:
        raise _fail("PushOptions.verify_cache", f"must be one of {_VERIFY}", opts.verify_cache)
    for flag in _FLAGS:
        value = getattr(opts, flag)
        if not isinstance(value, bool):
            raise _fail(f"PushOptions.{flag}", "must be True or False", value)


def validate_push(dir_path: str | os.PathLike[str], roost_id: str, opts: PushOptions) -> str:
    """Check every argument of a push; returns the resolved root directory."""
    if not isinstance(opts, PushOptions):
        raise TypeError(f"push: opts must be a PushOptions, got {type(opts).__name__}")
    _check_id(roost_id, "roost_id", ROOST_ID, "[A-Za-z0-9_-]{8,64}")
    _check_options(opts)
    path = os.fspath(dir_path)
    if not isinstance(path, str):
        raise _fail("dir_path", "must be a str path", path)
    if not os.path.exists(path):
        raise PushSourceNotFoundError(2, f"push: directory {path!r} does not exist", path)
    if not os.path.isdir(path):
        raise PushSourceNotADirectoryError(20, f"push: {path!r} is not a directory", path)
    return os.path.realpath(path)
