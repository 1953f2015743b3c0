"""Chunk PUTs to storage: never with API credentials; retries, backoff and URL refresh."""

from __future__ import annotations

import http.cookiejar
import logging
import random
import ssl
import urllib.request

import anyio
import httpx

from .._errors import ChunkUploadError
from ..client import RetryPolicy, RoostClient, parse_retry_after_header
from .http11 import LeanHttp11Transport
from .urls import UrlPool

__all__ = ["MAX_URL_REFRESHES", "StorageClient", "put_chunk"]

logger = logging.getLogger("roost")

#: Fresh URLs tried for one chunk after storage answered 401/403, on top of the retry budget.
MAX_URL_REFRESHES = 8
#: Connections per storage httpx client (see :class:`StorageClient`).
CONNECTIONS_PER_CLIENT = 8
_PUT_HEADERS = {"Content-Type": "application/octet-stream"}
_RETRYABLE_STATUSES = frozenset({408, 425, 429})
_REFRESH_STATUSES = frozenset({401, 403})


class _BorrowedTransport(httpx.AsyncBaseTransport):
    """The API client's custom transport, shared with the storage client but never closed by it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """The API client owns the transport and closes it."""


def _environment_proxies() -> bool:
    """Whether ``HTTP(S)_PROXY``/``ALL_PROXY`` are set (httpx honours them; the lean transport does not)."""
    return any(key in ("http", "https", "all") for key in urllib.request.getproxies_environment())


def _cookieless_jar() -> http.cookiejar.CookieJar:
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class StorageClient:
    """How chunk PUTs reach storage: never with the API token, Roost-Version or cookies.

    - The API client was given a custom transport (a proxy, mTLS, a test transport): PUTs go
      through a separate ``httpx.AsyncClient`` on that transport (never closed here: the API
      client owns it).
    - A proxy is configured in the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``): PUTs go
      through separate ``httpx.AsyncClient`` s, which honour it, of at most
      :data:`CONNECTIONS_PER_CLIENT` connections each (httpx's pool does work proportional to
      its size on every request: one 64-connection pool cost three times the CPU per PUT).
    - Otherwise: httpx requests on :class:`LeanHttp11Transport`, sent without the
      ``AsyncClient`` layer (which parses each URL twice and runs cookie extraction: 45 % of the
      remaining CPU per PUT, and what limited tiny-file pushes).

    Every PUT carries ``Host``, ``Content-Type`` and ``Content-Length`` only: not even httpx's
    default ``Accept``/``User-Agent``/``Connection`` headers.
    """

    def __init__(self, http: RoostClient, *, max_connections: int) -> None:
        self.retry: RetryPolicy = http.retry
        self._timeout = httpx.Timeout(http.timeout).as_dict()
        self._lean: LeanHttp11Transport | None = None
        self.clients: list[httpx.AsyncClient] = []
        transport = http.transport
        if transport is None and not _environment_proxies():
            self._lean = LeanHttp11Transport(max_connections=max_connections)
        elif transport is not None:
            self.clients = [self._client(_BorrowedTransport(transport), max_connections, True)]
        else:
            count = max(1, -(-max_connections // CONNECTIONS_PER_CLIENT))
            verify: ssl.SSLContext | bool = httpx.create_ssl_context() if count > 1 else True
            size = -(-max_connections // count)
            self.clients = [self._client(None, size, verify) for _ in range(count)]
        self._in_flight = [0] * len(self.clients)

    def _client(
        self, transport: httpx.AsyncBaseTransport | None, size: int, verify: ssl.SSLContext | bool
    ) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=transport,
            verify=verify,  # one CA bundle load shared by the clients
            timeout=httpx.Timeout(**self._timeout),
            follow_redirects=False,
            cookies=_cookieless_jar(),
            limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
        )
        for name in list(client.headers):  # drop httpx's defaults
            del client.headers[name]
        return client

    @property
    def lean(self) -> bool:
        return self._lean is not None

    async def put(self, url: str, data: bytes) -> httpx.Response:
        """One PUT of ``data`` to ``url``; the response is read."""
        if self._lean is not None:
            request = httpx.Request(
                "PUT", url, content=data, headers=_PUT_HEADERS, extensions={"timeout": self._timeout}
            )
            response = await self._lean.handle_async_request(request)
            await response.aread()
            return response
        index = min(range(len(self.clients)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            return await self.clients[index].put(url, content=data, headers=_PUT_HEADERS)
        finally:
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        if self._lean is not None:
            await self._lean.aclose()
        for client in self.clients:
            await client.aclose()

    async def __aenter__(self) -> StorageClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _backoff(policy: RetryPolicy, attempt: int, response: httpx.Response | None) -> float:
    if response is not None and response.status_code in (429, 503):
        hint = parse_retry_after_header(response.headers.get("retry-after", ""))
        if hint is not None:
            return min(hint, 2 * policy.max_delay_s)
    nominal = min(policy.max_delay_s, policy.base_delay_s * float(2**attempt))
    return max(0.0, nominal * random.uniform(1 - policy.jitter, 1 + policy.jitter))


async def put_chunk(storage: StorageClient, pool: UrlPool, chunk_hash: str, data: bytes) -> None:
    """PUT one chunk's bytes to its signed URL.

    5xx, 408/425/429 and transport errors are retried with exponential backoff and jitter, up to
    the API client's ``RetryPolicy.max_attempts``. A 401/403 (expired or refused signature) gets a
    freshly minted URL and does not use up that budget; :data:`MAX_URL_REFRESHES` bounds it.
    Any other answer fails the chunk with :class:`ChunkUploadError`.
    """
    policy = storage.retry
    failures = 0
    refreshes = 0
    while True:
        url = await pool.get(chunk_hash)
        response: httpx.Response | None = None
        try:
            response = await storage.put(url, data)
        except httpx.TransportError as error:
            detail = f"{type(error).__name__}: {error}"
        else:
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
            if status < 500 and status not in _RETRYABLE_STATUSES:
                raise ChunkUploadError(chunk_hash, detail)
        failures += 1
        if failures >= policy.max_attempts:
            raise ChunkUploadError(chunk_hash, f"{detail} (after {failures} attempts)")
        delay = _backoff(policy, failures - 1, response)
        logger.debug("chunk %s: %s, retrying in %.2fs", chunk_hash, detail, delay)
        await anyio.sleep(delay)
