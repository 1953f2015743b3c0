"""The pure-Python chunker: the same output as the native core, as fast as Python allows.

- Walk: ``os.scandir`` with plain strings (no pathlib), one directory at a time.
- Hash: files of at most 4 KiB are read and hashed in the calling thread (pooling them costs more
  than it saves, as the GIL hand-offs outweigh the work); every 4 MiB chunk of a larger file is a
  task for a thread pool (one thread per core), read with ``preadv``/``readinto`` into a
  per-thread reused buffer; ``hashlib`` releases the GIL while it hashes.
- Results are produced in manifest order, in batches, by :class:`FallbackJob` (it satisfies
  ``_backend.Job``, as the native ``ScanJob`` does).
- Every open for hashing or reading proves it got the file the walk saw (see :func:`_open`).
- The hash cache: the walk records each file's stat fingerprint (from ``os.scandir``'s own
  ``stat``), and files the cache knows are passed to ``start_hashing`` and never opened.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ._errors import SourceChanged
from ._glob import IgnoreMatcher
from ._hash_cache import RawHits, Snapshot, lookup, make_key
from ._model import CHUNK_SIZE, FileId, HashedBatch, RawBatch
from ._walk import CancelledError, Stamp, stamp, walk

__all__ = [
    "FallbackJob",
    "hash_range",
    "read_and_hash",
    "verify_range",
]

SMALL_FILE = 4 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BATCH_FILES = 4096
_GROUP_BYTES = 1024 * 1024
_GROUP_FILES = 64
_NO_ID = (0, 0)


# ---------------------------------------------------------------------------------------------
# reading and hashing


def _abs(root: str, rel: str) -> str:
    if not rel:
        return root
    return os.path.join(root, *rel.split("/")) if os.sep != "/" else root + "/" + rel


def _short(path: str, offset: int, got: int, want: int) -> SourceChanged:
    return SourceChanged(path, offset, f"short read ({got} of {want} bytes)")


if hasattr(os, "preadv"):

    def _read_into(fd: int, view: memoryview, offset: int) -> int:
        got = 0
        size = len(view)
        while got < size:
            n = os.preadv(fd, [view[got:]], offset + got)
            if n == 0:
                break
            got += n
        return got

else:  # pragma: no cover - Windows

    def _read_into(fd: int, view: memoryview, offset: int) -> int:
        os.lseek(fd, offset, os.SEEK_SET)
        got = 0
        size = len(view)
        while got < size:
            n = os.readv(fd, [view[got:]]) if hasattr(os, "readv") else _readinto_fileio(fd, view[got:])
            if not n:
                break
            got += n
        return got

    def _readinto_fileio(fd: int, view: memoryview) -> int:
        import io

        with io.FileIO(fd, closefd=False) as f:
            return f.readinto(view) or 0


_local = threading.local()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = memoryview(bytearray(CHUNK_SIZE))
        _local.view = view
    return view


def _open(path: str, file_id: FileId | None, follow: bool = True) -> int:
    """Opens ``path`` for reading, proving it is the file the walk saw (same device and inode):
    a link or file swapped since the walk is refused, so nothing outside the root is read. A file
    the walk saw as a regular file is opened without following a link (``follow=False``)."""
    try:
        fd = os.open(path, _OPEN_FLAGS if follow else _OPEN_FLAGS | _NOFOLLOW)
    except OSError as e:
        if not follow and e.errno == errno.ELOOP:
            raise SourceChanged(path, 0, "not the file the scan saw (replaced or relinked)") from None
        raise
    if file_id is None or file_id == _NO_ID:
        return fd
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if (st.st_dev, st.st_ino) != file_id:
        os.close(fd)
        raise SourceChanged(path, 0, "not the file the scan saw (replaced or relinked)")
    return fd


def hash_range(path: str, offset: int, size: int, file_id: FileId | None = None, follow: bool = True) -> str:
    """SHA-256 hex of ``size`` bytes at ``offset``, read into a reused per-thread buffer.

    One read and one hash per chunk: reading in smaller pieces (to hash them while in the CPU
    cache) measured no faster in Python, and costs more GIL hand-offs. ``hashlib`` releases the
    GIL while it hashes.
    """
    fd = _open(path, file_id, follow)
    try:
        view = _buffer()[:size] if size <= CHUNK_SIZE else memoryview(bytearray(size))
        got = _read_into(fd, view, offset)
    finally:
        os.close(fd)
    if got < size:
        raise _short(path, offset, got, size)
    return hashlib.sha256(view).hexdigest()


def read_and_hash(
    path: str, offset: int, size: int, want_hash: bool, file_id: FileId | None = None
) -> tuple[bytes, str | None]:
    """Up to ``size`` bytes at ``offset`` (shorter when the file is), and their SHA-256 if asked."""
    fd = _open(path, file_id)
    try:
        buf = bytearray(size)
        got = _read_into(fd, memoryview(buf), offset)
    finally:
        os.close(fd)
    if got < size:
        del buf[got:]
    data = bytes(buf)
    return data, hashlib.sha256(data).hexdigest() if want_hash else None


def verify_range(path: str, offset: int, size: int, expected_hash: str, file_id: FileId | None) -> bool:
    """Whether the bytes hash to ``expected_hash``; a file too short is False."""
    fd = _open(path, file_id)
    try:
        view = memoryview(bytearray(size))
        got = _read_into(fd, view, offset)
    finally:
        os.close(fd)
    return got == size and hashlib.sha256(view).hexdigest() == expected_hash.lower()


def _hash_small(path: str, size: int, file_id: FileId | None = None, follow: bool = True) -> str:
    fd = _open(path, file_id, follow)
    try:
        data = os.read(fd, size)
        while len(data) < size:
            more = os.read(fd, size - len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) < size:
        raise _short(path, 0, len(data), size)
    return hashlib.sha256(data).hexdigest()


def _threads() -> int:
    return max(1, os.cpu_count() or 1)


class _Group:
    """Mid-size files (4 KiB to 4 MiB) hashed together in one pool task."""

    __slots__ = ("bytes", "future", "items")

    def __init__(self) -> None:
        self.items: list[tuple[str, int, FileId, bool]] = []
        self.bytes = 0
        self.future: Future[list[str]] | None = None


def _hash_group(items: list[tuple[str, int, FileId, bool]]) -> list[str]:
    return [hash_range(path, 0, size, ident, follow) for path, size, ident, follow in items]


class _Known:
    """A file whose hashes came from the cache."""

    __slots__ = ("hashes",)

    def __init__(self, hashes: list[str]):
        self.hashes = hashes


def iter_hashed(
    base: str,
    files: list[tuple[str, int]],
    ids: list[FileId],
    cancel: threading.Event | None = None,
    linked: frozenset[str] = frozenset(),
    threads: int = 0,
    known: dict[int, list[str]] | None = None,
    opened: list[int] | None = None,
) -> Iterator[HashedBatch]:
    """Hash ``files`` (sorted ``(rel, size)``); yield batches in manifest order.

    A batch is ``(paths, sizes, hashes, ids)``: the hashes of all the batch's chunks, in order.
    Every open proves it got the file of ``ids`` (the walk's identity of each file).
    Files of at most 4 KiB are hashed here, in the calling thread; larger ones go to a pool of
    one thread per core: mid-size files in groups of about 1 MiB (one task per file would cost
    more in hand-offs than the hashing), large files one task per 4 MiB chunk. Files in
    ``known`` (index -> hashes, from the cache) are not opened; ``opened[0]`` counts the others.
    """
    threads = threads or _threads()
    pool: ThreadPoolExecutor | None = None
    # files not yet emitted, in order: (rel, size, what to wait for)
    #   None | str: a small file's hash (None when empty);
    #   (_Group, i): a mid-size file, item i of a group;  list[Future]: a large file's chunks
    pending: deque[tuple[str, int, str | tuple[_Group, int] | list[Future[str]] | _Known | None, FileId]] = (
        deque()
    )
    group = _Group()
    paths: list[str] = []
    sizes: list[int] = []
    hashes: list[str] = []
    out_ids: list[FileId] = []
    prefix = base + os.sep
    native_sep = os.sep == "/"

    def start_pool() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="roost-hash")

    def submit_group() -> None:
        nonlocal group, pool
        if group.items:
            pool = pool or start_pool()
            group.future = pool.submit(_hash_group, group.items)
            group = _Group()

    def drain(block: bool) -> None:
        """Move finished files from the front of ``pending`` to the output lists."""
        while pending:
            rel, size, ref, ident = pending[0]
            if isinstance(ref, tuple):
                fut = ref[0].future
                if fut is None or (not block and not fut.done()):
                    return
                hashes.append(fut.result()[ref[1]])
            elif isinstance(ref, _Known):
                hashes.extend(ref.hashes)
            elif isinstance(ref, list):
                if not block and not all(f.done() for f in ref):
                    return
                hashes.extend(f.result() for f in ref)
            elif ref is not None:
                hashes.append(ref)
            pending.popleft()
            paths.append(rel)
            sizes.append(size)
            out_ids.append(ident)

    try:
        for index, (rel, size) in enumerate(files):
            ident = ids[index]
            follow = rel in linked
            if cancel is not None and cancel.is_set():
                raise CancelledError
            cached = known.get(index) if known is not None else None
            if cached is not None:
                if pending:
                    pending.append((rel, size, _Known(cached), ident))
                else:
                    paths.append(rel)
                    sizes.append(size)
                    out_ids.append(ident)
                    hashes.extend(cached)
                if len(paths) >= _BATCH_FILES:
                    yield paths, sizes, hashes, out_ids
                    paths, sizes, hashes, out_ids = [], [], [], []
                continue
            if opened is not None and size:
                opened[0] += 1
            path = prefix + rel if native_sep and rel else _abs(base, rel)
            if size <= SMALL_FILE:
                digest = _hash_small(path, size, ident, follow) if size else None
                if pending:
                    pending.append((rel, size, digest, ident))
                else:
                    paths.append(rel)
                    sizes.append(size)
                    out_ids.append(ident)
                    if digest is not None:
                        hashes.append(digest)
            elif size <= CHUNK_SIZE:
                pending.append((rel, size, (group, len(group.items)), ident))
                group.items.append((path, size, ident, follow))
                group.bytes += size
                if group.bytes >= _GROUP_BYTES or len(group.items) >= _GROUP_FILES:
                    submit_group()
            else:
                submit_group()
                pool = pool or start_pool()
                submit = pool.submit
                futures = [
                    submit(hash_range, path, off, min(CHUNK_SIZE, size - off), ident, follow)
                    for off in range(0, size, CHUNK_SIZE)
                ]
                pending.append((rel, size, futures, ident))
            if pending:
                drain(block=False)
            if len(paths) >= _BATCH_FILES:
                yield paths, sizes, hashes, out_ids
                paths, sizes, hashes, out_ids = [], [], [], []
        submit_group()
        drain(block=True)
        if paths:
            yield paths, sizes, hashes, out_ids
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# the job (same interface as the native ScanJob)

_END = object()
# (cancel, stamps, skipped, linked) -> the files
_Target = Callable[
    [threading.Event, dict[str, Stamp], list[tuple[str, str]], set[str]], list[tuple[str, int]]
]


class FallbackJob:
    """A scan in a background thread: ``wait_walk`` -> ``start_hashing`` -> ``next_batch``."""

    def __init__(self, base: str, target: _Target, matcher: IgnoreMatcher | None = None):
        self._cancel = threading.Event()
        self._stamps: dict[str, Stamp] = {}
        self._keys: tuple[list[bytes], list[int], list[int]] | None = None
        self._skipped: list[tuple[str, str]] = []
        self._linked: set[str] = set()
        self._matcher = matcher
        self._files: list[tuple[str, int]] = []
        self._known: dict[int, list[str]] | None = None
        self._opened = [0]
        self._go = threading.Event()
        self._walked: queue.Queue[tuple[int, int] | BaseException] = queue.Queue(1)
        self._summary: tuple[int, int] | None = None
        self._out: queue.Queue[HashedBatch | BaseException | object] = queue.Queue()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(base, target), name="roost-scan-py", daemon=True
        )
        self._thread.start()

    @classmethod
    def for_tree(cls, root: str, patterns: list[str], defaults: bool = True) -> FallbackJob:
        matcher = IgnoreMatcher(patterns, defaults=defaults)  # raises here, before the thread starts

        def target(
            cancel: threading.Event,
            stamps: dict[str, Stamp],
            skipped: list[tuple[str, str]],
            linked: set[str],
        ) -> list[tuple[str, int]]:
            files = walk(root, matcher, cancel, stamps, skipped, linked)
            files.sort()
            skipped.sort()
            return files

        return cls(root, target, matcher)

    @classmethod
    def for_file(cls, path: str) -> FallbackJob:
        def target(
            cancel: threading.Event,
            stamps: dict[str, Stamp],
            skipped: list[tuple[str, str]],
            linked: set[str],
        ) -> list[tuple[str, int]]:
            linked.add("")  # the open follows a link, as os.stat did
            st = os.stat(path)
            stamps[""] = stamp(path, st)
            return [("", st.st_size)]

        return cls(path, target)

    def _run(self, base: str, target: _Target) -> None:
        try:
            files = target(self._cancel, self._stamps, self._skipped, self._linked)
        except BaseException as e:
            self._walked.put(e)
            return
        self._files = files
        self._walked.put((len(files), sum(s for _, s in files)))
        while not self._go.wait(0.05):
            if self._cancel.is_set():
                return
        stamps = self._stamps
        ids = [(stamps[rel][3], stamps[rel][2]) for rel, _ in files]
        try:
            linked = frozenset(self._linked)
            batches = iter_hashed(
                base, files, ids, self._cancel, linked, known=self._known, opened=self._opened
            )
            for batch in batches:
                self._out.put(batch)
            self._out.put(_END)
        except BaseException as e:
            self._out.put(e)

    def wait_walk(self, timeout: float) -> tuple[int, int] | None:
        if self._summary is not None:
            return self._summary
        try:
            got = self._walked.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(got, BaseException):
            raise got
        self._summary = got
        return got

    def skipped(self) -> list[tuple[str, str]]:
        """``(rel, reason)`` of what the walk left out, sorted by path (empty before the walk)."""
        return list(self._skipped) if self._summary is not None else []

    def unmatched(self) -> list[str]:
        """The given patterns that matched nothing in the walk (empty before it)."""
        if self._summary is None or self._matcher is None:
            return []
        return self._matcher.unmatched()

    def start_hashing(
        self, skip: list[int] | None = None, digests: bytes | None = None, hold: bool = False
    ) -> bool:
        """Lets the hashing begin; files ``skip`` (sorted indices) take ``digests`` (raw 32-byte
        SHA-256 digests of all their chunks, in order) instead of being read. False, and nothing
        started, when those do not match the walk. ``hold`` is accepted and has no effect: this
        backend hands out no bytes (its batches' last list is empty), so a caller reads them
        again where it needs them."""
        if self._go.is_set():
            return True
        if skip is not None:
            known: dict[int, list[str]] = {}
            raw = digests or b""
            at = 0
            for i in skip:
                if not 0 <= i < len(self._files):
                    return False
                n = -(-self._files[i][1] // CHUNK_SIZE)
                known[i] = [raw[32 * k : 32 * k + 32].hex() for k in range(at, at + n)]
                at += n
            if 32 * at != len(raw):
                return False
            self._known = known
        self._go.set()
        return True

    def file_keys(self) -> tuple[list[bytes], list[int], list[int]] | None:
        """``(keys, sizes, mtime_ns)`` of the walk's files in manifest order, the keys being the
        hash cache's (``_hash_cache.make_key``); None before the walk is done."""
        if self._summary is None:
            return None
        if self._keys is None:  # built once: the cache lookup needs them too
            stamps = self._stamps
            keys: list[bytes] = []
            mtimes: list[int] = []
            for rel, size in self._files:
                m, c, ino, dev = stamps[rel]
                keys.append(make_key(rel, size, m, c, ino, dev))
                mtimes.append(m)
            self._keys = keys, [s for _, s in self._files], mtimes
        return self._keys

    def cache_hits(self, key_lengths: bytes, keys: bytes, counts: bytes, hashes: bytes) -> RawHits | None:
        """The walked files a hash cache answers, from its sections (``ScanJob.cache_hits``)."""
        listed = self.file_keys()
        if listed is None:
            return None
        return lookup(Snapshot(key_lengths, keys, counts, hashes), listed[0])

    def entries_json(self) -> str | None:
        """None: the native core's shortcut; callers build the text from the entries
        (``_model.entries_json``)."""
        return None

    @property
    def files_read(self) -> int:
        """Files opened to hash so far (cached ones are not)."""
        return self._opened[0]

    def next_batch(self, timeout: float) -> RawBatch | None:
        if self._done:
            return None
        try:
            got = self._out.get(timeout=timeout)
        except queue.Empty:
            if self._cancel.is_set():
                raise CancelledError from None
            return [], [], [], [], []
        if got is _END:
            self._done = True
            return None
        if isinstance(got, BaseException):
            raise got
        hashed: HashedBatch = got  # type: ignore[assignment]
        return (*hashed, [])

    def grant(self, budget: int) -> int:
        """Nothing to grant: this backend holds no bytes (see :meth:`start_hashing`)."""
        return 0

    def cancel(self) -> None:
        self._cancel.set()
