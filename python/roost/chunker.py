"""Public chunker API: walk a tree, split files into 4 MiB SHA-256 chunks.

This is what ``push()`` runs first, and what custom uploaders can import.

Backends
    The native core (``roost._native``, Rust) walks in parallel and hashes every 4 MiB chunk of
    every file on all cores with the GIL released, streaming results back in batches. When the
    extension cannot be imported, or ``ROOST_NATIVE=0`` is set, a pure-Python fallback produces
    the same output. :func:`backend` says which one is in use (``ROOST_NATIVE`` is read on each
    call).

The walk
    - Regular files only: FIFOs, sockets and devices are skipped (and never opened).
    - ``.git`` and ``node_modules`` are ignored at any depth, plus the ``ignore`` patterns.
    - Symlinks are followed when the target exists and resolves inside the root: a linked file is
      listed under the link's own path, a linked directory is walked under it (so its files
      appear under both paths). A link that escapes the root or is broken is skipped, and so is a
      link to one of its own ancestor directories (a cycle), so every walk ends.
    - Zero-byte files are listed, with size 0 and no chunks.
    - Paths are relative to the root, ``/``-separated on every platform, and valid UTF-8: a name
      that is not raises ``ValueError`` naming it (bad bytes shown as ``\\xNN``).
    - Entries are sorted by the plain path string (Python ``str`` order, i.e. by code point): this
      is the manifest order, the order of progress events and of :func:`unique_hashes`.

Ignore patterns (gitignore-like globs, case-sensitive)
    - A pattern without ``/`` matches any single path component: ``*.tmp``, ``__pycache__``,
      ``Backup*``. A pattern with ``/`` matches the whole relative path from the root:
      ``renders/cache/**``, ``**/*.log``, ``docs/*.md``. One leading ``/`` anchors a pattern
      without other slashes to the root (``/build``); a trailing ``/`` matches directories only
      (``cache/``).
    - ``*`` matches any run of characters but ``/``, ``?`` one such character, ``[abc]``,
      ``[a-z]``, ``[!a-z]`` (or ``[^a-z]``) one character of a class; ``\\`` escapes the next
      character. A component that is exactly ``**`` matches zero or more components
      (``**/x``, ``a/**/b``, ``a/**``); elsewhere ``**`` is ``*``. Braces are literal.
    - A matched directory is pruned: nothing under it is read.
    - A malformed pattern (unclosed ``[``, a trailing ``\\``, an empty component) raises
      ``ValueError`` before anything is read.

Chunks
    Each file becomes consecutive chunks of :data:`CHUNK_SIZE_BYTES` (4 MiB; the last may be
    shorter), each with the lowercase hex SHA-256 of its bytes.

Progress
    :func:`chunk_directory` emits one :class:`DiscoverProgress` when the walk is done (every
    listed file counts, zero-byte ones too; no file is read before its callback returns), then one :class:`HashProgress` per file in manifest
    order, whose ``files_done``/``bytes_done`` are the files and bytes completed before it, and a
    final one with ``file=""`` and ``files_done == files_total``. Chunks are hashed in parallel, so
    the events follow the results as they stream in; their values are those of a sequential run.
    Sync and async callbacks are both called in order, async ones awaited; an exception raised by
    the callback stops the scan and propagates.

The hash cache
    :func:`scan_directory` and :func:`chunk_directory` (and so ``push()``) keep, per root, the
    chunks of every file with its stat fingerprint ``(path, size, mtime_ns, ctime_ns, inode,
    device)``. A file whose fingerprint is unchanged since the last scan is not opened: its
    chunks come from the cache. Any difference re-hashes it, and so does a file modified within
    2 seconds before the scan that cached it (the "racy git" rule). ``cache=False`` bypasses
    it (neither read nor written). The cache lives in ``ROOST_CACHE_DIR``, else the user cache
    dir (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``%LOCALAPPDATA%`` on Windows,
    ``~/Library/Caches`` on macOS) under ``owlette-sdk/hash-cache``; it is written atomically
    after each successful scan that changed it, and a corrupt, truncated or foreign-version
    file is ignored and rebuilt. Results are identical with and without it. Format and rules:
    ``roost._hash_cache``.

    ``verify="fast"`` does not trust the fingerprint alone: before hashing, every cache hit is
    read once more and its xxh3-128 digest (SHA-256 in the pure-Python fallback without the
    ``xxhash`` package) compared with the one the cache stored; a hit without a stored digest, or
    with another one, is re-hashed. This catches a rewrite that kept the whole fingerprint (a
    restored mtime on a file system with coarse or unreliable ctime), at the cost of reading
    every file (xxh3 runs at memory speed: about ten times SHA-256), but none is SHA-256-hashed
    again. A fast scan stores the content digest of every cached file (the freshly hashed ones
    are read once more, from the page cache); the default ``verify="stat"`` keeps the digests it
    finds. A hit that cannot be read for the check is re-hashed (which raises the error).

Reading chunks back
    :func:`read_chunk` re-reads one chunk (and, given its hash, verifies it) right before it is
    uploaded, raising :class:`roost.ChunkSourceChangedError` when the file changed since it was
    hashed; :func:`verify_chunk` answers the same question without returning the bytes. Both
    block (the native read releases the GIL): call them from a worker thread.

Errors
    I/O errors are ``OSError`` subclasses whose ``filename`` is the absolute path involved; a file
    that shrinks while it is read raises :class:`roost.ChunkSourceChangedError`; a root that
    does not exist or is not a directory raises ``FileNotFoundError``/``NotADirectoryError``.
"""

from __future__ import annotations

import errno
import gc
import hashlib
import inspect
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import anyio.to_thread

from . import _chunker_py, _hash_cache
from ._chunker_glob import PatternError
from ._chunker_native import NativeModule, load
from ._errors import ChunkSourceChangedError

__all__ = [
    "CHUNK_SIZE_BYTES",
    "ChunkDescriptor",
    "ChunkProgressEvent",
    "ChunkedFileEntry",
    "DiscoverProgress",
    "HashProgress",
    "SkipReason",
    "SkippedEntry",
    "backend",
    "chunk_directory",
    "chunk_one_file",
    "read_chunk",
    "scan_directory",
    "unique_hashes",
    "verify_chunk",
]

CHUNK_SIZE_BYTES = 4 * 1024 * 1024
DEFAULT_IGNORES = (".git", "node_modules")
_POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class ChunkDescriptor:
    """One chunk: lowercase hex SHA-256 of its bytes, and its size."""

    hash: str
    size: int


@dataclass(frozen=True, slots=True)
class ChunkedFileEntry:
    """One file: POSIX path relative to the root, size, and its chunks in order (none when empty)."""

    path: str
    size: int
    chunks: tuple[ChunkDescriptor, ...] = field(default_factory=tuple)


#: Why the walk left an entry out (see :class:`SkippedEntry`).
SkipReason = Literal["link_outside_root", "broken_link", "special_file", "repeated_directory"]


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry the walk did not list: POSIX path relative to the root, and why."""

    path: str
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class DiscoverProgress:
    """The walk is done: ``file_count`` files of ``total_bytes`` will be hashed.

    ``skipped`` lists what the walk left out (sorted by path), ``unmatched_ignores`` the ignore
    patterns (given, from the ignore file, or default) that matched nothing.
    """

    phase: Literal["discover"] = field(default="discover", init=False)
    file_count: int
    total_bytes: int
    skipped: tuple[SkippedEntry, ...] = ()
    unmatched_ignores: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HashProgress:
    phase: Literal["hash"] = field(default="hash", init=False)
    file: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ChunkProgressEvent = DiscoverProgress | HashProgress
ProgressCallback = Callable[[ChunkProgressEvent], Awaitable[None] | None]


def backend() -> Literal["native", "python"]:
    """``"native"`` when the Rust core is in use, ``"python"`` for the fallback."""
    return "python" if load() is None else "native"


# ---------------------------------------------------------------------------------------------
# building entries from the batches the jobs stream back

# A batch from a job: paths, sizes, and every chunk hash of those files in order.
RawBatch = tuple[list[str], list[int], list[str]]

# The dataclasses are frozen; the slot descriptors set their fields directly, about 2.5x faster
# than __init__ (which goes through object.__setattr__ per field). This matters for trees of
# 100,000 small files, and so does pausing the cyclic GC while the objects are built (it would
# otherwise scan the growing result list again and again: 0.19 s against 0.07 s for 100,000).
_new = object.__new__
_set_chunk_hash = ChunkDescriptor.__dict__["hash"].__set__
_set_chunk_size = ChunkDescriptor.__dict__["size"].__set__
_set_entry_path = ChunkedFileEntry.__dict__["path"].__set__
_set_entry_size = ChunkedFileEntry.__dict__["size"].__set__
_set_entry_chunks = ChunkedFileEntry.__dict__["chunks"].__set__


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _descriptor(digest: str, size: int) -> ChunkDescriptor:
    d: ChunkDescriptor = _new(ChunkDescriptor)
    _set_chunk_hash(d, digest)
    _set_chunk_size(d, size)
    return d


def _entries(batch: RawBatch, path: str | None = None) -> list[ChunkedFileEntry]:
    paths, sizes, hashes = batch
    out: list[ChunkedFileEntry] = []
    append = out.append
    new, set_hash, set_csize = _new, _set_chunk_hash, _set_chunk_size
    set_path, set_size, set_chunks = _set_entry_path, _set_entry_size, _set_entry_chunks
    at = 0
    with _gc_paused():
        for rel, size in zip(paths, sizes, strict=True):
            if size == 0:
                chunks: tuple[ChunkDescriptor, ...] = ()
            elif size <= CHUNK_SIZE_BYTES:
                d = new(ChunkDescriptor)
                set_hash(d, hashes[at])
                set_csize(d, size)
                chunks = (d,)
                at += 1
            else:
                n = -(-size // CHUNK_SIZE_BYTES)
                last = size - CHUNK_SIZE_BYTES * (n - 1)
                chunks = (
                    *(_descriptor(h, CHUNK_SIZE_BYTES) for h in hashes[at : at + n - 1]),
                    _descriptor(hashes[at + n - 1], last),
                )
                at += n
            e = new(ChunkedFileEntry)
            set_path(e, rel if path is None else path)
            set_size(e, size)
            set_chunks(e, chunks)
            append(e)
    if at != len(hashes):
        raise RuntimeError(f"chunker: internal error: {len(hashes)} hashes for {at} chunks")
    return out


# ---------------------------------------------------------------------------------------------
# inputs


def _patterns(ignore: Sequence[str]) -> list[str]:
    if isinstance(ignore, str):
        raise TypeError("chunker: ignore must be a sequence of patterns, not a single str")
    out: list[str] = []
    for p in ignore:
        if not isinstance(p, str):
            raise TypeError(f"chunker: ignore patterns must be str, got {type(p).__name__}")
        try:
            p.encode("utf-8")
        except UnicodeEncodeError:
            raise PatternError(
                p.encode("utf-8", "backslashreplace").decode("ascii"), "not valid UTF-8"
            ) from None
        out.append(p)
    return out


def _resolve_root(root: str | os.PathLike[str]) -> str:
    path = os.path.realpath(os.fspath(root))
    st = os.stat(path)  # FileNotFoundError with the path
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    return path


def _check_file(abs_path: str | os.PathLike[str]) -> str:
    path = os.path.abspath(os.fspath(abs_path))
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"chunker: {path} is not a regular file")
    return path


# ---------------------------------------------------------------------------------------------
# jobs (native ScanJob or the fallback's FallbackJob: same interface)


class _Job(Protocol):
    def wait_walk(self, timeout: float) -> tuple[int, int] | None: ...

    def start_hashing(self, skip: list[int] | None = ..., digests: Any = ...) -> None: ...

    def file_keys(self) -> tuple[list[bytes], list[int], list[int]] | None: ...

    @property
    def files_read(self) -> int: ...

    def next_batch(self, timeout: float) -> RawBatch | None: ...

    def cancel(self) -> None: ...


def _translate(exc: BaseException, native: NativeModule | None) -> BaseException:
    if isinstance(exc, _chunker_py.SourceChanged):
        return ChunkSourceChangedError(exc.path, "", exc.offset, exc.reason)
    if native is not None and isinstance(exc, native.SourceChangedError):
        path, offset, reason = exc.args
        return ChunkSourceChangedError(os.fspath(path), "", int(offset), str(reason))
    return exc


T = TypeVar("T")


def _guard(native: NativeModule | None, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except (_chunker_py.SourceChanged, RuntimeError) as e:
        new = _translate(e, native)
        if new is e:
            raise
        raise new from None


def _tree_job(root: str, patterns: list[str], native: NativeModule | None) -> _Job:
    if native is None:
        return _chunker_py.FallbackJob.for_tree(root, patterns)
    return native.ScanJob(root, patterns)


def _file_job(path: str, native: NativeModule | None) -> _Job:
    if native is None:
        return _chunker_py.FallbackJob.for_file(path)
    return native.ScanJob.for_file(path)


# ---------------------------------------------------------------------------------------------
# the hash cache (see roost._hash_cache)

_last_files_read = 0  # files opened by the last tree scan (for tests and benchmarks)


def _files_read() -> int:
    """How many files the last :func:`scan_directory`/:func:`chunk_directory` opened."""
    return _last_files_read


@dataclass(slots=True)
class _CachePlan:
    path: str
    start_ns: int
    keys: list[bytes]
    mtimes: list[int]
    hits: int
    stored: int  # entries in the loaded cache (0 without one)
    verify: str = "stat"
    root: str = ""
    # the hits (their stored content digests are those just confirmed with verify="fast")
    hits_used: _hash_cache.CacheHits | None = None


Verify = Literal["stat", "fast"]


def _check_verify(verify: str) -> None:
    if verify not in ("stat", "fast"):
        raise ValueError(f'chunker: verify must be "stat" or "fast", got {verify!r}')


def _abs_paths(root: str, keys: list[bytes], indices: Iterable[int]) -> list[str]:
    prefix = root.rstrip(os.sep) + os.sep
    n = _hash_cache.KEY_PREFIX
    rels = (keys[i][n:].decode("utf-8", "surrogateescape") for i in indices)
    if os.sep == "/":
        return [prefix + r for r in rels]
    return [prefix + r.replace("/", os.sep) for r in rels]


def _digests(native: NativeModule | None, paths: list[str]) -> list[bytes]:
    return _hash_cache.content_digests(paths, None if native is None else native.xxh3_files)


def _confirm(
    hits: _hash_cache.CacheHits, native: NativeModule | None, root: str, keys: list[bytes]
) -> _hash_cache.CacheHits:
    """The hits whose content digest is stored and still matches (verify="fast")."""
    if not hits.indices:
        return hits
    try:
        now = _digests(native, _abs_paths(root, keys, hits.indices))
    except OSError:  # re-hash them all: the hashing reports the error, or sees a new file
        return _hash_cache.CacheHits([], [])
    keep = [j for j, (old, new) in enumerate(zip(hits.digests(), now, strict=True)) if old == new]
    return _hash_cache.CacheHits(
        [hits.indices[j] for j in keep],
        [hits.hashes[j] for j in keep],
        [hits.entries[j] for j in keep],
        hits.snap,
    )


def _cache_start(
    job: _Job, native: NativeModule | None, root: str, start_ns: int, verify: str = "stat"
) -> _CachePlan:
    """Looks the walked files up in the cache and starts the hashing of the others."""
    listed = job.file_keys()
    if listed is None:
        raise RuntimeError("chunker: internal error: no file list after the walk")
    keys, _sizes, mtimes = listed
    path = _hash_cache.cache_path(root)
    snap = _hash_cache.load(path, CHUNK_SIZE_BYTES)
    hits = _hash_cache.CacheHits([], [])
    if snap is not None:
        hits = _hash_cache.lookup(snap, keys)
        if verify == "fast":
            hits = _confirm(hits, native, root, keys)
    try:
        if native is None:
            job.start_hashing(hits.indices, hits.split())
        else:
            job.start_hashing(hits.indices, bytes.fromhex("".join(hits.hashes)))
    except ValueError:  # chunk counts that do not match the sizes: the cache is ignored
        snap, hits = None, _hash_cache.CacheHits([], [])
        job.start_hashing()
    stored = 0 if snap is None else len(snap.index)
    return _CachePlan(path, start_ns, keys, mtimes, len(hits.indices), stored, verify, root, hits)


def _cache_finish(
    plan: _CachePlan | None, job: _Job, out: list[ChunkedFileEntry], native: NativeModule | None = None
) -> None:
    global _last_files_read
    _last_files_read = job.files_read
    if plan is None:
        return
    if plan.hits == len(plan.keys) and plan.stored == plan.hits:
        return  # nothing changed: keep the file as it is
    if len(out) != len(plan.keys):
        raise RuntimeError("chunker: internal error: the scan lost files")
    hashes = [[c.hash for c in e.chunks] for e in out]
    used = plan.hits_used
    known = {} if used is None else dict(zip(used.indices, used.digests(), strict=True))
    digests = [known.get(i, b"") for i in range(len(out))]
    if plan.verify == "fast":
        # the files just hashed (and not racy, so stored): read again, from the page cache
        cutoff = plan.start_ns - _hash_cache.RACY_WINDOW_NS
        todo = [i for i, m in enumerate(plan.mtimes) if i not in known and m < cutoff]
        try:
            for i, d in zip(todo, _digests(native, _abs_paths(plan.root, plan.keys, todo)), strict=True):
                digests[i] = d
        except OSError:  # gone since it was hashed: stored without a digest (a miss next time)
            pass
    _hash_cache.save(plan.path, CHUNK_SIZE_BYTES, plan.start_ns, plan.keys, plan.mtimes, hashes, digests)


def _start(
    job: _Job, native: NativeModule | None, root: str | None, start_ns: int, verify: str = "stat"
) -> _CachePlan | None:
    if root is None:
        job.start_hashing()
        return None
    with _gc_paused():  # 20,000 keys and slices: see _entries
        return _cache_start(job, native, root, start_ns, verify)


def _run_sync(
    job: _Job,
    native: NativeModule | None,
    cache_root: str | None = None,
    start_ns: int = 0,
    verify: str = "stat",
) -> list[ChunkedFileEntry]:
    try:
        while _guard(native, job.wait_walk, _POLL_SECONDS) is None:
            pass
        plan = _start(job, native, cache_root, start_ns, verify)
        out: list[ChunkedFileEntry] = []
        with _gc_paused():  # no user code runs here; see _entries
            while (batch := _guard(native, job.next_batch, _POLL_SECONDS)) is not None:
                out += _entries(batch)
        _cache_finish(plan, job, out, native)
        return out
    finally:
        job.cancel()


async def _emit(callback: ProgressCallback, event: ChunkProgressEvent) -> None:
    result = callback(event)
    if inspect.isawaitable(result):
        await result


async def _run_async(
    job: _Job,
    native: NativeModule | None,
    on_progress: ProgressCallback | None,
    path: str | None = None,
    cache_root: str | None = None,
    start_ns: int = 0,
    verify: str = "stat",
) -> list[ChunkedFileEntry]:
    # Each poll returns within _POLL_SECONDS, so a cancellation lands promptly without abandoning
    # the worker thread (and without needing anyio >= 4.1: httpx is the only declared dependency).
    run = anyio.to_thread.run_sync
    try:
        summary = None
        while summary is None:
            summary = await run(_guard, native, job.wait_walk, _POLL_SECONDS)
        file_count, total_bytes = summary
        if on_progress is not None:
            await _emit(on_progress, DiscoverProgress(file_count, total_bytes))
        plan = await run(_start, job, native, cache_root, start_ns, verify)
        out: list[ChunkedFileEntry] = []
        files_done = bytes_done = 0
        while True:
            batch = await run(_guard, native, job.next_batch, _POLL_SECONDS)
            if batch is None:
                break
            entries = _entries(batch, path)
            if on_progress is None:
                out += entries
                continue
            for entry in entries:
                await _emit(
                    on_progress, HashProgress(entry.path, files_done, file_count, bytes_done, total_bytes)
                )
                out.append(entry)
                files_done += 1
                bytes_done += entry.size
        if path is None:  # a tree (chunk_one_file passes its entry's path)
            await run(_cache_finish, plan, job, out, native)
        if on_progress is not None:
            await _emit(on_progress, HashProgress("", file_count, file_count, total_bytes, total_bytes))
        return out
    finally:
        job.cancel()


# ---------------------------------------------------------------------------------------------
# public API


def scan_directory(
    root: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    cache: bool = True,
    verify: Verify = "stat",
) -> list[ChunkedFileEntry]:
    """Walk ``root`` and chunk every file (blocking; for custom uploaders and scripts).

    Returns the entries in manifest order (sorted by path). See the module documentation for the
    walk rules, the ignore patterns, the hash cache (``cache=False`` bypasses it; ``verify="fast"``
    confirms its hits by content) and the errors.
    """
    _check_verify(verify)
    patterns = _patterns(ignore)
    start_ns = time.time_ns()
    root_str = _resolve_root(root)
    native = load()
    if cache:
        return _run_sync(_tree_job(root_str, patterns, native), native, root_str, start_ns, verify)
    if native is None:
        global _last_files_read
        opened = [0]
        try:
            with _gc_paused():
                out = [e for batch in _chunker_py.scan(root_str, patterns, opened) for e in _entries(batch)]
        except _chunker_py.SourceChanged as e:
            raise _translate(e, None) from None
        _last_files_read = opened[0]
        return out
    return _run_sync(native.ScanJob(root_str, patterns), native)


async def chunk_directory(
    root: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    on_progress: ProgressCallback | None = None,
    cache: bool = True,
    verify: Verify = "stat",
) -> list[ChunkedFileEntry]:
    """Like :func:`scan_directory`, without blocking the event loop, emitting progress events.

    All blocking work runs in worker threads; cancelling the calling task stops the scan (the
    native workers finish within one chunk; a ``verify="fast"`` check, once started, runs to its
    end). ``cache=False`` bypasses the hash cache; ``verify="fast"`` confirms its hits by content.
    """
    _check_verify(verify)
    patterns = _patterns(ignore)
    start_ns = time.time_ns()
    root_str = await anyio.to_thread.run_sync(_resolve_root, root)
    native = load()
    job = _tree_job(root_str, patterns, native)
    return await _run_async(job, native, on_progress, None, root_str if cache else None, start_ns, verify)


async def chunk_one_file(abs_path: str | os.PathLike[str], rel_path: str) -> ChunkedFileEntry:
    """Chunk one regular file; the entry carries ``rel_path`` (an empty file has no chunks).

    A large file is hashed on all cores, without blocking the event loop.
    """
    path = await anyio.to_thread.run_sync(_check_file, abs_path)
    native = load()
    (entry,) = await _run_async(_file_job(path, native), native, None, rel_path)
    return entry


def unique_hashes(entries: Iterable[ChunkedFileEntry]) -> list[str]:
    """Distinct chunk hashes in first-seen order (entry order, then chunk order)."""
    seen: dict[str, None] = {}
    for entry in entries:
        for chunk in entry.chunks:
            seen.setdefault(chunk.hash, None)
    return list(seen)


def read_chunk(path: str, offset: int, size: int, *, expected_hash: str | None = None) -> bytes:
    """Read ``size`` bytes at ``offset``; with ``expected_hash``, verify them.

    Blocking (the native read releases the GIL): call it from a worker thread. Raises
    :class:`roost.ChunkSourceChangedError` when the bytes are short or hash differently, and
    ``OSError`` (with the path) when the file cannot be read.
    """
    _check_range(offset, size)
    native = load()
    want_hash = expected_hash is not None
    if native is not None:
        data, digest = native.read_chunk(path, offset, size, want_hash)
    else:
        data = _chunker_py.read_range(path, offset, size)
        digest = hashlib.sha256(data).hexdigest() if want_hash else None
    if len(data) != size:
        raise ChunkSourceChangedError(
            path, expected_hash or "", offset, f"short read ({len(data)} of {size} bytes)"
        )
    if expected_hash is not None and digest != expected_hash.lower():
        raise ChunkSourceChangedError(path, expected_hash, offset, "content hash differs")
    return data


def _check_range(offset: int, size: int) -> None:
    if offset < 0 or size < 0:
        raise ValueError(f"chunker: offset and size must be >= 0, got offset={offset}, size={size}")


def verify_chunk(path: str, offset: int, size: int, expected_hash: str) -> bool:
    """Whether ``size`` bytes at ``offset`` of ``path`` still hash to ``expected_hash``.

    Blocking, like :func:`read_chunk`, without returning the bytes. A short file is ``False``;
    an unreadable one raises ``OSError``.
    """
    _check_range(offset, size)
    native = load()
    if native is not None:
        return native.verify_chunk(path, offset, size, expected_hash)
    try:
        return _chunker_py.hash_range(path, offset, size) == expected_hash.lower()
    except _chunker_py.SourceChanged:
        return False
