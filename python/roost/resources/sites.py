"""``client.sites``: the sites the caller can see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._wire import api_path, as_list, as_opt_str, as_str, expect_object
from ._base import Resource

__all__ = ["Site", "Sites"]


@dataclass(slots=True)
class Site:
    id: str
    name: str
    plan: str | None = None
    timezone: str | None = None
    owner: str | None = None
    created_at: Any = None

    @classmethod
    def from_payload(cls, data: Any) -> Site:
        raw = data if isinstance(data, dict) else {}
        return cls(
            id=as_str(raw.get("id")) or as_str(raw.get("siteId")),
            name=as_str(raw.get("name")),
            plan=as_opt_str(raw.get("plan")),
            timezone=as_opt_str(raw.get("timezone")),
            owner=as_opt_str(raw.get("owner")),
            created_at=raw.get("createdAt"),
        )


class Sites(Resource):
    """``client.sites``."""

    async def list(self) -> list[Site]:
        data = expect_object((await self._http.request("/api/sites")).data, "GET /api/sites")
        return [Site.from_payload(item) for item in as_list(data.get("sites"))]

    async def get(self, site_id: str) -> Site:
        path = api_path("api", "sites", site_id)
        data = expect_object((await self._http.request(path)).data, f"GET {path}")
        site = data.get("site")
        return Site.from_payload(site if isinstance(site, dict) else data)
