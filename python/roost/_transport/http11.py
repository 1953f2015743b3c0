"""A small HTTP/1.1 transport for the storage client's chunk PUTs.

Why: a push of many small files is a stream of tiny PUTs, and httpx's default transport spends
about 1 ms of CPU on each (connection-pool bookkeeping, per-read cancel scopes, socket checks);
on a small machine that, not the network, capped the upload rate. This transport does the same
exchange for about a tenth of that. It is an ``httpx`` transport (requests, responses and errors
are httpx's own), used by :class:`roost._transport.StorageClient` for PUTs only when the API
client was given no custom transport and no proxy is configured in the environment.

What it does: one request at a time per connection, keep-alive connections per origin (at most
``max_connections`` open), ``http`` and ``https`` (TLS with SNI), a request body given as bytes,
responses delimited by ``Content-Length``, chunked encoding or connection close, ``1xx`` answers
skipped. A kept-alive connection the server closed meanwhile is replaced once, transparently.
Failures are raised as httpx exceptions (``ConnectError``, ``ReadError``, ``WriteError``,
``RemoteProtocolError``, timeouts).

Timeouts measure stalls, not transfers: bodies over 64 KiB go out in 64 KiB pieces and the
``write`` timeout applies to each piece; the ``read`` timeout is the longest wait for the answer
with no byte moving, where (on Linux) bytes of the body still leaving the socket's send queue
count as moving, plus :func:`answer_allowance` for a peer reading a body it already acknowledged.
So a 4 MiB body on a 60 kB/s link does not time out while it progresses.

Two request extensions serve the storage client: ``roost.pace`` (an async callable awaited with
each piece's size before it is sent: the bandwidth cap) and ``roost.sent`` (called with the bytes
of the body that left the machine so far in this attempt: upload progress). Both count bytes
that left the socket's send queue where the system says (Linux), not bytes handed to it.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.streams.buffered import BufferedByteReceiveStream

try:
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ if sys.platform.startswith("linux") else None
except ImportError:  # Windows
    _TIOCOUTQ = None

__all__ = ["PACE_EXTENSION", "SENT_EXTENSION", "LeanHttp11Transport", "answer_allowance"]

PACE_EXTENSION = "roost.pace"
SENT_EXTENSION = "roost.sent"
MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
_SMALL_BODY = 64 * 1024
#: Body pieces: the unit of pacing, progress and the write stall timeout, from 64 KiB up to 4 MiB
#: while the peer keeps up (see _send_request). Each piece costs a trip through the event loop and
#: the stream layers: 1 MiB pieces took the CPU of a 512 MB push from 2.2 to 1.25 s against 64 KiB
#: ones, and starting each 4 MiB chunk again at 64 KiB still made 8 pieces of it. A connection's
#: next request starts at the size its peer kept up with, but at most START_PIECE_BYTES: the link
#: may have slowed since, and the first piece must not outlast the stall timeout where a 1 MiB one
#: would not have. Under a bandwidth cap pieces stay at 64 KiB, so the pace stays smooth.
PIECE_BYTES = 4 * 1024 * 1024
START_PIECE_BYTES = 1024 * 1024
PACED_PIECE_BYTES = 64 * 1024
#: How often the wait for an answer checks whether the body is still draining (and reports it).
_DRAIN_POLL_S = 0.25
#: The slowest rate at which a peer is assumed to read a body it has already acknowledged: a
#: buffering proxy, or a server that throttles its reads, takes a whole body into its socket
#: buffers at once and then reads it slowly, and none of that shows on this side. Without this
#: allowance a 2 MB body read at 20 kB/s timed out on every attempt and was stored twice.
ACKED_BODY_FLOOR_BPS = 16 * 1024
_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL httpx would send exactly as written: lower-case scheme and host name, a port that is not
# the default one, and a path and query of characters it never re-encodes (unreserved,
# sub-delims, ":@/?" and %XX escapes). A signed storage URL is one; anything else (IDNA, IPv6,
# user info, a fragment, other characters) goes through httpx.Request.
_PLAIN_URL = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@/%-]*(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*)?)"
)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NETWORK_ERRORS = (
    OSError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    ssl.SSLError,
)


class _ProtocolError(Exception):
    """The server's answer is not valid HTTP/1.1."""


class _StaleConnectionError(Exception):
    """A reused connection was closed by the server before it answered anything."""


@dataclass(eq=False)
class _Connection:
    stream: anyio.abc.ByteStream
    reader: BufferedByteReceiveStream = field(init=False)
    reused: bool = False
    #: the body piece size this connection's peer kept up with last (see _send_request)
    step: int = PACED_PIECE_BYTES
    _probe: Callable[[], int | None] | None = None

    def send_queue(self) -> Callable[[], int | None]:
        """:func:`_send_queue` of this connection, looked up once for all its requests."""
        if self._probe is None:
            self._probe = _send_queue(self.stream)
        return self._probe

    def __post_init__(self) -> None:
        self.reader = BufferedByteReceiveStream(self.stream)

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self.stream.aclose()  # closing a broken socket may fail: nothing to do


@dataclass(frozen=True, slots=True)
class _PlainRequest:
    """What an exchange needs of a request sent without an ``httpx.Request`` (see ``put``)."""

    method: str
    extensions: dict[str, Any]


Request = httpx.Request | _PlainRequest


def _for_httpx(request: Request) -> httpx.Request | None:
    """The request to attach to an httpx error or response (none for a plain one)."""
    return request if isinstance(request, httpx.Request) else None


Origin = tuple[str, str, int]
Pace = Callable[[int], Awaitable[None]]
Sent = Callable[[int], None]


def _send_queue(stream: anyio.abc.ByteStream) -> Callable[[], int | None]:
    """A probe of ``stream``'s send queue: the bytes not yet acknowledged by the peer (Linux),
    else ``None``. The socket is looked up once (that lookup costs more than the ``ioctl``).

    A socket's send buffer takes megabytes at once; counting those as sent would report a slow
    upload as done in its first second, so progress subtracts what the queue still holds.
    """
    if _TIOCOUTQ is None:
        return lambda: None
    try:
        fd = stream.extra(anyio.abc.SocketAttribute.raw_socket).fileno()
    except (anyio.TypedAttributeLookupError, OSError, ValueError):
        return lambda: None

    def unsent() -> int | None:
        try:
            raw = fcntl.ioctl(fd, _TIOCOUTQ, b"\0\0\0\0")
        except (OSError, ValueError):
            return None
        value: int = struct.unpack("i", raw)[0]
        return value

    return unsent


def _timeout(timeouts: dict[str, Any], name: str) -> float | None:
    value = timeouts.get(name)
    return float(value) if isinstance(value, (int, float)) else None


def plain_target(url: str) -> tuple[Origin, bytes, bytes] | None:
    """``(origin, request target, Host value)`` of a URL that httpx would send unchanged, else
    None. Parsing a 370-character signed URL into an ``httpx.Request`` costs about 120 us, a
    tenth of a small chunk's whole PUT in CPU; this match costs a few."""
    match = _PLAIN_URL.fullmatch(url)
    if match is None or _BAD_ESCAPE.search(url) is not None:
        return None
    scheme, host, port_text, target = match.groups()
    if "xn--" in host:
        return None  # httpx names an IDNA host by its Unicode form
    path = target.partition("?")[0]
    if "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return None  # httpx would normalise the dot segments
    port = _DEFAULT_PORTS[scheme] if port_text is None else int(port_text)
    if port_text is not None and (port == _DEFAULT_PORTS[scheme] or not 0 < port < 65536):
        return None  # httpx drops a default port from the Host header
    netloc = host if port_text is None else f"{host}:{port}"
    return (scheme, host, port), target.encode("ascii"), netloc.encode("ascii")


class LeanHttp11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive for many small requests with ``bytes`` bodies (see module doc)."""

    def __init__(self, *, max_connections: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._slots = anyio.Semaphore(max(1, max_connections))
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}", request=request)
        origin: Origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        return await self._send(request, origin, _request_head(request, len(body)), body)

    async def put(
        self, url: str, body: bytes, content_type: bytes, extensions: dict[str, Any]
    ) -> httpx.Response:
        """``PUT body`` to ``url`` with a Content-Type: the bytes ``httpx.Request`` would send,
        without building one when the URL needs no parsing (see :func:`plain_target`)."""
        parts = plain_target(url)
        if parts is None:
            request = httpx.Request(
                "PUT", url, content=body, headers={b"Content-Type": content_type}, extensions=extensions
            )
            return await self.handle_async_request(request)
        origin, target, host = parts
        head = b"".join(
            (
                b"PUT ",
                target,
                b" HTTP/1.1\r\nHost: ",
                host,
                b"\r\nContent-Type: ",
                content_type,
                b"\r\nContent-Length: ",
                str(len(body)).encode("ascii"),
                _HEAD_END,
            )
        )
        return await self._send(_PlainRequest("PUT", extensions), origin, head, body)

    async def _send(self, request: Request, origin: Origin, head: bytes, body: bytes) -> httpx.Response:
        """One request on a pooled connection, waiting for a free one within the pool timeout."""
        if self._closed:
            raise RuntimeError("the storage transport is closed")
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        try:
            with anyio.fail_after(_timeout(timeouts, "pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(
                "no storage connection became free in time", request=_for_httpx(request)
            ) from None
        try:
            return await self._exchange_with_retry(request, origin, head, body, timeouts)
        finally:
            self._slots.release()

    async def _exchange_with_retry(
        self, request: Request, origin: Origin, head: bytes, body: bytes, timeouts: dict[str, Any]
    ) -> httpx.Response:
        while True:
            connection = self._take_idle(origin)
            if connection is None:
                connection = await self._connect(request, origin, timeouts)
            try:
                response, keep_alive = await self._exchange(request, connection, head, body, timeouts)
            except _StaleConnectionError:
                await connection.aclose()
                continue  # a fresh connection next; a new one never raises _StaleConnectionError
            except BaseException:
                await connection.aclose()
                raise
            if keep_alive and not self._closed:
                connection.reused = True
                self._idle.setdefault(origin, []).append(connection)
            else:
                await connection.aclose()
            return response

    def _take_idle(self, origin: Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        return connections.pop() if connections else None

    async def _connect(self, request: Request, origin: Origin, timeouts: dict[str, Any]) -> _Connection:
        scheme, host, port = origin
        tls = scheme == "https"
        stream: anyio.abc.ByteStream
        try:
            with anyio.fail_after(_timeout(timeouts, "connect")):
                if tls:
                    stream = await anyio.connect_tcp(
                        host,
                        port,
                        tls=True,
                        ssl_context=self._ssl(),
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting to {host}:{port} timed out", request=_for_httpx(request)
            ) from None
        except _NETWORK_ERRORS as error:
            raise httpx.ConnectError(
                f"cannot connect to {host}:{port}: {error}", request=_for_httpx(request)
            ) from error
        return _Connection(stream)

    async def _exchange(
        self,
        request: Request,
        connection: _Connection,
        head: bytes,
        body: bytes,
        timeouts: dict[str, Any],
    ) -> tuple[httpx.Response, bool]:
        try:
            await _send_request(connection, head, body, _timeout(timeouts, "write"), request.extensions)
        except TimeoutError:
            raise httpx.WriteTimeout("sending the request timed out", request=_for_httpx(request)) from None
        except _NETWORK_ERRORS as error:
            if connection.reused:
                raise _StaleConnectionError from error
            raise httpx.WriteError(
                f"sending the request failed: {error!r}", request=_for_httpx(request)
            ) from error
        received_any = False
        try:
            read_timeout = _timeout(timeouts, "read")
            status, reason, headers = await _await_head(
                connection, read_timeout, len(body), request.extensions.get(SENT_EXTENSION)
            )
            received_any = True
            with anyio.fail_after(read_timeout):
                body_bytes, close_delimited = await _read_body(
                    connection.reader, request.method, status, headers
                )
        except TimeoutError:
            raise httpx.ReadTimeout(
                "waiting for the response timed out", request=_for_httpx(request)
            ) from None
        except _ProtocolError as error:
            raise httpx.RemoteProtocolError(str(error), request=_for_httpx(request)) from error
        except _NETWORK_ERRORS as error:
            if connection.reused and not received_any:
                raise _StaleConnectionError from error
            raise httpx.ReadError(
                f"reading the response failed: {error!r}", request=_for_httpx(request)
            ) from error
        keep_alive = not close_delimited and not _has_token(headers, b"connection", b"close")
        response = httpx.Response(
            status,
            headers=headers,
            stream=httpx.ByteStream(body_bytes),
            request=_for_httpx(request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )
        return response, keep_alive


async def _send_request(
    connection: _Connection, head: bytes, body: bytes, stall_s: float | None, extensions: dict[str, Any]
) -> None:
    stream = connection.stream
    pace: Pace | None = extensions.get(PACE_EXTENSION)
    sent: Sent | None = extensions.get(SENT_EXTENSION)
    if len(body) <= _SMALL_BODY:
        if pace is not None:
            await pace(len(body))
        with anyio.fail_after(stall_s):
            await stream.send(head + body)
        if sent is not None:
            sent(len(body))  # its answer follows at once: no need to look at the send queue
        return
    with anyio.fail_after(stall_s):
        await stream.send(head)
    view = memoryview(body)
    done = 0
    queued = connection.send_queue()
    step = PACED_PIECE_BYTES if pace is not None else min(connection.step, START_PIECE_BYTES)
    while done < len(view):
        piece = view[done : done + step]
        if pace is not None:
            await pace(len(piece))
        with anyio.fail_after(stall_s):
            await stream.send(piece)  # type: ignore[arg-type]  # sockets take any buffer
        done += len(piece)
        unsent = queued()
        if sent is not None:  # what left this machine, not what the socket took
            sent(done if unsent is None else max(0, done - unsent))
        if pace is None and unsent is not None:
            # The peer keeps up (no more than a piece is queued): larger pieces, fewer trips
            # through the stream layers. It falls behind: smaller ones, so that progress and the
            # per-piece stall timeout keep following a slow link.
            if unsent <= step:
                step = min(2 * step, PIECE_BYTES)
            elif unsent > 4 * step:
                step = max(step // 2, PACED_PIECE_BYTES)
            connection.step = step


def answer_allowance(body_size: int) -> float:
    """Seconds an answer may take, beyond the stall timeout, for ``body_size`` acknowledged bytes."""
    return body_size / ACKED_BODY_FLOOR_BPS


async def _await_head(
    connection: _Connection, stall_s: float | None, body_size: int, sent: Sent | None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The answer's head, waiting while the body still drains from the send queue.

    ``receive_until`` keeps what it read in the reader's buffer, so polling it under a short
    cancel scope loses nothing. Each poll also reports the drained bytes to ``sent``.
    """
    if stall_s is None and (sent is None or body_size <= _SMALL_BODY):
        return await _read_head(connection.reader)
    queued = connection.send_queue()
    unsent = queued()

    def patience() -> float:
        if stall_s is None:
            return float("inf")
        acknowledged = body_size if unsent is None else max(0, body_size - unsent)
        return stall_s + answer_allowance(acknowledged)

    deadline = time.monotonic() + patience()
    while True:
        with anyio.move_on_after(max(0.0, min(_DRAIN_POLL_S, deadline - time.monotonic()))):
            return await _read_head(connection.reader)
        now = time.monotonic()
        still_unsent = queued()
        if unsent is not None and still_unsent is not None and still_unsent < unsent:
            unsent = still_unsent
            deadline = now + patience()  # the peer is still taking the body
            if sent is not None and body_size > _SMALL_BODY:
                sent(max(0, body_size - still_unsent))
        if now >= deadline:
            raise TimeoutError


def _request_head(request: httpx.Request, length: int) -> bytes:
    url = request.url
    target = url.raw_path or b"/"
    lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    has_host = False
    for name, value in request.headers.raw:
        lowered = name.lower()
        if lowered in (b"content-length", b"transfer-encoding"):
            continue
        has_host = has_host or lowered == b"host"
        lines.append(name + b": " + value)
    if not has_host:
        lines.append(b"Host: " + url.netloc)
    lines.append(b"Content-Length: " + str(length).encode("ascii"))
    return _CRLF.join(lines) + _HEAD_END


async def _read_head(reader: BufferedByteReceiveStream) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    while True:
        try:
            raw = await reader.receive_until(_HEAD_END, MAX_HEAD_BYTES)
        except anyio.DelimiterNotFound:
            raise _ProtocolError("response head larger than 64 KiB") from None
        lines = raw.split(_CRLF)
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise _ProtocolError(f"malformed status line {lines[0][:80]!r}")
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else b""
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise _ProtocolError(f"malformed header line {line[:80]!r}")
            headers.append((name, value.strip()))
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and friends precede the real answer
        return status, reason, headers


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _has_token(headers: Iterable[tuple[bytes, bytes]], name: bytes, token: bytes) -> bool:
    value = _header(headers, name)
    return value is not None and token in (part.strip().lower() for part in value.split(b","))


async def _read_body(
    reader: BufferedByteReceiveStream, method: str, status: int, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, bool]:
    """The body, and whether it was delimited by the connection closing."""
    if method == "HEAD" or status in (204, 304):
        return b"", False
    if _has_token(headers, b"transfer-encoding", b"chunked"):
        return await _read_chunked(reader), False
    length = _header(headers, b"content-length")
    if length is not None:
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise _ProtocolError(f"unusable Content-Length {length[:40]!r}")
        size = int(length)
        return (await reader.receive_exactly(size) if size else b""), False
    pieces: list[bytes] = []
    received = 0
    while True:
        try:
            piece = await reader.receive()
        except anyio.EndOfStream:
            return b"".join(pieces), True
        received += len(piece)
        if received > MAX_BODY_BYTES:
            raise _ProtocolError("response body larger than 16 MiB")
        pieces.append(piece)


async def _read_chunked(reader: BufferedByteReceiveStream) -> bytes:
    pieces: list[bytes] = []
    received = 0
    while True:
        try:
            size_line = await reader.receive_until(_CRLF, 1024)
        except anyio.DelimiterNotFound:
            raise _ProtocolError("chunk size line too long") from None
        size_text = size_line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _ProtocolError(f"malformed chunk size {size_text[:40]!r}") from None
        if size == 0:
            while True:  # trailers, up to the empty line
                try:
                    trailer = await reader.receive_until(_CRLF, MAX_HEAD_BYTES)
                except anyio.DelimiterNotFound:
                    raise _ProtocolError("response trailer too long") from None
                if not trailer:
                    return b"".join(pieces)
        received += size
        if received > MAX_BODY_BYTES:
            raise _ProtocolError("response body larger than 16 MiB")
        pieces.append(await reader.receive_exactly(size))
        if await reader.receive_exactly(2) != _CRLF:
            raise _ProtocolError("chunk not followed by CRLF")
