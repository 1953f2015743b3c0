"""``/api/sites/{siteId}/quota`` and its daily history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok
from .._jsonutil import iso, now_ms
from .._problems import validation
from ._shared import used_bytes

__all__ = ["ROUTES", "quota_get", "quota_history"]


TIER_LIMITS = {"free": 5 << 30, "starter": 25 << 30, "pro": 100 << 30, "enterprise": None}


async def quota_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    ctx.auth_site(site_id, "read")
    site = emu.site(site_id) or {}
    tier = str(site.get("quotaTier") or "free")
    limit = site.get("planLimitBytes", TIER_LIMITS.get(tier, TIER_LIMITS["free"]))
    used = used_bytes(emu, site_id)
    return ok(
        {
            "siteId": site_id,
            "tier": tier,
            "usedBytes": used,
            "pendingBytes": 0,
            "committedBytes": used,
            "limitBytes": limit,
            "fractionUsed": None if limit is None else min(1.0, used / limit) if limit else 1.0,
            "unlimited": limit is None,
            "lastAlarmLevel": 0,
            "lastAlarmAt": None,
            "lastReconciledAt": iso(now_ms()),
            "alarms": [],
        }
    )


async def quota_history(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    period = ctx.query("period") or "30d"
    if period not in ("7d", "14d", "30d", "60d", "90d"):
        raise validation("period must be one of 7d, 14d, 30d, 60d, 90d", {"query.period": ["invalid value"]})
    ctx.auth_site(site_id, "read")
    days = int(period[:-1])
    today = datetime.now(timezone.utc).date()
    used = used_bytes(emu, site_id)
    daily = [
        {
            "date": (today - timedelta(days=offset)).isoformat(),
            "storageBytesAvg": used if offset == 0 else None,
            "classAOps": 0,
            "classBOps": 0,
            "egressBytes": 0,
        }
        for offset in range(days - 1, -1, -1)
    ]
    return ok({"siteId": site_id, "period": period, "days": days, "daily": daily})


ROUTES: RouteTable = [
    ("/api/sites/{siteId}/quota", {"GET": quota_get}),
    ("/api/sites/{siteId}/quota/history", {"GET": quota_history}),
]
