"""End to end: ``client.roosts.push`` against the local emulator over real sockets."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from roost import ChunkSourceChangedError, NotFoundError, PushOptions, Roost
from roost.resources.roosts import PushProgressEvent, PushProgressPublish, PushProgressUpload, PushResult

from ..trees import MiB, blob, disk_tree, write_tree

pytest.importorskip("uvicorn", reason="the emulator needs the server extra")
pytest.importorskip("starlette", reason="the emulator needs the server extra")
testing = pytest.importorskip("roost.testing")

pytestmark = pytest.mark.anyio

ROOST = "rst_e2e_push"


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    async with testing.serve() as running:
        yield running


def sample(root: Path) -> dict[str, bytes]:
    files = {
        "readme.txt": b"hello roost\n",
        "bin/app.exe": blob(1, 9 * MiB + 123),  # three chunks, the last one short
        "bin/copy.exe": blob(1, 9 * MiB + 123),  # identical content: deduplicated
        "assets/one.png": blob(2, 200_000),
        "assets/deep/two.json": b'{"two": 2}',
        "assets/deep/empty.cfg": b"",
        "empty-at-root": b"",
        "unicodé/naïve.txt": "ünïcödé".encode(),
    }
    for i in range(30):
        files[f"many/f{i:02}.dat"] = blob(100 + i, 1000 + i)
    return write_tree(root, files)


async def rebuild(client: Roost, site_id: str, version_id: str) -> dict[str, bytes]:
    """Download every chunk of the version through download_urls and reassemble each file."""
    detail = await client.versions.get(ROOST, version_id, site_id=site_id)
    files: list[dict[str, Any]] = detail["version"]["files"]
    hashes = list(dict.fromkeys(c["hash"] for f in files for c in f["chunks"]))
    blobs: dict[str, bytes] = {}
    limiter = anyio.Semaphore(16)
    async with httpx.AsyncClient(timeout=60) as plain:
        for start in range(0, len(hashes), 500):
            batch = hashes[start : start + 500]
            urls: dict[str, str] = (await client.chunks.download_urls(site_id, batch))["urls"]

            async def fetch(chunk_hash: str, url: str) -> None:
                async with limiter:
                    response = await plain.get(url)
                response.raise_for_status()
                blobs[chunk_hash] = response.content

            async with anyio.create_task_group() as group:
                for chunk_hash in batch:
                    group.start_soon(fetch, chunk_hash, urls[chunk_hash])
    rebuilt: dict[str, bytes] = {}
    for entry in files:
        data = b"".join(blobs[c["hash"]] for c in entry["chunks"])
        assert len(data) == entry["size"]
        rebuilt[entry["path"]] = data
    return rebuilt


async def test_push_is_byte_exact_and_dedups_repushes(server: Any, tmp_path: Path) -> None:
    files = sample(tmp_path)
    async with Roost(token=server.token, api_url=server.url) as client:
        opts = PushOptions(site_id=server.site_id, description="e2e")
        first = await client.roosts.push(tmp_path, ROOST, opts)
        assert await rebuild(client, server.site_id, first.version_id) == files
        assert first.stats.file_count == len(files)
        assert first.stats.empty_files == 2
        assert first.stats.uploaded_chunks == first.stats.unique_chunks == first.stats.total_chunks - 3

        second = await client.roosts.push(tmp_path, ROOST, opts)
        assert second.stats.uploaded_chunks == 0
        assert second.previous_version_id == first.version_id
        assert await rebuild(client, server.site_id, second.version_id) == files

        changed = bytearray(files["bin/app.exe"])
        changed[5 * MiB] ^= 0x5A  # inside the second chunk only
        (tmp_path / "bin" / "app.exe").write_bytes(bytes(changed))
        server.clear_storage_requests()
        third = await client.roosts.push(tmp_path, ROOST, opts)
        assert third.stats.uploaded_chunks == 1
        assert third.stats.uploaded_bytes == 4 * MiB
        puts = [r for r in server.storage_requests if r.method == "PUT"]
        assert len(puts) == 1
        assert third.plan is not None
        assert puts[0].path.endswith(third.plan.chunks[0])
        assert await rebuild(client, server.site_id, third.version_id) == disk_tree(tmp_path)


async def test_storage_never_sees_the_api_token(server: Any, tmp_path: Path) -> None:
    sample(tmp_path)
    async with Roost(token=server.token, api_url=server.url) as client:
        await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
    puts = [r for r in server.storage_requests if r.method == "PUT"]
    assert puts
    for record in puts:
        assert set(record.headers) == {"host", "content-type", "content-length"}
        assert "authorization" not in record.headers
        assert "roost-version" not in record.headers
        assert "cookie" not in record.headers
        assert not any(server.token in value for value in record.headers.values())


async def test_file_modified_during_upload_aborts_and_publishes_nothing(server: Any, tmp_path: Path) -> None:
    big = blob(7, 40 * MiB)
    write_tree(tmp_path, {"big.bin": big, "small.txt": b"small"})
    server.set_faults("storage_latency_ms=50")
    target = tmp_path / "big.bin"

    tampered: list[int] = []

    def tamper(event: PushProgressEvent) -> None:
        # (upload events come every 4 chunks, but one whose count is the total known so far
        # waits for the check to be complete: the first one from 4 on)
        if isinstance(event, PushProgressUpload) and event.uploaded >= 4 and not tampered:
            tampered.append(event.uploaded)
            with target.open("r+b") as handle:  # the last chunk is still far from being read
                handle.seek(len(big) - 10)
                handle.write(b"0123456789")

    async with Roost(token=server.token, api_url=server.url) as client:
        with pytest.raises(ChunkSourceChangedError) as caught:
            await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, concurrency=1, on_progress=tamper)
            )
        assert caught.value.path.endswith("big.bin")
        assert "big.bin" in str(caught.value)
        with pytest.raises(NotFoundError):
            await client.roosts.get(ROOST, site_id=server.site_id)  # never published


async def test_storage_losing_chunks_before_publish_is_repaired(server: Any, tmp_path: Path) -> None:
    files = sample(tmp_path)
    events: list[PushProgressEvent] = []
    lost: list[str] = []

    def lose_chunks(event: PushProgressEvent) -> None:
        events.append(event)
        if isinstance(event, PushProgressUpload) and event.uploaded == event.total and not lost:
            for record in server.storage_requests[:3]:  # as if storage lost them after the PUT
                lost.append(record.path.rsplit("/", 1)[1])
                assert server.delete_chunk(lost[-1])

    async with Roost(token=server.token, api_url=server.url) as client:
        result = await client.roosts.push(
            tmp_path, ROOST, PushOptions(site_id=server.site_id, on_progress=lose_chunks)
        )
        assert [e for e in events if isinstance(e, PushProgressPublish)] == [PushProgressPublish(attempt=1)]
        assert result.stats.uploaded_chunks == result.stats.unique_chunks + 3
        assert await rebuild(client, server.site_id, result.version_id) == files


async def test_two_concurrent_pushes_both_succeed_via_version_stale(server: Any, tmp_path: Path) -> None:
    write_tree(tmp_path / "base", {"v": b"base"})
    trees = [
        write_tree(tmp_path / name, {"v": name.encode(), "x": blob(i, 300_000)})
        for i, name in enumerate("ab")
    ]
    async with Roost(token=server.token, api_url=server.url) as client:
        seed = await client.roosts.push(tmp_path / "base", ROOST, PushOptions(site_id=server.site_id))
        both_checked = anyio.Event()
        arrived = 0
        published: dict[str, list[int]] = {"a": [], "b": []}
        results: dict[str, PushResult] = {}

        def progress(name: str) -> Any:
            async def callback(event: PushProgressEvent) -> None:
                nonlocal arrived
                if event.phase == "check-missing":  # both have read the head by now
                    arrived += 1
                    if arrived == 2:
                        both_checked.set()
                    await both_checked.wait()
                if isinstance(event, PushProgressPublish):
                    published[name].append(event.attempt)

            return callback

        async def run(name: str) -> None:
            opts = PushOptions(site_id=server.site_id, on_progress=progress(name))
            results[name] = await client.roosts.push(tmp_path / name, ROOST, opts)

        async with anyio.create_task_group() as group:
            group.start_soon(run, "a")
            group.start_soon(run, "b")

        assert sorted(r.version_number for r in results.values()) == [2, 3]
        later, earlier = sorted(results, key=lambda n: -results[n].version_number)
        assert published[later] == [1]  # the loser retried once, on top of the winner
        assert published[earlier] == []
        assert results[earlier].previous_version_id == seed.version_id
        assert results[later].previous_version_id == results[earlier].version_id
        detail = await client.roosts.get(ROOST, site_id=server.site_id)
        assert detail.current_version_id == results[later].version_id
        for name, result in results.items():
            assert await rebuild(client, server.site_id, result.version_id) == trees["ab".index(name)]


@pytest.mark.slow
async def test_twenty_seeded_pushes_under_faults_are_byte_exact(
    server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="roost")
    outcomes: Counter[str] = Counter()
    files = write_tree(tmp_path, {f"d{i % 5}/f{i:03}.bin": blob(i, 2000 + 37 * i) for i in range(60)})
    files.update(write_tree(tmp_path, {"big.bin": blob(999, 6 * MiB), "empty": b""}))
    rng = random.Random(2024)
    async with Roost(token=server.token, api_url=server.url) as client:
        for seed in range(1, 21):
            for name in rng.sample(sorted(n for n in files if n.startswith("d")), 35):
                files[name] = blob(rng.randrange(1 << 30), len(files[name]))
                (tmp_path / name).write_bytes(files[name])
            server.set_faults(
                "api_5xx=0.1,api_429=0.05,storage_drop=0.05,upload_url_ttl_s=2,"
                f"storage_latency_ms=400,seed={seed}"
            )
            server.clear_storage_requests()
            result = await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, concurrency=1)
            )
            server.set_faults(None)
            outcomes.update(r.outcome for r in server.storage_requests)
            assert result.version_number == seed
            assert result.stats.uploaded_chunks >= (62 if seed == 1 else 35)
            assert await rebuild(client, server.site_id, result.version_id) == files, f"seed {seed}"
    messages = [r.getMessage() for r in caplog.records]
    mints = sum(1 for m in messages if m.startswith("minted "))
    api_retries = sum(1 for m in messages if m.startswith("retrying POST"))
    print(f"storage outcomes {dict(outcomes)}, URL mints {mints}, API retries {api_retries}")
    assert outcomes["dropped"] > 0  # the faults did happen, and were survived
    assert api_retries > 0
    assert mints > 20  # 2 s URLs were re-minted within pushes (before expiry or after a 403)
