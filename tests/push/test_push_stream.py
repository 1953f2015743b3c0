"""The streaming push (issue 15): each byte read and hashed once, and what that must not break.

Against the emulator over real sockets, on both chunker backends: the native core hands the push
the bytes it hashed (nothing is read again); the fallback holds none, so its chunks are re-read
and verified before their PUT. Either way the result must be byte-exact, and a file written
after it was read, or a cancelled push, must publish nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import ChunkSourceChangedError, NotFoundError, PushOptions, Roost
from roost._push import engine, upload
from roost.chunker import HashProgress
from roost.chunker._driver import recording
from roost.resources.roosts import PushProgressEvent, PushProgressUpload

from ..chunker.conftest import backend
from ..trees import MiB, blob, write_tree
from .test_push_e2e import ROOST, rebuild, sample, server

pytestmark = pytest.mark.anyio

__all__ = ["backend", "server"]  # fixtures: each backend (chunker tests), the emulator (push e2e)


@pytest.fixture
def rereads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Chunks the upload had to read again from disk (their bytes were not held)."""
    calls: list[str] = []
    real = upload._read_verified

    def spy(source: Any, chunk_hash: str) -> bytes:
        calls.append(chunk_hash)
        return real(source, chunk_hash)

    monkeypatch.setattr(upload, "_read_verified", spy)
    return calls


async def test_a_cold_push_reads_each_byte_once(
    server: Any, tmp_path: Path, backend: str, rereads: list[str]
) -> None:
    files = sample(tmp_path)
    async with Roost(token=server.token, api_url=server.url) as client:
        with recording() as reports:
            result = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
        assert await rebuild(client, server.site_id, result.version_id) == files
    uploaded = result.stats.uploaded_chunks
    assert uploaded == result.stats.unique_chunks
    assert reports[-1].files_read == sum(1 for data in files.values() if data)
    if backend == "native":
        assert rereads == []  # every chunk went up from the bytes the scan hashed
    else:
        assert len(rereads) == uploaded


async def test_a_file_larger_than_the_held_bytes_still_streams(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, rereads: list[str]
) -> None:
    # one chunk of budget: a file of five chunks can only finish if its first chunks are
    # uploaded (and let go) before its last ones are read
    monkeypatch.setattr(engine, "held_budget", lambda concurrency: 4 * MiB)
    files = write_tree(tmp_path, {"big.bin": blob(3, 18 * MiB + 5), "small.txt": b"small"})
    server.set_faults("storage_drop=0.2,storage_latency_ms=20,seed=7")
    async with Roost(token=server.token, api_url=server.url) as client:
        result = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id, concurrency=2))
        server.set_faults(None)
        assert await rebuild(client, server.site_id, result.version_id) == files
    assert result.stats.uploaded_chunks == 6
    if backend == "native":
        assert rereads == []


async def test_a_file_written_after_it_was_hashed_publishes_nothing(
    server: Any, tmp_path: Path, backend: str
) -> None:
    write_tree(tmp_path, {"a.txt": b"first version", "b.bin": blob(5, 3 * MiB)})
    server.set_faults("storage_latency_ms=100")
    target = tmp_path / "a.txt"

    def rewrite(event: PushProgressEvent) -> None:
        # a.txt is hashed (its bytes held, on the native core): same size, other bytes
        if isinstance(event, HashProgress) and event.file == "a.txt":
            target.write_bytes(b"other version")

    async with Roost(token=server.token, api_url=server.url) as client:
        with pytest.raises(ChunkSourceChangedError) as caught:
            await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, on_progress=rewrite)
            )
        assert caught.value.path.endswith("a.txt")
        with pytest.raises(NotFoundError):
            await client.roosts.get(ROOST, site_id=server.site_id)  # never published


async def test_cancelling_a_push_publishes_nothing_and_stops_its_work(server: Any, tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i:02}.bin": blob(i, 3 * MiB) for i in range(12)})
    server.set_faults("storage_latency_ms=300")
    started = anyio.Event()

    def first_upload(event: PushProgressEvent) -> None:
        if isinstance(event, PushProgressUpload):
            started.set()

    async with Roost(token=server.token, api_url=server.url) as client:
        opts = PushOptions(site_id=server.site_id, concurrency=2, on_progress=first_upload)
        async with anyio.create_task_group() as group:

            async def push() -> None:
                await client.roosts.push(tmp_path, ROOST, opts)
                raise AssertionError("the push was not cancelled")

            group.start_soon(push)
            await started.wait()
            group.cancel_scope.cancel()
        server.set_faults(None)
        with pytest.raises(NotFoundError):
            await client.roosts.get(ROOST, site_id=server.site_id)
    # the scan's threads stop within a chunk
    assert await anyio.to_thread.run_sync(_hash_threads_end, 10.0), "hash threads outlived the push"


def _hash_threads_end(within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while any(t.name.startswith("roost-hash") for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


async def test_on_a_throttled_link_upload_progress_runs_alongside_the_scan(
    server: Any, tmp_path: Path, backend: str
) -> None:
    # 36 MB at 40 MB/s with 8 MiB of held bytes: the scan can only finish as the uploads do
    files = write_tree(tmp_path, {f"f{i:02}.bin": blob(40 + i, 3 * MiB) for i in range(12)})
    server.set_faults("storage_bandwidth_mbps=40")
    events: list[PushProgressEvent] = []
    async with Roost(token=server.token, api_url=server.url) as client:
        opts = PushOptions(site_id=server.site_id, concurrency=1, on_progress=events.append)
        result = await client.roosts.push(tmp_path, ROOST, opts)
        server.set_faults(None)
        assert await rebuild(client, server.site_id, result.version_id) == files
    phases = [event.phase for event in events]
    checked = phases.index("check-missing")
    uploads = [event for event in events if isinstance(event, PushProgressUpload)]
    if backend == "native":  # the fallback holds no bytes: its scan need not wait for uploads
        assert "upload" in phases[:checked], "no upload progress while the scan ran"
        assert "hash" in phases[phases.index("upload") :], "the upload did not overlap the scan"
    for before, after in itertools.pairwise(uploads):
        assert after.uploaded >= before.uploaded
        assert after.bytes_uploaded >= before.bytes_uploaded
        assert after.total >= before.total
        assert after.bytes_total >= before.bytes_total
    assert phases[-1] == "upload"
    assert checked < len(phases) - 1
    assert uploads[-1].uploaded == uploads[-1].total == 12
    assert uploads[-1].bytes_uploaded == uploads[-1].bytes_total == 12 * 3 * MiB
