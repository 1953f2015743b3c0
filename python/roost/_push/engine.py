"""``push_directory``: scan -> plan -> check -> upload -> publish (behind ``client.roosts.push``)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from .._transport import check_transfer_options
from ..chunker import ChunkedFileEntry, chunk_directory
from ..client import RoostClient
from .check import check_missing
from .plan import Manifest, build_manifest, missing_plan, version_body
from .publish import Head, publish_version, read_head
from .storage import StorageClient
from .tasks import Emitter, crew
from .types import (
    PushOptions,
    PushProgressCheckMissing,
    PushResult,
    PushSourceNotADirectoryError,
    PushSourceNotFoundError,
)
from .upload import UploadTally, max_parallel_puts, upload_chunks

__all__ = ["push_directory"]

logger = logging.getLogger("roost")

#: The publish 412 for missing chunks lists at most this many; a full list may have been cut.
MISSING_CHUNKS_LISTED = 20


def _require_text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"push: {name} must be a non-empty string, got {value!r}")
    return value


def _validate(dir_path: str | os.PathLike[str], roost_id: str, opts: PushOptions) -> str:
    """Check the arguments before any I/O; returns the resolved root directory."""
    if not isinstance(opts, PushOptions):
        raise TypeError(f"push: opts must be a PushOptions, got {type(opts).__name__}")
    _require_text(roost_id, "roost_id")
    _require_text(opts.site_id, "PushOptions.site_id")
    concurrency = opts.concurrency
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"push: PushOptions.concurrency must be an integer >= 1, got {concurrency!r}")
    if isinstance(opts.ignore, (str, bytes)):
        raise ValueError("push: PushOptions.ignore must be a sequence of patterns, not a single string")
    check_transfer_options(bandwidth_limit=opts.bandwidth_limit, stall_timeout_s=opts.stall_timeout_s)
    if opts.on_progress is not None and not callable(opts.on_progress):
        raise TypeError("push: PushOptions.on_progress must be callable")
    path = os.fspath(dir_path)
    if not isinstance(path, str):
        raise ValueError(f"push: dir_path must be a str path, got {path!r}")
    if not os.path.exists(path):
        raise PushSourceNotFoundError(2, f"push: directory {path!r} does not exist", path)
    if not os.path.isdir(path):
        raise PushSourceNotADirectoryError(20, f"push: {path!r} is not a directory", path)
    return os.path.realpath(path)


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


async def push_directory(
    http: RoostClient, dir_path: str | os.PathLike[str], roost_id: str, opts: PushOptions
) -> PushResult:
    """Publish the tree under ``dir_path`` as a new version of ``roost_id``.

    1. scan: walk and hash through :mod:`roost.chunker` (``discover`` then ``hash`` events);
    2. check: the unique hashes against ``/api/chunks/check``, in concurrent batches of at most
       900, then one ``check-missing`` event (with ``dry_run`` the push stops here);
    3. upload: the missing chunks, re-read and verified right before their PUT, through a storage
       client that never carries the API token (``upload`` events every 4 chunks and at the end);
    4. publish: the manifest, guarded by the head read at the start of the check, with one
       Idempotency-Key per distinct body and the 412 loop (see :func:`publish_version`).

    Raises ``ValueError`` (``PushSourceNotFoundError`` / ``PushSourceNotADirectoryError`` are
    both) for bad input before any network call, ``ChunkSourceChangedError`` when a file changed
    during the push (nothing is published), ``ChunkUploadError`` when storage refused a chunk
    after its retries, and ``RoostApiError`` for API errors.
    """
    root = _validate(dir_path, roost_id, opts)
    site_id = opts.site_id
    emit = Emitter(opts.on_progress)
    started = time.perf_counter()

    entries: list[ChunkedFileEntry] = await chunk_directory(
        root, ignore=opts.ignore, on_progress=emit, cache=opts.cache, verify=opts.verify_cache
    )
    if not entries:
        raise ValueError(f"push: no files found under {root!r}; there is nothing to publish")
    manifest = build_manifest(root, entries)
    scanned = time.perf_counter()

    missing: list[str] = []
    head: Head | None = None

    async def run_check() -> None:
        nonlocal missing
        missing = await check_missing(http, site_id, manifest.unique)

    async def run_read_head() -> None:
        nonlocal head
        head = await read_head(http, roost_id, site_id)

    async with crew() as tasks:
        tasks.spawn(run_check)
        if not opts.dry_run:
            tasks.spawn(run_read_head)
    await emit(PushProgressCheckMissing(total=len(manifest.unique), missing=len(missing)))
    plan = missing_plan(manifest, missing)
    checked = time.perf_counter()

    if opts.dry_run:
        return PushResult(
            version_id="",
            version_number=0,
            current_version_id="",
            previous_version_id=None,
            stats=manifest.stats(),
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
            if len(listed) >= MISSING_CHUNKS_LISTED:
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
            head=head,
            emit=emit,
            repair=repair,
        )
    logger.debug(
        "push %s: scan %.3fs, check %.3fs, upload %.3fs (%d chunks), publish %.3fs (%d attempts)",
        roost_id,
        scanned - started,
        checked - scanned,
        uploaded_at - checked,
        len(missing),
        time.perf_counter() - uploaded_at,
        published.attempts,
    )
    return PushResult(
        version_id=published.version_id,
        version_number=published.version_number,
        current_version_id=published.current_version_id,
        previous_version_id=published.previous_version_id,
        stats=manifest.stats(uploaded_chunks=uploaded.chunks, uploaded_bytes=uploaded.bytes),
        plan=plan,
    )


def _known(manifest: Manifest, hashes: list[str]) -> list[str]:
    """``hashes`` this push has a source for, deduplicated, in order."""
    return list(dict.fromkeys(h for h in hashes if h in manifest.sources))
