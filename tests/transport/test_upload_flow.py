"""The upload stage's gate on the push fakes: latency grows the fan-out, slow links shrink bytes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from roost._push import upload
from roost._push.engine import push_directory
from roost._push.types import PushOptions
from roost.chunker import CHUNK_SIZE_BYTES

from ..push.fakes import SITE, FakeApi, rebuild, write_tree

pytestmark = pytest.mark.anyio


async def test_a_high_latency_link_gets_more_small_puts_in_flight(tmp_path: Path) -> None:
    """100 ms per PUT: 64 in flight would cap small files at 640 PUT/s; the fan-out grows to 256."""
    files = {f"f{i:04}.txt": f"tiny file {i}".encode() for i in range(1200)}
    write_tree(tmp_path, files)
    api = FakeApi(storage_delay_s=0.1)
    async with api.client() as http:
        result = await push_directory(http, tmp_path, "rst_latency", PushOptions(site_id=SITE, cache=False))
    assert result.stats.uploaded_chunks == 1200
    assert 64 < api.peak_puts_in_flight <= 256
    assert rebuild(api, result.version_id) == files


async def test_a_fast_link_keeps_the_base_fan_out(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i:04}.txt": f"tiny file {i}".encode() for i in range(300)})
    api = FakeApi()
    async with api.client() as http:
        await push_directory(
            http, tmp_path, "rst_fast", PushOptions(site_id=SITE, cache=False, concurrency=2)
        )
    assert api.peak_puts_in_flight <= 16


async def test_slow_large_uploads_shrink_the_bytes_in_flight_to_one_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 4 MiB PUT counts as slow here (the threshold is raised instead of waiting 16 s each)."""
    monkeypatch.setattr(upload, "SLOW_CONNECTION_BPS", 10.0**12)
    write_tree(tmp_path, {f"big{i:02}.bin": bytes([i]) * CHUNK_SIZE_BYTES for i in range(12)})
    api = FakeApi(storage_delay_s=0.05)
    seen_in_flight: list[int] = []

    async def watch(request: httpx.Request, chunk_hash: str, attempt: int) -> httpx.Response | None:
        seen_in_flight.append(api.puts_in_flight)
        return None

    api.storage_fault = watch
    async with api.client() as http:
        result = await push_directory(
            http, tmp_path, "rst_window", PushOptions(site_id=SITE, cache=False, concurrency=4)
        )
    assert result.stats.uploaded_chunks == 12
    assert max(seen_in_flight[:4]) == 4  # the first round used the whole window
    assert seen_in_flight[-4:] == [1, 1, 1, 1]  # then halved per round down to one chunk


async def test_fast_large_uploads_keep_the_whole_window(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"big{i:02}.bin": bytes([i]) * CHUNK_SIZE_BYTES for i in range(12)})
    api = FakeApi(storage_delay_s=0.05)  # 4 MiB in 50 ms: 80 MB/s per connection
    async with api.client() as http:
        await push_directory(
            http, tmp_path, "rst_fast_big", PushOptions(site_id=SITE, cache=False, concurrency=4)
        )
    assert api.peak_puts_in_flight == 4
