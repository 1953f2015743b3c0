"""``client.chunks``: the low-level content-addressed data plane (``roosts.push()`` wraps it).

Chunk hashes are bare lower-case SHA-256 hex (64 characters), with no ``sha256:`` prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

from .._paging import start_token
from .._wire import api_path, as_str_list, expect_object
from ._base import Resource
from ._common import raw_rows_of, require_id, str_list_arg

__all__ = ["Chunks"]


class Chunks(Resource):
    """``client.chunks``."""

    async def _post_hashes(self, route: str, site_id: str, hashes: Iterable[str]) -> dict[str, Any]:
        body = {"siteId": require_id(site_id, "site_id"), "hashes": str_list_arg(hashes, "hashes")}
        response = await self._http.request(route, method="POST", body=body)
        return expect_object(response.data, f"POST {route}")

    async def check(self, site_id: str, hashes: Iterable[str]) -> list[str]:
        """The subset of ``hashes`` the site's store does not have yet (dedup check)."""
        data = await self._post_hashes("/api/chunks/check", site_id, hashes)
        return as_str_list(data.get("missing"))

    async def upload_urls(self, site_id: str, hashes: Iterable[str]) -> dict[str, Any]:
        """Signed PUT URLs (60 min): the raw ``{"urls": {hash: url}, "expiresAt": ...}`` body."""
        return await self._post_hashes("/api/chunks/upload-urls", site_id, hashes)

    async def download_urls(self, site_id: str, hashes: Iterable[str]) -> dict[str, Any]:
        """Signed GET URLs (15 min): the raw ``{"urls": {hash: url}, "expiresAt": ...}`` body."""
        return await self._post_hashes("/api/chunks/download-urls", site_id, hashes)

    async def mount(self, digest: str, *, site_id: str, from_roost: str, to_roost: str) -> dict[str, Any]:
        """Reference an already-stored chunk from another roost without re-uploading it."""
        path = api_path("api", "chunks", require_id(digest, "digest"), "mount")
        response = await self._http.request(
            path,
            method="POST",
            query={
                "siteId": require_id(site_id, "site_id"),
                "from": require_id(from_roost, "from_roost"),
                "to": require_id(to_roost, "to_roost"),
            },
        )
        return expect_object(response.data, f"POST {path}")

    async def referrers(
        self,
        digest: str,
        *,
        site_id: str,
        page_size: int = 50,
        page_token: str | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every roost version / mount referencing the chunk, as raw dicts (mount rows have
        ``roostId: None``; see ``fromRoostId`` / ``toRoostId``). Follows page tokens."""
        path = api_path("api", "chunks", require_id(digest, "digest"), "referrers")
        query = {"siteId": require_id(site_id, "site_id"), "page_size": page_size}
        async for row in self._pages(path, query, raw_rows_of("referrers", "items")).rows(
            start_token(page_token, cursor)
        ):
            yield row
