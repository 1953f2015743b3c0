"""client.webhooks: siteId in the query, typed list, deliveries, probe."""

from __future__ import annotations

from typing import Any

import pytest

from roost import MalformedResponseError, Roost, RoostApiError, WebhookSubscription

from .conftest import MockApi

pytestmark = pytest.mark.anyio

WH = "wh_0123456789abcdef01"


def sub(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"wh_{n:018x}",
        "url": "https://example.com/hooks/roost",
        "events": ["version.published"],
        "createdAt": "2026-04-22T15:30:00.000Z",
        "updatedAt": "2026-04-22T15:30:00.000Z",
        "paused": False,
        "lastDeliveryAt": None,
        "lastDeliveryStatus": None,
        "failureCount": 0,
        **extra,
    }


async def test_subscribe(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        "/api/webhooks",
        {
            "id": WH,
            "siteId": "site-1",
            "url": "https://example.com/hooks/roost",
            "events": ["version.published", "deployment.failed"],
            "paused": False,
            "createdAt": "x",
            "signingSecret": "whsec_" + "a" * 64,
        },
        status=201,
    )
    hook = await client.webhooks.subscribe(
        site_id="site-1",
        url="https://example.com/hooks/roost",
        events=["version.published", "deployment.failed"],
    )
    assert api.last.query == {"siteId": "site-1"}
    assert api.last.body == {
        "url": "https://example.com/hooks/roost",
        "events": ["version.published", "deployment.failed"],
    }
    assert hook["signingSecret"].startswith("whsec_")

    api.reply("POST", "/api/webhooks", {"id": WH})
    await client.webhooks.subscribe("site-1", "https://e.com/h", ["quota.warning"], "ops pager")
    assert api.last.body == {
        "url": "https://e.com/h",
        "events": ["quota.warning"],
        "description": "ops pager",
    }


async def test_list_is_typed_and_follows_pages(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET", "/api/webhooks", {"webhooks": [sub(1, description="d"), sub(2)], "nextPageToken": sub(2)["id"]}
    )
    api.reply(
        "GET",
        "/api/webhooks",
        {"webhooks": [sub(3, paused=True, failureCount=2, lastDeliveryStatus=500)], "next_page_token": ""},
    )
    hooks = await client.webhooks.list(site_id="site-1")
    assert all(isinstance(h, WebhookSubscription) for h in hooks)
    assert [h.id for h in hooks] == [sub(1)["id"], sub(2)["id"], sub(3)["id"]]
    assert hooks[0].description == "d"
    assert hooks[1].description is None
    assert hooks[2].paused is True
    assert hooks[2].failure_count == 2
    assert hooks[2].last_delivery_status == 500
    assert hooks[0].events == ["version.published"]
    assert api.calls[0].query == {"siteId": "site-1"}
    assert api.calls[1].query == {"siteId": "site-1", "page_token": sub(2)["id"]}


async def test_list_malformed(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/webhooks", {"webhooks": [{"url": "https://no.id"}]})
    with pytest.raises(MalformedResponseError, match="'id'"):
        await client.webhooks.list("site-1")


async def test_get_update_rotate_remove(api: MockApi, client: Roost) -> None:
    api.reply("GET", f"/api/webhooks/{WH}", sub(1))
    assert (await client.webhooks.get(WH, "site-1"))["url"] == "https://example.com/hooks/roost"
    assert api.last.query == {"siteId": "site-1"}

    api.reply("PATCH", f"/api/webhooks/{WH}", sub(1, events=["version.published"]))
    await client.webhooks.update(WH, site_id="site-1", events=["version.published"])
    assert api.last.query == {"siteId": "site-1"}
    assert api.last.body == {"events": ["version.published"]}

    api.reply("PATCH", f"/api/webhooks/{WH}", sub(1))
    await client.webhooks.update(WH, "site-1", url="https://e.com/x", description="", paused=True)
    assert api.last.body == {"url": "https://e.com/x", "description": "", "paused": True}

    api.reply(
        "POST",
        f"/api/webhooks/{WH}/rotate-secret",
        {
            "id": WH,
            "siteId": "site-1",
            "signingSecret": "whsec_b",
            "previousSecretValidUntil": "t",
            "gracePeriodHours": 24,
            "rotatedAt": "t",
        },
    )
    rotated = await client.webhooks.rotate_secret(WH, site_id="site-1")
    assert rotated["gracePeriodHours"] == 24
    assert api.last.body == {}
    assert api.last.query == {"siteId": "site-1"}

    api.reply("DELETE", f"/api/webhooks/{WH}", {"id": WH, "softDeleted": True})
    await client.webhooks.remove(WH, site_id="site-1")
    assert api.last.query == {"siteId": "site-1"}


async def test_update_needs_a_field(api: MockApi, client: Roost) -> None:
    with pytest.raises(ValueError, match="at least one"):
        await client.webhooks.update(WH, "site-1")
    assert api.calls == []


async def test_deliveries(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        f"/api/webhooks/{WH}/deliveries",
        {
            "deliveries": [{"id": "dlv.1", "event": "version.published", "state": "failed", "attempt": 3}],
            "next_page_token": "",
            "nextPageToken": "",
        },
    )
    deliveries = await client.webhooks.deliveries(WH, "site-1")
    assert deliveries["deliveries"][0]["id"] == "dlv.1"
    assert api.last.query == {"siteId": "site-1"}

    api.reply("GET", f"/api/webhooks/{WH}/deliveries", {"deliveries": []})
    await client.webhooks.deliveries(WH, "site-1", page_size=5, page_token="t")
    assert api.last.query == {"siteId": "site-1", "page_size": "5", "page_token": "t"}

    api.reply("GET", f"/api/webhooks/{WH}/deliveries/dlv.1", {"id": "dlv.1", "request": {"url": "u"}})
    first = await client.webhooks.delivery(WH, "dlv.1", "site-1")
    assert first["request"] == {"url": "u"}

    api.reply(
        "POST",
        f"/api/webhooks/{WH}/deliveries/dlv.1/retry",
        {
            "id": "dlv.1__retry_abcd1234",
            "webhookId": WH,
            "retryOf": "dlv.1",
            "state": "pending",
        },
        status=202,
    )
    retried = await client.webhooks.retry_delivery(WH, "dlv.1", "site-1")
    assert retried["state"] == "pending"
    assert api.last.body == {}
    assert api.last.query == {"siteId": "site-1"}


async def test_probe(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        "/api/webhooks/probe",
        {
            "status": 200,
            "durationMs": 12,
            "deliveryId": "d",
            "event": "version.published",
            "requestBody": "{}",
            "signature": "t=1,v1=ab",
            "signingSecret": "whsec_x",
        },
    )
    out = await client.webhooks.probe(
        "site-1",
        "version.published",
        url="https://example.com/hooks/roost",
        payload={"roostId": "rst_abc", "versionId": "vrs_xyz", "versionNumber": 7},
    )
    assert api.last.query == {"siteId": "site-1"}
    assert api.last.body == {
        "url": "https://example.com/hooks/roost",
        "event": "version.published",
        "payload": {"roostId": "rst_abc", "versionId": "vrs_xyz", "versionNumber": 7},
    }
    assert out["status"] == 200

    api.reply("POST", "/api/webhooks/probe", {"status": None, "networkError": "refused"})
    await client.webhooks.probe("site-1", "quota.warning", url="https://e.com/h", signing_secret="s" * 32)
    assert api.last.body == {"url": "https://e.com/h", "event": "quota.warning", "signingSecret": "s" * 32}


async def test_url_rejected_problem(api: MockApi, client: Roost) -> None:
    api.problem("POST", "/api/webhooks", 400, "private_ip", errors={"body.url": ["private"]})
    with pytest.raises(RoostApiError) as info:
        await client.webhooks.subscribe("site-1", "https://10.0.0.1/h", ["version.published"])
    assert info.value.code == "private_ip"
