"""``client.sites``: the sites the caller can see."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from .._wire import api_path, as_opt_str, as_str, expect_object
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id

__all__ = ["Site", "Sites"]


@dataclass(slots=True)
class Site:
    """A site (a fleet of machines). ``tier`` is ``core`` / ``pro`` / ``None``."""

    id: str
    name: str
    plan: str | None = None
    timezone: str | None = None
    owner: str | None = None
    created_at: str | None = None
    tier: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "site") -> Site:
        raw = expect_row(data, where)
        return cls(
            id=require_row_id(raw, where, "id", "siteId"),
            name=as_str(raw.get("name")),
            plan=as_opt_str(raw.get("plan")),
            timezone=as_opt_str(raw.get("timezone")),
            owner=as_opt_str(raw.get("owner")),
            created_at=as_opt_str(raw.get("createdAt")),
            tier=as_opt_str(raw.get("tier")),
        )


class Sites(Resource):
    """``client.sites``."""

    async def list(self) -> builtins.list[Site]:
        """Every site the caller can see (sorted by name; a key without site scopes sees none)."""
        where = "GET /api/sites"
        data = expect_object((await self._http.request("/api/sites")).data, where)
        return parse_rows(data, ("sites",), where, Site.from_payload)

    async def get(self, site_id: str) -> Site:
        path = api_path("api", "sites", require_id(site_id, "site_id"))
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        site = data.get("site")
        return Site.from_payload(site if isinstance(site, dict) else data, where)
