"""``client.versions``: a roost's published versions, their files, descriptions and diffs.

Every ``version_ref`` accepts ``3`` / ``"#3"`` / ``"v3"`` (a version number), a version id (bare
64-hex or legacy ``vrs_*``) or ``"current"`` / ``"previous"`` / ``"first"``. Refs are
percent-encoded into the path, so ``"#3"`` travels as ``%233``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from .._paging import start_token
from .._wire import api_path, expect_object
from ._base import Pages, Resource
from ._common import VersionRef, raw_rows_of, require_id, version_ref_segment

__all__ = ["Versions"]

_LIST_TOKEN_KEYS = ("nextPageToken", "next_page_token", "nextCursor")


class Versions(Resource):
    """``client.versions`` (raw dicts, as the wire sends them)."""

    def _path(self, roost_id: str, *rest: str) -> str:
        return api_path("api", "roosts", require_id(roost_id, "roost_id"), "versions", *rest)

    def _versions(self, roost_id: str, site_id: str, page_size: int | None) -> Pages[dict[str, Any]]:
        path = self._path(roost_id)
        query = {"siteId": require_id(site_id, "site_id"), "page_size": page_size}
        return self._pages(path, query, raw_rows_of("versions"), _LIST_TOKEN_KEYS)

    async def list_page(
        self,
        roost_id: str,
        *,
        site_id: str,
        page_size: int | None = 20,
        page_token: str | None = None,
        cursor: str | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """One page of versions (newest first) and the next cursor (``""`` on the last page)."""
        return await self._versions(roost_id, site_id, page_size).page(start_token(page_token, cursor))

    async def list(
        self,
        roost_id: str,
        *,
        site_id: str,
        page_size: int | None = 20,
        page_token: str | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every version (newest first), following page tokens transparently."""
        async for row in self._versions(roost_id, site_id, page_size).rows(start_token(page_token, cursor)):
            yield row

    async def get(self, roost_id: str, version_ref: VersionRef, *, site_id: str) -> dict[str, Any]:
        """The full version document (``versionId``, ``versionNumber``, ``version``, ``metadata``...)."""
        path = self._path(roost_id, version_ref_segment(version_ref, "version_ref"))
        response = await self._http.request(path, query={"siteId": require_id(site_id, "site_id")})
        return expect_object(response.data, f"GET {path}")

    async def patch(
        self,
        roost_id: str,
        version_ref: VersionRef,
        *,
        site_id: str,
        description: str | None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Edit a version's description (``None`` clears it); everything else is immutable."""
        path = self._path(roost_id, version_ref_segment(version_ref, "version_ref"))
        if description is not None and not isinstance(description, str):
            raise ValueError(f"description must be a string or None, got {description!r}")
        response = await self._http.request(
            path,
            method="PATCH",
            body={"siteId": require_id(site_id, "site_id"), "description": description},
            idempotency_key=idempotency_key,
        )
        return expect_object(response.data, f"PATCH {path}")

    async def files(
        self,
        roost_id: str,
        version_ref: VersionRef,
        *,
        site_id: str,
        page_size: int | None = 100,
        page_token: str | None = None,
        cursor: str | None = None,
        prefix: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every file entry ``{path, size, chunks: [{hash, size}]}``; ``prefix`` filters by path."""
        path = self._path(roost_id, version_ref_segment(version_ref, "version_ref"), "files")
        query = {"siteId": require_id(site_id, "site_id"), "page_size": page_size, "prefix": prefix}
        pages = self._pages(path, query, raw_rows_of("files", "items"))
        async for row in pages.rows(start_token(page_token, cursor)):
            yield row

    async def diff(
        self,
        roost_id: str,
        version_ref: VersionRef | None = None,
        *,
        site_id: str,
        against: VersionRef | None = None,
        from_version: VersionRef | None = None,
        to_version: VersionRef | None = None,
    ) -> dict[str, Any]:
        """Compare ``version_ref`` (or ``to_version``) with the baseline ``against`` (or ``from_version``).

        Returns the raw diff: ``summary``, ``added``, ``removed``, ``modified``, ...
        """
        target = version_ref if version_ref is not None else to_version
        baseline = against if against is not None else from_version
        if target is None or baseline is None:
            raise ValueError("versions.diff requires version_ref and against")
        path = self._path(roost_id, version_ref_segment(target, "version_ref"), "diff")
        response = await self._http.request(
            path,
            query={
                "siteId": require_id(site_id, "site_id"),
                "against": version_ref_segment(baseline, "against"),
            },
        )
        return expect_object(response.data, f"GET {path}")
