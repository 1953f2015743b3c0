"""``push_directory``: validate -> scan (with the roost read) -> names -> check -> upload -> publish.

The engine behind ``client.roosts.push``; enter it through :mod:`roost._push`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from .._errors import RoostApiError
from ..chunker import (
    ChunkedFileEntry,
    ChunkProgressEvent,
    DiscoverProgress,
    HashProgress,
    SkippedEntry,
    chunk_directory,
)
from ..client import RoostClient
from .check import check_missing
from .head import RoostHead, fetch_files_digest, read_head, same_fields
from .ledger import KnownHead, Ledger, ledger_path
from .plan import Manifest, build_manifest, missing_plan, version_body
from .portable import unportable_paths
from .publish import publish_version
from .storage import StorageClient
from .tasks import Emitter, crew
from .types import PushOptions, PushPlan, PushProgressCheckMissing, PushResult, UnportablePathError
from .upload import UploadTally, max_parallel_puts, upload_chunks
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
        # a plain call when nobody listens: the scan then awaits nothing per file
        return self.emit(event) if self.emit.active else None

    async def _then_read(self, event: ChunkProgressEvent) -> None:
        await self.emit(event)
        start, self.start_read = self.start_read, None
        if start is not None:
            start()

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


async def _is_unchanged(
    http: RoostClient,
    roost_id: str,
    opts: PushOptions,
    head: RoostHead,
    manifest: Manifest,
    ledger: Ledger | None,
) -> bool:
    """``skip_unchanged``: whether the tree and the publish fields equal the roost's head.

    With the ledger knowing the head's file list this costs no request (the roost read already
    happened); otherwise the head version is read once and remembered.
    """
    version_id = head.guard.version_id if head.guard is not None else None
    if version_id is None or not same_fields(opts, head):
        return False
    digest = manifest.files_digest()
    known = ledger.head(roost_id) if ledger is not None else None
    if known is None or known.version_id != version_id:
        try:
            remote = await fetch_files_digest(http, roost_id, opts.site_id, version_id)
        except RoostApiError as error:
            if error.status in (404, 410):  # the head's body is gone: publishing restores one
                return False
            raise
        known = KnownHead(version_id, remote)
        if ledger is not None:
            await anyio.to_thread.run_sync(ledger.record, (), roost_id, known)
    return known.files == digest


async def push_directory(
    http: RoostClient, dir_path: str | os.PathLike[str], roost_id: str, opts: PushOptions
) -> PushResult:
    """Publish the tree under ``dir_path`` as a new version of ``roost_id``.

    0. validate: every argument, before any file is opened or any request sent (``ValueError``
       naming the field, the rule and the value);
    1. scan, and alongside it the roost read: walk and hash through :mod:`roost.chunker`
       (``discover`` then ``hash`` events) while ``GET /api/roosts/{id}`` proves the token and
       the site and reads the head, from the first hashed file on; a failure of either cancels
       the other at once (a dry run reads no head: its dedup check is its only request);
    2. names: paths invalid or ambiguous on Windows raise :class:`UnportablePathError` (unless
       ``allow_unportable_paths``); with ``skip_unchanged``, a tree and fields equal to the head
       end the push here (``PushResult.unchanged``);
    3. check: the unique hashes the ledger does not list against ``/api/chunks/check``, in
       concurrent batches of at most 900, then one ``check-missing`` event (its ``total`` counts
       every unique hash); with ``dry_run`` the push stops here;
    4. upload: the missing chunks, re-read and verified right before their PUT, through a storage
       client that never carries the API token (``upload`` events every 4 chunks and at the end);
    5. publish: the manifest, guarded by the head read in step 1, with one Idempotency-Key per
       distinct body and the 412 loop (see :func:`publish_version`); chunks the server reports
       missing (lost by storage, or listed by a stale ledger) are uploaded and the body posted
       again;
    6. ledger: every chunk of the version and the new head are recorded in the push ledger, a
       file per (API URL, site) next to the hash cache (owner-only, written atomically, merged
       under a lock with concurrent pushes, bounded, ignored when corrupt; see
       :mod:`roost._push.ledger`). It is what lets step 3 skip chunks and ``skip_unchanged``
       decide from the roost read alone; it is a hint the 412 repair of step 5 makes safe.
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

    entries: list[ChunkedFileEntry] = []
    head = RoostHead(None)
    ledger: Ledger | None = None

    async def scan() -> None:
        nonlocal entries
        entries = await chunk_directory(
            root,
            ignore=opts.ignore,
            on_progress=watch,
            cache=opts.cache,
            verify=opts.verify_cache,
            ignore_file=opts.ignore_file,
            default_ignores=opts.default_ignores,
        )

    async def read() -> None:
        nonlocal head
        head = await read_head(http, roost_id, site_id)

    async def load_ledger() -> None:
        nonlocal ledger
        ledger = await anyio.to_thread.run_sync(Ledger.load, ledger_path(http.api_url, site_id))

    async with crew() as tasks:
        # a dry run sends only the dedup check
        watch = _ScanWatch(emit, None if opts.dry_run else lambda: tasks.spawn(read))
        tasks.spawn(scan)
        if opts.cache:
            tasks.spawn(load_ledger)
    if not entries:
        raise ValueError(f"push: no files found under {root!r}; there is nothing to publish")
    if watch.start_read is not None:  # the scan reported no hashed file: read now
        watch.start_read = None
        await read()
    manifest = build_manifest(root, entries)
    if not opts.allow_unportable_paths:
        unportable = unportable_paths(entry.path for entry in manifest.files)
        if unportable:
            raise UnportablePathError(root, unportable)
    skipped = watch.skipped
    skip_counts: dict[str, int] = dict(Counter(entry.reason for entry in skipped))
    scanned = time.perf_counter()

    def result(**fields: Any) -> PushResult:
        stats = manifest.stats(
            uploaded_chunks=fields.pop("uploaded_chunks", 0),
            uploaded_bytes=fields.pop("uploaded_bytes", 0),
            skipped=skip_counts,
        )
        return PushResult(stats=stats, skipped=skipped, warnings=watch.warnings(), **fields)

    if opts.skip_unchanged and await _is_unchanged(http, roost_id, opts, head, manifest, ledger):
        return result(
            version_id=head.guard.version_id if head.guard is not None else "",
            version_number=head.version_number,
            current_version_id=head.guard.version_id if head.guard is not None else "",
            previous_version_id=head.previous_version_id,
            dry_run=opts.dry_run,
            plan=PushPlan((), (), 0),
            unchanged=True,
        )

    known = ledger.known(manifest.unique) if ledger is not None else set()
    missing = await check_missing(http, site_id, [h for h in manifest.unique if h not in known])
    await emit(PushProgressCheckMissing(total=len(manifest.unique), missing=len(missing)))
    plan = missing_plan(manifest, missing)
    checked = time.perf_counter()

    if opts.dry_run:
        return result(
            version_id="",
            version_number=0,
            current_version_id="",
            previous_version_id=None,
            dry_run=True,
            plan=plan,
        )

    version = version_body(manifest)
    uploaded = UploadTally()
    async with StorageClient(
        http,
        max_connections=max_parallel_puts(opts.concurrency),
        stall_timeout_s=opts.stall_timeout_s,
        bandwidth_limit=opts.bandwidth_limit,
    ) as storage:

        async def upload(hashes: list[str]) -> None:
            tally = await upload_chunks(
                http,
                storage,
                site_id=site_id,
                hashes=hashes,
                sources=manifest.sources,
                concurrency=opts.concurrency,
                emit=emit,
            )
            uploaded.chunks += tally.chunks
            uploaded.bytes += tally.bytes

        async def repair(listed: list[str]) -> bool:
            again = _known(manifest, listed)
            if len(listed) >= MISSING_CHUNKS_LISTED:  # the list may be cut: ask about them all
                again = _known(manifest, again + await check_missing(http, site_id, manifest.unique))
            logger.debug("push: storage lost %d chunk(s); uploading them again", len(again))
            if not again:
                return False
            await upload(again)
            return True

        await upload(missing)
        uploaded_at = time.perf_counter()
        published = await publish_version(
            http,
            roost_id,
            site_id=site_id,
            version=version,
            extras=_publish_extras(opts),
            head=head.guard,
            emit=emit,
            repair=repair,
        )
    if ledger is not None:
        stored = KnownHead(published.version_id, manifest.files_digest())
        await anyio.to_thread.run_sync(ledger.record, manifest.unique, roost_id, stored)
    logger.debug(
        "push %s: scan %.3fs, check %.3fs (%d of %d asked), upload %.3fs (%d chunks), publish %.3fs (%d attempts)",
        roost_id,
        scanned - started,
        checked - scanned,
        len(manifest.unique) - len(known),
        len(manifest.unique),
        uploaded_at - checked,
        len(missing),
        time.perf_counter() - uploaded_at,
        published.attempts,
    )
    return result(
        version_id=published.version_id,
        version_number=published.version_number,
        current_version_id=published.current_version_id,
        previous_version_id=published.previous_version_id,
        uploaded_chunks=uploaded.chunks,
        uploaded_bytes=uploaded.bytes,
        plan=plan,
        # the server creates unknown roosts on publish; a head read that found none tells
        created_roost=head.guard is not None and not head.exists and published.previous_version_id is None,
    )


def _known(manifest: Manifest, hashes: list[str]) -> list[str]:
    """``hashes`` this push has a source for, deduplicated, in order."""
    return list(dict.fromkeys(h for h in hashes if h in manifest.sources))
