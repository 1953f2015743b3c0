"""``client.deployments``: a roost's rollouts (created by ``roosts.deploy()`` and rollbacks)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from .._paging import follow_pages, read_token, start_token
from .._wire import api_path, expect_object
from ._base import Resource
from ._common import dict_rows, require_id

__all__ = ["Deployments"]


class Deployments(Resource):
    """``client.deployments`` (raw dicts, as the wire sends them)."""

    async def list_page(
        self,
        roost_id: str,
        *,
        site_id: str,
        page_size: int | None = 20,
        page_token: str | None = None,
        cursor: str | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], str]:
        """One page of rollouts (newest first) and the next cursor (``""`` on the last page)."""
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"), "deployments")
        response = await self._http.request(
            path,
            query={
                "siteId": require_id(site_id, "site_id"),
                "page_size": page_size,
                "page_token": start_token(page_token, cursor),
            },
        )
        where = f"GET {path}"
        data = expect_object(response.data, where)
        return dict_rows(data, ("rollouts", "items"), where), read_token(data)

    async def list(
        self,
        roost_id: str,
        *,
        site_id: str,
        page_size: int | None = 20,
        page_token: str | None = None,
        cursor: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every rollout of the roost, following page tokens transparently."""
        require_id(roost_id, "roost_id")
        require_id(site_id, "site_id")

        async def fetch(token: str | None) -> tuple[builtins.list[dict[str, Any]], str]:
            return await self.list_page(roost_id, site_id=site_id, page_size=page_size, page_token=token)

        async for row in follow_pages(fetch, start_token(page_token, cursor)):
            yield row

    async def get(self, roost_id: str, rollout_id: str, *, site_id: str) -> dict[str, Any]:
        """One rollout with per-machine ``canaryStatus`` / ``fleetStatus``."""
        path = api_path(
            "api",
            "roosts",
            require_id(roost_id, "roost_id"),
            "deployments",
            require_id(rollout_id, "rollout_id"),
        )
        response = await self._http.request(path, query={"siteId": require_id(site_id, "site_id")})
        return expect_object(response.data, f"GET {path}")
