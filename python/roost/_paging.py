"""Cursor paging shared by every ``list()`` generator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

TOKEN_KEYS = ("nextPageToken", "next_page_token")


def read_token(data: Mapping[str, Any], keys: Iterable[str] = TOKEN_KEYS) -> str:
    """The next-page token from a page envelope; ``""`` on the last page."""
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


async def follow_pages(
    fetch_page: Callable[[str | None], Awaitable[tuple[list[T], str]]],
    first_token: str | None = None,
) -> AsyncIterator[T]:
    """Yield every row, following tokens until one is empty.

    A server that hands back a token it already gave would loop forever; that is reported as an
    error instead.
    """
    token = first_token
    seen: set[str] = set()
    while True:
        rows, next_token = await fetch_page(token)
        for row in rows:
            yield row
        if not next_token:
            return
        if next_token in seen:
            raise RuntimeError(f"pagination loop: the server repeated page token {next_token!r}")
        seen.add(next_token)
        token = next_token


def start_token(page_token: str | None, cursor: str | None) -> str | None:
    """The token to start from: ``page_token`` wins, ``cursor`` is its legacy alias."""
    return page_token if page_token is not None else cursor
