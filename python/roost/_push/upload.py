"""The upload stage: missing chunks -> stored, paced by the link, with progress events."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from .._errors import ChunkSourceChangedError
from .._transport import LatencyFanOut, ThroughputWindow
from ..chunker import CHUNK_SIZE_BYTES, read_chunk
from ..client import RoostClient
from .plan import ChunkSource
from .storage import StorageClient, put_chunk
from .tasks import Emitter, crew
from .types import PushProgressUpload
from .urls import UrlPool

__all__ = [
    "MAX_PUTS_IN_FLIGHT",
    "PROGRESS_INTERVAL_S",
    "SLOW_CONNECTION_BPS",
    "SMALL_CHUNK_FANOUT",
    "UploadItem",
    "UploadTally",
    "Uploads",
    "max_parallel_puts",
    "upload_chunks",
]

logger = logging.getLogger("roost")

#: How many more PUTs than ``concurrency`` may be in flight when chunks are small (bytes permitting).
SMALL_CHUNK_FANOUT = 8
#: Upper bound of PUTs in flight however high the latency (and the storage connections opened).
MAX_PUTS_IN_FLIGHT = 256
#: Small PUTs slower than this (the smallest round trip seen) get more of them in flight: at this
#: latency 64 PUTs in flight already reach about 2,500 PUT/s, more than one client process sends.
REFERENCE_LATENCY_S = 0.025
#: A connection moving a large chunk slower than this halves the bytes in flight: a full chunk
#: then takes over 16 s, so one failed attempt wastes a lot, and fewer transfers lose no rate.
SLOW_CONNECTION_BPS = CHUNK_SIZE_BYTES / 16
#: While bytes move, an ``upload`` event goes out at least this often (besides every 4th chunk).
PROGRESS_INTERVAL_S = 0.5
_TICK_S = 0.1
#: Worker threads reading and verifying chunk bytes for one push.
READ_THREADS = 8
#: Chunks up to this size are read and verified on the event loop thread: the scan has just read
#: them (page cache), and a thread hop costs more than the read; measured 25 % less CPU per chunk.
INLINE_READ_MAX = 64 * 1024


def max_parallel_puts(concurrency: int) -> int:
    """Storage connections a push may use: the most PUTs it will ever have in flight."""
    return max(concurrency * SMALL_CHUNK_FANOUT, MAX_PUTS_IN_FLIGHT)


@dataclass(slots=True)
class UploadTally:
    chunks: int = 0
    bytes: int = 0
    peak_bytes_in_flight: int = 0
    mint_calls: int = 0
    window_cuts: int = 0


class _Gate:
    """Admits uploads while both the byte window and the PUT count allow; one acquirer (dispatch).

    An upload larger than the window is admitted alone, so progress never stops.
    """

    def __init__(self, window: ThroughputWindow, fanout: LatencyFanOut) -> None:
        self.window = window
        self.fanout = fanout
        self.count = 0
        self.bytes = 0
        self.peak_bytes = 0
        self._changed = anyio.Event()

    def _fits(self, size: int) -> bool:
        if self.count == 0:
            return True
        return self.count < self.fanout.limit and self.bytes + size <= self.window.capacity

    async def acquire(self, size: int) -> None:
        while not self._fits(size):
            self._changed = anyio.Event()
            await self._changed.wait()
        self.count += 1
        self.bytes += size
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def release(self, size: int) -> None:
        self.count -= 1
        self.bytes -= size
        self._changed.set()

    async def drained(self) -> None:
        """Waits until nothing is admitted any more."""
        while self.count:
            self._changed = anyio.Event()
            await self._changed.wait()


class _Progress:
    """Upload bytes for the events: stored chunks plus what in-flight attempts have sent.

    Reported counts never go down: a retried attempt's bytes are sent again without counting
    twice. A streaming push learns what it must upload while it scans: the totals grow with
    each answered dedup check (:meth:`add`) until :meth:`finish` says they are complete. The
    event with ``uploaded == total`` that ends the upload comes after that (so after the
    ``check-missing`` event), even when every chunk was stored before.
    """

    def __init__(self, emit: Emitter) -> None:
        self._emit = emit
        self.total = 0
        self.total_bytes = 0
        self.complete = False
        self.stored_chunks = 0
        self.stored_bytes = 0
        self.sending: dict[str, int] = {}
        self.reported = 0
        self.reported_at = time.monotonic()

    def sent(self, chunk_hash: str, nbytes: int) -> None:
        self.sending[chunk_hash] = nbytes

    def _report(self, nbytes: int) -> PushProgressUpload:
        self.reported = min(self.total_bytes, max(self.reported, nbytes))
        self.reported_at = time.monotonic()
        return PushProgressUpload(
            uploaded=self.stored_chunks,
            total=self.total,
            bytes_uploaded=self.reported,
            bytes_total=self.total_bytes,
        )

    def add(self, chunks: int, nbytes: int) -> None:
        self.total += chunks
        self.total_bytes += nbytes

    async def finish(self) -> None:
        """The totals are complete; the last event goes out now if every chunk is stored already."""
        self.complete = True
        if self.total and self.stored_chunks == self.total:
            await self._emit(self._report(self.stored_bytes))

    async def stored(self, chunk_hash: str, size: int) -> None:
        self.sending.pop(chunk_hash, None)
        self.stored_chunks += 1
        self.stored_bytes += size
        every_fourth = self.stored_chunks % 4 == 0
        if self.stored_chunks == self.total:  # the end, if the totals are complete: see finish()
            every_fourth = False
        if every_fourth or (self.complete and self.stored_chunks == self.total):
            await self._emit(self._report(self.stored_bytes))

    async def tick(self) -> None:
        """An event when none went out for an interval and bytes moved since the last one."""
        on_wire = self.stored_bytes + sum(self.sending.values())
        quiet = time.monotonic() - self.reported_at
        if quiet >= PROGRESS_INTERVAL_S - _TICK_S and on_wire > self.reported:
            await self._emit(self._report(on_wire))


def _read_verified(source: ChunkSource, chunk_hash: str) -> bytes:
    """Blocking: the chunk's bytes, re-read and re-hashed against ``chunk_hash``.

    A file that changed, shrank or vanished since the scan raises ``ChunkSourceChangedError``.
    """
    try:
        return read_chunk(
            source.path, source.offset, source.size, expected_hash=chunk_hash, file_id=source.file_id
        )
    except ChunkSourceChangedError:
        raise
    except OSError as error:
        raise ChunkSourceChangedError(
            source.path, chunk_hash, source.offset, f"unreadable ({error.strerror or error})"
        ) from error


@dataclass(frozen=True, slots=True)
class UploadItem:
    """A chunk to upload: its hash and size, and either the bytes the scan hashed or their source.

    With ``data`` (held from the scan, so hashed from these very bytes) nothing is read again;
    without, the bytes are re-read from ``source`` and verified against the hash first.
    """

    chunk_hash: str
    size: int
    data: bytes | None = None
    source: ChunkSource | None = None


class Uploads:
    """The upload stage of one push: items in, stored chunks out, paced by the link.

    In flight, at once, are at most:

    - ``concurrency x 4 MiB`` of chunk bytes (read, verified, in flight or waiting for a retry),
      less while the link is slow: a :class:`ThroughputWindow` halves those bytes when a
      connection moves a large chunk slower than :data:`SLOW_CONNECTION_BPS` (or an attempt
      stalls) and grows them back by about a chunk per window of fast uploads, never below one
      chunk;
    - ``concurrency x SMALL_CHUNK_FANOUT`` PUTs, more on a high-latency link: a
      :class:`LatencyFanOut` scales that count with the smallest small-PUT round trip above
      :data:`REFERENCE_LATENCY_S`, up to :data:`MAX_PUTS_IN_FLIGHT`.

    ``expect`` tells the URL pool what is coming (it mints in batches, in that order); ``run``
    uploads items as they arrive, in arrival order, and fails on the first chunk that fails.
    ``expect`` also adds to the ``upload`` events' totals, which grow until ``finish``;
    ``release(n)`` is called once an item's held bytes are no longer needed. An ``upload``
    event follows every 4th stored chunk and the last one, and, while bytes move, at least every
    :data:`PROGRESS_INTERVAL_S`; ``bytes_uploaded`` counts the bytes sent (stored chunks plus
    what their in-flight attempts sent), never decreasing.
    """

    def __init__(
        self,
        http: RoostClient,
        storage: StorageClient,
        *,
        site_id: str,
        concurrency: int,
        emit: Emitter,
        release: Callable[[int], None] | None = None,
    ) -> None:
        self._storage = storage
        self._emit = emit
        self._release = release
        self.pool = UrlPool(http, site_id, ())
        self.window = ThroughputWindow(
            floor=CHUNK_SIZE_BYTES, ceiling=concurrency * CHUNK_SIZE_BYTES, slow_bps=SLOW_CONNECTION_BPS
        )
        self.fanout = LatencyFanOut(
            base=concurrency * SMALL_CHUNK_FANOUT,
            cap=max_parallel_puts(concurrency),
            reference_s=REFERENCE_LATENCY_S,
        )
        self._gate = _Gate(self.window, self.fanout)
        self._progress = _Progress(emit)
        self._readers = anyio.CapacityLimiter(READ_THREADS)
        self.tally = UploadTally()

    def expect(self, hashes: Sequence[str], nbytes: int) -> None:
        """``hashes`` (of ``nbytes`` in all) will come to :meth:`run`."""
        self.pool.add(hashes)
        self._progress.add(len(hashes), nbytes)

    async def finish(self) -> None:
        """Everything to upload has been expected: the totals are final."""
        await self._progress.finish()

    def _attempted(self, nbytes: int, started: float, finished: float, reached: bool) -> None:
        if reached:
            self.window.observe(nbytes, started, finished)
            self.fanout.observe(nbytes, finished - started)
        else:
            self.window.failed(nbytes, started)

    async def _upload_one(self, item: UploadItem) -> None:
        chunk_hash, source, size = item.chunk_hash, item.source, item.size
        try:
            data = item.data
            if data is None:
                if source is None:
                    raise RuntimeError(
                        f"push: internal error: chunk {chunk_hash} has neither bytes nor a source"
                    )
                if source.size <= INLINE_READ_MAX:
                    data = _read_verified(source, chunk_hash)
                else:
                    data = await anyio.to_thread.run_sync(
                        functools.partial(_read_verified, source, chunk_hash), limiter=self._readers
                    )
            await put_chunk(
                self._storage,
                self.pool,
                chunk_hash,
                data,
                on_sent=functools.partial(self._progress.sent, chunk_hash),
                on_attempt=self._attempted,
            )
            del data
        finally:
            self._gate.release(size)
            if item.data is not None and self._release is not None:
                self._release(len(item.data))
        self.pool.done(chunk_hash)
        self.tally.chunks += 1
        self.tally.bytes += size
        await self._progress.stored(chunk_hash, size)

    async def run(self, items: AsyncIterable[UploadItem] | Iterable[UploadItem]) -> UploadTally:
        ticker = anyio.CancelScope()

        async def tick() -> None:
            with ticker:
                while True:
                    await anyio.sleep(_TICK_S)
                    await self._progress.tick()

        async def dispatch() -> None:
            async for item in _each(items):
                await self._gate.acquire(item.size)
                tasks.spawn(self._upload_one, item)
            await self._gate.drained()
            ticker.cancel()

        async with crew() as tasks:
            if self._emit.active:
                tasks.spawn(tick)
            tasks.spawn(dispatch)
        tally = self.tally
        tally.peak_bytes_in_flight = self._gate.peak_bytes
        tally.mint_calls = self.pool.mint_calls
        tally.window_cuts = self.window.cuts
        logger.debug(
            "uploaded %d chunks (%d bytes); peak %d bytes in flight; %d upload-URL calls; "
            "window cut %d times (now %d bytes); small-PUT latency %s s, fan-out %d",
            tally.chunks,
            tally.bytes,
            tally.peak_bytes_in_flight,
            tally.mint_calls,
            self.window.cuts,
            int(self.window.capacity),
            self.fanout.latency_s,
            self.fanout.limit,
        )
        return tally


async def _each(items: AsyncIterable[UploadItem] | Iterable[UploadItem]) -> AsyncIterator[UploadItem]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def upload_chunks(
    http: RoostClient,
    storage: StorageClient,
    *,
    site_id: str,
    hashes: Sequence[str],
    sources: Mapping[str, ChunkSource],
    concurrency: int,
    emit: Emitter,
) -> UploadTally:
    """Upload ``hashes`` (in that order), re-read from their sources and verified (see :class:`Uploads`)."""
    if not hashes:
        return UploadTally()
    uploads = Uploads(http, storage, site_id=site_id, concurrency=concurrency, emit=emit)
    uploads.expect(hashes, sum(sources[chunk_hash].size for chunk_hash in hashes))
    await uploads.finish()
    items = (UploadItem(h, sources[h].size, source=sources[h]) for h in hashes)
    return await uploads.run(items)
