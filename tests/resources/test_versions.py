"""client.versions: version refs on the wire (percent-encoded), paging, patch, files, diff."""

from __future__ import annotations

from typing import Any

import pytest

from roost import MalformedResponseError, Roost, RoostApiError

from .conftest import MockApi

pytestmark = pytest.mark.anyio

RID = "rst_abcdefgh"
VID = "e" * 64
BASE = f"/api/roosts/{RID}/versions"


def version_row(n: int) -> dict[str, Any]:
    return {
        "versionId": f"{n:064x}",
        "versionNumber": n,
        "description": None,
        "versionUrl": f"https://r2/{n}",
        "createdAt": "2026-04-22T15:30:00.000Z",
        "createdBy": "uid-1",
        "totalSize": 10,
        "totalFiles": 1,
        "parentVersionId": None,
    }


async def test_list_pages_through_all_token_spellings(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET", BASE, {"versions": [version_row(5), version_row(4)], "nextPageToken": "t1", "nextCursor": "t1"}
    )
    api.reply("GET", BASE, {"versions": [version_row(3)], "next_page_token": "t2"})
    api.reply("GET", BASE, {"versions": [version_row(2)], "nextCursor": "t3"})
    api.reply(
        "GET",
        BASE,
        {"versions": [version_row(1)], "next_page_token": "", "nextPageToken": "", "nextCursor": None},
    )

    rows = [v async for v in client.versions.list(RID, site_id="site-1")]

    assert [v["versionNumber"] for v in rows] == [5, 4, 3, 2, 1]
    assert rows[0]["versionId"] == f"{5:064x}"
    assert [c.query.get("page_token") for c in api.calls] == [None, "t1", "t2", "t3"]
    assert all(c.query["page_size"] == "20" and c.query["siteId"] == "site-1" for c in api.calls)


async def test_list_page_and_start_cursor(api: MockApi, client: Roost) -> None:
    api.reply("GET", BASE, {"versions": [version_row(2)], "nextPageToken": "t9"})
    rows, cursor = await client.versions.list_page(RID, site_id="site-1", page_size=1, cursor="t8")
    assert [r["versionNumber"] for r in rows] == [2]
    assert cursor == "t9"
    assert api.last.query == {"siteId": "site-1", "page_size": "1", "page_token": "t8"}

    api.reply("GET", BASE, {"versions": []})
    assert [v async for v in client.versions.list(RID, site_id="site-1", page_token="t5")] == []
    assert api.last.query["page_token"] == "t5"


@pytest.mark.parametrize(
    ("ref", "segment"),
    [
        (3, "3"),
        ("#3", "%233"),
        ("v3", "v3"),
        ("V3", "V3"),
        ("current", "current"),
        ("previous", "previous"),
        ("first", "first"),
        (VID, VID),
        ("vrs_" + VID, "vrs_" + VID),
        (" current ", "current"),
        ("x?y", "x%3Fy"),
    ],
)
async def test_get_encodes_version_ref(api: MockApi, client: Roost, ref: int | str, segment: str) -> None:
    api.reply("GET", f"{BASE}/{segment}", {"versionId": VID, "versionNumber": 3, "version": {"files": []}})
    v = await client.versions.get(RID, ref, site_id="site-1")
    assert v["versionId"] == VID
    assert api.last.query == {"siteId": "site-1"}


@pytest.mark.parametrize("bad", [True, 0, -3, "", "  ", 1.5, None])
async def test_bad_version_refs_are_refused_locally(api: MockApi, client: Roost, bad: Any) -> None:
    with pytest.raises(ValueError, match="version_ref"):
        await client.versions.get(RID, bad, site_id="site-1")
    with pytest.raises(ValueError, match="version_ref"):
        async for _ in client.versions.files(RID, bad, site_id="site-1"):
            pass
    assert api.calls == []


async def test_get_errors(api: MockApi, client: Roost) -> None:
    api.problem("GET", f"{BASE}/9", 404, "version_not_found")
    with pytest.raises(RoostApiError) as info:
        await client.versions.get(RID, 9, site_id="site-1")
    assert info.value.code == "version_not_found"

    api.problem("GET", f"{BASE}/bogus", 400, "version_ref_malformed")
    with pytest.raises(RoostApiError) as info:
        await client.versions.get(RID, "bogus", site_id="site-1")
    assert info.value.code == "version_ref_malformed"


async def test_get_malformed(api: MockApi, client: Roost) -> None:
    api.reply("GET", f"{BASE}/3", ["not", "an", "object"])
    with pytest.raises(MalformedResponseError, match=f"{BASE}/3"):
        await client.versions.get(RID, 3, site_id="site-1")


async def test_patch_sends_exactly_site_and_description(api: MockApi, client: Roost) -> None:
    api.reply("PATCH", f"{BASE}/{VID}", {"versionId": VID, "description": "updated release notes"})
    out = await client.versions.patch(RID, VID, site_id="site-1", description="updated release notes")
    assert api.last.body == {"siteId": "site-1", "description": "updated release notes"}
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-")
    assert out["description"] == "updated release notes"

    api.reply("PATCH", f"{BASE}/%233", {"versionId": VID, "description": None})
    await client.versions.patch(RID, "#3", site_id="site-1", description=None, idempotency_key="k-1")
    assert api.last.body == {"siteId": "site-1", "description": None}
    assert api.last.idempotency_key == "k-1"


async def test_patch_immutable_error(api: MockApi, client: Roost) -> None:
    api.problem("PATCH", f"{BASE}/3", 400, "version_content_immutable")
    with pytest.raises(RoostApiError, match="version_content_immutable"):
        await client.versions.patch(RID, 3, site_id="site-1", description="x")


async def test_files_pages_with_offset_tokens_and_prefix(api: MockApi, client: Roost) -> None:
    def f(path: str) -> dict[str, Any]:
        return {"path": path, "size": 3, "chunks": [{"hash": "a" * 64, "size": 3}]}

    api.reply(
        "GET",
        f"{BASE}/3/files",
        {
            "files": [f("assets/a"), f("assets/b")],
            "items": [],
            "total": 3,
            "next_page_token": "2",
            "nextPageToken": "2",
        },
    )
    api.reply("GET", f"{BASE}/3/files", {"items": [f("assets/c")], "total": 3, "next_page_token": ""})

    rows = [x async for x in client.versions.files(RID, 3, site_id="site-1", prefix="assets/", page_size=2)]

    assert [x["path"] for x in rows] == ["assets/a", "assets/b", "assets/c"]
    assert [c["hash"] for c in rows[0]["chunks"]] == ["a" * 64]
    assert api.calls[0].query == {"siteId": "site-1", "page_size": "2", "prefix": "assets/"}
    assert api.calls[1].query == {
        "siteId": "site-1",
        "page_size": "2",
        "prefix": "assets/",
        "page_token": "2",
    }


async def test_files_default_page_size(api: MockApi, client: Roost) -> None:
    api.reply("GET", f"{BASE}/current/files", {"files": []})
    assert [x async for x in client.versions.files(RID, "current", site_id="site-1")] == []
    assert api.last.query == {"siteId": "site-1", "page_size": "100"}


async def test_diff(api: MockApi, client: Roost) -> None:
    body = {
        "versionId": VID,
        "fromVersion": 2,
        "toVersion": 3,
        "against": "b" * 64,
        "roostId": RID,
        "siteId": "site-1",
        "summary": {
            "added": 1,
            "removed": 0,
            "changed": 0,
            "unchanged": 2,
            "hasChanges": True,
            "netBytesDelta": 5,
        },
        "added": [{"path": "new.txt", "size": 5, "reason": "added", "chunks": 1}],
        "removed": [],
        "modified": [],
    }
    api.reply("GET", f"{BASE}/current/diff", body)
    diff = await client.versions.diff(RID, "current", site_id="site-1", against="previous")
    assert api.last.query == {"siteId": "site-1", "against": "previous"}
    assert diff["summary"]["hasChanges"] is True

    api.reply("GET", f"{BASE}/%233/diff", body)
    await client.versions.diff(RID, site_id="site-1", to_version="#3", from_version=1)
    assert api.last.query == {"siteId": "site-1", "against": "1"}


async def test_diff_requires_both_sides(api: MockApi, client: Roost) -> None:
    with pytest.raises(ValueError, match="version_ref and against"):
        await client.versions.diff(RID, "current", site_id="site-1")
    with pytest.raises(ValueError, match="version_ref and against"):
        await client.versions.diff(RID, site_id="site-1", against="previous")
    with pytest.raises(ValueError, match="against"):
        await client.versions.diff(RID, "current", site_id="site-1", against="")
    assert api.calls == []


async def test_list_malformed_rows(api: MockApi, client: Roost) -> None:
    api.reply("GET", BASE, {"versions": ["nope"]})
    with pytest.raises(MalformedResponseError, match="versions"):
        async for _ in client.versions.list(RID, site_id="site-1"):
            pass
