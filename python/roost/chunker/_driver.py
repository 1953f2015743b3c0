"""Running a job to its end: the hash cache around it, progress events, and the scan report.

:func:`scan_sync` and :func:`scan_async` are the internal scans behind the public functions;
each returns the entries and a :class:`ScanReport` (what the walk skipped, the patterns that
matched nothing, files opened, cache hits), which tests and benchmarks read instead of any
module state. :func:`recording` collects the reports of the scans run inside it (a context
variable, so concurrent scans elsewhere do not mix in), for callers that only see the public API.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncGenerator, Callable, Collection, Iterable, Iterator
from contextlib import aclosing, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Literal

import anyio.to_thread

from . import _backend, _hash_cache
from ._backend import Job, guard
from ._errors import ChunkSourceChangedError
from ._model import (
    CHUNK_SIZE,
    ChunkedFileEntry,
    ChunkProgressEvent,
    DiscoverProgress,
    HashProgress,
    ProgressCallback,
    SkippedEntry,
    SkipReason,
    build_entries,
    gc_paused,
    hash_event,
)

__all__ = [
    "HeldBudget",
    "ScanReport",
    "StreamOutcome",
    "Verify",
    "recording",
    "scan_async",
    "scan_stream",
    "scan_sync",
]

_POLL_SECONDS = 0.25

Verify = Literal["stat", "fast"]


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What one scan did besides its entries."""

    files_read: int = 0  # files opened to hash (cache hits and empty files are not)
    cache_hits: int = 0
    skipped: tuple[SkippedEntry, ...] = ()
    unmatched_ignores: tuple[str, ...] = ()


_REPORTS: ContextVar[list[ScanReport] | None] = ContextVar("roost_chunker_reports", default=None)


@contextmanager
def recording() -> Iterator[list[ScanReport]]:
    """The reports of every scan run in this context (and the tasks it starts), in order."""
    reports: list[ScanReport] = []
    token = _REPORTS.set(reports)
    try:
        yield reports
    finally:
        _REPORTS.reset(token)


def _record(report: ScanReport) -> None:
    reports = _REPORTS.get()
    if reports is not None:
        reports.append(report)


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


@dataclass(slots=True)
class _Walked:
    file_count: int
    total_bytes: int
    skipped: tuple[SkippedEntry, ...] = ()
    unmatched: tuple[str, ...] = ()
    plan: _CachePlan | None = field(default=None)
    #: The job's file_keys(), asked once (each ask builds a key object per file).
    listed: tuple[list[bytes], list[int], list[int]] | None = None


def _listing(job: Job, walked: _Walked) -> tuple[list[bytes], list[int], list[int]]:
    """The walk's hash-cache keys, sizes and modification times, in manifest order."""
    if walked.listed is None:
        walked.listed = job.file_keys()
        if walked.listed is None:
            raise RuntimeError("chunker: internal error: no file list after the walk")
    return walked.listed


def _abs_paths(root: str, keys: list[bytes], indices: Iterable[int]) -> list[str]:
    prefix = root.rstrip(os.sep) + os.sep
    n = _hash_cache.KEY_PREFIX
    rels = (keys[i][n:].decode("utf-8", "surrogateescape") for i in indices)
    if os.sep == "/":
        return [prefix + r for r in rels]
    return [prefix + r.replace("/", os.sep) for r in rels]


def _digests(paths: list[str]) -> list[bytes]:
    return _hash_cache.content_digests(paths, _backend.xxh3_files())


def _confirm(
    hits: _hash_cache.CacheHits, root: str, keys: list[bytes], sizes: list[int]
) -> _hash_cache.CacheHits:
    """The hits whose content digest is stored and still matches (verify="fast")."""
    if not hits.indices:
        return hits
    try:
        now = _digests(_abs_paths(root, keys, hits.indices))
    except OSError:  # re-hash them all: the hashing reports the error, or sees a new file
        return _hash_cache.CacheHits([], b"", stored=hits.stored, snap=hits.snap)
    ends = list(accumulate(-(-sizes[i] // CHUNK_SIZE) * 32 for i in hits.indices))
    starts = [0, *ends]
    keep = [j for j, (old, new) in enumerate(zip(hits.content_digests(), now, strict=True)) if old == new]
    return _hash_cache.CacheHits(
        [hits.indices[j] for j in keep],
        b"".join([hits.digests[starts[j] : ends[j]] for j in keep]),
        [hits.entries[j] for j in keep],
        hits.stored,
        hits.snap,
    )


def _cache_start(job: Job, walked: _Walked, root: str, start_ns: int, verify: str, hold: bool) -> _CachePlan:
    """Looks the walked files up in the cache and starts the hashing of the others."""
    keys, sizes, mtimes = _listing(job, walked)
    path = _hash_cache.cache_path(root)
    snap = _hash_cache.load(path, CHUNK_SIZE)
    hits = _hash_cache.CacheHits([], b"")
    if snap is not None:
        found = job.cache_hits(snap.key_lengths, snap.keys, snap.counts, snap.hex)
        if found is not None:
            indices, entries, digests, stored = found
            hits = _hash_cache.CacheHits(indices, digests, entries, stored, snap)
            if verify == "fast":
                hits = _confirm(hits, root, keys, sizes)
    if not job.start_hashing(hits.indices, hits.digests, hold):
        # chunk counts that do not match the sizes (a corrupt cache): it is ignored
        hits = _hash_cache.CacheHits([], b"")
        job.start_hashing(hold=hold)
    return _CachePlan(path, start_ns, keys, mtimes, len(hits.indices), hits.stored, verify, root, hits)


def _cache_finish(plan: _CachePlan | None, out: list[ChunkedFileEntry]) -> None:
    if plan is None:
        return
    if plan.hits == len(plan.keys) and plan.stored == plan.hits:
        return  # nothing changed: keep the file as it is
    if len(out) != len(plan.keys):
        raise RuntimeError("chunker: internal error: the scan lost files")
    hashes = [[c.hash for c in e.chunks] for e in out]
    used = plan.hits_used
    known = {} if used is None else dict(zip(used.indices, used.content_digests(), strict=True))
    digests = [known.get(i, b"") for i in range(len(out))]
    if plan.verify == "fast":
        # the files just hashed (and not racy, so stored): read again, from the page cache
        cutoff = plan.start_ns - _hash_cache.RACY_WINDOW_NS
        todo = [i for i, m in enumerate(plan.mtimes) if i not in known and m < cutoff]
        try:
            for i, d in zip(todo, _digests(_abs_paths(plan.root, plan.keys, todo)), strict=True):
                digests[i] = d
        except OSError:  # gone since it was hashed: stored without a digest (a miss next time)
            pass
    _hash_cache.save(plan.path, CHUNK_SIZE, plan.start_ns, plan.keys, plan.mtimes, hashes, digests)


def _walked(job: Job, summary: tuple[int, int], hidden: Collection[str]) -> _Walked:
    skipped = tuple(SkippedEntry(rel, _reason(reason)) for rel, reason in job.skipped())
    unmatched = tuple(p for p in job.unmatched() if p not in hidden)
    return _Walked(summary[0], summary[1], skipped, unmatched)


def _start(
    job: Job, walked: _Walked, cache_root: str | None, start_ns: int, verify: str, hold: bool = False
) -> None:
    """Starts the hashing, from the cache where it can (after the discover event: a fast
    verification reads files)."""
    if cache_root is None:
        job.start_hashing(hold=hold)
        return
    with gc_paused():  # 20,000 keys and slices: see build_entries
        walked.plan = _cache_start(job, walked, cache_root, start_ns, verify, hold)


def _reason(reason: str) -> SkipReason:
    if reason == "link_outside_root":
        return "link_outside_root"
    if reason == "broken_link":
        return "broken_link"
    if reason == "special_file":
        return "special_file"
    if reason == "repeated_directory":
        return "repeated_directory"
    raise RuntimeError(f"chunker: internal error: unknown skip reason {reason!r}")


def _report(job: Job, walked: _Walked) -> ScanReport:
    hits = 0 if walked.plan is None else walked.plan.hits
    report = ScanReport(job.files_read, hits, walked.skipped, walked.unmatched)
    _record(report)
    return report


def _changed(e: ChunkSourceChangedError, cache_root: str | None) -> None:
    if cache_root is not None:
        _hash_cache.forget_file(e.path)


def scan_sync(
    job: Job,
    cache_root: str | None = None,
    start_ns: int = 0,
    verify: str = "stat",
    hidden: Collection[str] = (),
) -> tuple[list[ChunkedFileEntry], ScanReport]:
    """Runs ``job`` in the calling thread; with ``cache_root``, through the hash cache.

    ``hidden`` are patterns the SDK added itself, never reported as unmatched."""
    try:
        while (summary := guard(job.wait_walk, _POLL_SECONDS)) is None:
            pass
        walked = _walked(job, summary, hidden)
        _start(job, walked, cache_root, start_ns, verify)
        out: list[ChunkedFileEntry] = []
        with gc_paused():  # no user code runs here; see build_entries
            while (batch := guard(job.next_batch, _POLL_SECONDS)) is not None:
                out += build_entries(batch)
        _cache_finish(walked.plan, out)
        return out, _report(job, walked)
    except ChunkSourceChangedError as e:
        _changed(e, cache_root)
        raise
    finally:
        job.cancel()


async def _emit(callback: ProgressCallback, event: ChunkProgressEvent) -> None:
    result = callback(event)
    if result is not None and inspect.isawaitable(result):
        await result


class HeldBudget:
    """The bytes a holding scan may keep at once: granted to its next reads, given back by the
    consumer as it lets each chunk's bytes go (see :func:`scan_stream`).

    Lives on the event loop thread: ``release`` is called there, and grants from there (a grant
    allocates the ``bytes`` objects the native workers read into; it is quick and takes the GIL).
    """

    __slots__ = ("_job", "capacity", "outstanding")

    def __init__(self, capacity: int) -> None:
        if capacity < CHUNK_SIZE:
            raise ValueError(f"a held-bytes budget must be at least one chunk ({CHUNK_SIZE}), got {capacity}")
        self.capacity = capacity
        self.outstanding = 0  # granted and not yet released
        self._job: Job | None = None

    def attach(self, job: Job) -> None:
        self._job = job
        self._refill()

    def release(self, nbytes: int) -> None:
        """``nbytes`` of chunk bytes this budget granted are no longer held."""
        self.outstanding -= nbytes
        self._refill()

    def _refill(self) -> None:
        if self._job is not None and self.outstanding < self.capacity:
            self.outstanding += guard(self._job.grant, self.capacity - self.outstanding)


@dataclass(slots=True)
class StreamOutcome:
    """Filled in by :func:`scan_stream` when its last batch has been consumed.

    ``read`` (with ``watch_root``) lists the files the scan opened, as ``(path, size,
    mtime_ns)`` from the walk, for :meth:`first_changed`.
    """

    entries: list[ChunkedFileEntry] = field(default_factory=list)
    report: ScanReport | None = None
    read: list[tuple[str, int, int]] = field(default_factory=list)
    #: ``_model.entries_json(entries)``, when the backend wrote it (the native one does).
    entries_json: str | None = None

    def first_changed(self) -> str | None:
        """Blocking: the first file read whose size or modification time is no longer the
        walk's (or that is gone), else None. A file written while, or after, it was read is
        so caught without reading it again (cached files were matched by their stat already)."""
        for path, size, mtime_ns in self.read:
            try:
                st = os.stat(path)
            except OSError:
                return path
            if st.st_size != size or st.st_mtime_ns != mtime_ns:
                return path
        return None


async def scan_stream(
    job: Job,
    on_progress: ProgressCallback | None,
    outcome: StreamOutcome,
    *,
    path: str | None = None,
    cache_root: str | None = None,
    start_ns: int = 0,
    verify: str = "stat",
    hidden: Collection[str] = (),
    held: HeldBudget | None = None,
    on_walk: Callable[[list[str]], None] | None = None,
    watch_root: str | None = None,
    file_events: Callable[[], bool] | None = None,
    entries_json: bool = False,
) -> AsyncGenerator[tuple[list[ChunkedFileEntry], list[tuple[str, bytes]]], None]:
    """Runs ``job`` from worker threads, emitting progress, yielding each batch as it is hashed.

    Each item is the batch's entries (manifest order) and, with ``held`` and a backend that holds
    bytes, ``(hash, bytes)`` of the chunks read since the last item (any order, possibly of files
    in later items; never of cached files, which are not read); otherwise an empty list. An item
    may have chunks and no entry. The consumer owns the bytes it gets and must call
    ``held.release(len(data))`` for each once it lets it go, or the scan stops for lack of
    budget. ``on_walk`` gets the walked relative paths (manifest order) before any file is read:
    an exception from it stops the scan. ``path`` names a one-file job's entry. The entries of
    the whole scan and its report are in ``outcome`` once the iteration is complete, with
    ``entries_json`` (and no ``path``) their JSON text when the backend writes it, and with
    ``watch_root`` (the tree's root) the files it read (see :meth:`StreamOutcome.first_changed`).
    With ``file_events``, a batch's per-file ``hash`` events go out only while it returns True
    (the ``discover`` event and the final ``hash`` one always do): 20,000 events nobody reads
    cost a re-push a tenth of a second.
    """
    # Each poll returns within _POLL_SECONDS, so a cancellation lands promptly without abandoning
    # the worker thread (and without needing anyio >= 4.1).
    run = anyio.to_thread.run_sync
    try:
        summary = None
        while summary is None:
            summary = await run(guard, job.wait_walk, _POLL_SECONDS)
        walked = _walked(job, summary, hidden)
        file_count, total_bytes = walked.file_count, walked.total_bytes
        if on_progress is not None:
            event = DiscoverProgress(file_count, total_bytes, walked.skipped, walked.unmatched)
            await _emit(on_progress, event)
        if on_walk is not None:
            on_walk(await run(_walked_paths, job, walked))
        await run(_start, job, walked, cache_root, start_ns, verify, held is not None)
        if held is not None:
            held.attach(job)
        out = outcome.entries
        files_done = bytes_done = 0
        while True:
            batch = await run(guard, job.next_batch, _POLL_SECONDS)
            if batch is None:
                break
            entries = build_entries(batch, path)
            if not entries and not batch[4]:
                continue
            for entry in entries:
                if on_progress is not None and (file_events is None or file_events()):
                    # called here, not through _emit: a coroutine per file costs a re-push ~20 ms
                    pending = on_progress(
                        hash_event(entry.path, files_done, file_count, bytes_done, total_bytes)
                    )
                    if pending is not None and inspect.isawaitable(pending):
                        await pending
                files_done += 1
                bytes_done += entry.size
            out += entries
            yield entries, batch[4]
        await run(_cache_finish, walked.plan, out)
        if entries_json and path is None:
            outcome.entries_json = await run(job.entries_json)
        if watch_root is not None:
            outcome.read = await run(_files_read, job, walked, watch_root)
        if on_progress is not None:
            await _emit(on_progress, HashProgress("", file_count, file_count, total_bytes, total_bytes))
        outcome.report = _report(job, walked)
    except ChunkSourceChangedError as e:
        _changed(e, cache_root)
        raise
    finally:
        job.cancel()


def _files_read(job: Job, walked: _Walked, root: str) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` from the walk of every non-empty file the scan opened."""
    keys, sizes, mtimes = _listing(job, walked)
    plan = walked.plan
    hits = set(plan.hits_used.indices) if plan is not None and plan.hits_used is not None else set()
    if len(hits) == len(sizes):  # every file from the cache (a re-push): none was opened
        return []
    read = [i for i, size in enumerate(sizes) if size and i not in hits]
    paths = _abs_paths(root, keys, read)
    return [(path, sizes[i], mtimes[i]) for path, i in zip(paths, read, strict=True)]


def _walked_paths(job: Job, walked: _Walked) -> list[str]:
    n = _hash_cache.KEY_PREFIX
    return [key[n:].decode("utf-8", "surrogateescape") for key in _listing(job, walked)[0]]


async def scan_async(
    job: Job,
    on_progress: ProgressCallback | None,
    path: str | None = None,
    cache_root: str | None = None,
    start_ns: int = 0,
    verify: str = "stat",
    hidden: Collection[str] = (),
) -> tuple[list[ChunkedFileEntry], ScanReport]:
    """Runs ``job`` from worker threads, emitting progress; ``path`` names a one-file job's entry."""
    outcome = StreamOutcome()
    batches = scan_stream(
        job,
        on_progress,
        outcome,
        path=path,
        cache_root=cache_root,
        start_ns=start_ns,
        verify=verify,
        hidden=hidden,
    )
    async with aclosing(batches):
        async for _batch in batches:
            pass
    assert outcome.report is not None
    return outcome.entries, outcome.report
