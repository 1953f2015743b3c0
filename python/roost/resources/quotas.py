"""``client.quotas``: a site's storage quota and its usage history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .._wire import api_path, as_bool, as_int, as_list, as_opt_int, as_opt_str, as_str, expect_object
from ._base import Resource
from ._common import expect_row, require_id

__all__ = ["QuotaHistoryDay", "QuotaPeriod", "QuotaSnapshot", "Quotas"]

QuotaPeriod = Literal["7d", "14d", "30d", "60d", "90d"]


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(slots=True)
class QuotaSnapshot:
    """Current storage use. ``limit_bytes`` is ``None`` (and ``unlimited`` true) on unlimited plans."""

    site_id: str
    tier: str = "free"
    used_bytes: int = 0
    pending_bytes: int = 0
    committed_bytes: int = 0
    limit_bytes: int | None = None
    fraction_used: float | None = None
    unlimited: bool = False
    last_alarm_level: int = 0
    last_alarm_at: str | None = None
    last_reconciled_at: str | None = None
    alarms: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_payload(cls, data: Any, where: str = "quota", *, site_id: str = "") -> QuotaSnapshot:
        row = expect_row(data, where)
        return cls(
            site_id=as_str(row.get("siteId")) or site_id,
            tier=as_str(row.get("tier")) or "free",
            used_bytes=as_int(row.get("usedBytes")),
            pending_bytes=as_int(row.get("pendingBytes")),
            committed_bytes=as_int(row.get("committedBytes")),
            limit_bytes=as_opt_int(row.get("limitBytes")),
            fraction_used=_opt_float(row.get("fractionUsed")),
            unlimited=as_bool(row.get("unlimited")),
            last_alarm_level=as_int(row.get("lastAlarmLevel")),
            last_alarm_at=as_opt_str(row.get("lastAlarmAt")),
            last_reconciled_at=as_opt_str(row.get("lastReconciledAt")),
            alarms=[item for item in as_list(row.get("alarms")) if isinstance(item, dict)],
        )


@dataclass(slots=True)
class QuotaHistoryDay:
    """One UTC day of ``quotas.history()``'s ``daily`` list (use :meth:`from_payload` on its rows)."""

    date: str
    storage_bytes_avg: int | None = None
    class_a_ops: int = 0
    class_b_ops: int = 0
    egress_bytes: int = 0

    @classmethod
    def from_payload(cls, data: Any, where: str = "quota history day") -> QuotaHistoryDay:
        row = expect_row(data, where)
        return cls(
            date=as_str(row.get("date")),
            storage_bytes_avg=as_opt_int(row.get("storageBytesAvg")),
            class_a_ops=as_int(row.get("classAOps")),
            class_b_ops=as_int(row.get("classBOps")),
            egress_bytes=as_int(row.get("egressBytes")),
        )


class Quotas(Resource):
    """``client.quotas``."""

    async def current(self, site_id: str) -> QuotaSnapshot:
        path = api_path("api", "sites", require_id(site_id, "site_id"), "quota")
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        return QuotaSnapshot.from_payload(data, where, site_id=site_id)

    async def history(self, site_id: str, period: QuotaPeriod | str = "30d") -> dict[str, Any]:
        """Daily usage over ``period`` (``7d`` / ``14d`` / ``30d`` / ``60d`` / ``90d``), raw:
        ``{siteId, period, days, daily: [{date, storageBytesAvg, classAOps, classBOps, egressBytes}]}``."""
        path = api_path("api", "sites", require_id(site_id, "site_id"), "quota", "history")
        response = await self._http.request(path, query={"period": require_id(period, "period")})
        return expect_object(response.data, f"GET {path}")
