"""client.chunks: dedup check, signed URLs, mount, referrers paging."""

from __future__ import annotations

import pytest

from roost import MalformedResponseError, Roost, RoostApiError

from .conftest import MockApi

pytestmark = pytest.mark.anyio

H1 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
H2 = "3a6eb0790f39ac87c94f3856b2dd2c5d110e6811602261a9a923d3bb23adc8b7"


async def test_check_returns_missing(api: MockApi, client: Roost) -> None:
    api.reply("POST", "/api/chunks/check", {"missing": [H2]})
    missing = await client.chunks.check(site_id="site-1", hashes=[H1, H2])
    assert missing == [H2]
    assert api.last.body == {"siteId": "site-1", "hashes": [H1, H2]}
    assert api.last.idempotency_key is not None


async def test_check_accepts_positional_and_any_iterable(api: MockApi, client: Roost) -> None:
    api.reply("POST", "/api/chunks/check", {})
    assert await client.chunks.check("site-1", (h for h in [H1])) == []
    assert api.last.body == {"siteId": "site-1", "hashes": [H1]}


async def test_check_refuses_a_bare_string(api: MockApi, client: Roost) -> None:
    with pytest.raises(ValueError, match="hashes"):
        await client.chunks.check("site-1", H1)
    assert api.calls == []


async def test_check_validation_error(api: MockApi, client: Roost) -> None:
    api.problem("POST", "/api/chunks/check", 400, "validation_failed", errors={"hashes": ["bad"]})
    with pytest.raises(RoostApiError) as info:
        await client.chunks.check("site-1", ["sha256:nope"])
    assert info.value.problem["errors"] == {"hashes": ["bad"]}


async def test_upload_and_download_urls(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        "/api/chunks/upload-urls",
        {"urls": {H2: "https://r2/put"}, "expiresAt": "2026-01-01T00:00:00Z"},
    )
    payload = await client.chunks.upload_urls(site_id="site-1", hashes=[H2])
    assert payload["urls"] == {H2: "https://r2/put"}
    assert api.last.body == {"siteId": "site-1", "hashes": [H2]}

    api.reply("POST", "/api/chunks/download-urls", {"urls": {H1: "https://r2/get"}, "expiresAt": "x"})
    downloads = await client.chunks.download_urls(site_id="site-1", hashes=[H1])
    assert downloads["urls"][H1] == "https://r2/get"
    assert api.last.body == {"siteId": "site-1", "hashes": [H1]}


async def test_mount_sends_query_not_body(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        f"/api/chunks/{H1}/mount",
        {
            "digest": H1,
            "siteId": "site-1",
            "from": "rst_aaaaaaaa",
            "to": "rst_bbbbbbbb",
            "mounted": True,
            "zeroByte": True,
        },
        status=201,
    )
    out = await client.chunks.mount(H1, site_id="site-1", from_roost="rst_aaaaaaaa", to_roost="rst_bbbbbbbb")
    assert api.last.query == {"siteId": "site-1", "from": "rst_aaaaaaaa", "to": "rst_bbbbbbbb"}
    assert api.last.body is None
    assert api.last.idempotency_key is not None
    assert out["mounted"] is True


async def test_referrers_pages(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        f"/api/chunks/{H1}/referrers",
        {
            "digest": H1,
            "referrers": [{"roostId": "rst_a", "versionId": "v1"}],
            "nextPageToken": "r1",
        },
    )
    api.reply(
        "GET",
        f"/api/chunks/{H1}/referrers",
        {
            "items": [{"roostId": None, "source": "mount", "toRoostId": "rst_b", "versionId": None}],
            "next_page_token": "",
        },
    )
    refs = [r async for r in client.chunks.referrers(H1, site_id="site-1")]
    assert [r["roostId"] for r in refs] == ["rst_a", None]
    assert api.calls[0].query == {"siteId": "site-1", "page_size": "50"}
    assert api.calls[1].query == {"siteId": "site-1", "page_size": "50", "page_token": "r1"}


async def test_referrers_start_cursor_and_malformed(api: MockApi, client: Roost) -> None:
    api.reply("GET", f"/api/chunks/{H1}/referrers", {"referrers": [7]})
    with pytest.raises(MalformedResponseError, match="referrers"):
        async for _ in client.chunks.referrers(H1, site_id="site-1", cursor="c1", page_size=5):
            pass
    assert api.last.query == {"siteId": "site-1", "page_size": "5", "page_token": "c1"}


async def test_check_malformed_body(api: MockApi, client: Roost) -> None:
    api.reply("POST", "/api/chunks/check", content="<html>oops</html>", headers={"content-type": "text/html"})
    with pytest.raises(MalformedResponseError, match="/api/chunks/check"):
        await client.chunks.check("site-1", [H1])
