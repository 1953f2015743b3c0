"""The base every resource class shares: a handle on the :class:`RoostClient`, and paging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .._paging import TOKEN_KEYS, follow_pages, read_token
from .._wire import expect_object
from ..client import RoostClient

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pages(Generic[T]):
    """One paged ``GET`` route: fetch a single page, or every row following the tokens.

    ``query`` holds every parameter except ``page_token``, which each page request sets;
    ``parse(body, where)`` turns a page body into its rows (``where`` names the route in errors).
    """

    http: RoostClient
    path: str
    query: Mapping[str, Any]
    parse: Callable[[dict[str, Any], str], list[T]]
    token_keys: tuple[str, ...] = TOKEN_KEYS

    async def page(self, token: str | None = None) -> tuple[list[T], str]:
        """The rows of one page and the next token (``""`` on the last page)."""
        where = f"GET {self.path}"
        response = await self.http.request(self.path, query={**self.query, "page_token": token})
        data = expect_object(response.data, where)
        return self.parse(data, where), read_token(data, self.token_keys)

    def rows(self, first_token: str | None = None) -> AsyncIterator[T]:
        """Every row from ``first_token`` on, one page request at a time."""
        return follow_pages(self.page, first_token)


class Resource:
    """One noun of the API. Resources talk to the wire only through ``self._http``."""

    __slots__ = ("_http",)

    def __init__(self, http: RoostClient) -> None:
        self._http = http

    def _pages(
        self,
        path: str,
        query: Mapping[str, Any],
        parse: Callable[[dict[str, Any], str], list[T]],
        token_keys: tuple[str, ...] = TOKEN_KEYS,
    ) -> Pages[T]:
        return Pages(self._http, path, query, parse, token_keys)
