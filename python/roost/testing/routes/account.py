"""``/api/version`` and ``/api/whoami``: who is calling, with which key, quota and site."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import SUPPORTED_VERSIONS, Ctx, RouteTable, ok
from .._emulator import Emulator
from ._shared import used_bytes

__all__ = ["ROUTES", "api_version", "quota_summary", "whoami"]


async def api_version(ctx: Ctx) -> Response:
    return ok({"current": SUPPORTED_VERSIONS[0], "supported": list(SUPPORTED_VERSIONS)})


def quota_summary(emu: Emulator, site_id: str) -> dict[str, Any] | None:
    site = emu.site(site_id)
    if site is None:
        return None
    return {
        "siteId": site_id,
        "tier": site.get("quotaTier") or "free",
        "usedBytes": used_bytes(emu, site_id),
        "pendingBytes": 0,
        "limitBytes": site.get("planLimitBytes"),
    }


async def whoami(ctx: Ctx) -> Response:
    emu = ctx.emu
    principal = ctx.authenticate(style="passthrough")
    key = principal.key
    primary: str | None = None
    for scope in principal.scopes_for("site"):
        if scope.get("id") not in (None, "*"):
            primary = str(scope["id"])
            break
    if primary is None:
        sites = principal.user.get("sites") or []
        primary = str(sites[0]) if sites else None
    return ok(
        {
            "userId": principal.uid,
            "email": principal.user.get("email"),
            "role": principal.user.get("role"),
            "key": None
            if key is None
            else {
                "keyId": key.get("keyId"),
                "name": key.get("name"),
                "keyPrefix": key.get("keyPrefix"),
                "scopes": key.get("scopes"),
                "environment": key.get("environment"),
                "expiresAt": key.get("expiresAt"),
                "lastUsedAt": key.get("lastUsedAt"),
                "isLegacy": False,
            },
            "rateLimit": {
                "tier": "api",
                "limitPerMinute": 600,
                "note": "use RateLimit-* response headers on actual API calls for live counters",
            },
            "quota": quota_summary(emu, primary) if primary else None,
            "primarySiteId": primary,
        }
    )


ROUTES: RouteTable = [
    ("/api/version", {"GET": api_version}),
    ("/api/whoami", {"GET": whoami}),
]
