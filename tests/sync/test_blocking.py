"""The blocking client against the emulator and MockTransport: calls, iterators, errors, loops."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import pytest

import roost.sync
from roost import NotFoundError, PushOptions, RoostApiError, RoostSummary
from roost.testing import EmulatorServer

from .conftest import make_tree

API = "https://api.test"
TOKEN = "owk_test_blocking"


def test_calls_block_and_return_the_async_results(server: EmulatorServer, tmp_path: Path) -> None:
    root = make_tree(tmp_path / "build", files=3, size=2000)
    with roost.sync.Roost(token=server.token, api_url=server.url) as client:
        assert client.account.whoami().email
        result = client.roosts.push(root, "rst_blocking", PushOptions(site_id=server.site_id, name="b"))
        assert result.version_number == 1
        roosts = list(client.roosts.list(site_id=server.site_id))
        assert [r.roost_id for r in roosts] == ["rst_blocking"]
        assert isinstance(roosts[0], RoostSummary)
        files = list(client.versions.files("rst_blocking", 1, site_id=server.site_id))
        assert sorted(f["path"] for f in files) == ["f00.bin", "f01.bin", "f02.bin"]
        with pytest.raises(NotFoundError):
            client.versions.get("rst_blocking", 7, site_id=server.site_id)


def test_a_push_from_inside_a_running_event_loop(server: EmulatorServer, tmp_path: Path) -> None:
    """TouchDesigner's situation: the calling thread already runs a loop, so asyncio.run raises."""
    root = make_tree(tmp_path / "build", files=2, size=1000)

    async def touchdesigner_script() -> int:
        probe = asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            asyncio.run(probe)  # what a plain asyncio client would hit here
        probe.close()
        with roost.sync.Roost(token=server.token, api_url=server.url) as client:
            result = client.roosts.push(root, "rst_loop", PushOptions(site_id=server.site_id, name="td"))
            return result.version_number

    assert asyncio.run(touchdesigner_script()) == 1


def paged_transport(pages: list[list[dict[str, str]]], log: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        log.append(request)
        index = int(request.url.params.get("page_token") or 0)
        token = str(index + 1) if index + 1 < len(pages) else ""
        return httpx.Response(200, json={"versions": pages[index], "nextPageToken": token})

    return httpx.MockTransport(handler)


def test_async_generators_become_iterators_that_follow_pages() -> None:
    log: list[httpx.Request] = []
    pages = [[{"versionId": "a"}, {"versionId": "b"}], [{"versionId": "c"}]]
    with roost.sync.Roost(token=TOKEN, api_url=API, transport=paged_transport(pages, log)) as client:
        rows = client.versions.list("rst_x", site_id="site-1")
        assert log == []  # lazy, like the async generator
        assert [row["versionId"] for row in rows] == ["a", "b", "c"]
    assert len(log) == 2


def test_leaving_an_iterator_early_stops_paging() -> None:
    log: list[httpx.Request] = []
    pages = [[{"versionId": "a"}, {"versionId": "b"}], [{"versionId": "c"}]]
    with roost.sync.Roost(token=TOKEN, api_url=API, transport=paged_transport(pages, log)) as client:
        for row in client.versions.list("rst_x", site_id="site-1"):
            assert row["versionId"] == "a"
            break
        assert len(log) == 1
        # The client is still usable after an abandoned iterator.
        assert client.versions.list_page("rst_x", site_id="site-1")[1] == "1"


def test_argument_errors_surface_where_the_async_ones_do() -> None:
    with roost.sync.Roost(token=TOKEN, api_url=API, transport=paged_transport([[]], [])) as client:
        with pytest.raises(ValueError, match="site_id"):
            client.roosts.get("rst_x", site_id="")
        rows = client.versions.list("rst_x", site_id="")
        with pytest.raises(ValueError, match="site_id"):
            next(rows)
        with pytest.raises(ValueError, match="message"):
            client.chat.send("conv_x", "")


def test_chat_stream_is_an_iterator_and_its_error_frame_raises() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = b'0:"hel"\n0:"lo"\n3:"cortex response timed out"\n'
        return httpx.Response(200, content=body, headers={"content-type": "text/plain"})

    got: list[str] = []

    def consume(client: roost.sync.Roost) -> None:
        for delta in client.chat.send("conv_x", "hi"):
            got.append(delta)

    client = roost.sync.Roost(token=TOKEN, api_url=API, transport=httpx.MockTransport(handler))
    with client, pytest.raises(RuntimeError) as caught:
        consume(client)
    assert got == ["hel", "lo"]
    assert isinstance(caught.value, RoostApiError)


def test_environment_and_missing_token(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=json.dumps({"current": "2026-04-22"}))

    monkeypatch.setenv("OWLETTE_TOKEN", "owk_test_env")
    monkeypatch.setenv("OWLETTE_API_URL", "https://env.test")
    with roost.sync.Roost(transport=httpx.MockTransport(handler)) as client:
        client.account.version()
    assert seen[0].headers["authorization"] == "Bearer owk_test_env"
    assert seen[0].url.host == "env.test"

    monkeypatch.delenv("OWLETTE_TOKEN")
    threads = threading.active_count()
    with pytest.raises(ValueError, match="OWLETTE_TOKEN"):
        roost.sync.Roost()
    assert threading.active_count() == threads  # refused before the helper thread started


def test_close_is_idempotent_and_later_calls_say_closed() -> None:
    client = roost.sync.Roost(token=TOKEN, api_url=API, transport=paged_transport([[]], []))
    roosts = client.roosts
    threads = threading.active_count()
    client.close()
    client.close()
    assert threading.active_count() == threads - 1
    with pytest.raises(RuntimeError, match="closed"):
        roosts.list_page(site_id="site-1")
    assert "owk_test" not in repr(client)
