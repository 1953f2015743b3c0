"""``client.deployments``: a roost's rollouts (created by ``roosts.deploy()`` and rollbacks)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from typing import Any

from .._paging import start_token
from .._wire import api_path, expect_object
from ._base import Pages, Resource
from ._common import raw_rows_of, require_id

__all__ = ["Deployments"]


class Deployments(Resource):
    """``client.deployments`` (raw dicts, as the wire sends them)."""

    def _rollouts(self, roost_id: str, site_id: str, page_size: int | None) -> Pages[dict[str, Any]]:
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"), "deployments")
        query = {"siteId": require_id(site_id, "site_id"), "page_size": page_size}
        return self._pages(path, query, raw_rows_of("rollouts", "items"))

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
        return await self._rollouts(roost_id, site_id, page_size).page(start_token(page_token, cursor))

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
        async for row in self._rollouts(roost_id, site_id, page_size).rows(start_token(page_token, cursor)):
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
