"""Dot segments are percent-encoded, so a ref of ``.`` or ``..`` cannot reach another route."""

from __future__ import annotations

import httpx
import pytest

from roost import Roost
from roost._wire import api_path

from .conftest import API_URL, TOKEN

pytestmark = pytest.mark.anyio


def test_api_path_encodes_dot_segments_only_when_whole() -> None:
    assert api_path("api", ".", "..", "x") == "/api/%2E/%2E%2E/x"
    assert api_path("a.b", "...", "v1.2") == "/a.b/.../v1.2"
    assert api_path("a/..") == "/a%2F.."


@pytest.mark.parametrize(("ref", "encoded"), [("..", "%2E%2E"), (".", "%2E")])
async def test_dot_refs_travel_encoded_on_the_wire(ref: str, encoded: str) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(
            200, json={"versionId": "v", "roostId": "rst_abc", "siteId": "site-1", "name": "n"}
        )

    async with Roost(token=TOKEN, api_url=API_URL, transport=httpx.MockTransport(handler)) as client:
        await client.versions.get("rst_abc", ref, site_id="site-1")
        await client.versions.diff("rst_abc", ref, site_id="site-1", against=ref)
        await client.roosts.get(ref, site_id="site-1")
    paths = [request.url.raw_path.decode("ascii").split("?", 1)[0] for request in sent]
    assert paths == [
        f"/api/roosts/rst_abc/versions/{encoded}",
        f"/api/roosts/rst_abc/versions/{encoded}/diff",
        f"/api/roosts/{encoded}",
    ]
    assert sent[1].url.params["against"] == ref
