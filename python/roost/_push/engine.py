"""``push_directory``: validate -> scan (with the roost read) -> names -> check -> upload -> publish.

The engine behind ``client.roosts.push``; enter it through :mod:`roost._push`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._errors import ChunkSourceChangedError, RoostApiError
from ..chunker import (
    CHUNK_SIZE_BYTES,
    ChunkProgressEvent,
    DiscoverProgress,
    HashProgress,
    SkippedEntry,
    _stream_tree,
)
from ..chunker._driver import HeldBudget, StreamOutcome
from ..client import JsonText, RoostClient
from .check import check_missing
from .head import RoostHead, fetch_version_files, read_head, same_fields
from .ledger import KnownHead, Ledger, ledger_path
from .plan import Manifest, build_manifest, missing_plan, version_json
from .portable import unportable_paths
from .publish import Published, publish_version
from .storage import StorageClient
from .stream import Router, route_scan
from .tasks import Emitter, crew
from .types import PushOptions, PushPlan, PushProgressCheckMissing, PushResult, UnportablePathError
from .upload import UploadItem, Uploads, max_parallel_puts, upload_chunks
from .validate import validate_push

__all__ = ["push_directory"]

logger = logging.getLogger("roost")

#: The publish 412 for missing chunks lists at most this many; a full list may have been cut.
MISSING_CHUNKS_LISTED = 20


class _ScanWatch:
    """Passes the scan's events on, keeps the ``discover`` one and starts the roost read.

    The read starts once the first file is hashed (and its event delivered): the walk is the
    only part of the scan it does not overlap, and an empty tree, or a callback that stops the
    push at its first event, costs no request.
    """

    __slots__ = ("discover", "emit", "start_read")

    def __init__(self, emit: Emitter, start_read: Callable[[], None] | None) -> None:
        self.emit = emit
        self.start_read = start_read
        self.discover: DiscoverProgress | None = None

    def __call__(self, event: ChunkProgressEvent) -> Awaitable[None] | None:
        if isinstance(event, DiscoverProgress):
            self.discover = event
        elif self.start_read is not None and isinstance(event, HashProgress) and event.file:
            return self._then_read(event)
        # delivered at once when it can be: the scan then awaits nothing per file
        return self.emit.deliver(event)

    async def _then_read(self, event: ChunkProgressEvent) -> None:
        await self.emit(event)
        start, self.start_read = self.start_read, None
        if start is not None:
            start()
            # let the read send its request now: the rest of the scan may not await anything
            await anyio.lowlevel.checkpoint()

    @property
    def skipped(self) -> tuple[SkippedEntry, ...]:
        return () if self.discover is None else tuple(self.discover.skipped)

    def warnings(self) -> tuple[str, ...]:
        unmatched = () if self.discover is None else self.discover.unmatched_ignores
        return tuple(f"ignore pattern {pattern!r} matched nothing" for pattern in unmatched)


def _publish_extras(opts: PushOptions) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if opts.name is not None:
        extras["name"] = opts.name
    if opts.targets is not None:
        extras["targets"] = list(opts.targets)
    if opts.extract_path is not None:
        extras["extractPath"] = opts.extract_path
    if opts.description is not None:
        extras["description"] = opts.description
    return extras


@dataclass(frozen=True, slots=True)
class _HeadFiles:
    """The head version's file list (by digest), and its chunks when it was read from the API."""

    known: KnownHead
    chunks: frozenset[str] = frozenset()


async def _head_files(
    http: RoostClient, roost_id: str, opts: PushOptions, head: RoostHead, ledger: Ledger | None
) -> _HeadFiles | None:
    """For ``skip_unchanged``: the head's file list, when the head could equal this push.

    None when there is no head or the publish fields differ (the push publishes whatever the
    tree), or the head's body is gone (publishing restores one). With the ledger knowing the
    head this costs no request; otherwise the head version is read once and remembered. Its
    chunks are then stored: the push need not check them.
    """
    version_id = head.guard.version_id if head.guard is not None else None
    if version_id is None or not same_fields(opts, head):
        return None
    known = ledger.head(roost_id) if ledger is not None else None
    if known is not None and known.version_id == version_id:
        return _HeadFiles(known)
    try:
        digest, chunks = await fetch_version_files(http, roost_id, opts.site_id, version_id)
    except RoostApiError as error:
        if error.status in (404, 410):
            return None
        raise
    known = KnownHead(version_id, digest)
    if ledger is not None:
        await anyio.to_thread.run_sync(ledger.record, (), roost_id, known)
    return _HeadFiles(known, chunks)


def held_budget(concurrency: int) -> int:
    """Bytes of hashed chunks a push holds at once: twice what may be in flight, so that the
    scan and the dedup check stay ahead of the uploads."""
    return max(2, 2 * concurrency) * CHUNK_SIZE_BYTES


async def push_directory(
    http: RoostClient, dir_path: str | os.PathLike[str], roost_id: str, opts: PushOptions
) -> PushResult:
    """Publish the tree under ``dir_path`` as a new version of ``roost_id``.

    0. validate: every argument, before any file is opened or any request sent (``ValueError``
       naming the field, the rule and the value);
    1. scan, check and upload, overlapping (see :mod:`roost._push.stream`): the walk and hash
       through :mod:`roost.chunker` (``discover`` then ``hash`` events); right after the walk,
       before any file is read, paths invalid or ambiguous on Windows raise
       :class:`UnportablePathError` (unless ``allow_unportable_paths``). Each chunk's bytes are
       read once, into memory, and hashed there; new hashes the push ledger does not list go to
       ``/api/chunks/check`` in small batches while the scan goes on, and a missing chunk is
       PUT from those very bytes through a storage client that never carries the API token
       (chunks whose bytes were not read, because the hash cache knew their file, are re-read
       and verified first). Alongside, ``GET /api/roosts/{id}`` proves the token and the site
       and reads the head, from the first hashed file on; a failure anywhere cancels the rest
       at once. When every check is answered, one ``check-missing`` event (its ``total``
       counts every unique hash). ``upload`` events come every 4 stored chunks from the first
       upload on, possibly before ``check-missing`` (their totals then count the missing
       chunks found so far), and one with ``uploaded == total`` ends the upload after it. With
       ``dry_run`` nothing is uploaded and the push stops here (a dry run reads no head: the
       dedup checks are its only requests);
    2. with ``skip_unchanged``, a tree and fields equal to the head end the push here
       (``PushResult.unchanged``);
    3. publish: the manifest, guarded by the head read in step 1, with one Idempotency-Key per
       distinct body and the 412 loop (see :func:`publish_version`); chunks the server reports
       missing (lost by storage, or listed by a stale ledger) are uploaded and the body posted
       again;
    4. ledger: every chunk of the version and the new head are recorded in the push ledger, a
       file per (API URL, site) next to the hash cache (owner-only, written atomically, merged
       under a lock with concurrent pushes, bounded, ignored when corrupt; see
       :mod:`roost._push.ledger`). It is what lets step 1 skip chunks and ``skip_unchanged``
       decide from the roost read alone; it is a hint the 412 repair of step 3 makes safe.
       ``cache=False`` neither reads nor writes it.

    Raises ``ValueError`` (``PushSourceNotFoundError`` / ``PushSourceNotADirectoryError`` /
    ``UnportablePathError`` are all) for bad input, ``ChunkSourceChangedError`` when a file
    changed during the push (nothing is published), ``ChunkUploadError`` when storage refused a
    chunk after its retries, and ``RoostApiError`` for API errors.
    """
    root = validate_push(dir_path, roost_id, opts)
    site_id = opts.site_id
    emit = Emitter(opts.on_progress)
    started = time.perf_counter()

    head = RoostHead(None)
    head_files: _HeadFiles | None = None
    ledger: Ledger | None = None
    ledger_loaded = anyio.Event()
    head_known = anyio.Event()  # skip_unchanged: the head's file list is read (or not needed)
    outcome = StreamOutcome()
    # a dry run uploads nothing: no bytes are worth holding
    held = None if opts.dry_run else HeldBudget(held_budget(opts.concurrency))
    # with skip_unchanged, the chunks of a head read from the API are not checked: wait for it
    wait_for_head = opts.skip_unchanged and not opts.dry_run

    def check_names(paths: list[str]) -> None:
        if not opts.allow_unportable_paths:
            unportable = unportable_paths(paths)
            if unportable:
                raise UnportablePathError(root, unportable)

    def known(hashes: list[str]) -> set[str]:
        listed = ledger.known(hashes) if ledger is not None else set()
        if head_files is not None and head_files.chunks:
            listed |= head_files.chunks.intersection(hashes)
        return listed

    async def read() -> None:
        nonlocal head, head_files
        try:
            head = await read_head(http, roost_id, site_id)
            if wait_for_head:
                await ledger_loaded.wait()
                head_files = await _head_files(http, roost_id, opts, head, ledger)
        finally:
            head_known.set()

    async def load_ledger() -> None:
        nonlocal ledger
        try:
            if opts.cache:
                ledger = await anyio.to_thread.run_sync(Ledger.load, ledger_path(http.api_url, site_id))
        finally:
            ledger_loaded.set()

    async def ready() -> None:
        """Before the first chunk is routed: the ledger, and with skip_unchanged the head."""
        await ledger_loaded.wait()
        if wait_for_head:
            start, watch.start_read = watch.start_read, None
            if start is not None:  # no hashed file yet (only empty files so far): read now
                start()
            await head_known.wait()

    storage = StorageClient(
        http,
        max_connections=max_parallel_puts(opts.concurrency),
        stall_timeout_s=opts.stall_timeout_s,
        bandwidth_limit=opts.bandwidth_limit,
    )
    async with storage:
        uploads = Uploads(
            http,
            storage,
            site_id=site_id,
            concurrency=opts.concurrency,
            emit=emit,
            release=held.release if held is not None else None,
        )
        send, receive = anyio.create_memory_object_stream[UploadItem](math.inf)
        router = Router(
            http,
            site_id,
            known=known,
            held=held,
            uploads=None if opts.dry_run else send,
            expect=uploads.expect,
        )

        async def scan_and_check() -> None:
            scan = _stream_tree(
                root,
                outcome,
                ignore=opts.ignore,
                ignore_file=opts.ignore_file,
                default_ignores=opts.default_ignores,
                on_progress=watch,
                cache=opts.cache,
                verify=opts.verify_cache,
                held=held,
                on_walk=check_names,
                # per-file hash events: all of them for the caller's callback (no test per file),
                # else only until the first one has started the read
                file_events=None if emit.active else lambda: watch.start_read is not None,
            )
            with send:
                await route_scan(router, root, scan, ready)
                if not outcome.entries:
                    raise ValueError(f"push: no files found under {root!r}; there is nothing to publish")
                await emit(PushProgressCheckMissing(total=len(router.unique), missing=len(router.missing)))
                await uploads.finish()

        async def upload_missing() -> None:
            with receive:
                await uploads.run(receive)

        async with crew() as tasks:
            watch = _ScanWatch(emit, None if opts.dry_run else lambda: tasks.spawn(read))
            tasks.spawn(load_ledger)
            tasks.spawn(scan_and_check)
            tasks.spawn(upload_missing)
        if watch.start_read is not None:  # the scan reported no hashed file: read now
            watch.start_read = None
            await read()
        streamed = time.perf_counter()
        if not opts.dry_run:
            # what is published must be what is on disk: a file written since the walk (while it
            # was read, or since) stops the push, although its uploaded bytes match their hashes
            changed = await anyio.to_thread.run_sync(outcome.first_changed)
            if changed is not None:
                raise ChunkSourceChangedError(changed, "", 0, "written to or replaced after it was read")
        manifest = build_manifest(root, outcome.entries, outcome.entries_json)
        skipped = watch.skipped
        skip_counts: dict[str, int] = dict(Counter(entry.reason for entry in skipped))
        uploaded = uploads.tally

        def result(**fields: Any) -> PushResult:
            stats = manifest.stats(
                uploaded_chunks=uploaded.chunks, uploaded_bytes=uploaded.bytes, skipped=skip_counts
            )
            return PushResult(stats=stats, skipped=skipped, warnings=watch.warnings(), **fields)

        # (a dry run reads no head: it never finds the tree unchanged)
        if head_files is not None and head_files.known.files == manifest.files_digest():
            return result(
                version_id=head.guard.version_id if head.guard is not None else "",
                version_number=head.version_number,
                current_version_id=head.guard.version_id if head.guard is not None else "",
                previous_version_id=head.previous_version_id,
                dry_run=opts.dry_run,
                plan=PushPlan((), (), 0),
                unchanged=True,
            )
        plan = missing_plan(manifest, router.missing)
        if opts.dry_run:
            return result(
                version_id="",
                version_number=0,
                current_version_id="",
                previous_version_id=None,
                dry_run=True,
                plan=plan,
            )

        async def repair(listed: list[str]) -> bool:
            again = _known(manifest, listed)
            if len(listed) >= MISSING_CHUNKS_LISTED:  # the list may be cut: ask about them all
                again = _known(manifest, again + await check_missing(http, site_id, manifest.unique))
            logger.debug("push: storage lost %d chunk(s); uploading them again", len(again))
            if not again:
                return False
            tally = await upload_chunks(
                http,
                storage,
                site_id=site_id,
                hashes=again,
                sources=manifest.sources,
                concurrency=opts.concurrency,
                emit=emit,
            )
            uploaded.chunks += tally.chunks
            uploaded.bytes += tally.bytes
            return True

        answers: list[Published] = []

        async def publish() -> None:
            answers.append(
                await publish_version(
                    http,
                    roost_id,
                    site_id=site_id,
                    version=JsonText(version_json(manifest)),
                    extras=_publish_extras(opts),
                    head=head.guard,
                    emit=emit,
                    repair=repair,
                )
            )

        async with crew() as tasks:
            tasks.spawn(publish)
            if ledger is not None:
                # what the ledger records, computed while the server works on the publish
                tasks.spawn(anyio.to_thread.run_sync, manifest.files_digest)
        published = answers[0]
    if ledger is not None:
        stored = KnownHead(published.version_id, manifest.files_digest())
        await anyio.to_thread.run_sync(ledger.record, manifest.unique, roost_id, stored)
    logger.debug(
        "push %s: scan + check + upload %.3fs (%d of %d hashes asked, %d chunks uploaded), publish %.3fs (%d attempts)",
        roost_id,
        streamed - started,
        router.asked,
        len(manifest.unique),
        len(router.missing),
        time.perf_counter() - streamed,
        published.attempts,
    )
    return result(
        version_id=published.version_id,
        version_number=published.version_number,
        current_version_id=published.current_version_id,
        previous_version_id=published.previous_version_id,
        plan=plan,
        # the server creates unknown roosts on publish; a head read that found none tells
        created_roost=head.guard is not None and not head.exists and published.previous_version_id is None,
    )


def _known(manifest: Manifest, hashes: list[str]) -> list[str]:
    """``hashes`` this push has a source for, deduplicated, in order."""
    return list(dict.fromkeys(h for h in hashes if h in manifest.sources))
