"""``pull_directory``: manifest -> scan -> plan -> copy -> download -> delete (``client.roosts.pull``)."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import anyio.to_thread

from .._push.tasks import ByteBudget, Emitter, crew
from .._push.validate import MAX_CONCURRENCY, check_number
from ..chunker import CHUNK_SIZE_BYTES, ChunkedFileEntry
from ..client import RoostClient
from ..resources._common import version_ref_segment
from . import cache
from .local import remove_empty_parents, remove_local, scan_destination
from .manifest import VersionManifest
from .paths import DestLayout, check_manifest_paths, inspect_destination
from .plan import PullPlan, Target, build_plan, under
from .source import guess_manifest, is_pointer, load_manifest, remember, resolve_version_id
from .transfer import ChunkFetcher, download_chunk, download_urls
from .types import (
    PullOptions,
    PullProgressDiscover,
    PullProgressDownload,
    PullProgressEvent,
    PullProgressPlan,
    PullResult,
    PullStats,
)
from .write import finalize, make_parents, read_local, remove_temps, write_places

__all__ = ["PROGRESS_INTERVAL_S", "pull_directory"]

logger = logging.getLogger("roost")

#: GETs in flight per unit of ``concurrency`` when chunks are small (the byte budget still holds).
SMALL_CHUNK_FANOUT = 8
#: Worker threads reading, writing and renaming files.
FILE_THREADS = 8
#: Download events come every 4 chunks, at the end, and at least this often while bytes move.
PROGRESS_INTERVAL_S = 0.5
#: Renames per worker-thread call, so that a cancellation is honoured soon.
FINALIZE_BATCH = 256


class _Progress:
    """The push's in-order :class:`Emitter`, typed for pull events."""

    def __init__(self, callback: Any) -> None:
        self._emitter = Emitter(callback)

    async def __call__(self, event: PullProgressEvent) -> None:
        await self._emitter(cast(Any, event))


@dataclass(slots=True)
class _Discovery:
    manifest: VersionManifest | None = None
    layout: DestLayout = field(default_factory=DestLayout)
    local: list[ChunkedFileEntry] = field(default_factory=list)


@dataclass(slots=True)
class _Guess:
    """A pointer ref's speculation (see :func:`.source.guess_manifest`) and the version it resolved to."""

    resolved: str | None = None
    hinted: str | None = None
    manifest: VersionManifest | None = None
    layout: DestLayout = field(default_factory=DestLayout)
    error: Exception | None = None


@dataclass(slots=True)
class _Tally:
    downloaded_chunks: int = 0
    downloaded_bytes: int = 0
    copied_chunks: int = 0
    copied_bytes: int = 0
    deleted_files: int = 0


class _Meter:
    """Download progress: chunks written and bytes received, throttled into events."""

    def __init__(self, emit: _Progress, total: int, bytes_total: int, clock: Callable[[], float]) -> None:
        self._emit = emit
        self._clock = clock
        self.total = total
        self.bytes_total = bytes_total
        self.chunks = 0
        self.bytes = 0
        self._last = clock()

    async def _send(self) -> None:
        self._last = self._clock()
        await self._emit(
            PullProgressDownload(
                downloaded=self.chunks,
                total=self.total,
                bytes_downloaded=max(0, min(self.bytes, self.bytes_total)),
                bytes_total=self.bytes_total,
            )
        )

    async def moved(self, count: int) -> None:
        self.bytes += count
        if count > 0 and self._clock() - self._last >= PROGRESS_INTERVAL_S:
            await self._send()

    async def chunk_done(self) -> None:
        self.chunks += 1
        if self.chunks % 4 == 0 or self.chunks == self.total:
            await self._send()


def _validate(roost_id: str, dest: str | os.PathLike[str], opts: PullOptions) -> tuple[str, bool]:
    """Check the arguments before any I/O; returns the destination, resolved, and whether it exists."""
    if not isinstance(opts, PullOptions):
        raise TypeError(f"pull: opts must be a PullOptions, got {type(opts).__name__}")
    for name, value in (("roost_id", roost_id), ("PullOptions.site_id", opts.site_id)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"pull: {name} must be a non-empty string, got {value!r}")
    version_ref_segment(opts.ref, "PullOptions.ref")
    # as the push's: each download in flight may hold a 4 MiB chunk
    check_number(opts.concurrency, "PullOptions.concurrency", 1, MAX_CONCURRENCY, integer=True, verb="pull")
    if opts.on_progress is not None and not callable(opts.on_progress):
        raise TypeError("pull: PullOptions.on_progress must be callable")
    path = os.fspath(dest)
    if not isinstance(path, str) or not path:
        raise ValueError(f"pull: dest must be a non-empty str path, got {path!r}")
    if os.path.exists(path) and not os.path.isdir(path):
        raise NotADirectoryError(20, f"pull: destination {path!r} is not a directory", path)
    root = os.path.realpath(path)
    return root, os.path.isdir(root)


async def _thread(func: Callable[..., Any], *args: Any, limiter: anyio.CapacityLimiter | None = None) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=limiter)


def _remove_all(dest: str, paths: Iterable[str]) -> list[str]:
    return [rel for rel in paths if remove_local(dest, rel) is not None]


async def pull_directory(
    http: RoostClient, roost_id: str, dest: str | os.PathLike[str], opts: PullOptions
) -> PullResult:
    """Rebuild version ``opts.ref`` of ``roost_id`` under ``dest``.

    1. manifest: the version's files and chunks, from the manifest cache when this machine
       pulled that version before (see :mod:`.source`), else fetched, every path checked
       (nothing is written when one is unsafe) and cached; then the destination's parents and
       final paths inspected for links;
    2. scan: the destination through the chunker and its hash cache (``discover`` event);
    3. plan: unchanged files are left alone; chunks found in any destination file are copied
       locally, the rest downloaded, each once (``plan`` event); ``check`` stops here;
    4. copy, then download (``download`` events), each file built in a temporary file and renamed
       into place when complete; a failure or cancellation removes the temporary files;
    5. with ``delete``, files not in the version are removed (and directories left empty);
       temporary files a killed pull left behind are removed.
    """
    root, exists = _validate(roost_id, dest, opts)
    emit = _Progress(opts.on_progress)
    started = time.perf_counter()
    found = _Discovery()

    inspect = functools.partial(inspect_destination, delete=opts.delete or opts.check)
    guess = _Guess()

    async def resolve() -> None:
        guess.resolved = await resolve_version_id(http, roost_id, opts.site_id, opts.ref)

    async def speculate() -> None:
        # Never raises: what it found counts only if the roost read confirms the version.
        guess.hinted, manifest = await guess_manifest(http, roost_id, opts.site_id, opts.ref)
        if manifest is not None and exists:
            try:
                guess.layout = await _thread(inspect, root, manifest.paths)
            except Exception as error:  # raised below if this is the version after all
                guess.error = error
        guess.manifest = manifest

    async def read_manifest() -> None:
        if opts.cache:
            async with crew() as steps:
                steps.spawn(resolve)
                steps.spawn(speculate)
        version_id = guess.resolved
        if version_id is not None and version_id != guess.hinted and is_pointer(opts.ref):
            await _thread(remember, http, roost_id, opts.site_id, opts.ref, version_id)
        if guess.manifest is not None and guess.manifest.version_id == version_id:
            found.manifest = guess.manifest  # a cached one: its checks passed when it was stored
            if guess.error is not None:
                raise guess.error
            found.layout = guess.layout
            return
        loaded = await load_manifest(http, roost_id, opts.site_id, opts.ref, version_id, use_cache=opts.cache)
        found.manifest = loaded.manifest
        paths = found.manifest.paths
        if not loaded.cached:  # a cached manifest passed these checks when it was stored
            check_manifest_paths(paths)
            if loaded.key is not None:
                await _thread(cache.store, loaded.key, loaded.manifest)
        if exists:
            found.layout = await _thread(inspect, root, paths)

    async def scan() -> None:
        found.local = await scan_destination(root, cache=opts.cache)

    # The scan only reads, so it runs while the manifest is resolved, loaded and checked (an
    # unsafe one cancels it). It starts first: on a re-pull it is the longer of the two.
    async with crew() as tasks:
        if exists:
            tasks.spawn(scan)
        tasks.spawn(read_manifest)
    manifest, layout, local = found.manifest, found.layout, found.local
    assert manifest is not None
    await emit(PullProgressDiscover(file_count=len(manifest.paths), total_bytes=manifest.total_bytes))
    plan = build_plan(root, manifest, local, layout)
    await emit(
        PullProgressPlan(
            files_to_write=len(plan.targets),
            chunks_to_download=len(plan.downloads),
            bytes_to_download=plan.download_bytes,
            chunks_to_copy=len(plan.copies),
        )
    )
    planned = time.perf_counter()
    tally = _Tally()
    work = plan.targets or layout.obstacles or plan.stale_temps or (opts.delete and plan.removed)
    if work and not opts.check:  # an unchanged tree (a re-pull) costs no worker-thread round trip
        try:
            await _apply(http, root, plan, layout, opts, emit, tally)
        except BaseException:
            remove_temps(target.temp for target in plan.targets if not target.done)
            raise
    logger.debug(
        "pull %s v%d: manifest + scan + plan %.3fs, transfer %.3fs (%d downloaded, %d copied)",
        roost_id,
        manifest.version_number,
        planned - started,
        time.perf_counter() - planned,
        tally.downloaded_chunks,
        tally.copied_chunks,
    )
    return _result(manifest, plan, tally, opts)


def _result(manifest: VersionManifest, plan: PullPlan, tally: _Tally, opts: PullOptions) -> PullResult:
    stats = PullStats(
        file_count=len(manifest.paths),
        total_bytes=manifest.total_bytes,
        unchanged_files=len(plan.unchanged),
        written_files=sum(1 for target in plan.targets if target.done),
        deleted_files=tally.deleted_files,
        downloaded_chunks=tally.downloaded_chunks,
        downloaded_bytes=tally.downloaded_bytes,
        copied_chunks=tally.copied_chunks,
        copied_bytes=tally.copied_bytes,
    )
    if opts.check:
        in_sync = not (plan.added or plan.changed or plan.removed)
    else:
        in_sync = opts.delete or not plan.removed
    return PullResult(
        version_id=manifest.version_id,
        version_number=manifest.version_number,
        stats=stats,
        added=tuple(plan.added),
        changed=tuple(plan.changed),
        removed=tuple(plan.removed),
        in_sync=in_sync,
        check=opts.check,
    )


async def _finalize_ready(targets: Iterable[Target], fsync: bool, limiter: anyio.CapacityLimiter) -> None:
    ready = [target for target in targets if target.pending == 0 and not target.done]
    for start in range(0, len(ready), FINALIZE_BATCH):
        await _thread(finalize, ready[start : start + FINALIZE_BATCH], fsync, limiter=limiter)


async def _apply(
    http: RoostClient,
    root: str,
    plan: PullPlan,
    layout: DestLayout,
    opts: PullOptions,
    emit: _Progress,
    tally: _Tally,
) -> None:
    files = anyio.CapacityLimiter(FILE_THREADS)
    if layout.obstacles:
        await _thread(_remove_all, root, layout.obstacles)
    await _thread(os.makedirs, root, 0o777, True)
    await _thread(make_parents, plan.targets)

    # Copies first, with no rename: a file about to be replaced may still be another's source.
    fallback: list[str] = []

    async def copy_one(chunk_hash: str) -> None:
        source = plan.copies[chunk_hash]
        places = plan.places[chunk_hash]

        def job() -> bool:
            data = read_local(source, chunk_hash)
            if data is None:
                return False
            write_places(data, places, (), opts.fsync)
            return True

        if not await _thread(job, limiter=files):
            fallback.append(chunk_hash)
            return
        for target, _ in places:
            target.pending -= 1
        tally.copied_chunks += 1
        tally.copied_bytes += source.size

    async with crew() as tasks:
        for chunk_hash in plan.copies:
            tasks.spawn(copy_one, chunk_hash)
    await _finalize_ready(plan.targets, opts.fsync, files)

    failed = set(fallback)
    downloads = plan.downloads + [chunk_hash for chunk_hash in plan.copies if chunk_hash in failed]
    if downloads:
        await _download(http, plan, downloads, opts, emit, tally, files)

    if opts.delete and plan.removed:
        # Obstacles went before the copies; their paths may now hold the version's own files.
        rest = [rel for rel in plan.removed if not under(rel, layout.obstacles)]
        removed = await _thread(_remove_all, root, rest)
        tally.deleted_files = len(plan.removed)
        await _thread(remove_empty_parents, root, removed)
    if plan.stale_temps:
        await _thread(remove_temps, [os.path.join(root, *rel.split("/")) for rel in plan.stale_temps])


async def _download(
    http: RoostClient,
    plan: PullPlan,
    downloads: list[str],
    opts: PullOptions,
    emit: _Progress,
    tally: _Tally,
    files: anyio.CapacityLimiter,
) -> None:
    """Download, verify and write ``downloads``: at most ``concurrency x 4 MiB`` of chunk bytes
    held at once, at most ``concurrency x SMALL_CHUNK_FANOUT`` GETs at once."""
    total_bytes = sum(plan.sizes[chunk_hash] for chunk_hash in downloads)
    meter = _Meter(emit, len(downloads), total_bytes, time.monotonic)
    urls = download_urls(http, opts.site_id, downloads)
    budget = ByteBudget(opts.concurrency * CHUNK_SIZE_BYTES)
    slots = anyio.Semaphore(opts.concurrency * SMALL_CHUNK_FANOUT)

    fetcher = ChunkFetcher(http, max_connections=opts.concurrency * SMALL_CHUNK_FANOUT)
    async with fetcher:

        async def download_one(chunk_hash: str, size: int) -> None:
            places = plan.places[chunk_hash]
            try:
                data = await download_chunk(fetcher, urls, chunk_hash, size, meter.moved)
                writes = Counter(target for target, _ in places)
                # The last outstanding writes of a target rename it in the same thread call.
                finish = [target for target, count in writes.items() if target.pending == count]
                await _thread(write_places, data, places, finish, opts.fsync, limiter=files)
                del data
            finally:
                budget.release(size)
                slots.release()
            for target, count in writes.items():
                target.pending -= count
            await _finalize_ready(writes, opts.fsync, files)
            tally.downloaded_chunks += 1
            tally.downloaded_bytes += size
            await meter.chunk_done()

        async with crew() as tasks:

            async def dispatch() -> None:
                for chunk_hash in downloads:
                    size = plan.sizes[chunk_hash]
                    await slots.acquire()
                    try:
                        await budget.acquire(size)
                    except BaseException:
                        slots.release()
                        raise
                    tasks.spawn(download_one, chunk_hash, size)

            tasks.spawn(dispatch)
