"""Pushes over slow storage links, against the emulator's bandwidth fault (issue 12 item 3).

Before stall timeouts, a default push at 0.5 MB/s failed: the 30 s timeout covered a whole
4 MiB body while eight bodies shared the link. The two ``slow`` tests take as long as the link
needs for their bytes (about 85 s and 105 s) and run in CI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roost import PushOptions, PushProgressEvent, Roost
from roost._push.types import PushProgressUpload
from roost._transport import TokenBucket, storage

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from roost.testing import EmulatorServer, start_server

pytestmark = pytest.mark.anyio

MB = 1_000_000


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    running = start_server()
    try:
        yield running
    finally:
        running.stop()


def random_tree(root: Path, total: int, files: int) -> int:
    root.mkdir()
    for i in range(files):
        (root / f"part{i:02}.bin").write_bytes(os.urandom(total // files))
    return total // files * files


async def push(server: EmulatorServer, tree: Path, **options: Any) -> tuple[Any, list[PushProgressUpload]]:
    uploads: list[PushProgressUpload] = []

    def record(event: PushProgressEvent) -> None:
        if isinstance(event, PushProgressUpload):
            uploads.append(event)

    async with Roost(token=server.token, api_url=server.url) as client:
        result = await client.roosts.push(
            tree, "rst_slowlink", PushOptions(site_id=server.site_id, on_progress=record, **options)
        )
    return result, uploads


def assert_stored_exactly(server: EmulatorServer, tree: Path) -> None:
    stored = [r for r in server.storage_requests if r.method == "PUT" and r.outcome == "stored"]
    assert sum(r.bytes_received for r in stored) == sum(p.stat().st_size for p in tree.iterdir())


@pytest.mark.slow
async def test_default_push_of_40_mb_completes_at_half_a_megabyte_per_second(
    server: EmulatorServer, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    size = random_tree(tree, 40 * MB, 10)
    server.set_faults("storage_bandwidth_mbps=0.5")
    result, uploads = await push(server, tree)
    assert result.stats.uploaded_bytes == size
    assert uploads[-1].bytes_uploaded == size
    assert [e.bytes_uploaded for e in uploads] == sorted(e.bytes_uploaded for e in uploads)
    # Progress while the first chunks were still on the wire, not only when they completed.
    assert uploads[0].uploaded == 0
    assert 0 < uploads[0].bytes_uploaded < size
    assert_stored_exactly(server, tree)


@pytest.mark.slow
async def test_default_push_of_10_mb_completes_at_a_tenth_of_a_megabyte_per_second(
    server: EmulatorServer, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    size = random_tree(tree, 10 * MB, 5)
    server.set_faults("storage_bandwidth_mbps=0.1")
    result, uploads = await push(server, tree)
    assert result.stats.uploaded_bytes == size
    assert uploads[-1].bytes_uploaded == size
    assert_stored_exactly(server, tree)


async def test_upload_progress_starts_before_the_first_chunk_is_stored(
    server: EmulatorServer, tmp_path: Path
) -> None:
    """At 1 MB/s the first 4 MiB chunk takes 4 s or more; an event must come while it moves.

    Loopback acknowledges megabytes before the throttled emulator reads them, so how many bytes
    the events report early is not asserted, only that they come, count up, and end exact.
    """
    tree = tmp_path / "tree"
    size = random_tree(tree, 6 * MB, 1)
    server.set_faults("storage_bandwidth_mbps=1")
    _, uploads = await push(server, tree)
    moving = [e for e in uploads if e.uploaded == 0]
    assert moving, f"no upload event before the first chunk was stored: {uploads}"
    assert moving[0].bytes_uploaded > 0
    assert [e.bytes_uploaded for e in uploads] == sorted(e.bytes_uploaded for e in uploads)
    assert uploads[-1] == PushProgressUpload(uploaded=2, total=2, bytes_uploaded=size, bytes_total=size)


async def test_bandwidth_limit_sends_every_byte_through_one_bucket_at_its_rate(
    server: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buckets: list[TokenBucket] = []

    class Recorded(TokenBucket):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            buckets.append(self)

    monkeypatch.setattr(storage, "TokenBucket", Recorded)
    tree = tmp_path / "tree"
    size = random_tree(tree, 2 * MB, 4)
    started = time.monotonic()
    result, _ = await push(server, tree, bandwidth_limit=4 * MB)
    elapsed = time.monotonic() - started
    assert result.stats.uploaded_bytes == size
    (bucket,) = buckets  # one bucket shared by all PUTs of the push
    assert bucket.rate == 4 * MB
    assert bucket.granted == size  # every body byte went through it
    assert bucket.waited_s > 0
    # A lower bound only (a loaded machine makes a push slower, never faster): beyond the first
    # burst, the bytes cannot have gone out faster than the rate.
    assert elapsed >= (size - bucket.burst) / bucket.rate


async def test_bad_transfer_options_fail_before_any_request(server: EmulatorServer, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    random_tree(tree, 1000, 1)
    calls = server.api_calls
    with pytest.raises(ValueError, match=r"PushOptions\.stall_timeout_s must be .*, got -1"):
        await push(server, tree, stall_timeout_s=-1)
    with pytest.raises(ValueError, match=r"PushOptions\.bandwidth_limit .*must be .*, got 0"):
        await push(server, tree, bandwidth_limit=0)
    assert server.api_calls == calls
    assert server.storage_requests == []
