"""Chunk downloads: signed GET URLs minted lazily, a credential-free GET, verify, retry.

:class:`ChunkFetcher` is the pull's one door to storage ("download this URL"), so that it can be
re-pointed at the shared storage client.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx

from .._push.urls import UrlPool
from .._transport import StorageClient
from ..client import RetryPolicy, RoostClient
from .types import ChunkDownloadError

__all__ = [
    "MAX_URL_REFRESHES",
    "STREAM_MIN_BYTES",
    "ChunkFetcher",
    "download_chunk",
    "download_urls",
]

logger = logging.getLogger("roost")

#: Fresh URLs tried for one chunk after storage answered 401/403, on top of the retry budget.
MAX_URL_REFRESHES = 8
#: Chunks of at least this size are streamed (progress moves mid-chunk); smaller ones take the lean path.
STREAM_MIN_BYTES = 1024 * 1024
#: Chunks above this size are hashed in a worker thread (a 4 MiB SHA-256 takes milliseconds).
INLINE_HASH_MAX = 64 * 1024
_REFRESH_STATUSES = frozenset({401, 403})
_RETRYABLE_STATUSES = frozenset({408, 425, 429})

OnBytes = Callable[[int], Awaitable[None]]


def download_urls(http: RoostClient, site_id: str, order: Sequence[str]) -> UrlPool:
    """Signed GET URLs for ``order`` (download order), minted lazily by the push's one URL pool."""
    return UrlPool(http, site_id, order, kind="download", missing=ChunkDownloadError)


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
    fetcher: ChunkFetcher, urls: UrlPool, chunk_hash: str, size: int, on_bytes: OnBytes
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
