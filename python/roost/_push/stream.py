"""The streaming stages of a push: scan -> dedup check -> upload, overlapping, each byte read once.

The scan (native core) reads every chunk into a ``bytes`` object, hashes it in place and hands
it over; :class:`Router` sends each new hash to the dedup check in small batches while the scan
goes on, and a chunk the site lacks goes to the upload with those very bytes: what is uploaded
is by construction what was hashed, and nothing is read or hashed a second time. The bytes held
(hashed and waiting for their check or upload, or in flight) are bounded by a
:class:`~roost.chunker._driver.HeldBudget`: the scan waits while it is spent, so a first push
takes about the longer of scan and upload, not their sum. Chunks whose bytes are not held (the
hash cache knew their file, or the fallback backend scanned) are re-read and verified before
their PUT, as every chunk used to be.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

import anyio
from anyio.abc import ObjectSendStream

from ..chunker import ChunkedFileEntry
from ..chunker._driver import HeldBudget
from ..client import RoostClient
from .check import CHECK_BATCH_SIZE, CHECK_PARALLELISM, check_missing
from .plan import ChunkSource, local_path
from .tasks import crew
from .upload import UploadItem

__all__ = ["CHECK_EVERY_BYTES", "CHECK_EVERY_S", "Router", "route_scan"]

#: A dedup check goes out once this many held bytes wait for one, or
#: :data:`~roost._push.check.CHECK_BATCH_SIZE` hashes do, or the oldest has waited
#: :data:`CHECK_EVERY_S`.
CHECK_EVERY_BYTES = 32 * 1024 * 1024
CHECK_EVERY_S = 0.05

#: A chunk on its way to the check: hash, held bytes, or where to read them again.
_Pending = tuple[str, bytes | None, ChunkSource | None]


class Router:
    """Decides, for each chunk the scan hashed, whether it is checked, uploaded or let go.

    A hash is taken the first time it is seen in this push; repeats, and hashes the push
    ledger lists (``known``), are let go at once. The others are checked in batches (see
    :data:`CHECK_EVERY_BYTES`), up to :data:`CHECK_PARALLELISM` checks at a time; the missing
    ones go to ``uploads`` in the order the checks answer (None: a dry run, nothing is
    uploaded). ``missing`` lists them in that order, ``unique`` every distinct hash in
    first-seen order, ``asked`` counts the hashes sent to the check.
    """

    def __init__(
        self,
        http: RoostClient,
        site_id: str,
        *,
        known: Callable[[list[str]], set[str]],
        held: HeldBudget | None,
        uploads: ObjectSendStream[UploadItem] | None,
        expect: Callable[[list[str], int], None],
    ) -> None:
        self._http = http
        self._site_id = site_id
        self._known = known
        self._held = held
        self._uploads = uploads
        self._expect = expect
        self._seen: dict[str, None] = {}
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._checks = anyio.Semaphore(CHECK_PARALLELISM)
        self.missing: list[str] = []
        self.missing_bytes = 0
        self.asked = 0

    @property
    def unique(self) -> list[str]:
        return list(self._seen)

    def _let_go(self, data: bytes | None) -> None:
        if data is not None and self._held is not None:
            self._held.release(len(data))

    def _new(
        self, root: str, entries: list[ChunkedFileEntry], held: list[tuple[str, bytes]]
    ) -> list[_Pending]:
        """The hashes of one scan batch not seen before and not known stored, in order (``held``
        first: a chunk's bytes arrive no later than its file's entry)."""
        seen = self._seen
        kept: dict[str, bytes] = {}
        for chunk_hash, data in held:
            if chunk_hash in seen:
                self._let_go(data)
            else:
                seen[chunk_hash] = None
                kept[chunk_hash] = data
        # the chunks of files whose bytes were not read (a cached file): hashes first, and where
        # to read them again only for those the push must check (a re-push: none of 20,000)
        unread = [h for h in dict.fromkeys([c.hash for e in entries for c in e.chunks]) if h not in seen]
        seen.update(dict.fromkeys(unread))
        if not kept and not unread:
            return []
        known = self._known([*kept, *unread])
        out: list[_Pending] = []
        for chunk_hash, data in kept.items():
            if chunk_hash in known:
                self._let_go(data)
            else:
                out.append((chunk_hash, data, None))
        wanted = {h: None for h in unread if h not in known}
        if wanted:
            sources: dict[str, ChunkSource] = {}
            for entry in entries:
                offset = 0
                for chunk in entry.chunks:
                    if chunk.hash in wanted and chunk.hash not in sources:
                        path = local_path(root, entry.path)
                        sources[chunk.hash] = ChunkSource(path, entry.path, offset, chunk.size, entry.file_id)
                    offset += chunk.size
            out += [(h, None, sources[h]) for h in wanted]
        return out

    def take(
        self,
        root: str,
        entries: list[ChunkedFileEntry],
        held: list[tuple[str, bytes]],
        spawn: Callable[..., None],
    ) -> None:
        """Routes one scan batch; sends a check when enough waits for one."""
        chunks = self._new(root, entries, held)
        if chunks and not self._pending:
            self._pending_since = time.monotonic()
        for item in chunks:
            self._pending.append(item)
            self._pending_bytes += len(item[1]) if item[1] is not None else 0
            if len(self._pending) >= CHECK_BATCH_SIZE or self._pending_bytes >= CHECK_EVERY_BYTES:
                self.flush(spawn)

    def due(self) -> bool:
        return bool(self._pending) and time.monotonic() - self._pending_since >= CHECK_EVERY_S

    def flush(self, spawn: Callable[..., None]) -> None:
        if self._pending:
            batch, self._pending, self._pending_bytes = self._pending, [], 0
            self._pending_since = time.monotonic()
            spawn(self._check, batch)

    async def _check(self, batch: list[_Pending]) -> None:
        async with self._checks:
            answer = await check_missing(self._http, self._site_id, [h for h, _, _ in batch], parallelism=1)
        self.asked += len(batch)
        missing = set(answer)
        wanted = [(h, data, source, _size(data, source)) for h, data, source in batch if h in missing]
        self.missing += [item[0] for item in wanted]
        wanted_bytes = sum(item[3] for item in wanted)
        self.missing_bytes += wanted_bytes
        if self._uploads is None or not wanted:
            for _, data, _ in batch:
                self._let_go(data)
            return
        self._expect([item[0] for item in wanted], wanted_bytes)
        for chunk_hash, data, _ in batch:
            if chunk_hash not in missing:
                self._let_go(data)
        for chunk_hash, data, source, size in wanted:
            await self._uploads.send(UploadItem(chunk_hash, size, data, source))


def _size(data: bytes | None, source: ChunkSource | None) -> int:
    if data is not None:
        return len(data)
    if source is None:
        raise RuntimeError("push: internal error: a chunk with neither bytes nor a source")
    return source.size


async def route_scan(
    router: Router,
    root: str,
    scan: AsyncGenerator[tuple[list[ChunkedFileEntry], list[tuple[str, bytes]]], None],
    ready: Callable[[], Awaitable[None]],
) -> None:
    """Feeds every batch of ``scan`` to ``router`` (after ``ready()``, awaited before the first
    one: what the router may take as known is loaded) and returns once every check is answered;
    the missing chunks are then all in the router's upload stream."""
    async with crew() as checks:

        async def consume() -> None:
            first = True
            async with aclosing(scan):
                async for entries, held in scan:
                    if first:
                        await ready()
                        first = False
                    router.take(root, entries, held, checks.spawn)
            done.set()
            router.flush(checks.spawn)

        async def tick() -> None:
            while not done.is_set():
                with anyio.move_on_after(CHECK_EVERY_S):
                    await done.wait()
                if router.due():
                    router.flush(checks.spawn)

        done = anyio.Event()
        checks.spawn(consume)
        checks.spawn(tick)
