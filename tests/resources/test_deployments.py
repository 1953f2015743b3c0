"""client.deployments: rollout listing (rollouts/items), paging and detail."""

from __future__ import annotations

from typing import Any

import pytest

from roost import MalformedResponseError, Roost, RoostApiError

from .conftest import MockApi

pytestmark = pytest.mark.anyio

RID = "rst_abcdefgh"
BASE = f"/api/roosts/{RID}/deployments"


def rollout(n: int) -> dict[str, Any]:
    return {
        "rolloutId": f"{n:064x}",
        "versionId": f"{n:064x}",
        "stage": "canary",
        "canaryCount": 1,
        "fleetCount": 0,
    }


async def test_list_reads_rollouts_then_items_across_pages(api: MockApi, client: Roost) -> None:
    api.reply("GET", BASE, {"rollouts": [rollout(3)], "items": [rollout(3)], "nextPageToken": "p2"})
    api.reply("GET", BASE, {"items": [rollout(2)], "next_page_token": "p3"})
    api.reply("GET", BASE, {"rollouts": [rollout(1)], "next_page_token": "", "nextPageToken": ""})

    rows = [d async for d in client.deployments.list(RID, site_id="site-1")]

    assert [d["rolloutId"] for d in rows] == [f"{n:064x}" for n in (3, 2, 1)]
    assert [c.query.get("page_token") for c in api.calls] == [None, "p2", "p3"]
    assert api.calls[0].query == {"siteId": "site-1", "page_size": "20"}


async def test_list_page(api: MockApi, client: Roost) -> None:
    api.reply("GET", BASE, {"rollouts": [rollout(1)], "next_page_token": "x"})
    rows, cursor = await client.deployments.list_page(RID, site_id="site-1", page_size=1, page_token="w")
    assert len(rows) == 1
    assert cursor == "x"
    assert api.last.query == {"siteId": "site-1", "page_size": "1", "page_token": "w"}


async def test_get_detail(api: MockApi, client: Roost) -> None:
    rid = "f" * 64
    api.reply(
        "GET",
        f"{BASE}/{rid}",
        {
            **rollout(15),
            "roostId": RID,
            "siteId": "site-1",
            "canary": ["m1"],
            "fleet": [],
            "canaryStatus": [
                {"machineId": "m1", "status": "pending", "reportedVersionId": None, "reportedAt": None}
            ],
            "fleetStatus": [],
        },
    )
    detail = await client.deployments.get(RID, rid, site_id="site-1")
    assert detail["canaryStatus"][0]["status"] == "pending"
    assert api.last.query == {"siteId": "site-1"}


async def test_get_not_found(api: MockApi, client: Roost) -> None:
    api.problem("GET", f"{BASE}/rollout_missing", 404, "not_found")
    with pytest.raises(RoostApiError) as info:
        await client.deployments.get(RID, "rollout_missing", site_id="site-1")
    assert info.value.status == 404


async def test_list_malformed(api: MockApi, client: Roost) -> None:
    api.reply("GET", BASE, {"rollouts": {"not": "a list"}})
    with pytest.raises(MalformedResponseError, match="rollouts"):
        await client.deployments.list_page(RID, site_id="site-1")
