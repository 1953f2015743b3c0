"""Helpers shared by the resource modules: argument checks, version refs, envelopes, row parsing.

Parsing rule (see :mod:`roost._wire`): unknown fields are ignored and missing optional fields
become ``None``; a body that is not an object, a collection that is not a list, a row that is not
an object or a row without its id raises :class:`~roost._wire.MalformedResponseError` naming the
route and the field, never a bare ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, Union

from .._wire import MalformedResponseError, expect_object

__all__ = [
    "VersionRef",
    "add_id_alias",
    "dict_rows",
    "expect_row",
    "parse_rows",
    "raw_rows_of",
    "require_id",
    "require_row_id",
    "rows_of",
    "str_list_arg",
    "target_version_payload",
    "typed_rows_of",
    "unwrap_data",
    "version_ref_segment",
]

T = TypeVar("T")

#: A version reference: ``3``, ``"#3"``, ``"v3"``, a version id (bare 64-hex or legacy ``vrs_*``)
#: or one of the aliases ``"current"``, ``"previous"``, ``"first"`` (resolved server-side).
VersionRef = Union[int, str]  # noqa: UP007 - a runtime alias must work on Python 3.10 too


def require_id(value: object, name: str) -> str:
    """``value`` as a non-empty string; otherwise ``ValueError`` naming the argument."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def version_ref_segment(value: object, name: str) -> str:
    """A version ref ready for :func:`roost._wire.api_path` (which percent-encodes it).

    ``int`` refs become their decimal text. Obviously bad local input (a bool, an int below 1,
    an empty or blank string, any other type) raises ``ValueError`` naming the argument; every
    other string is left to the server's resolver.
    """
    return str(_checked_ref(value, name))


def target_version_payload(value: object, name: str) -> int | str:
    """A version ref for a JSON body: ints stay JSON numbers, strings are sent trimmed."""
    return _checked_ref(value, name)


def _checked_ref(value: object, name: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(
            f"{name} must be an int or a str (3, '#3', 'v3', a version id, 'current', 'previous' or "
            f"'first'), got {value!r}"
        )
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{name} must be a version number >= 1, got {value}")
        return value
    text = value.strip()
    if not text:
        raise ValueError(f"{name} must not be empty")
    return text


def str_list_arg(value: Iterable[str], name: str) -> list[str]:
    """A list of strings from any iterable, refusing a bare ``str`` (a classic slip)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a list of strings, not a single string")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{name} must contain only strings, got {item!r}")
    return items


def unwrap_data(data: Any, where: str) -> dict[str, Any]:
    """The inner ``data`` object of an ``{ok, data}`` envelope (or the body itself when unwrapped)."""
    body = expect_object(data, where)
    inner = body.get("data")
    if isinstance(inner, dict):
        return inner
    if "data" in body and inner is not None:
        raise MalformedResponseError(where, f"field 'data' is not an object ({type(inner).__name__})")
    return body


def rows_of(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> list[Any]:
    """The first present collection among ``keys``; absent or null means no rows.

    A collection that is present but not a list is malformed.
    """
    for key in keys:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            raise MalformedResponseError(where, f"field {key!r} is not a list ({type(value).__name__})")
        return value
    return []


def parse_rows(
    data: Mapping[str, Any],
    keys: tuple[str, ...],
    where: str,
    parse: Callable[[Any, str], T],
) -> list[T]:
    """Parse every row of the collection with ``parse(row, where)``."""
    return [
        parse(row, f"{where} ({keys[0]}[{index}])") for index, row in enumerate(rows_of(data, keys, where))
    ]


def dict_rows(data: Mapping[str, Any], keys: tuple[str, ...], where: str) -> list[dict[str, Any]]:
    """The collection's rows as raw dicts (each must be an object)."""
    return [
        expect_row(row, f"{where} ({keys[0]}[{index}])")
        for index, row in enumerate(rows_of(data, keys, where))
    ]


def raw_rows_of(*keys: str) -> Callable[[dict[str, Any], str], list[dict[str, Any]]]:
    """A page parser (see :class:`roost.resources._base.Pages`) keeping rows as raw dicts."""
    return lambda data, where: dict_rows(data, keys, where)


def typed_rows_of(
    keys: tuple[str, ...], parse: Callable[[Any, str], T]
) -> Callable[[dict[str, Any], str], list[T]]:
    """A page parser (see :class:`roost.resources._base.Pages`) building typed rows with ``parse``."""
    return lambda data, where: parse_rows(data, keys, where, parse)


def expect_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise MalformedResponseError(where, f"expected an object, got {type(row).__name__}")
    return row


def require_row_id(row: Mapping[str, Any], where: str, *keys: str) -> str:
    """The first non-empty string among ``keys``; none -> ``MalformedResponseError``."""
    for key in keys:
        value = row.get(key)
        if isinstance(value, str) and value:
            return value
    names = " or ".join(repr(key) for key in keys)
    raise MalformedResponseError(where, f"field {names} is missing or not a string")


def add_id_alias(data: dict[str, Any]) -> dict[str, Any]:
    """Add ``id`` = ``keyId`` to a key-mint response that has no ``id`` of its own.

    The wire names the new key ``keyId``; the user documentation's examples read ``created["id"]``.
    The alias makes both spellings work without hiding the wire field.
    """
    key_id = data.get("keyId")
    if "id" not in data and isinstance(key_id, str):
        data["id"] = key_id
    return data
