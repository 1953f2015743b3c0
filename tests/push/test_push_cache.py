"""Push and the local hash cache: a re-push does not re-read unchanged files."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost import PushOptions, Roost, chunker
from roost.chunker._driver import recording

pytest.importorskip("uvicorn", reason="the emulator needs the server extra")
pytest.importorskip("starlette", reason="the emulator needs the server extra")
testing = pytest.importorskip("roost.testing")

pytestmark = pytest.mark.anyio

ROOST = "rst_push_cache"
OLD_NS = 1_600_000_000_000_000_000  # outside the racy window


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_tree(root: Path) -> None:
    (root / "d").mkdir()
    (root / "a.txt").write_bytes(b"alpha\n")
    (root / "d" / "b.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    for p in (root / "a.txt", root / "d" / "b.bin"):
        os.utime(p, ns=(OLD_NS, OLD_NS))


async def test_repush_reads_nothing_and_cache_false_reads_everything(tmp_path: Path) -> None:
    make_tree(tmp_path)
    with recording() as reports:
        async with testing.serve() as server, Roost(token=server.token, api_url=server.url) as client:
            first = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
            assert reports[-1].files_read == 2
            second = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
            assert reports[-1].files_read == 0
            assert second.stats == dataclasses.replace(first.stats, uploaded_chunks=0, uploaded_bytes=0)
            third = await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, cache=False)
            )
            assert reports[-1].files_read == 2
            assert third.stats.total_chunks == first.stats.total_chunks
            (tmp_path / "a.txt").write_bytes(b"ALPHA\n")  # same size, new mtime
            fourth = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
            assert reports[-1].files_read == 1
            assert fourth.stats.uploaded_chunks == 1


async def test_verify_cache_is_passed_to_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    seen: list[object] = []
    real = chunker._stream_tree

    async def spy(*args: object, **kwargs: object) -> AsyncIterator[object]:
        seen.append(kwargs.get("verify"))
        async for item in real(*args, **kwargs):  # type: ignore[arg-type]
            yield item

    with recording() as reports:
        async with testing.serve() as server, Roost(token=server.token, api_url=server.url) as client:
            await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
            from roost._push import engine

            monkeypatch.setattr(engine, "_stream_tree", spy)
            await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, verify_cache="fast")
            )
            assert reports[-1].files_read == 2  # the first push stored no content digests
            await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, verify_cache="fast")
            )
            assert reports[-1].files_read == 0
            await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
            assert reports[-1].files_read == 0
    assert seen == ["fast", "fast", "stat"]
