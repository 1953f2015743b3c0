"""The local hash cache: reuse of unchanged files, detection of every change, robustness."""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import xxhash

from roost import chunker
from roost.chunker import ChunkedFileEntry, ChunkProgressEvent, _driver, _hash_cache
from roost.chunker import _backend as _chunker_native
from roost.chunker import _fallback as _chunker_py

from ._tree import oracle_chunks

OLD_NS = 1_600_000_000_000_000_000  # September 2020: far from any racy window
MIB = 1024 * 1024


def _entry(root: Path, rel: str) -> tuple[str, int, list[tuple[str, int]]]:
    data = (root / rel).read_bytes()
    return rel, len(data), oracle_chunks(data)


def oracle(root: Path) -> list[tuple[str, int, list[tuple[str, int]]]]:
    rels = sorted(
        str(p.relative_to(root)).replace(os.sep, "/")
        for p in root.rglob("*")
        if p.is_file() and not p.is_dir()
    )
    return [_entry(root, r) for r in rels]


def flat(entries: list[ChunkedFileEntry]) -> list[tuple[str, int, list[tuple[str, int]]]]:
    return [(e.path, e.size, [(c.hash, c.size) for c in e.chunks]) for e in entries]


def age(path: Path, ns: int = OLD_NS) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


@pytest.fixture
def tree(real_tmp: Path) -> Path:
    root = real_tmp / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello world\n")
    (root / "sub" / "mid.bin").write_bytes(os.urandom(10_000))
    (root / "big.bin").write_bytes(os.urandom(9 * MIB + 3))
    (root / "empty").write_bytes(b"")
    for i, p in enumerate(sorted(root.rglob("*"))):
        if p.is_file():
            age(p, OLD_NS + i)
    return root


@pytest.fixture
def reads(backend: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., int]]:
    """Files opened by the last scan: the native job's counter, or a spy on the fallback's reader
    (cross-checked with the fallback job's own counter)."""
    opened: set[str] = set()
    if backend == "python":
        real_small, real_range = _chunker_py._hash_small, _chunker_py.hash_range
        lock = threading.Lock()

        def small(path: str, size: int, *rest: Any) -> str:
            with lock:
                opened.add(path)
            return real_small(path, size, *rest)

        def ranged(path: str, offset: int, size: int, *rest: Any) -> str:
            with lock:
                opened.add(path)
            return real_range(path, offset, size, *rest)

        monkeypatch.setattr(_chunker_py, "_hash_small", small)
        monkeypatch.setattr(_chunker_py, "hash_range", ranged)

    with _driver.recording() as reports:

        def count(check: bool = True) -> int:
            n = reports[-1].files_read
            if backend == "python":
                assert len(opened) == n or not check
                opened.clear()
            return n

        yield count


def scan(root: Path, *, cache: bool = True) -> list[tuple[str, int, list[tuple[str, int]]]]:
    return flat(chunker.scan_directory(root, cache=cache))


def test_unchanged_tree_reuses_everything(tree: Path, reads: Callable[..., int]) -> None:
    want = oracle(tree)
    assert scan(tree) == want
    assert reads() == 3  # the empty file is never opened
    assert os.path.exists(_hash_cache.cache_path(str(tree)))
    for _ in range(2):
        assert scan(tree) == want
        assert reads() == 0
    assert scan(tree, cache=False) == want
    assert reads() == 3


@pytest.mark.anyio
async def test_chunk_directory_uses_the_cache_with_the_same_events(
    tree: Path, reads: Callable[..., int]
) -> None:
    cold: list[ChunkProgressEvent] = []
    warm: list[ChunkProgressEvent] = []
    a = await chunker.chunk_directory(tree, on_progress=cold.append)
    assert reads() == 3
    b = await chunker.chunk_directory(tree, on_progress=warm.append)
    assert reads() == 0
    assert a == b
    assert cold == warm
    assert flat(b) == oracle(tree)


def test_touch_is_detected(tree: Path, reads: Callable[..., int]) -> None:
    scan(tree)
    reads()
    age(tree / "a.txt", OLD_NS + 10_000)
    assert scan(tree) == oracle(tree)
    assert reads() == 1


def test_same_size_rewrite_with_restored_mtime_is_detected(tree: Path, reads: Callable[..., int]) -> None:
    scan(tree)
    reads()
    st = os.stat(tree / "sub" / "mid.bin")
    (tree / "sub" / "mid.bin").write_bytes(os.urandom(10_000))
    os.utime(tree / "sub" / "mid.bin", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(tree / "sub" / "mid.bin").st_mtime_ns == st.st_mtime_ns
    assert scan(tree) == oracle(tree)  # ctime (and perhaps inode) differ
    assert reads() == 1


def test_rename_is_detected(tree: Path, reads: Callable[..., int]) -> None:
    scan(tree)
    reads()
    os.rename(tree / "sub" / "mid.bin", tree / "sub" / "renamed.bin")
    got = scan(tree)
    assert got == oracle(tree)
    assert [p for p, _, _ in got] == ["a.txt", "big.bin", "empty", "sub/renamed.bin"]
    assert reads() == 1


def test_delete_is_detected(tree: Path, reads: Callable[..., int]) -> None:
    scan(tree)
    reads()
    os.remove(tree / "big.bin")
    assert scan(tree) == oracle(tree)
    assert reads() == 0
    assert scan(tree) == oracle(tree)  # the rewritten cache has no stale entry
    assert reads() == 0


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symlinks")
def test_replacement_by_a_symlink_is_detected(tree: Path, reads: Callable[..., int]) -> None:
    scan(tree)
    reads()
    st = os.stat(tree / "a.txt")
    other = tree / "other.txt"
    other.write_bytes(b"HELLO WORLD\n")  # same size
    age(other, st.st_mtime_ns)
    os.remove(tree / "a.txt")
    os.symlink("other.txt", tree / "a.txt")
    got = scan(tree)
    assert got[0] == ("a.txt", 12, oracle_chunks(b"HELLO WORLD\n"))
    assert reads() == 2  # a.txt (through the link) and the new other.txt


def test_recent_files_are_not_trusted(tree: Path, reads: Callable[..., int]) -> None:
    """The racy rule: a file modified within the timestamp granularity before the scan is never
    cached, so a later same-tick modification with an identical fingerprint cannot be missed."""
    (tree / "new.txt").write_bytes(b"fresh")  # mtime: now
    assert scan(tree) == oracle(tree)
    assert reads() == 4
    assert scan(tree) == oracle(tree)
    assert reads() == 1  # new.txt again, unchanged but racy
    age(tree / "new.txt")
    scan(tree)
    assert reads() == 1  # its ctime changed
    assert scan(tree) == oracle(tree)
    assert reads() == 0  # now old enough to be trusted


def test_racy_rule_in_save() -> None:
    start = 10 * 10**9
    keys = [
        _hash_cache.make_key(r, 1, m, 0, 1, 1)
        for r, m in [("old", start - 2 * 10**9 - 1), ("racy", start - 2 * 10**9)]
    ]
    path = os.path.join(_hash_cache.cache_dir(), "x.bin")
    assert _hash_cache.save(
        path,
        chunker.CHUNK_SIZE_BYTES,
        start,
        keys,
        [start - 2 * 10**9 - 1, start - 2 * 10**9],
        [["0" * 64], ["1" * 64]],
    )
    snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    assert list(snap.index) == [keys[0]]


def _damage(path: str, how: str) -> None:
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":
        data[-10] ^= 0x55
    elif how == "old-version":
        struct.pack_into("<I", data, 8, 0)
    elif how == "new-version":
        struct.pack_into("<I", data, 8, _hash_cache.VERSION + 1)
    elif how == "foreign":
        data[:8] = b"NOTROOST"
    elif how == "chunk-size":
        struct.pack_into("<I", data, 12, 1024)
    elif how == "empty":
        data = bytearray()
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize(
    "how", ["truncated", "corrupt", "old-version", "new-version", "foreign", "chunk-size", "empty"]
)
def test_damaged_cache_is_ignored_and_rebuilt(tree: Path, reads: Callable[..., int], how: str) -> None:
    want = oracle(tree)
    scan(tree)
    reads()
    path = _hash_cache.cache_path(str(tree))
    _damage(path, how)
    assert _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES) is None
    assert scan(tree) == want
    assert reads() == 3
    assert _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES) is not None
    assert scan(tree) == want
    assert reads() == 0


def test_cache_false_neither_reads_nor_writes(tree: Path, reads: Callable[..., int]) -> None:
    assert scan(tree, cache=False) == oracle(tree)
    assert not os.path.exists(_hash_cache.cache_path(str(tree)))
    assert reads() == 3


def test_cache_dir(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    moved = tmp_path / "moved"
    monkeypatch.setenv("ROOST_CACHE_DIR", str(moved))
    scan(tree)
    assert os.listdir(moved) == [os.path.basename(_hash_cache.cache_path(str(tree)))]
    monkeypatch.delenv("ROOST_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert _hash_cache.cache_dir() == str(tmp_path / "xdg" / "owlette-sdk" / "hash-cache")
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert _hash_cache.cache_dir() == os.path.expanduser("~/.cache/owlette-sdk/hash-cache")


def test_concurrent_scans_leave_a_valid_cache(tree: Path, reads: Callable[..., int]) -> None:
    want = oracle(tree)
    errors: list[BaseException] = []
    results: list[object] = []

    def one() -> None:
        try:
            results.append(scan(tree))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(r == want for r in results)
    assert scan(tree) == want
    reads(check=False)  # the spy saw every thread's reads
    assert scan(tree) == want
    assert reads() == 0
    assert not [n for n in os.listdir(_hash_cache.cache_dir()) if n.startswith(".tmp-")]


def test_concurrent_writers_last_one_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "c" / "x.bin")
    n = 2000

    def write(w: int) -> None:
        for _ in range(5):
            keys = [_hash_cache.make_key(f"f{i}", 1, w, 0, i, 1) for i in range(n)]
            _hash_cache.save(path, chunker.CHUNK_SIZE_BYTES, 10**19, keys, [0] * n, [[f"{w:064x}"]] * n)
            snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
            assert snap is not None
            assert len(snap.index) == n

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    writers = {snap.hashes[i : i + 64] for i in range(0, len(snap.hashes), 64)}
    assert len(writers) == 1  # one writer's file, whole
    assert os.listdir(tmp_path / "c") == ["x.bin"]


@pytest.mark.parametrize("stored", ["0" * 64, "g" * 64], ids=["wrong-chunk-counts", "not-hex"])
def test_cache_whose_hashes_do_not_fit_is_ignored_and_rewritten(
    tree: Path, reads: Callable[..., int], stored: str
) -> None:
    """A well-formed, checksummed cache (never written so by save) whose chunk counts do not
    fit the sizes, or whose hashes are not hex, is not trusted by either backend's lookup:
    everything is read again, and the cache written anew."""
    want = oracle(tree)
    scan(tree)
    reads()
    path = _hash_cache.cache_path(str(tree))
    snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    keys = list(snap.index)
    hashes = [[stored]] * len(keys)
    _hash_cache.save(path, chunker.CHUNK_SIZE_BYTES, 2 * OLD_NS, keys, [OLD_NS] * len(keys), hashes)
    assert _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES) is not None
    assert scan(tree) == want
    assert reads() == 3
    assert scan(tree) == want
    assert reads() == 0


@pytest.mark.skipif(_chunker_native.loaded() is None, reason="the native core is not built")
def test_native_and_fallback_lookups_answer_alike(tree: Path) -> None:
    """The same cache sections give the same hits, entry numbers, digests and key count through
    the native job's lookup (rust/src/cache.rs) and the fallback's (_hash_cache.lookup): on a
    cache holding stale keys, a repeated key and every file of the tree but one."""
    scan(tree)
    path = _hash_cache.cache_path(str(tree))
    snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    keys = list(snap.index)
    stale = _hash_cache.make_key("gone.txt", 1, OLD_NS, OLD_NS, 1, 1)
    text = snap.hashes
    per_key = [
        [text[j : j + 64] for j in range(snap.start[i], snap.start[i + 1], 64)] for i in range(len(keys))
    ]
    stored = [stale, *keys[1:], keys[-1]]
    hashes = [["ab" * 32], *per_key[1:], per_key[-1]]
    _hash_cache.save(path, chunker.CHUNK_SIZE_BYTES, 2 * OLD_NS, stored, [OLD_NS] * len(stored), hashes)
    snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    sections = (snap.key_lengths, snap.keys, snap.counts, snap.hex)
    answers = []
    for job in (
        _chunker_native.loaded().ScanJob(str(tree), []),  # type: ignore[union-attr]
        _chunker_py.FallbackJob.for_tree(str(tree), [], True),
    ):
        try:
            while job.wait_walk(0.25) is None:
                pass
            answers.append(job.cache_hits(*sections))
        finally:
            job.cancel()
    native, fallback = answers
    assert native == fallback
    assert native is not None
    indices, entries, digests, distinct = native
    assert len(indices) == len(keys) - 1
    assert distinct == len(keys)
    assert len(digests) % 32 == 0
    assert entries[-1] == len(stored) - 1


# ---------------------------------------------------------------------------------------------
# verify="fast": cache hits confirmed by a content digest


def fast(root: Path) -> list[tuple[str, int, list[tuple[str, int]]]]:
    return flat(chunker.scan_directory(root, verify="fast"))


def _current_keys(root: Path) -> list[bytes]:
    """The keys the current backend's walk builds for ``root`` now."""
    job = _chunker_native.tree_job(os.path.realpath(root), [])
    try:
        while job.wait_walk(0.25) is None:
            pass
        listed = job.file_keys()
        assert listed is not None
        return listed[0]
    finally:
        job.cancel()


def _forge(root: Path, tag: int | None = None) -> None:
    """Rewrites the cache so that every file's current fingerprint maps to what the cache stored
    for its path (simulating a rewrite that kept the whole fingerprint); with ``tag``, every
    stored content digest gets that algorithm tag."""
    path = _hash_cache.cache_path(os.path.realpath(root))
    snap = _hash_cache.load(path, chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    n = _hash_cache.KEY_PREFIX
    old = {key[n:]: i for key, i in snap.index.items()}
    keys = _current_keys(root)
    hashes: list[list[str]] = []
    digests: list[bytes] = []
    for key in keys:
        i = old[key[n:]]
        text = snap.hashes[snap.start[i] : snap.start[i + 1]]
        hashes.append([text[j : j + 64] for j in range(0, len(text), 64)])
        (d,) = snap.digests([i])
        digests.append(bytes((tag,)) + d[1:] if tag is not None and d else d)
    now = 2 * OLD_NS
    assert _hash_cache.save(path, chunker.CHUNK_SIZE_BYTES, now, keys, [0] * len(keys), hashes, digests)


def test_fast_catches_a_rewrite_that_kept_the_fingerprint(tree: Path, reads: Callable[..., int]) -> None:
    assert fast(tree) == oracle(tree)
    assert reads() == 3
    assert fast(tree) == oracle(tree)
    assert reads() == 0  # reading for the digest is not a SHA-256 read
    mid = tree / "sub" / "mid.bin"
    mid.write_bytes(os.urandom(10_000))
    age(mid)
    _forge(tree)
    stale = scan(tree)
    assert reads() == 0
    assert stale != oracle(tree)  # the default trusts the fingerprint
    assert fast(tree) == oracle(tree)
    assert reads() == 1
    assert fast(tree) == oracle(tree)  # the cache now holds the new content
    assert reads() == 0


@pytest.mark.anyio
async def test_fast_chunk_directory_reuses_everything_with_the_same_events(
    tree: Path, reads: Callable[..., int]
) -> None:
    cold: list[ChunkProgressEvent] = []
    warm: list[ChunkProgressEvent] = []
    a = await chunker.chunk_directory(tree, on_progress=cold.append, verify="fast")
    assert reads() == 3
    b = await chunker.chunk_directory(tree, on_progress=warm.append, verify="fast")
    assert reads() == 0
    assert a == b
    assert cold == warm
    assert flat(b) == oracle(tree)


def test_fast_rehashes_entries_without_a_digest(tree: Path, reads: Callable[..., int]) -> None:
    want = oracle(tree)
    assert scan(tree) == want  # a default scan stores no digests
    reads()
    assert fast(tree) == want
    assert reads() == 3
    assert fast(tree) == want
    assert reads() == 0
    # a default scan keeps the digests it finds, and stores none for what it re-hashes
    age(tree / "a.txt", OLD_NS + 10_000)
    assert scan(tree) == want
    assert reads() == 1
    assert fast(tree) == want
    assert reads() == 1
    assert fast(tree) == want
    assert reads() == 0


def test_fast_never_compares_digests_of_another_algorithm(tree: Path, reads: Callable[..., int]) -> None:
    fast(tree)
    reads()
    snap = _hash_cache.load(_hash_cache.cache_path(str(tree)), chunker.CHUNK_SIZE_BYTES)
    assert snap is not None
    stored = snap.digests(range(len(snap.index)))
    tags = {d[0] for d in stored}
    assert len(tags) == 1
    (tag,) = tags
    if chunker.backend() == "native":
        assert tag == _hash_cache.TAG_XXH3
        assert {len(d) for d in stored} == {17}
    other = _hash_cache.TAG_SHA256 if tag == _hash_cache.TAG_XXH3 else _hash_cache.TAG_XXH3
    _forge(tree, other)
    assert fast(tree) == oracle(tree)
    assert reads() == 3


def test_fast_with_an_unreadable_hit_rehashes(
    tree: Path, reads: Callable[..., int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast(tree)
    reads()

    def broken(paths: object, native: object) -> list[bytes]:
        raise PermissionError(13, "denied", "x")

    monkeypatch.setattr(_hash_cache, "content_digests", broken)
    assert fast(tree) == oracle(tree)
    assert reads() == 3


def test_verify_must_be_stat_or_fast(tree: Path) -> None:
    with pytest.raises(ValueError, match="verify"):
        chunker.scan_directory(tree, verify="slow")  # type: ignore[arg-type]


def test_content_digests_of_both_backends_agree_on_xxh3(tmp_path: Path) -> None:
    native = _chunker_native.loaded()
    assert native is not None, "the dev install builds the native core"
    p = tmp_path / "f"
    data = os.urandom(3 * MIB + 5)
    p.write_bytes(data)
    (got,) = _hash_cache.content_digests([str(p)], native.xxh3_files)
    assert got[0] == _hash_cache.TAG_XXH3
    assert len(got) == 17
    assert got[1:] == xxhash.xxh3_128(data).digest()


def test_content_digests_fallback_without_xxhash_is_sha256(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_hash_cache, "_xxh3_128", lambda: None)
    paths = []
    for i, size in enumerate((0, 5, 2 * MIB + 1)):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(size))
        paths.append(p)
    got = _hash_cache.content_digests([str(p) for p in paths], None)
    assert got == [bytes((_hash_cache.TAG_SHA256,)) + hashlib.sha256(p.read_bytes()).digest() for p in paths]
    with pytest.raises(FileNotFoundError):
        _hash_cache.content_digests([str(tmp_path / "missing")], None)
