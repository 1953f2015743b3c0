"""``client.webhooks``: signed event deliveries to your HTTPS endpoint.

Every route is site-scoped through the ``siteId`` query parameter. Verify deliveries with
:func:`roost.verify_signature` on the raw request body.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._wire import api_path, as_bool, as_int, as_opt_str, as_str, as_str_list, drop_none, expect_object
from ._base import Resource
from ._common import expect_row, require_id, require_row_id, str_list_arg, typed_rows_of

__all__ = ["WebhookSubscription", "Webhooks"]


@dataclass(slots=True)
class WebhookSubscription:
    """A subscription as listed by ``webhooks.list()`` (never carries the signing secret)."""

    id: str
    url: str
    events: list[str] = field(default_factory=list)
    description: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    paused: bool = False
    last_delivery_at: str | None = None
    last_delivery_status: int | str | None = None
    failure_count: int = 0

    @classmethod
    def from_payload(cls, data: Any, where: str = "webhook") -> WebhookSubscription:
        row = expect_row(data, where)
        status = row.get("lastDeliveryStatus")
        return cls(
            id=require_row_id(row, where, "id"),
            url=as_str(row.get("url")),
            events=as_str_list(row.get("events")),
            description=as_opt_str(row.get("description")),
            created_at=as_opt_str(row.get("createdAt")),
            updated_at=as_opt_str(row.get("updatedAt")),
            paused=as_bool(row.get("paused")),
            last_delivery_at=as_opt_str(row.get("lastDeliveryAt")),
            last_delivery_status=status
            if isinstance(status, (int, str)) and not isinstance(status, bool)
            else None,
            failure_count=as_int(row.get("failureCount")),
        )


class Webhooks(Resource):
    """``client.webhooks``."""

    def _path(self, webhook_id: str, *rest: str) -> str:
        return api_path("api", "webhooks", require_id(webhook_id, "webhook_id"), *rest)

    async def subscribe(
        self, site_id: str, url: str, events: Sequence[str], description: str | None = None
    ) -> dict[str, Any]:
        """Create a subscription. The raw body carries ``signingSecret`` (returned only here)."""
        body = drop_none(
            {
                "url": require_id(url, "url"),
                "events": str_list_arg(events, "events"),
                "description": description,
            }
        )
        response = await self._http.request(
            "/api/webhooks", method="POST", query={"siteId": require_id(site_id, "site_id")}, body=body
        )
        return expect_object(response.data, "POST /api/webhooks")

    async def list(self, site_id: str, *, page_size: int | None = None) -> builtins.list[WebhookSubscription]:
        """Every live subscription of the site (pages are followed, so none is silently left out)."""
        query = {"siteId": require_id(site_id, "site_id"), "page_size": page_size}
        pages = self._pages(
            "/api/webhooks", query, typed_rows_of(("webhooks",), WebhookSubscription.from_payload)
        )
        return [row async for row in pages.rows()]

    async def get(self, webhook_id: str, site_id: str) -> dict[str, Any]:
        path = self._path(webhook_id)
        response = await self._http.request(path, query={"siteId": require_id(site_id, "site_id")})
        return expect_object(response.data, f"GET {path}")

    async def update(
        self,
        webhook_id: str,
        site_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        paused: bool | None = None,
    ) -> dict[str, Any]:
        """Change some of ``url`` / ``events`` / ``description`` (``""`` clears it) / ``paused``."""
        path = self._path(webhook_id)
        body = drop_none(
            {
                "url": url,
                "events": None if events is None else str_list_arg(events, "events"),
                "description": description,
                "paused": paused,
            }
        )
        if not body:
            raise ValueError("webhooks.update: give at least one of url, events, description, paused")
        response = await self._http.request(
            path, method="PATCH", query={"siteId": require_id(site_id, "site_id")}, body=body
        )
        return expect_object(response.data, f"PATCH {path}")

    async def remove(self, webhook_id: str, site_id: str) -> None:
        """Soft-delete the subscription (repeat calls succeed)."""
        path = self._path(webhook_id)
        await self._http.request(path, method="DELETE", query={"siteId": require_id(site_id, "site_id")})

    async def rotate_secret(self, webhook_id: str, site_id: str) -> dict[str, Any]:
        """New ``signingSecret``; the previous one stays valid for ``gracePeriodHours`` (24)."""
        path = self._path(webhook_id, "rotate-secret")
        response = await self._http.request(
            path, method="POST", query={"siteId": require_id(site_id, "site_id")}, body={}
        )
        return expect_object(response.data, f"POST {path}")

    async def deliveries(
        self, webhook_id: str, site_id: str, *, page_size: int | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """One page of delivery history: the raw ``{deliveries, next_page_token, ...}`` body."""
        path = self._path(webhook_id, "deliveries")
        response = await self._http.request(
            path,
            query={
                "siteId": require_id(site_id, "site_id"),
                "page_size": page_size,
                "page_token": page_token,
            },
        )
        return expect_object(response.data, f"GET {path}")

    async def delivery(self, webhook_id: str, delivery_id: str, site_id: str) -> dict[str, Any]:
        """One delivery with its ``request`` and ``response``."""
        path = self._path(webhook_id, "deliveries", require_id(delivery_id, "delivery_id"))
        response = await self._http.request(path, query={"siteId": require_id(site_id, "site_id")})
        return expect_object(response.data, f"GET {path}")

    async def retry_delivery(self, webhook_id: str, delivery_id: str, site_id: str) -> dict[str, Any]:
        """Queue a re-send of a delivery, signed with the current secret."""
        path = self._path(webhook_id, "deliveries", require_id(delivery_id, "delivery_id"), "retry")
        response = await self._http.request(
            path, method="POST", query={"siteId": require_id(site_id, "site_id")}, body={}
        )
        return expect_object(response.data, f"POST {path}")

    async def probe(
        self,
        site_id: str,
        event: str,
        *,
        url: str,
        payload: Mapping[str, Any] | None = None,
        signing_secret: str | None = None,
    ) -> dict[str, Any]:
        """Fire one signed test delivery at ``url`` (nothing is stored) and report what happened."""
        body = drop_none(
            {
                "url": require_id(url, "url"),
                "event": require_id(event, "event"),
                "payload": None if payload is None else dict(payload),
                "signingSecret": signing_secret,
            }
        )
        response = await self._http.request(
            "/api/webhooks/probe", method="POST", query={"siteId": require_id(site_id, "site_id")}, body=body
        )
        return expect_object(response.data, "POST /api/webhooks/probe")
