"""Chunk PUTs to storage with the push's retry rules: backoff, and fresh URLs on 401/403.

The storage client itself lives in :mod:`roost._transport` (``StorageClient`` is re-exported
here for the modules written against this path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import anyio
import httpx

from .._errors import ChunkUploadError, RoostConnectionError
from .._transport import StorageClient, is_retryable_status
from .urls import UrlPool

__all__ = ["MAX_URL_REFRESHES", "AttemptCallback", "StorageClient", "put_chunk"]

logger = logging.getLogger("roost")

#: Fresh URLs tried for one chunk after storage answered 401/403, on top of the retry budget.
MAX_URL_REFRESHES = 8
_REFRESH_STATUSES = frozenset({401, 403})

#: ``(body bytes, started, finished, reached)``: one attempt ended, ``reached`` False when the
#: network failed it (stall, reset) rather than storage answering.
AttemptCallback = Callable[[int, float, float, bool], None]


async def put_chunk(
    storage: StorageClient,
    pool: UrlPool,
    chunk_hash: str,
    data: bytes,
    *,
    on_sent: Callable[[int], None] | None = None,
    on_attempt: AttemptCallback | None = None,
) -> None:
    """PUT one chunk's bytes to its signed URL.

    Statuses the retry policy calls retryable (5xx, 408/425/429) and transport errors (a stall
    past ``stall_timeout_s`` included) are retried with the API client's ``RetryPolicy``. A
    401/403 (expired or refused signature) gets a freshly minted URL and does not use up that
    budget; :data:`MAX_URL_REFRESHES` bounds it. Any other answer fails the chunk with
    :class:`ChunkUploadError`; so does a network failure on the last attempt, with the
    :class:`RoostConnectionError` naming the storage host as its cause.
    """
    policy = storage.retry
    failures = 0
    refreshes = 0
    while True:
        url = await pool.get(chunk_hash)
        response: httpx.Response | None = None
        unreachable: RoostConnectionError | None = None
        started = time.monotonic()
        try:
            response = await storage.put(url, data, on_sent=on_sent)
        except httpx.TransportError as error:
            detail = f"{type(error).__name__}: {error}"
            unreachable = RoostConnectionError(url, detail)
            unreachable.__cause__ = error
            if on_attempt is not None:
                on_attempt(len(data), started, time.monotonic(), False)
        else:
            if on_attempt is not None:
                on_attempt(len(data), started, time.monotonic(), True)
            status = response.status_code
            if 200 <= status < 300:
                return
            detail = f"storage answered HTTP {status}"
            if status in _REFRESH_STATUSES:
                refreshes += 1
                if refreshes > MAX_URL_REFRESHES:
                    raise ChunkUploadError(
                        chunk_hash, f"{detail} even after {MAX_URL_REFRESHES} fresh upload URLs"
                    )
                logger.debug("chunk %s: %s, minting a fresh URL", chunk_hash, detail)
                pool.reject(chunk_hash, url)
                continue
            if not is_retryable_status(status):
                raise ChunkUploadError(chunk_hash, detail)
        failures += 1
        if failures >= policy.max_attempts:
            raise ChunkUploadError(chunk_hash, f"{detail} (after {failures} attempts)") from unreachable
        delay = policy.delay_for_response(failures - 1, response)
        logger.debug("chunk %s: %s, retrying in %.2fs", chunk_hash, detail, delay)
        await anyio.sleep(delay)
