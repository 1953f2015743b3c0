"""The one storage client: PUT and GET to signed URLs, never with the API's credentials."""

from __future__ import annotations

import http.cookiejar
import math
import os
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import httpx

from .._errors import RoostConnectionError
from .http11 import (
    PACE_EXTENSION,
    PACED_PIECE_BYTES,
    PIECE_BYTES,
    SENT_EXTENSION,
    LeanHttp11Transport,
    answer_allowance,
)
from .pacing import Clock, TokenBucket
from .retry import RetryPolicy

__all__ = [
    "CONNECTIONS_PER_CLIENT",
    "DEFAULT_STALL_TIMEOUT_S",
    "StorageClient",
    "StorageSettings",
    "check_transfer_options",
]

#: Connections per storage httpx client (see :class:`StorageClient`).
CONNECTIONS_PER_CLIENT = 8
DEFAULT_STALL_TIMEOUT_S = 60.0
_OCTETS = "application/octet-stream"
_OCTETS_HEADER = _OCTETS.encode("ascii")
_FILE_PIECE = 1024 * 1024

SentCallback = Callable[[int], None]


class StorageSettings(Protocol):
    """What the storage client takes from the API client (``RoostClient`` is one)."""

    retry: RetryPolicy
    timeout: float | httpx.Timeout

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None: ...


def check_transfer_options(
    *, bandwidth_limit: object, stall_timeout_s: object, owner: str = "PushOptions"
) -> None:
    """``ValueError`` naming the field, the rule and the value, for a bad rate cap or stall timeout."""
    if bandwidth_limit is not None and (
        isinstance(bandwidth_limit, bool) or not isinstance(bandwidth_limit, int) or bandwidth_limit < 1
    ):
        raise ValueError(
            f"{owner}.bandwidth_limit must be None or an integer number of bytes per second >= 1, "
            f"got {bandwidth_limit!r}"
        )
    if (
        isinstance(stall_timeout_s, bool)
        or not isinstance(stall_timeout_s, (int, float))
        or (isinstance(stall_timeout_s, float) and not math.isfinite(stall_timeout_s))
        or stall_timeout_s <= 0
    ):
        raise ValueError(
            f"{owner}.stall_timeout_s must be a finite number of seconds > 0, got {stall_timeout_s!r}"
        )


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
    """How bytes reach and leave storage: never with the API token, Roost-Version or cookies.

    Every request carries ``Host`` and, for PUTs, ``Content-Type`` and ``Content-Length`` only:
    not even httpx's default ``Accept``/``User-Agent``/``Connection`` headers. Redirects are not
    followed (a signed URL does not redirect; a redirect would only leak it further).

    How PUTs travel:

    - The API client was given a custom transport (a proxy, mTLS, a test transport): through a
      separate ``httpx.AsyncClient`` on that transport (never closed here: the API client owns it).
    - A proxy is configured in the environment (``HTTP(S)_PROXY``, ``ALL_PROXY``): through
      separate ``httpx.AsyncClient`` s, which honour it, of at most :data:`CONNECTIONS_PER_CLIENT`
      connections each (httpx's pool does work proportional to its size on every request: one
      64-connection pool cost three times the CPU per PUT).
    - Otherwise: httpx requests on :class:`LeanHttp11Transport`, sent without the ``AsyncClient``
      layer (which parses each URL twice and runs cookie extraction: 45 % of the remaining CPU per
      PUT, and what limited tiny-file pushes).

    GETs and file uploads go through one credential-free ``httpx.AsyncClient`` (streamed).

    Timeouts measure stalls: ``stall_timeout_s`` is the longest time a transfer may go without a
    byte moving (per 64 KiB piece sent, per read), not the time of a whole body; the answer to a
    PUT may take longer by its body size at 16 KiB/s (a peer may acknowledge a whole body before
    reading it; see :data:`~roost._transport.http11.ACKED_BODY_FLOOR_BPS`). Connecting keeps the
    API client's connect timeout. ``bandwidth_limit`` (bytes/s) caps all PUTs of this client
    together through one :class:`~roost._transport.pacing.TokenBucket`.
    """

    def __init__(
        self,
        api: StorageSettings,
        *,
        max_connections: int = CONNECTIONS_PER_CLIENT,
        stall_timeout_s: float = DEFAULT_STALL_TIMEOUT_S,
        bandwidth_limit: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        check_transfer_options(
            bandwidth_limit=bandwidth_limit, stall_timeout_s=stall_timeout_s, owner="StorageClient"
        )
        self.retry: RetryPolicy = api.retry
        self.stall_timeout_s = float(stall_timeout_s)
        connect = httpx.Timeout(api.timeout).connect
        self._timeout: dict[str, float | None] = {
            "connect": connect,
            "read": self.stall_timeout_s,
            "write": self.stall_timeout_s,
            "pool": None,  # waiting for a free connection is queueing, not a stall
        }
        self.bucket = TokenBucket(bandwidth_limit, clock=clock) if bandwidth_limit is not None else None
        self._lean: LeanHttp11Transport | None = None
        self._borrowed = _BorrowedTransport(api.transport) if api.transport is not None else None
        self._general: httpx.AsyncClient | None = None
        self._max_connections = max(1, max_connections)
        self.clients: list[httpx.AsyncClient] = []
        if self._borrowed is None and not _environment_proxies():
            self._lean = LeanHttp11Transport(max_connections=max_connections)
        elif self._borrowed is not None:
            self.clients = [self._client(self._borrowed, max_connections, True)]
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

    @asynccontextmanager
    async def _httpx_client(self) -> AsyncIterator[httpx.AsyncClient]:
        """The least busy httpx client (GETs, file uploads, PUTs off the lean path)."""
        if not self.clients:
            if self._general is None:  # lean PUTs: GETs get a pool of the same size, made on first use
                self._general = self._client(self._borrowed, self._max_connections, True)
            yield self._general
            return
        index = min(range(len(self.clients)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            yield self.clients[index]
        finally:
            self._in_flight[index] -= 1

    async def put(self, url: str, data: bytes, *, on_sent: SentCallback | None = None) -> httpx.Response:
        """One PUT of ``data`` to ``url`` (no retry); the response is read.

        ``on_sent(n)`` is called as the body goes out with the bytes of it sent so far in this
        attempt (a transparent resend on a stale keep-alive connection starts again from 0).
        """
        if self._lean is not None:
            extensions: dict[str, Any] = {"timeout": self._timeout}
            if self.bucket is not None:
                extensions[PACE_EXTENSION] = self.bucket.take
            if on_sent is not None:
                extensions[SENT_EXTENSION] = on_sent
            response = await self._lean.put(url, data, _OCTETS_HEADER, extensions)
            await response.aread()
            return response
        async with self._httpx_client() as client:
            return await client.put(
                url,
                content=self._pieces(data, on_sent),
                headers={"Content-Type": _OCTETS, "Content-Length": str(len(data))},
                timeout=httpx.Timeout(
                    **{**self._timeout, "read": self.stall_timeout_s + answer_allowance(len(data))}
                ),
            )

    async def _pieces(self, data: bytes, on_sent: SentCallback | None) -> AsyncIterator[bytes]:
        """The body in paced pieces; a piece counts as sent when the transport asks for the next."""
        view = memoryview(data)
        done = 0
        while done < len(view):
            piece = bytes(view[done : done + (PIECE_BYTES if self.bucket is None else PACED_PIECE_BYTES)])
            if self.bucket is not None:
                await self.bucket.take(len(piece))
            yield piece
            done += len(piece)
            if on_sent is not None:
                on_sent(done)

    async def get(self, url: str) -> httpx.Response:
        """One GET of ``url`` (no retry), its body read into the response.

        On the lean path a GET skips httpx's client layer as PUTs do: through it a tiny GET cost
        several times more CPU (measured: a pull of 2,000 small files capped at about 70 files/s
        on two cores). Large bodies whose progress matters should use :meth:`stream`.
        """
        if self._lean is not None:
            request = httpx.Request("GET", url, extensions={"timeout": self._timeout})
            response = await self._lean.handle_async_request(request)
            await response.aread()
            return response
        async with self._httpx_client() as client:
            return await client.get(url)

    @asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[httpx.Response]:
        """One GET of ``url`` (no retry) with the body left to ``response.aiter_bytes()``."""
        async with self._httpx_client() as client, client.stream("GET", url) as response:
            yield response

    async def download(self, url: str, *, what: str) -> bytes:
        """GET ``url`` in one attempt; ``RuntimeError`` on an error status, ``RoostConnectionError`` unreached."""
        try:
            response = await self.get(url)
        except httpx.TransportError as error:
            raise RoostConnectionError(url, f"{what}: {type(error).__name__}: {error}") from error
        if response.status_code >= 300:
            raise RuntimeError(f"{what} failed: storage answered HTTP {response.status_code}")
        return response.content

    async def upload_file(self, url: str, path: str | os.PathLike[str], *, what: str) -> int:
        """PUT the file at ``path`` to ``url`` in one attempt, streamed from disk; returns its size.

        ``RuntimeError`` on an error status, ``RoostConnectionError`` when storage is unreached.
        """
        size = os.stat(path).st_size
        try:
            async with self._httpx_client() as client:
                response = await client.put(
                    url,
                    content=_file_pieces(path, size),
                    headers={"Content-Type": _OCTETS, "Content-Length": str(size)},
                    timeout=httpx.Timeout(
                        **{**self._timeout, "read": self.stall_timeout_s + answer_allowance(size)}
                    ),
                )
        except httpx.TransportError as error:
            raise RoostConnectionError(url, f"{what}: {type(error).__name__}: {error}") from error
        if response.status_code >= 300:
            raise RuntimeError(f"{what} failed: storage answered HTTP {response.status_code}")
        return size

    async def aclose(self) -> None:
        if self._lean is not None:
            await self._lean.aclose()
        for client in self.clients:
            await client.aclose()
        if self._general is not None:
            await self._general.aclose()

    async def __aenter__(self) -> StorageClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def _file_pieces(path: str | os.PathLike[str], size: int) -> AsyncIterator[bytes]:
    """The file's bytes in 1 MiB pieces; a file that changed size while sent is an error."""
    sent = 0
    async with await anyio.open_file(path, "rb") as handle:
        while True:
            piece = await handle.read(_FILE_PIECE)
            if not piece:
                break
            sent += len(piece)
            if sent > size:
                break
            yield piece
    if sent != size:
        raise OSError(f"{os.fspath(path)!r} changed size while it was uploaded ({size} -> {sent} bytes)")
