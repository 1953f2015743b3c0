"""Small helpers shared by the resources: path building and tolerant-but-strict parsing.

Parsing rule: unknown fields are ignored and missing optional fields become ``None``; a value of
the wrong *shape* where the SDK needs one (a response that is not an object, a required id that
is absent) raises :class:`MalformedResponseError` naming the field, never a bare ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
    "MalformedResponseError",
    "api_path",
    "as_bool",
    "as_dict",
    "as_int",
    "as_list",
    "as_opt_int",
    "as_opt_str",
    "as_str",
    "as_str_list",
    "drop_none",
    "expect_object",
    "require_str",
]


class MalformedResponseError(ValueError):
    """The API answered 2xx with a body the SDK cannot interpret."""

    def __init__(self, where: str, detail: str):
        self.where = where
        super().__init__(f"malformed response from {where}: {detail}")


def api_path(*segments: str | int) -> str:
    """Join path segments, percent-encoding each one (so ``"#3"`` is sent as ``%233``).

    ``.`` and ``..`` are encoded too (``%2E``, ``%2E%2E``): ``quote`` leaves dots alone, and a
    bare dot segment is removed by URL normalisation (httpx's included), so
    ``versions.get(rid, "..")`` would otherwise reach another route.
    """
    parts: list[str] = []
    for segment in segments:
        text = str(segment)
        if text == "":
            raise ValueError("empty path segment")
        parts.append("%2E" * len(text) if text in (".", "..") else quote(text, safe=""))
    return "/" + "/".join(parts)


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def expect_object(data: Any, where: str) -> dict[str, Any]:
    """The response body as a dict; ``None`` (empty body) becomes ``{}``."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MalformedResponseError(where, f"expected a JSON object, got {type(data).__name__}")
    return data


def require_str(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MalformedResponseError(where, f"field {key!r} is missing or not a string")
    return value


def as_str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def as_opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def as_opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if float(value).is_integer() else None


def as_bool(value: Any, default: bool = False) -> bool:
    return value if isinstance(value, bool) else default


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def as_str_list(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def as_dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None
