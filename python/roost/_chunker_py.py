"""The pure-Python chunker: the same output as the native core, as fast as Python allows.

- Walk: ``os.scandir`` with plain strings (no pathlib), one directory at a time.
- Hash: files of at most 4 KiB are read and hashed in the calling thread (pooling them costs more
  than it saves, as the GIL hand-offs outweigh the work); every 4 MiB chunk of a larger file is a
  task for a thread pool (one thread per core), read with ``preadv``/``readinto`` into a
  per-thread reused buffer; ``hashlib`` releases the GIL while it hashes.
- Results are produced in manifest order, in batches, by :class:`FallbackJob` (the same interface
  as the native ``ScanJob``) or :func:`scan` (synchronous).
- The hash cache: the walk records each file's stat fingerprint (from ``os.scandir``'s own
  ``stat``), and files the cache knows are passed to ``start_hashing`` and never opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ._chunker_glob import IgnoreMatcher
from ._hash_cache import make_key

__all__ = [
    "CHUNK_SIZE",
    "FallbackJob",
    "RawBatch",
    "SourceChanged",
    "hash_range",
    "non_utf8_message",
    "read_range",
    "scan",
    "walk",
]

CHUNK_SIZE = 4 * 1024 * 1024
SMALL_FILE = 4 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_BATCH_FILES = 4096
_GROUP_BYTES = 1024 * 1024
_GROUP_FILES = 64

RawBatch = tuple[list[str], list[int], list[str]]


class SourceChanged(Exception):  # noqa: N818 - internal signal, mapped to ChunkSourceChangedError
    """A file got shorter while it was read: (path, offset, reason)."""

    def __init__(self, path: str, offset: int, reason: str):
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(path, offset, reason)


class _CancelledError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("chunker: the scan was cancelled")


def non_utf8_message(rel: str) -> str:
    return f'chunker: file name is not valid UTF-8: "{rel}" (manifest paths must be UTF-8; rename it)'


def _escape(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------------------------
# walk


Stamp = tuple[int, int, int, int]  # (mtime_ns, ctime_ns, inode, device)


def walk(
    root: str,
    matcher: IgnoreMatcher,
    cancel: threading.Event | None = None,
    stamps: dict[str, Stamp] | None = None,
) -> list[tuple[str, int]]:
    """``(rel, size)`` of every regular file under ``root`` (absolute, resolved), unsorted.

    With ``stamps``, also records each file's fingerprint there, by relative path.
    """
    root_prefix = root.rstrip(os.sep) + os.sep
    st = os.stat(root)
    found: list[tuple[str, int]] = []
    # (absolute dir, relative dir, chain of (dev, ino) from the root down to it)
    stack: list[tuple[str, str, tuple[tuple[int, int], ...]]] = [(root, "", ((st.st_dev, st.st_ino),))]
    is_ignored = matcher.is_ignored
    append = found.append
    while stack:
        if cancel is not None and cancel.is_set():
            raise _CancelledError
        abs_dir, rel_dir, chain = stack.pop()
        prefix = rel_dir + "/" if rel_dir else ""
        with os.scandir(abs_dir) as it:
            for entry in it:
                name = entry.name
                if not name.isascii():
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        raise ValueError(non_utf8_message(_escape(prefix + name))) from None
                rel = prefix + name
                try:
                    if entry.is_file(follow_symlinks=False):
                        if is_ignored(name, rel, False):
                            continue
                        est = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(est.st_mode):
                            append((rel, est.st_size))
                            if stamps is not None:
                                stamps[rel] = _stamp(entry.path, est)
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if is_ignored(name, rel, True):
                            continue
                        # os.lstat, not entry.stat: on Windows the latter has no inode number
                        est = os.lstat(entry.path)
                        stack.append((entry.path, rel, (*chain, (est.st_dev, est.st_ino))))
                        continue
                except FileNotFoundError:
                    continue
                if entry.is_symlink():
                    _symlink(entry, name, rel, root, root_prefix, chain, matcher, stack, found, stamps)
                # anything else (FIFO, socket, device) is skipped and never opened
    return found


def _symlink(
    entry: os.DirEntry[str],
    name: str,
    rel: str,
    root: str,
    root_prefix: str,
    chain: tuple[tuple[int, int], ...],
    matcher: IgnoreMatcher,
    stack: list[tuple[str, str, tuple[tuple[int, int], ...]]],
    found: list[tuple[str, int]],
    stamps: dict[str, Stamp] | None,
) -> None:
    path = entry.path
    try:
        target_st = os.stat(path)
    except (OSError, ValueError):
        return  # broken, a loop, or unreadable: skipped
    is_dir = stat.S_ISDIR(target_st.st_mode)
    if not is_dir and not stat.S_ISREG(target_st.st_mode):
        return
    if matcher.is_ignored(name, rel, is_dir):
        return
    try:
        target = os.path.realpath(path)
    except (OSError, ValueError):
        return
    if target != root and not target.startswith(root_prefix):
        return
    if is_dir:
        ident = (target_st.st_dev, target_st.st_ino)
        if ident in chain:
            return
        stack.append((path, rel, (*chain, ident)))
    else:
        found.append((rel, target_st.st_size))
        if stamps is not None:
            stamps[rel] = _stamp(path, target_st)


def _stamp(path: str, st: os.stat_result) -> Stamp:
    if st.st_ino == 0 and os.name == "nt":  # pragma: no cover - DirEntry.stat on Windows
        with contextlib.suppress(OSError):
            st = os.stat(path)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


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


def hash_range(path: str, offset: int, size: int) -> str:
    """SHA-256 hex of ``size`` bytes at ``offset``, read into a reused per-thread buffer.

    One read and one hash per chunk: reading in smaller pieces (to hash them while in the CPU
    cache) measured no faster in Python, and costs more GIL hand-offs. ``hashlib`` releases the
    GIL while it hashes.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        view = _buffer()[:size] if size <= CHUNK_SIZE else memoryview(bytearray(size))
        got = _read_into(fd, view, offset)
    finally:
        os.close(fd)
    if got < size:
        raise _short(path, offset, got, size)
    return hashlib.sha256(view).hexdigest()


def read_range(path: str, offset: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (shorter when the file is)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        buf = bytearray(size)
        got = _read_into(fd, memoryview(buf), offset)
    finally:
        os.close(fd)
    if got < size:
        del buf[got:]
    return bytes(buf)


def _hash_small(path: str, size: int) -> str:
    fd = os.open(path, _OPEN_FLAGS)
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
        self.items: list[tuple[str, int]] = []
        self.bytes = 0
        self.future: Future[list[str]] | None = None


def _hash_group(items: list[tuple[str, int]]) -> list[str]:
    return [hash_range(path, 0, size) for path, size in items]


class _Known:
    """A file whose hashes came from the cache."""

    __slots__ = ("hashes",)

    def __init__(self, hashes: list[str]):
        self.hashes = hashes


def iter_hashed(
    base: str,
    files: list[tuple[str, int]],
    cancel: threading.Event | None = None,
    threads: int = 0,
    known: dict[int, list[str]] | None = None,
    opened: list[int] | None = None,
) -> Iterator[RawBatch]:
    """Hash ``files`` (sorted ``(rel, size)``); yield batches in manifest order.

    A batch is ``(paths, sizes, hashes)``: the hashes of all the batch's chunks, in order.
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
    pending: deque[tuple[str, int, str | tuple[_Group, int] | list[Future[str]] | _Known | None]] = deque()
    group = _Group()
    paths: list[str] = []
    sizes: list[int] = []
    hashes: list[str] = []
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
            rel, size, ref = pending[0]
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

    try:
        for index, (rel, size) in enumerate(files):
            if cancel is not None and cancel.is_set():
                raise _CancelledError
            cached = known.get(index) if known is not None else None
            if cached is not None:
                if pending:
                    pending.append((rel, size, _Known(cached)))
                else:
                    paths.append(rel)
                    sizes.append(size)
                    hashes.extend(cached)
                if len(paths) >= _BATCH_FILES:
                    yield paths, sizes, hashes
                    paths, sizes, hashes = [], [], []
                continue
            if opened is not None and size:
                opened[0] += 1
            path = prefix + rel if native_sep and rel else _abs(base, rel)
            if size <= SMALL_FILE:
                digest = _hash_small(path, size) if size else None
                if pending:
                    pending.append((rel, size, digest))
                else:
                    paths.append(rel)
                    sizes.append(size)
                    if digest is not None:
                        hashes.append(digest)
            elif size <= CHUNK_SIZE:
                pending.append((rel, size, (group, len(group.items))))
                group.items.append((path, size))
                group.bytes += size
                if group.bytes >= _GROUP_BYTES or len(group.items) >= _GROUP_FILES:
                    submit_group()
            else:
                submit_group()
                pool = pool or start_pool()
                submit = pool.submit
                futures = [
                    submit(hash_range, path, off, min(CHUNK_SIZE, size - off))
                    for off in range(0, size, CHUNK_SIZE)
                ]
                pending.append((rel, size, futures))
            if pending:
                drain(block=False)
            if len(paths) >= _BATCH_FILES:
                yield paths, sizes, hashes
                paths, sizes, hashes = [], [], []
        submit_group()
        drain(block=True)
        if paths:
            yield paths, sizes, hashes
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def scan(root: str, patterns: list[str], opened: list[int] | None = None) -> Iterator[RawBatch]:
    """Walk, sort and hash in the calling thread (plus the pool for big chunks), in batches.

    ``opened[0]`` counts the files opened."""
    matcher = IgnoreMatcher(patterns)
    files = walk(root, matcher)
    files.sort()
    yield from iter_hashed(root, files, opened=opened)


# ---------------------------------------------------------------------------------------------
# the job (same interface as the native ScanJob)

_END = object()


class FallbackJob:
    """A scan in a background thread: ``wait_walk`` -> ``start_hashing`` -> ``next_batch``."""

    def __init__(
        self, base: str, target: Callable[[threading.Event, dict[str, Stamp]], list[tuple[str, int]]]
    ):
        self._cancel = threading.Event()
        self._stamps: dict[str, Stamp] = {}
        self._files: list[tuple[str, int]] = []
        self._known: dict[int, list[str]] | None = None
        self._opened = [0]
        self._go = threading.Event()
        self._walked: queue.Queue[tuple[int, int] | BaseException] = queue.Queue(1)
        self._summary: tuple[int, int] | None = None
        self._out: queue.Queue[RawBatch | BaseException | object] = queue.Queue()
        self._done = False
        self._thread = threading.Thread(
            target=self._run, args=(base, target), name="roost-scan-py", daemon=True
        )
        self._thread.start()

    @classmethod
    def for_tree(cls, root: str, patterns: list[str]) -> FallbackJob:
        matcher = IgnoreMatcher(patterns)  # raises ValueError here, before the thread starts

        def target(cancel: threading.Event, stamps: dict[str, Stamp]) -> list[tuple[str, int]]:
            files = walk(root, matcher, cancel, stamps)
            files.sort()
            return files

        return cls(root, target)

    @classmethod
    def for_file(cls, path: str) -> FallbackJob:
        def target(cancel: threading.Event, stamps: dict[str, Stamp]) -> list[tuple[str, int]]:
            st = os.stat(path)
            stamps[""] = _stamp(path, st)
            return [("", st.st_size)]

        return cls(path, target)

    def _run(
        self, base: str, target: Callable[[threading.Event, dict[str, Stamp]], list[tuple[str, int]]]
    ) -> None:
        try:
            files = target(self._cancel, self._stamps)
        except BaseException as e:
            self._walked.put(e)
            return
        self._files = files
        self._walked.put((len(files), sum(s for _, s in files)))
        while not self._go.wait(0.05):
            if self._cancel.is_set():
                return
        try:
            for batch in iter_hashed(base, files, self._cancel, known=self._known, opened=self._opened):
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

    def start_hashing(self, skip: list[int] | None = None, digests: list[str] | None = None) -> None:
        """Lets the hashing begin; files ``skip`` (sorted indices) take ``digests`` (hex, in order)
        instead of being read."""
        if self._go.is_set():
            return
        if skip is not None:
            known: dict[int, list[str]] = {}
            hexes = digests or []
            at = 0
            for i in skip:
                n = -(-self._files[i][1] // CHUNK_SIZE)
                known[i] = hexes[at : at + n]
                at += n
            if at != len(hexes):
                raise ValueError("chunker: cached digests do not match the walk")
            self._known = known
        self._go.set()

    def file_keys(self) -> tuple[list[bytes], list[int], list[int]] | None:
        """``(keys, sizes, mtime_ns)`` of the walk's files in manifest order, the keys being the
        hash cache's (``_hash_cache.make_key``); None before the walk is done."""
        if self._summary is None:
            return None
        stamps = self._stamps
        keys: list[bytes] = []
        mtimes: list[int] = []
        for rel, size in self._files:
            m, c, ino, dev = stamps[rel]
            keys.append(make_key(rel, size, m, c, ino, dev))
            mtimes.append(m)
        return keys, [s for _, s in self._files], mtimes

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
                raise _CancelledError from None
            return [], [], []
        if got is _END:
            self._done = True
            return None
        if isinstance(got, BaseException):
            raise got
        return got  # type: ignore[return-value]

    def cancel(self) -> None:
        self._cancel.set()
