"""Chunk downloads: signed GET URLs minted lazily, a credential-free GET, verify, retry.

:class:`ChunkFetcher` is the pull's one door to storage ("download this URL"), so that it can be
re-pointed at the shared storage client.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx

from .._push.urls import parse_expiry
from .._transport import StorageClient
from ..client import RetryPolicy, RoostClient
from ..resources.chunks import Chunks
from .types import ChunkDownloadError

__all__ = [
    "MAX_URL_REFRESHES",
    "MINT_BATCH_SIZE",
    "STREAM_MIN_BYTES",
    "ChunkFetcher",
    "DownloadUrls",
    "download_chunk",
]

logger = logging.getLogger("roost")

#: ``/api/chunks/download-urls`` takes at most 1000 hashes; stay clear of it.
MINT_BATCH_SIZE = 900
#: Lifetime assumed when the API sends no readable ``expiresAt`` (the documented 15 minutes).
FALLBACK_LIFETIME_S = 900.0
#: A URL closer than this to its expiry is re-minted before use (at most a quarter of its lifetime).
MAX_EXPIRY_MARGIN_S = 30.0
#: Fresh URLs tried for one chunk after storage answered 401/403, on top of the retry budget.
MAX_URL_REFRESHES = 8
#: Chunks of at least this size are streamed (progress moves mid-chunk); smaller ones take the lean path.
STREAM_MIN_BYTES = 1024 * 1024
#: Chunks above this size are hashed in a worker thread (a 4 MiB SHA-256 takes milliseconds).
INLINE_HASH_MAX = 64 * 1024
_REFRESH_STATUSES = frozenset({401, 403})
_RETRYABLE_STATUSES = frozenset({408, 425, 429})

OnBytes = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Signed:
    url: str
    deadline: float  # monotonic seconds
    margin: float


class DownloadUrls:
    """Signed GET URLs for the chunks of one pull, minted on demand in download order.

    ``get(h)`` returns a URL not near its expiry, minting ``h`` and the next not-yet-downloaded
    hashes lacking a fresh one (at most :data:`MINT_BATCH_SIZE`) when needed; one mint at a time.
    ``reject(h, url)`` forgets a URL storage refused, ``done(h)`` a chunk that is in.
    """

    def __init__(
        self,
        http: RoostClient,
        site_id: str,
        order: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._chunks = Chunks(http)
        self._site_id = site_id
        self._order = list(order)
        self._index = {chunk_hash: i for i, chunk_hash in enumerate(self._order)}
        self._clock = clock
        self._wall_clock = wall_clock
        self._urls: dict[str, _Signed] = {}
        self._done: set[str] = set()
        self._lock = anyio.Lock()
        self.mint_calls = 0

    def _fresh(self, signed: _Signed | None) -> bool:
        return signed is not None and signed.deadline - self._clock() > signed.margin

    async def get(self, chunk_hash: str) -> str:
        signed = self._urls.get(chunk_hash)
        if signed is not None and self._fresh(signed):
            return signed.url
        async with self._lock:
            signed = self._urls.get(chunk_hash)
            if not self._fresh(signed):
                await self._mint(self._batch_for(chunk_hash))
                signed = self._urls.get(chunk_hash)
        if signed is None:
            raise ChunkDownloadError(chunk_hash, "the API returned no download URL for this chunk")
        return signed.url

    def reject(self, chunk_hash: str, url: str) -> None:
        signed = self._urls.get(chunk_hash)
        if signed is not None and signed.url == url:
            del self._urls[chunk_hash]

    def done(self, chunk_hash: str) -> None:
        self._done.add(chunk_hash)
        self._urls.pop(chunk_hash, None)

    def _batch_for(self, chunk_hash: str) -> list[str]:
        batch = [chunk_hash]
        start = self._index.get(chunk_hash, len(self._order))
        for candidate in self._order[start + 1 :]:
            if len(batch) >= MINT_BATCH_SIZE:
                break
            if candidate not in self._done and not self._fresh(self._urls.get(candidate)):
                batch.append(candidate)
        return batch

    async def _mint(self, batch: list[str]) -> None:
        sent_at = self._clock()
        data = await self._chunks.download_urls(self._site_id, batch)
        self.mint_calls += 1
        urls = data.get("urls")
        urls = urls if isinstance(urls, dict) else {}
        expires = parse_expiry(data.get("expiresAt"))
        lifetime = FALLBACK_LIFETIME_S if expires is None else expires - self._wall_clock()
        # Measured from when the request was sent, so a slow mint cannot overstate the lifetime.
        deadline = sent_at + lifetime
        margin = min(MAX_EXPIRY_MARGIN_S, max(lifetime, 0.0) / 4)
        wanted = set(batch)
        for chunk_hash, url in urls.items():
            if chunk_hash in wanted and isinstance(url, str) and url:
                self._urls[chunk_hash] = _Signed(url, deadline, margin)
        logger.debug("minted %d download URLs (%.1fs to expiry)", len(batch), lifetime)


class ChunkFetcher:
    """GETs of signed storage URLs through the shared credential-free :class:`StorageClient`.

    Chunks of at least :data:`STREAM_MIN_BYTES` (and every chunk off the lean path: a custom
    transport or an environment proxy) are streamed, so that progress moves while a large chunk
    arrives; smaller ones are one lean GET each.
    """

    def __init__(self, http: RoostClient, *, max_connections: int) -> None:
        self._storage = StorageClient(http, max_connections=max_connections)
        self.retry: RetryPolicy = self._storage.retry

    async def get(self, url: str, limit: int, on_bytes: OnBytes) -> tuple[int, bytes]:
        """``(status, body)``; the body of a non-200 answer is dropped, one over ``limit`` cut."""
        if self._storage.lean and limit < STREAM_MIN_BYTES:
            response = await self._storage.get(url)
            if response.status_code != 200:
                return response.status_code, b""
            body = response.content
            await on_bytes(len(body))
            return 200, body
        async with self._storage.stream(url) as streamed:
            if streamed.status_code != 200:
                return streamed.status_code, b""
            received = bytearray()
            async for block in streamed.aiter_bytes():
                received += block
                await on_bytes(len(block))
                if len(received) > limit:
                    break
            return 200, bytes(received)

    async def aclose(self) -> None:
        await self._storage.aclose()

    async def __aenter__(self) -> ChunkFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _digest(data: bytes) -> str:
    if len(data) <= INLINE_HASH_MAX:
        return _sha256(data)
    return await anyio.to_thread.run_sync(_sha256, data)


async def download_chunk(
    fetcher: ChunkFetcher, urls: DownloadUrls, chunk_hash: str, size: int, on_bytes: OnBytes
) -> bytes:
    """One chunk's bytes, verified against ``chunk_hash`` before they are returned.

    5xx, 408/425/429, transport errors, short or wrong bytes are retried with the API client's
    ``RetryPolicy`` (backoff and jitter); a 401/403 (an expired or refused signature) gets a fresh
    URL without using up that budget (at most :data:`MAX_URL_REFRESHES`). Anything else, or the
    budget spent, raises :class:`ChunkDownloadError`. ``on_bytes`` sees every byte received,
    negative counts taking back those of a failed attempt.
    """
    policy = fetcher.retry
    failures = 0
    refreshes = 0
    while True:
        url = await urls.get(chunk_hash)
        received = 0

        async def count(n: int) -> None:
            nonlocal received
            received += n
            await on_bytes(n)

        try:
            status, data = await fetcher.get(url, size, count)
        except httpx.TransportError as error:
            detail = f"{type(error).__name__}: {error}"
        else:
            if status == 200:
                if len(data) != size:
                    detail = f"storage sent {len(data)} bytes, expected {size}"
                elif await _digest(data) != chunk_hash:
                    detail = "the bytes storage sent do not hash to the chunk's SHA-256"
                else:
                    urls.done(chunk_hash)
                    return data
            else:
                detail = f"storage answered HTTP {status}"
                if status in _REFRESH_STATUSES:
                    refreshes += 1
                    if refreshes > MAX_URL_REFRESHES:
                        raise ChunkDownloadError(
                            chunk_hash, f"{detail} even after {MAX_URL_REFRESHES} fresh download URLs"
                        )
                    logger.debug("chunk %s: %s, minting a fresh URL", chunk_hash, detail)
                    urls.reject(chunk_hash, url)
                    continue
                if status < 500 and status not in _RETRYABLE_STATUSES:
                    raise ChunkDownloadError(chunk_hash, detail)
        if received:
            await on_bytes(-received)
        failures += 1
        if failures >= policy.max_attempts:
            raise ChunkDownloadError(chunk_hash, f"{detail} (after {failures} attempts)")
        delay = policy.delay_for(failures - 1)
        logger.debug("chunk %s: %s, retrying in %.2fs", chunk_hash, detail, delay)
        await anyio.sleep(delay)
