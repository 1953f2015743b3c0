"""What the walk saw is what gets read: identity checks, skipped entries, link fan-out, cache hygiene."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from roost import ChunkSourceChangedError, chunker
from roost.chunker import DiscoverProgress, SkippedEntry, _backend, _driver, _hash_cache

from .conftest import use_backend

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks, FIFOs and sockets")

SECRET = b"root:x:0:0:outside the scanned folder\n"
INSIDE = b"an ordinary file inside the tree.....\n"  # the same size as SECRET


def _flip_to(path: Path, target: Path | None, data: bytes) -> None:
    """Atomically makes ``path`` a link to ``target`` (or, with None, a regular file of ``data``);
    the new entry is made beside the tree, so that no walk ever sees it."""
    tmp = path.parent.parent / (path.name + ".swap")
    if target is None:
        tmp.write_bytes(data)
    else:
        os.symlink(target, tmp)
    os.replace(tmp, path)


def test_a_link_flipping_during_scans_never_yields_outside_bytes(backend: str, tmp_path: Path) -> None:
    """A real thread flips ``root/f`` between a regular file and a link to a file outside the
    root while 40 scans and re-reads run: no hash of the outside bytes, and no outside byte read
    back under a hash, ever."""
    assert len(SECRET) == len(INSIDE)
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_bytes(SECRET)
    (root / "other.txt").write_bytes(b"steady\n")
    f = root / "f"
    f.write_bytes(INSIDE)
    secret_hash = hashlib.sha256(SECRET).hexdigest()
    stop = threading.Event()

    def flipper() -> None:
        while not stop.is_set():
            _flip_to(f, secret, b"")
            _flip_to(f, None, INSIDE)

    thread = threading.Thread(target=flipper, daemon=True)
    thread.start()
    refused = 0
    try:
        for _ in range(40):
            try:
                entries = chunker.scan_directory(root, cache=False)
            except ChunkSourceChangedError:
                refused += 1
                continue
            for entry in entries:
                for chunk in entry.chunks:
                    assert chunk.hash != secret_hash, entry.path
                    try:
                        data = chunker.read_chunk(
                            str(root / entry.path),
                            0,
                            chunk.size,
                            expected_hash=chunk.hash,
                            file_id=entry.file_id,
                        )
                    except (ChunkSourceChangedError, FileNotFoundError):
                        refused += 1
                        continue
                    assert SECRET not in data
    finally:
        stop.set()
        thread.join()
    # how often the race was caught varies (about 16 of 40 here); the assertions above are the test


def _walked(root: Path) -> _backend.Job:
    job = _backend.tree_job(os.path.realpath(root), [])
    while job.wait_walk(0.25) is None:
        pass
    return job


def test_a_file_swapped_after_the_walk_is_refused_by_the_hashing(backend: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(INSIDE)
    job = _walked(root)
    _flip_to(root / "f", outside / "passwd", b"")
    with pytest.raises(ChunkSourceChangedError, match="not the file the scan saw"):
        _driver.scan_sync(job)


def test_a_regular_file_replaced_after_the_walk_is_refused(backend: str, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(INSIDE)
    job = _walked(tmp_path)
    _flip_to(tmp_path / "f", None, INSIDE)  # same bytes, another inode
    with pytest.raises(ChunkSourceChangedError):
        _driver.scan_sync(job)


def test_read_and_verify_check_the_walked_identity(backend: str, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_bytes(INSIDE)  # even the same bytes are refused
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(INSIDE)
    (entry,) = chunker.scan_directory(root)
    assert entry.file_id is not None
    (chunk,) = entry.chunks
    path = str(root / "f")
    assert chunker.read_chunk(path, 0, chunk.size, expected_hash=chunk.hash, file_id=entry.file_id) == INSIDE
    assert chunker.verify_chunk(path, 0, chunk.size, chunk.hash, file_id=entry.file_id)
    _flip_to(root / "f", outside / "passwd", b"")
    with pytest.raises(ChunkSourceChangedError) as info:
        chunker.read_chunk(path, 0, chunk.size, expected_hash=chunk.hash, file_id=entry.file_id)
    assert info.value.chunk_hash == chunk.hash
    with pytest.raises(ChunkSourceChangedError):
        chunker.verify_chunk(path, 0, chunk.size, chunk.hash, file_id=entry.file_id)
    # without the identity the old behaviour stands (the bytes hash alike)
    assert chunker.read_chunk(path, 0, chunk.size, expected_hash=chunk.hash) == INSIDE


def test_entries_compare_without_their_identity(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    (entry,) = chunker.scan_directory(tmp_path)
    st = os.stat(tmp_path / "f")
    assert entry.file_id == (st.st_dev, st.st_ino)
    assert entry == chunker.ChunkedFileEntry(entry.path, entry.size, entry.chunks)


# ---------------------------------------------------------------------------------------------
# skipped entries


def _skip_tree(base: Path) -> Path:
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(b"f")
    os.symlink(outside / "secret", root / "out-file")
    os.symlink(outside, root / "out-dir")
    os.symlink(root / "nope", root / "broken")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    os.symlink("d", root / "alias-1")
    os.symlink("d", root / "alias-2")
    os.symlink("..", root / "d" / "up")
    os.mkfifo(root / "fifo")
    os.symlink("fifo", root / "fifo-link")
    os.symlink("fifo", root / "ignored-link.tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "sock"))
    finally:
        sock.close()
    return root


SKIPPED = [
    SkippedEntry("alias-1/up", "repeated_directory"),
    SkippedEntry("alias-2", "repeated_directory"),
    SkippedEntry("broken", "broken_link"),
    SkippedEntry("d/up", "repeated_directory"),
    SkippedEntry("fifo", "special_file"),
    SkippedEntry("fifo-link", "special_file"),
    SkippedEntry("loop-a", "broken_link"),
    SkippedEntry("loop-b", "broken_link"),
    SkippedEntry("out-dir", "link_outside_root"),
    SkippedEntry("out-file", "link_outside_root"),
    SkippedEntry("sock", "special_file"),
]


@pytest.mark.anyio
async def test_skipped_entries_are_reported_alike_by_both_backends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _skip_tree(tmp_path)
    for name in ("native", "python"):
        use_backend(monkeypatch, name)
        entries, report = chunker._scan_tree(root, ignore=["*.tmp"])
        assert [e.path for e in entries] == ["alias-1/f", "d/f"]
        assert list(report.skipped) == SKIPPED, name
        events: list[chunker.ChunkProgressEvent] = []
        await chunker.chunk_directory(root, ignore=["*.tmp"], on_progress=events.append)
        discover = events[0]
        assert isinstance(discover, DiscoverProgress)
        assert list(discover.skipped) == SKIPPED, name


def test_a_link_fan_out_walks_each_directory_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """6 levels of 10 links to the same directory: 10**6 paths before; a handful now."""
    for level in range(1, 7):
        d = tmp_path / f"d{level}"
        d.mkdir()
        (d / "f").write_bytes(f"level {level}\n".encode())
    for level in range(1, 6):
        for i in range(10):
            os.symlink(f"../d{level + 1}", tmp_path / f"d{level}" / f"l{i}")
    for i in range(10):
        os.symlink("d1", tmp_path / f"top{i}")
    results = {}
    for name in ("native", "python"):
        use_backend(monkeypatch, name)
        first = chunker._scan_tree(tmp_path, cache=False)
        assert chunker._scan_tree(tmp_path, cache=False) == first  # the same on every run
        results[name] = first
    assert results["native"] == results["python"]
    entries, report = results["native"]
    assert len(entries) <= 12  # each level's file under its own path and under one link
    assert len(report.skipped) < 200
    assert {s.reason for s in report.skipped} == {"repeated_directory"}


# ---------------------------------------------------------------------------------------------
# the hash cache: owner-only, and no stale entry kept after a change was caught


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_cache_directories_are_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache" / "deeper"
    monkeypatch.setenv("ROOST_CACHE_DIR", str(cache))
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"x")
    old = os.umask(0o022)
    try:
        chunker.scan_directory(root)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cache.parent).st_mode) == 0o700
    cache.chmod(0o755)  # an older SDK's directory is tightened on the next write
    (root / "g").write_bytes(b"y")
    chunker.scan_directory(root)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700


def _cached_paths(root: Path) -> set[str]:
    snap = _hash_cache.load(_hash_cache.cache_path(os.path.realpath(root)), chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    return {key[_hash_cache.KEY_PREFIX :].decode() for key in snap.index}


def test_a_file_that_raised_source_changed_leaves_the_cache(backend: str, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode() * 10)
        os.utime(tmp_path / name, ns=(1_600_000_000_000_000_000,) * 2)
    entries = chunker.scan_directory(tmp_path)
    assert _cached_paths(tmp_path) == {"a", "b"}
    a = entries[0]
    wrong = "0" * 64
    with pytest.raises(ChunkSourceChangedError):
        chunker.read_chunk(str(tmp_path / "a"), 0, a.size, expected_hash=wrong, file_id=a.file_id)
    assert _cached_paths(tmp_path) == {"b"}  # a retry hashes "a" again
