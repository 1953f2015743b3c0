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

import contextlib
import hashlib
import heapq
import os
import queue
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from ._errors import SourceChanged
from ._glob import IgnoreMatcher
from ._hash_cache import make_key
from ._model import CHUNK_SIZE, FileId, RawBatch

__all__ = [
    "FallbackJob",
    "hash_range",
    "non_utf8_message",
    "read_and_hash",
    "verify_range",
    "walk",
]

SMALL_FILE = 4 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_BATCH_FILES = 4096
_GROUP_BYTES = 1024 * 1024
_GROUP_FILES = 64
_NO_ID = (0, 0)


class _CancelledError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("chunker: the scan was cancelled")


def non_utf8_message(rel: str) -> str:
    return f'chunker: file name is not valid UTF-8: "{rel}" (manifest paths must be UTF-8; rename it)'


def _escape(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------------------------
# walk (the rules are in the package docstring; rust/src/walk.rs follows the same steps)


Stamp = tuple[int, int, int, int]  # (mtime_ns, ctime_ns, inode, device)
_Chain = tuple[FileId, ...]


class _Walk:
    """One walk: real directories first, then directory links in path order (see :func:`walk`)."""

    def __init__(
        self,
        root: str,
        matcher: IgnoreMatcher,
        cancel: threading.Event | None,
        stamps: dict[str, Stamp] | None,
        skipped: list[tuple[str, str]] | None,
    ):
        self.root = root
        self.root_prefix = root.rstrip(os.sep) + os.sep
        self.matcher = matcher
        self.cancel = cancel
        self.stamps = stamps
        self.skipped = skipped
        self.found: list[tuple[str, int]] = []
        # directory links still to decide: (rel, resolved target, chain of the directory holding
        # the link); the target is walked, not the link, which may point elsewhere by then
        self.links: list[tuple[str, str, _Chain]] = []

    def skip(self, rel: str, reason: str) -> None:
        if self.skipped is not None:
            self.skipped.append((rel, reason))

    def tree(self, abs_dir: str, rel_dir: str, chain: _Chain) -> None:
        """Every real directory under ``abs_dir``; directory links are queued, not followed."""
        stack = [(abs_dir, rel_dir, chain)]
        is_ignored = self.matcher.is_ignored
        append = self.found.append
        stamps = self.stamps
        while stack:
            if self.cancel is not None and self.cancel.is_set():
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
                        if entry.is_symlink():
                            self.link(entry.path, name, rel, chain)
                        elif not is_ignored(name, rel, False):
                            self.skip(rel, "special_file")  # FIFO, socket, device: never opened
                    except FileNotFoundError:
                        continue

    def link(self, path: str, name: str, rel: str, chain: _Chain) -> None:
        try:
            target_st = os.stat(path)
        except (OSError, ValueError):
            if not self.matcher.is_ignored(name, rel, False):
                self.skip(rel, "broken_link")  # missing target, a loop, or unreadable
            return
        is_dir = stat.S_ISDIR(target_st.st_mode)
        if self.matcher.is_ignored(name, rel, is_dir):
            return
        try:
            target = os.path.realpath(path)
        except (OSError, ValueError):
            self.skip(rel, "broken_link")
            return
        if target != self.root and not target.startswith(self.root_prefix):
            self.skip(rel, "link_outside_root")
            return
        # The target was stat'ed through the link, then resolved: the link may have been
        # flipped in between. The resolved path holds no link, so its own lstat must show the
        # same file, or the identity recorded could be one outside the root.
        try:
            resolved = os.lstat(target)
        except OSError:
            self.skip(rel, "broken_link")
            return
        if (resolved.st_dev, resolved.st_ino) != (target_st.st_dev, target_st.st_ino):
            raise SourceChanged(path, 0, "relinked while the folder was walked")
        if is_dir:
            self.links.append((rel, target, chain))
        elif not stat.S_ISREG(resolved.st_mode):
            self.skip(rel, "special_file")
        else:
            self.found.append((rel, resolved.st_size))
            if self.stamps is not None:
                self.stamps[rel] = _stamp(target, resolved)

    def run(self) -> list[tuple[str, int]]:
        st = os.stat(self.root)
        self.tree(self.root, "", ((st.st_dev, st.st_ino),))
        heapq.heapify(self.links)
        expanded: set[FileId] = set()
        while self.links:
            # the smallest path first, so that which link walks a directory never depends on
            # the order the OS lists entries in
            rel, path, chain = heapq.heappop(self.links)
            try:
                tst = os.stat(path)
            except OSError:
                self.skip(rel, "broken_link")
                continue
            ident = (tst.st_dev, tst.st_ino)
            if ident in chain or ident in expanded:
                self.skip(rel, "repeated_directory")
                continue
            expanded.add(ident)
            before = len(self.links)
            self.tree(path, rel, (*chain, ident))
            if len(self.links) != before:
                heapq.heapify(self.links)
        return self.found


def walk(
    root: str,
    matcher: IgnoreMatcher,
    cancel: threading.Event | None = None,
    stamps: dict[str, Stamp] | None = None,
    skipped: list[tuple[str, str]] | None = None,
) -> list[tuple[str, int]]:
    """``(rel, size)`` of every regular file under ``root`` (absolute, resolved), unsorted.

    With ``stamps``, also records each file's fingerprint there, by relative path; with
    ``skipped``, appends ``(rel, reason)`` for each entry left out (unsorted).
    """
    return _Walk(root, matcher, cancel, stamps, skipped).run()


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


def _open(path: str, file_id: FileId | None) -> int:
    """Opens ``path`` for reading, proving it is the file the walk saw (same device and inode):
    a link or file swapped since the walk is refused, so nothing outside the root is read."""
    fd = os.open(path, _OPEN_FLAGS)
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


def hash_range(path: str, offset: int, size: int, file_id: FileId | None = None) -> str:
    """SHA-256 hex of ``size`` bytes at ``offset``, read into a reused per-thread buffer.

    One read and one hash per chunk: reading in smaller pieces (to hash them while in the CPU
    cache) measured no faster in Python, and costs more GIL hand-offs. ``hashlib`` releases the
    GIL while it hashes.
    """
    fd = _open(path, file_id)
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


def _hash_small(path: str, size: int, file_id: FileId | None = None) -> str:
    fd = _open(path, file_id)
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
        self.items: list[tuple[str, int, FileId]] = []
        self.bytes = 0
        self.future: Future[list[str]] | None = None


def _hash_group(items: list[tuple[str, int, FileId]]) -> list[str]:
    return [hash_range(path, 0, size, ident) for path, size, ident in items]


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
    threads: int = 0,
    known: dict[int, list[str]] | None = None,
    opened: list[int] | None = None,
) -> Iterator[RawBatch]:
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
            if cancel is not None and cancel.is_set():
                raise _CancelledError
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
                digest = _hash_small(path, size, ident) if size else None
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
                group.items.append((path, size, ident))
                group.bytes += size
                if group.bytes >= _GROUP_BYTES or len(group.items) >= _GROUP_FILES:
                    submit_group()
            else:
                submit_group()
                pool = pool or start_pool()
                submit = pool.submit
                futures = [
                    submit(hash_range, path, off, min(CHUNK_SIZE, size - off), ident)
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
_Target = Callable[[threading.Event, dict[str, Stamp], list[tuple[str, str]]], list[tuple[str, int]]]


class FallbackJob:
    """A scan in a background thread: ``wait_walk`` -> ``start_hashing`` -> ``next_batch``."""

    def __init__(self, base: str, target: _Target, matcher: IgnoreMatcher | None = None):
        self._cancel = threading.Event()
        self._stamps: dict[str, Stamp] = {}
        self._skipped: list[tuple[str, str]] = []
        self._matcher = matcher
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
    def for_tree(cls, root: str, patterns: list[str], defaults: bool = True) -> FallbackJob:
        matcher = IgnoreMatcher(patterns, defaults=defaults)  # raises here, before the thread starts

        def target(
            cancel: threading.Event, stamps: dict[str, Stamp], skipped: list[tuple[str, str]]
        ) -> list[tuple[str, int]]:
            files = walk(root, matcher, cancel, stamps, skipped)
            files.sort()
            skipped.sort()
            return files

        return cls(root, target, matcher)

    @classmethod
    def for_file(cls, path: str) -> FallbackJob:
        def target(
            cancel: threading.Event, stamps: dict[str, Stamp], skipped: list[tuple[str, str]]
        ) -> list[tuple[str, int]]:
            st = os.stat(path)
            stamps[""] = _stamp(path, st)
            return [("", st.st_size)]

        return cls(path, target)

    def _run(self, base: str, target: _Target) -> None:
        try:
            files = target(self._cancel, self._stamps, self._skipped)
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
            for batch in iter_hashed(base, files, ids, self._cancel, known=self._known, opened=self._opened):
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

    def start_hashing(self, skip: list[int] | None = None, digests: bytes | None = None) -> bool:
        """Lets the hashing begin; files ``skip`` (sorted indices) take ``digests`` (raw 32-byte
        SHA-256 digests of all their chunks, in order) instead of being read. False, and nothing
        started, when those do not match the walk."""
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
            return [], [], [], []
        if got is _END:
            self._done = True
            return None
        if isinstance(got, BaseException):
            raise got
        return got  # type: ignore[return-value]

    def cancel(self) -> None:
        self._cancel.set()
