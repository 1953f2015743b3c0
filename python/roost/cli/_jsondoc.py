"""The one JSON contract of ``roost ... --json`` (documented in docs/cli-json.md).

Every document goes through :func:`to_document`: snake_case keys, ISO-8601 UTC timestamps with
milliseconds and a ``Z``, and ``null`` where a value is absent. The SDK's results are dataclasses
(already snake_case) but some of them carry raw wire dicts (camelCase, epoch milliseconds, ``""``
for "none"); converting here, in one place, keeps every command's output alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TextIO

__all__ = ["emit_json", "error_document", "iso_utc", "snake_case", "to_document"]

# Only identifier-like camelCase keys are renamed: maps keyed by data (paths, hashes, reasons)
# keep their keys exactly as the data has them.
_CAMEL = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$")
_UPPER = re.compile(r"([A-Z])")
# Epoch values above this are milliseconds (1973 in ms, year 5138 in seconds).
_MS_THRESHOLD = 100_000_000_000


def snake_case(key: str) -> str:
    """``versionId`` -> ``version_id``; any other key is returned unchanged."""
    if not _CAMEL.match(key):
        return key
    return _UPPER.sub(lambda m: "_" + m.group(1).lower(), key)


def _is_time_key(key: str) -> bool:
    return key in ("at", "timestamp") or key.endswith("_at")


def iso_utc(moment: datetime) -> str:
    """``2026-12-03T09:27:12.123Z`` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
        try:
            return iso_utc(datetime.fromtimestamp(seconds, tz=timezone.utc))
        except (OverflowError, OSError, ValueError):
            return value
    if isinstance(value, str):
        try:
            return iso_utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return value
    return value


def to_document(value: Any, key: str | None = None) -> Any:
    """A JSON-ready copy of ``value`` under the contract (``key`` is the field it sits in)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_document(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        converted: dict[str, Any] = {}
        for raw_key, item in value.items():
            name = snake_case(str(raw_key))
            converted[name] = to_document(item, name)
        return converted
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [to_document(item) for item in items]
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value == "":
        return None
    if key is not None and _is_time_key(key):
        return _timestamp(value)
    return value


def emit_json(value: Any, stream: TextIO | None = None) -> None:
    """Print one document and flush, so that a closed pipe surfaces here and not at exit."""
    out = stream or sys.stdout
    out.write(json.dumps(to_document(value), indent=2, ensure_ascii=False) + "\n")
    out.flush()


def error_document(status: int | None, code: str, message: str, request_id: str | None) -> dict[str, Any]:
    """``{"error": {...}}``, printed on stdout under --json whatever the exit code."""
    return {"error": {"status": status, "code": code, "message": message, "request_id": request_id}}
