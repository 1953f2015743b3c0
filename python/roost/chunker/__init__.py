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
    - The default ignores (:data:`DEFAULT_IGNORES`: ``.git``, ``node_modules``, TouchDesigner's
      ``Backup/`` autosave folders, ``.DS_Store``, ``Thumbs.db``, ``desktop.ini``) apply at any
      depth unless ``default_ignores=False``; then the ignore file, then the ``ignore`` patterns.
    - Symlinks are followed when the target exists and resolves inside the root: a linked file is
      listed under the link's own path, a linked directory is walked under it (so its files
      appear under both paths).
    - Each real directory is walked at most twice: under its own path, and under at most one
      link. The walk lists the real directories first, then takes the links to directories in
      path order (the smallest path first, whatever order the OS lists entries in): the first
      link to a directory is walked, every later one, and a link to one of its own ancestors,
      is skipped as ``repeated_directory``. Every walk ends, the same way on every run and in
      both backends, and a fan-out of links (6 levels of 10 links to one directory) stays small.
    - What the walk leaves out it reports (:class:`SkippedEntry`, sorted by path, in
      :class:`DiscoverProgress` and the internal scan report): ``link_outside_root``,
      ``broken_link`` (a missing target or a link loop), ``special_file`` (FIFO, socket, device,
      also behind a link), ``repeated_directory``. Ignored entries are not reported.
    - Zero-byte files are listed, with size 0 and no chunks.
    - Paths are relative to the root, ``/``-separated on every platform, and valid UTF-8: a name
      that is not raises ``ValueError`` naming it (bad bytes shown as ``\\xNN``).
    - Entries are sorted by the plain path string (Python ``str`` order, i.e. by code point): this
      is the manifest order, the order of progress events and of :func:`unique_hashes`.

Ignore files
    ``.roostignore`` at the scanned root is read when present (``ignore_file=None``, the
    default); ``ignore_file=PATH`` reads another file instead (relative to the working
    directory; a path that does not exist is an error naming it), ``ignore_file=False`` none. Its syntax is gitignore's: one pattern a line,
    blank lines and lines starting with ``#`` skipped, ``\\#``/``\\!`` for a literal leading
    ``#``/``!``, trailing spaces dropped unless escaped (``\\ ``). The ignore file itself is not
    published when it lies in the tree: like ``.gitignore`` it configures the tool, but unlike
    git's it is no part of the deployed show (``!/.roostignore`` publishes it anyway).

Ignore patterns (gitignore-like globs, case-sensitive)
    - The patterns apply in order: the defaults, the ignore file's, then ``ignore``. The last
      pattern that matches an entry decides, as in git: a pattern starting with ``!`` re-includes
      what an earlier one ignored (``*.tmp`` then ``!keep.tmp``). A file under an ignored
      directory cannot be re-included (the directory is never read). A given pattern (from the
      file or ``ignore``) that matched nothing is reported in
      :attr:`DiscoverProgress.unmatched_ignores`.
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
      :class:`PatternError` (a ``ValueError``; in an ignore file, naming the file and line)
      before anything is read.

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
    ``roost.chunker._hash_cache``. Its directories are created owner-only (0700). A file that
    raised :class:`ChunkSourceChangedError` (in a scan or a re-read) is dropped from it, so that
    the next try hashes it again rather than failing the same way.

    ``verify="fast"`` does not trust the fingerprint alone: before hashing, every cache hit is
    read once more and its xxh3-128 digest (SHA-256 in the pure-Python fallback without the
    ``xxhash`` package) compared with the one the cache stored; a hit without a stored digest, or
    with another one, is re-hashed. This catches a rewrite that kept the whole fingerprint (a
    restored mtime on a file system with coarse or unreliable ctime), at the cost of reading
    every file (xxh3 runs at memory speed: about ten times SHA-256), but none is SHA-256-hashed
    again. A fast scan stores the content digest of every cached file (the freshly hashed ones
    are read once more, from the page cache); the default ``verify="stat"`` keeps the digests it
    finds. A hit that cannot be read for the check is re-hashed (which raises the error).

Reading what the walk saw, and nothing else
    Every open for hashing or re-reading proves it opened the file the walk listed: the opened
    handle's ``(device, inode)`` (on Windows: volume serial and file index) must equal the
    walk's, else :class:`ChunkSourceChangedError`. A link swapped after the walk to a file
    outside the root, or a file replaced by another, is never hashed or uploaded under the old
    entry. The entries carry that identity (:attr:`ChunkedFileEntry.file_id`); pass it to
    :func:`read_chunk`/:func:`verify_chunk`.

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
import os
import stat
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from typing import Literal

import anyio.to_thread

from . import _backend, _hash_cache
from ._backend import Job
from ._driver import HeldBudget, ScanReport, StreamOutcome, Verify, scan_async, scan_stream, scan_sync
from ._errors import ChunkSourceChangedError, PatternError
from ._glob import compile_pattern
from ._model import (
    CHUNK_SIZE,
    DEFAULT_IGNORES,
    ChunkDescriptor,
    ChunkedFileEntry,
    ChunkProgressEvent,
    DiscoverProgress,
    FileId,
    HashProgress,
    ProgressCallback,
    SkippedEntry,
    SkipReason,
)

__all__ = [
    "CHUNK_SIZE_BYTES",
    "DEFAULT_IGNORES",
    "IGNORE_FILE_NAME",
    "ChunkDescriptor",
    "ChunkProgressEvent",
    "ChunkSourceChangedError",
    "ChunkedFileEntry",
    "DiscoverProgress",
    "HashProgress",
    "PatternError",
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

CHUNK_SIZE_BYTES = CHUNK_SIZE
#: The ignore file read at the scanned root by default.
IGNORE_FILE_NAME = ".roostignore"

IgnoreFile = str | os.PathLike[str] | Literal[False] | None


def backend() -> Literal["native", "python"]:
    """``"native"`` when the Rust core is in use, ``"python"`` for the fallback."""
    return "native" if _backend.is_native() else "python"


# ---------------------------------------------------------------------------------------------
# inputs: every check runs before anything is read


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


def _check_verify(verify: str) -> None:
    if verify not in ("stat", "fast"):
        raise ValueError(f'chunker: verify must be "stat" or "fast", got {verify!r}')


def _ignore_lines(path: str) -> list[str]:
    """The patterns of an ignore file (gitignore syntax), each checked, naming file and line."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        at = raw[: e.start].count(b"\n") + 1
        raise ValueError(f"chunker: ignore file {path}, line {at}: not valid UTF-8") from None
    out: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        while line.endswith(" ") and not line.endswith("\\ "):
            line = line[:-1]  # trailing spaces are dropped unless escaped, as in git
        if not line or line.startswith("#"):
            continue
        try:
            compile_pattern(line[1:] if line.startswith("!") else line)
        except PatternError as e:
            raise PatternError(line, f"{e.reason} (in {path}, line {n})") from None
        out.append(line)
    return out


def _literal(rel: str) -> str:
    """An anchored pattern matching exactly ``rel`` (every character escaped but ``/``)."""
    return "/" + "".join(c if c == "/" or c.isalnum() else "\\" + c for c in rel)


def _tree_job(
    root: str | os.PathLike[str], ignore: Sequence[str], ignore_file: IgnoreFile, default_ignores: bool
) -> tuple[Job, str, set[str]]:
    """The started scan of the tree at ``root``, the resolved root, and the ignore rules the SDK
    added (see :func:`_ignore_rules`). Blocking: it resolves the root and reads the ignore file."""
    root_str = _resolve_root(root)
    rules, hidden = _ignore_rules(root_str, ignore, ignore_file)
    return _backend.tree_job(root_str, rules, default_ignores), root_str, hidden


def _ignore_rules(root: str, ignore: Sequence[str], ignore_file: IgnoreFile) -> tuple[list[str], set[str]]:
    """The ignore file's patterns (after one keeping the file itself out, when it lies in the
    tree) followed by ``ignore``; and the rules the SDK added (never reported as unmatched)."""
    given = _patterns(ignore)
    if ignore_file is False:
        return given, set()
    if ignore_file is None:
        path = os.path.join(root, IGNORE_FILE_NAME)
        if not os.path.isfile(path):
            return given, set()
    else:
        if isinstance(ignore_file, bool) or not isinstance(ignore_file, (str, os.PathLike)):
            raise TypeError(f"chunker: ignore_file must be a path, None or False, got {ignore_file!r}")
        path = os.path.abspath(os.fspath(ignore_file))
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, f"chunker: ignore file not found: {path}", path)
    rules = _ignore_lines(path)
    real = os.path.realpath(path)
    if not real.startswith(root.rstrip(os.sep) + os.sep):
        return rules + given, set()
    itself = _literal(os.path.relpath(real, root).replace(os.sep, "/"))
    return [itself, *rules, *given], {itself}


# ---------------------------------------------------------------------------------------------
# the internal scans (entries and report) and the public API


def _scan_tree(
    root: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    ignore_file: IgnoreFile = None,
    default_ignores: bool = True,
    cache: bool = True,
    verify: Verify = "stat",
) -> tuple[list[ChunkedFileEntry], ScanReport]:
    """:func:`scan_directory` with its :class:`~roost.chunker._driver.ScanReport`."""
    _check_verify(verify)
    start_ns = time.time_ns()
    job, root_str, hidden = _tree_job(root, ignore, ignore_file, default_ignores)
    return scan_sync(job, root_str if cache else None, start_ns, verify, hidden)


async def _chunk_tree(
    root: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    ignore_file: IgnoreFile = None,
    default_ignores: bool = True,
    on_progress: ProgressCallback | None = None,
    cache: bool = True,
    verify: Verify = "stat",
) -> tuple[list[ChunkedFileEntry], ScanReport]:
    """:func:`chunk_directory` with its :class:`~roost.chunker._driver.ScanReport`."""
    _check_verify(verify)
    start_ns = time.time_ns()
    job, root_str, hidden = await anyio.to_thread.run_sync(
        _tree_job, root, ignore, ignore_file, default_ignores
    )
    return await scan_async(job, on_progress, None, root_str if cache else None, start_ns, verify, hidden)


async def _stream_tree(
    root: str | os.PathLike[str],
    outcome: StreamOutcome,
    *,
    ignore: Sequence[str] = (),
    ignore_file: IgnoreFile = None,
    default_ignores: bool = True,
    on_progress: ProgressCallback | None = None,
    cache: bool = True,
    verify: Verify = "stat",
    held: HeldBudget | None = None,
    on_walk: Callable[[list[str]], None] | None = None,
    file_events: Callable[[], bool] | None = None,
) -> AsyncGenerator[tuple[list[ChunkedFileEntry], list[tuple[str, bytes]]], None]:
    """:func:`chunk_directory` batch by batch, with the bytes read and the entries' JSON text (for
    the push engine).

    See :func:`roost.chunker._driver.scan_stream` for the items, ``held``, ``on_walk`` and
    ``file_events``; the
    whole scan's entries, its report and the files it read are in ``outcome`` at the end. Close it (``aclosing``) when
    leaving early: that stops the scan.
    """
    _check_verify(verify)
    start_ns = time.time_ns()
    job, root_str, hidden = await anyio.to_thread.run_sync(
        _tree_job, root, ignore, ignore_file, default_ignores
    )
    batches = scan_stream(
        job,
        on_progress,
        outcome,
        cache_root=root_str if cache else None,
        start_ns=start_ns,
        verify=verify,
        hidden=hidden,
        held=held,
        on_walk=on_walk,
        watch_root=root_str,
        file_events=file_events,
        entries_json=True,
    )
    async with aclosing(batches):
        async for item in batches:
            yield item


def scan_directory(
    root: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    ignore_file: IgnoreFile = None,
    default_ignores: bool = True,
    cache: bool = True,
    verify: Verify = "stat",
) -> list[ChunkedFileEntry]:
    """Walk ``root`` and chunk every file (blocking; for custom uploaders and scripts).

    Returns the entries in manifest order (sorted by path). See the module documentation for the
    walk rules, the ignore file (``ignore_file``: None reads ``.roostignore`` at the root when
    present, a path reads that file, False none), the ignore patterns (``default_ignores=False``
    drops :data:`DEFAULT_IGNORES`), the hash cache (``cache=False`` bypasses it;
    ``verify="fast"`` confirms its hits by content) and the errors.
    """
    entries, _report = _scan_tree(
        root,
        ignore=ignore,
        ignore_file=ignore_file,
        default_ignores=default_ignores,
        cache=cache,
        verify=verify,
    )
    return entries


async def chunk_directory(
    root: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    ignore_file: IgnoreFile = None,
    default_ignores: bool = True,
    on_progress: ProgressCallback | None = None,
    cache: bool = True,
    verify: Verify = "stat",
) -> list[ChunkedFileEntry]:
    """Like :func:`scan_directory`, without blocking the event loop, emitting progress events.

    All blocking work runs in worker threads; cancelling the calling task stops the scan (the
    native workers finish within one chunk; a ``verify="fast"`` check, once started, runs to its
    end). The :class:`DiscoverProgress` event carries what the walk skipped and the ignore
    patterns that matched nothing.
    """
    entries, _report = await _chunk_tree(
        root,
        ignore=ignore,
        ignore_file=ignore_file,
        default_ignores=default_ignores,
        on_progress=on_progress,
        cache=cache,
        verify=verify,
    )
    return entries


async def chunk_one_file(abs_path: str | os.PathLike[str], rel_path: str) -> ChunkedFileEntry:
    """Chunk one regular file; the entry carries ``rel_path`` (an empty file has no chunks).

    A large file is hashed on all cores, without blocking the event loop.
    """
    path = await anyio.to_thread.run_sync(_check_file, abs_path)
    (entry,), _report = await scan_async(_backend.file_job(path), None, rel_path)
    return entry


def unique_hashes(entries: Iterable[ChunkedFileEntry]) -> list[str]:
    """Distinct chunk hashes in first-seen order (entry order, then chunk order)."""
    seen: dict[str, None] = {}
    for entry in entries:
        for chunk in entry.chunks:
            seen.setdefault(chunk.hash, None)
    return list(seen)


def _check_range(offset: int, size: int) -> None:
    if offset < 0 or size < 0:
        raise ValueError(f"chunker: offset and size must be >= 0, got offset={offset}, size={size}")


def read_chunk(
    path: str,
    offset: int,
    size: int,
    *,
    expected_hash: str | None = None,
    file_id: FileId | None = None,
) -> bytes:
    """Read ``size`` bytes at ``offset``; with ``expected_hash``, verify them.

    With ``file_id`` (the entry's), the opened file must be the one the walk saw. Blocking (the
    native read releases the GIL): call it from a worker thread. Raises
    :class:`roost.ChunkSourceChangedError` when the bytes are short or hash differently or the
    file is not the walked one, and ``OSError`` (with the path) when the file cannot be read.
    """
    _check_range(offset, size)
    try:
        data, digest = _backend.read_range(path, offset, size, expected_hash is not None, file_id)
        if len(data) != size:
            raise ChunkSourceChangedError(
                path, expected_hash or "", offset, f"short read ({len(data)} of {size} bytes)"
            )
        if expected_hash is not None and digest != expected_hash.lower():
            raise ChunkSourceChangedError(path, expected_hash, offset, "content hash differs")
    except ChunkSourceChangedError as e:
        _hash_cache.forget_file(path)
        if e.chunk_hash or not expected_hash:
            raise
        raise ChunkSourceChangedError(path, expected_hash, e.offset, e.reason) from None
    return data


def verify_chunk(
    path: str, offset: int, size: int, expected_hash: str, *, file_id: FileId | None = None
) -> bool:
    """Whether ``size`` bytes at ``offset`` of ``path`` still hash to ``expected_hash``.

    Blocking, like :func:`read_chunk`, without returning the bytes. A short file is ``False``;
    a file that is not the walked one (``file_id``) raises :class:`ChunkSourceChangedError`; an
    unreadable one ``OSError``.
    """
    _check_range(offset, size)
    try:
        ok = _backend.verify_range(path, offset, size, expected_hash, file_id)
    except ChunkSourceChangedError:
        _hash_cache.forget_file(path)
        raise
    if not ok:
        _hash_cache.forget_file(path)
    return ok
