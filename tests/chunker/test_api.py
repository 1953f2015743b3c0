"""The public API around the walk: single files, chunk reads, callbacks, cancellation, backends."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from roost import ChunkSourceChangedError, chunker
from roost.chunker import (
    CHUNK_SIZE_BYTES,
    ChunkDescriptor,
    ChunkedFileEntry,
    ChunkProgressEvent,
    DiscoverProgress,
    HashProgress,
)
from roost.chunker._backend import loaded

from ._tree import oracle_chunks


def test_public_names() -> None:
    assert CHUNK_SIZE_BYTES == 4 * 1024 * 1024
    for name in chunker.__all__:
        assert hasattr(chunker, name), name
    assert ChunkedFileEntry("a", 0) == ChunkedFileEntry("a", 0, ())


# ---------------------------------------------------------------------------------------------
# chunk_one_file


@pytest.mark.anyio
@pytest.mark.parametrize(
    "size", [0, 1, CHUNK_SIZE_BYTES - 1, CHUNK_SIZE_BYTES, CHUNK_SIZE_BYTES + 1, 9 * 2**20 + 3]
)
async def test_chunk_one_file(backend: str, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "f.bin").write_bytes(data)
    entry = await chunker.chunk_one_file(tmp_path / "f.bin", "some/rel.bin")
    assert entry.path == "some/rel.bin"
    assert entry.size == size
    assert [(c.hash, c.size) for c in entry.chunks] == oracle_chunks(data)
    if size == 0:
        assert entry.chunks == ()


@pytest.mark.anyio
async def test_chunk_one_file_errors(backend: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await chunker.chunk_one_file(tmp_path / "missing", "missing")
    with pytest.raises(IsADirectoryError):
        await chunker.chunk_one_file(tmp_path, "dir")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ValueError, match="not a regular file"):
            await chunker.chunk_one_file(tmp_path / "fifo", "fifo")  # must not block on open


# ---------------------------------------------------------------------------------------------
# read_chunk / verify_chunk


def test_read_chunk_and_verify(backend: str, tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE_BYTES + 1000)
    path = str(tmp_path / "f.bin")
    Path(path).write_bytes(data)
    first = hashlib.sha256(data[:CHUNK_SIZE_BYTES]).hexdigest()
    tail = hashlib.sha256(data[CHUNK_SIZE_BYTES:]).hexdigest()
    assert chunker.read_chunk(path, 0, CHUNK_SIZE_BYTES, expected_hash=first) == data[:CHUNK_SIZE_BYTES]
    assert chunker.read_chunk(path, CHUNK_SIZE_BYTES, 1000, expected_hash=tail) == data[CHUNK_SIZE_BYTES:]
    assert chunker.read_chunk(path, 10, 20) == data[10:30]
    assert isinstance(chunker.read_chunk(path, 10, 20), bytes)
    assert chunker.verify_chunk(path, 0, CHUNK_SIZE_BYTES, first)
    assert chunker.verify_chunk(path, CHUNK_SIZE_BYTES, 1000, tail)
    assert not chunker.verify_chunk(path, CHUNK_SIZE_BYTES, 1000, first)
    assert not chunker.verify_chunk(path, CHUNK_SIZE_BYTES, 1001, tail)  # short


def test_read_chunk_detects_changes(backend: str, tmp_path: Path) -> None:
    path = str(tmp_path / "f.bin")
    Path(path).write_bytes(b"a" * 100)
    good = hashlib.sha256(b"a" * 100).hexdigest()
    Path(path).write_bytes(b"b" * 100)
    with pytest.raises(ChunkSourceChangedError, match="content hash differs") as changed:
        chunker.read_chunk(path, 0, 100, expected_hash=good)
    assert (changed.value.path, changed.value.chunk_hash, changed.value.offset) == (path, good, 0)
    with pytest.raises(ChunkSourceChangedError, match=r"short read \(50 of 100 bytes\)") as short:
        chunker.read_chunk(path, 50, 100, expected_hash=good)
    assert short.value.offset == 50
    with pytest.raises(ChunkSourceChangedError, match="short read"):
        chunker.read_chunk(path, 0, 101)


def test_read_chunk_rejects_negative_ranges(backend: str, tmp_path: Path) -> None:
    path = str(tmp_path / "f.bin")
    Path(path).write_bytes(b"abc")
    with pytest.raises(ValueError, match=">= 0"):
        chunker.read_chunk(path, -1, 2)
    with pytest.raises(ValueError, match=">= 0"):
        chunker.verify_chunk(path, 0, -2, "0" * 64)
    digest = hashlib.sha256(b"abc").hexdigest()
    assert chunker.read_chunk(path, 0, 3, expected_hash=digest.upper()) == b"abc"
    assert chunker.verify_chunk(path, 0, 3, digest.upper())


def test_read_chunk_missing_file_names_it(backend: str, tmp_path: Path) -> None:
    missing = str(tmp_path / "gone.bin")
    with pytest.raises(FileNotFoundError) as info:
        chunker.read_chunk(missing, 0, 10)
    assert info.value.filename == missing
    with pytest.raises(FileNotFoundError) as info2:
        chunker.verify_chunk(missing, 0, 10, "0" * 64)
    assert info2.value.filename == missing


@pytest.mark.anyio
async def test_read_chunk_runs_in_parallel_threads(tmp_path: Path) -> None:
    """The native read releases the GIL: eight concurrent reads finish together."""
    data = os.urandom(CHUNK_SIZE_BYTES)
    path = str(tmp_path / "f.bin")
    await anyio.Path(path).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    results: list[bytes] = []

    async def one() -> None:
        results.append(
            await anyio.to_thread.run_sync(
                lambda: chunker.read_chunk(path, 0, CHUNK_SIZE_BYTES, expected_hash=digest)
            )
        )

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert results == [data] * 8


def test_unique_hashes_first_seen_order() -> None:
    a, b, c = (ChunkDescriptor(h * 64, 1) for h in "abc")
    entries = [
        ChunkedFileEntry("x", 3, (b, a, b)),
        ChunkedFileEntry("y", 2, (c, a)),
        ChunkedFileEntry("z", 0),
    ]
    assert chunker.unique_hashes(entries) == ["b" * 64, "a" * 64, "c" * 64]


# ---------------------------------------------------------------------------------------------
# progress callbacks


def _small_tree(root: Path, n: int = 5) -> None:
    for i in range(n):
        (root / f"f{i}.txt").write_bytes(b"x" * (i + 1))


@pytest.mark.anyio
async def test_async_callbacks_are_awaited_in_order(backend: str, tmp_path: Path) -> None:
    _small_tree(tmp_path)
    seen: list[ChunkProgressEvent] = []

    async def on_progress(event: ChunkProgressEvent) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(event)

    entries = await chunker.chunk_directory(tmp_path, on_progress=on_progress)
    assert len(seen) == 1 + len(entries) + 1
    assert seen[0] == DiscoverProgress(5, 15)
    assert [e.file for e in seen[1:] if isinstance(e, HashProgress)] == [*(e.path for e in entries), ""]
    assert seen[-1] == HashProgress("", 5, 5, 15, 15)


@pytest.mark.anyio
async def test_callback_exception_propagates(backend: str, tmp_path: Path) -> None:
    _small_tree(tmp_path)
    calls = 0

    def on_progress(event: ChunkProgressEvent) -> None:
        nonlocal calls
        calls += 1
        if isinstance(event, HashProgress) and event.files_done == 2:
            raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        await chunker.chunk_directory(tmp_path, on_progress=on_progress)
    assert calls == 4  # discover + 3 hash events


@pytest.mark.anyio
async def test_empty_tree(backend: str, tmp_path: Path) -> None:
    events: list[ChunkProgressEvent] = []
    assert await chunker.chunk_directory(tmp_path, on_progress=events.append) == []
    assert events == [DiscoverProgress(0, 0), HashProgress("", 0, 0, 0, 0)]
    assert chunker.scan_directory(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# cancellation


def sparse_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size)


def _hash_threads() -> int:
    """Native hashing threads alive in this process (Linux: thread names in /proc)."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as f:
                if f.read().startswith("roost-hash"):
                    count += 1
        except OSError:
            pass
    return count


@pytest.mark.anyio
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc to see native threads")
async def test_cancelling_stops_the_native_workers(tmp_path: Path) -> None:
    assert loaded() is not None
    sparse_file(tmp_path / "big.bin", 512 * 2**20)  # zeros: hashing them takes a while
    started = anyio.Event()

    def on_progress(event: ChunkProgressEvent) -> None:
        if isinstance(event, DiscoverProgress):
            started.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: chunker.chunk_directory(tmp_path, on_progress=on_progress))
        await started.wait()
        await anyio.sleep(0.02)
        assert _hash_threads() > 0
        t0 = time.monotonic()
        tg.cancel_scope.cancel()
    assert time.monotonic() - t0 < 1.0
    for _ in range(200):  # the workers stop within one chunk
        if not _hash_threads():
            break
        await anyio.sleep(0.01)
    assert _hash_threads() == 0


@pytest.mark.anyio
async def test_cancelling_the_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_NATIVE", "0")
    sparse_file(tmp_path / "big.bin", 256 * 2**20)
    with anyio.move_on_after(0.05) as scope:
        await chunker.chunk_directory(tmp_path)
    assert scope.cancelled_caught


# ---------------------------------------------------------------------------------------------
# backend selection


def test_roost_native_0_forces_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_NATIVE", "0")
    assert chunker.backend() == "python"
    monkeypatch.delenv("ROOST_NATIVE")
    assert chunker.backend() == ("native" if loaded() is not None else "python")


def test_fallback_when_the_extension_cannot_load(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"hello")
    code = (
        "import sys\n"
        "sys.modules['roost._native'] = None  # makes the import fail\n"
        "import roost.chunker as c\n"
        "entries = c.scan_directory(sys.argv[1])\n"
        "print(c.backend(), entries[0].chunks[0].hash)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ROOST_NATIVE"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True, text=True, env=env
    )
    assert out.stdout.split() == ["python", hashlib.sha256(b"hello").hexdigest()]
