"""The storage plane's own HTTP/1.1 server, in front of uvicorn on the emulator's one port.

Measured on the 2-core dev machine, uvicorn + ASGI capped storage at about 1,250 small PUT/s and
280 MB/s of 4 MiB PUTs, so every push benchmark measured the emulator. This protocol parses a
request line itself: a ``/storage/`` request is served here; any other request hands the
connection, with the bytes already read, to uvicorn's own protocol for good. A small body is
received into one pre-sized buffer and stored on the loop; a large one on an unthrottled link is
received, hashed and written piece by piece by a receiver thread (socket reads, hashlib and
os.write release the GIL); under a bandwidth cap a large body is paced on the loop and stored
off it. The rules (keys, presigned URLs, faults, limits, records) are
those of :mod:`._storage`, shared with its ASGI fallback.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, ClassVar

from ._emulator import Emulator, StorageRecord
from ._storage import (
    STORAGE_PREFIX,
    ObjectWriter,
    Refusal,
    Target,
    resolve,
    store_object,
)

__all__ = ["front_protocol"]

_MAX_HEAD = 64 * 1024
# below this a body is hashed and written on the loop: a thread hop costs more than the work
_INLINE_BYTES = 256 * 1024
_READ_BLOCK = 256 * 1024
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    411: b"Length Required",
    413: b"Payload Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="roost-emulator-storage")
# A large body on an unthrottled link is received by a thread of its own: it reads the socket
# into a reused piece buffer, hashes the piece and writes it to the temp file while the bytes are
# still in cache, with the GIL released for all three. The event loop then neither wakes up per
# socket read nor holds the whole body, and bodies on several connections use every core.
_RECEIVERS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="roost-emulator-receive")
_PIECE = 1024 * 1024
_POLL_MS = 200  # how often a waiting receiver notices that the server stops
_pieces = threading.local()


def _piece_buffer() -> memoryview:
    buffer: memoryview | None = getattr(_pieces, "buffer", None)
    if buffer is None:
        buffer = _pieces.buffer = memoryview(bytearray(_PIECE))
    return buffer


def receive_object(
    target: Target, fd: int, length: int, prefix: bytes, stopping: Callable[[], bool]
) -> Refusal | None:
    """Read the rest of a ``length``-byte body from the non-blocking socket ``fd`` (``prefix`` was
    read already), hash and store it. ``None`` when the peer went away or the server stops: the
    caller drops the connection, and nothing was stored."""
    record = target.record
    writer = ObjectWriter(target)
    try:
        writer.write(prefix)
        got = len(prefix)
        record.bytes_received = got
        piece = _piece_buffer()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while got < length:
            try:
                count = os.readv(fd, [piece[: min(_PIECE, length - got)]])
            except BlockingIOError:
                if stopping():
                    writer.discard()
                    return None
                poller.poll(_POLL_MS)
                continue
            except OSError:
                count = 0
            if count == 0:
                writer.discard()
                return None
            writer.write(piece[:count])
            got += count
            record.bytes_received = got
    except BaseException:
        writer.discard()
        raise
    return writer.finish()


def front_protocol(emu: Emulator, inner: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A protocol class for uvicorn's ``http=`` option, bound to ``emu`` and the real protocol."""
    return type("StorageFrontProtocol", (_FrontProtocol,), {"emu": emu, "inner": inner})


class _FrontProtocol(asyncio.BufferedProtocol):
    emu: ClassVar[Emulator]
    inner: ClassVar[type[asyncio.Protocol]]

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        self._args = (config, server_state, app_state, _loop)
        self._connections: set[Any] = server_state.connections
        self._loop = _loop or asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._busy = False  # a request is being answered; bytes wait in the buffer
        self._closing = False
        # the body being received
        self._record: StorageRecord | None = None
        self._target: Target | None = None
        self._body: bytearray | None = None
        self._filled = 0
        self._keep_alive = True
        self._mode = ""  # "", "body", "drop", "discard"
        self._reply_after: Refusal | None = None
        self._scratch = bytearray(_READ_BLOCK)
        self._writable = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writable.set()

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        self._writable.set()
        self._transport = None
        if self._record is not None and self._mode == "body":
            self._record.outcome = "client_disconnected"

    def shutdown(self) -> None:
        """uvicorn calls this on every connection when it stops."""
        self._closing = True
        if not self._busy and self._transport is not None:
            self._transport.close()

    def _handoff(self) -> None:
        """Give the connection and every byte read so far to uvicorn's protocol."""
        transport = self._transport
        assert transport is not None
        self._connections.discard(self)
        config, server_state, app_state, loop = self._args
        protocol = self.inner(config=config, server_state=server_state, app_state=app_state, _loop=loop)  # type: ignore[call-arg]
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data, self._buffer = bytes(self._buffer), bytearray()
        self._transport = None
        if data:
            protocol.data_received(data)

    # -- reading ------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        # a body is received straight into its own buffer: no copy between socket and hash
        if self._mode == "body" and self._body is not None:
            return memoryview(self._body)[self._filled :]
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        if self._mode == "body":
            assert self._record is not None
            self._filled += nbytes
            self._record.bytes_received = self._filled
            self._throttle(nbytes)
            return
        self.data_received(bytes(self._scratch[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self._mode == "body":
            self._take_body(data)
            return
        if self._mode == "drop":
            self._drop(len(data))
            return
        if self._mode == "discard":
            self._discard(data)
            return
        self._buffer += data
        if not self._busy:
            self._next_request()

    def _next_request(self) -> None:
        while not self._busy and self._transport is not None and self._mode == "":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._transport.close()
                elif self._buffer and not STORAGE_PREFIX.startswith(self._first_path_prefix()):
                    self._handoff()
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3 or not parts[1].startswith(STORAGE_PREFIX):
                self._handoff()
                return
            del self._buffer[: end + 4]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self._start(parts[0].upper(), parts[1], parts[2], headers)

    def _first_path_prefix(self) -> str:
        """What the request target looks like so far (to hand off a non-storage request early)."""
        line = bytes(self._buffer[: len(STORAGE_PREFIX) + 16]).decode("latin-1")
        _, _, rest = line.partition(" ")
        return rest[: len(STORAGE_PREFIX)]

    def _start(self, method: str, target: str, version: str, headers: dict[str, str]) -> None:
        emu = self.emu
        path_part, _, query = target.partition("?")
        connection = headers.get("connection", "").lower()
        self._keep_alive = (version == "HTTP/1.1" and connection != "close") or connection == "keep-alive"
        outcome = resolve(emu, method, path_part, query, headers)
        record = outcome.record
        self._record = record
        self._busy = True
        latency = emu.faults.storage_latency_ms
        if latency > 0:
            assert self._transport is not None
            self._transport.pause_reading()
            self._loop.call_later(latency / 1000.0, self._after_latency, method, outcome, headers)
            return
        self._after_latency(method, outcome, headers)

    def _after_latency(self, method: str, outcome: Target | Refusal, headers: dict[str, str]) -> None:
        if self._transport is None:
            return
        self._transport.resume_reading()
        emu = self.emu
        length_text = headers.get("content-length")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if isinstance(outcome, Refusal):
            if outcome.status == 405 or (length_text is None and not chunked):
                self._respond(outcome)
                return
            self._keep_alive = self._keep_alive and not chunked
            self._expect_discard(length_text, outcome)
            return
        if method != "PUT":
            self._serve_get(outcome, head=method == "HEAD")
            return
        if chunked or length_text is None:
            # as S3 does: a presigned PUT must say its length
            self._keep_alive = False
            self._respond(
                outcome.refuse(411, "MissingContentLength", "Content-Length is required", "no_length")
            )
            return
        if not length_text.isdigit() or len(length_text) > 18 or int(length_text) > outcome.limit:
            self._keep_alive = False
            self._respond(outcome.too_large())
            return
        length = int(length_text)
        if emu.storage_dice.roll(emu.faults.storage_drop):
            assert self._record is not None
            self._record.outcome = "dropped"
            self._mode = "drop"
            if self._buffer:
                self._drop(len(self._buffer))
            return
        if emu.storage_dice.roll(emu.faults.storage_5xx):
            status = emu.storage_dice.choice((500, 503))
            self._expect_discard(
                length_text, outcome.refuse(status, "InternalError", "injected fault", "fault_5xx")
            )
            return
        pending, self._buffer = bytes(self._buffer), bytearray()
        if length > _INLINE_BYTES and emu.throttle.rate <= 0:
            self._receive_on_thread(outcome, length, pending)
            return
        self._target = outcome
        self._body = bytearray(length)
        self._filled = 0
        self._mode = "body"
        self._take_body(pending)

    def _receive_on_thread(self, target: Target, length: int, pending: bytes) -> None:
        transport = self._transport
        assert transport is not None
        # the loop stops reading this socket; the receiver thread owns it until the body is in
        transport.pause_reading()
        # a client that sent its next request before this answer: those bytes wait in the buffer
        self._buffer = bytearray(pending[length:])
        self._mode = "thread"
        fd = transport.get_extra_info("socket").fileno()
        future = self._loop.run_in_executor(
            _RECEIVERS, receive_object, target, fd, length, pending[:length], self._stopping
        )
        future.add_done_callback(self._received)

    def _stopping(self) -> bool:
        """Read by the receiver thread: the connection is gone or the server stops."""
        return self._transport is None or self._closing

    def _received(self, future: asyncio.Future[Refusal | None]) -> None:
        self._mode = ""
        error = None if future.cancelled() else future.exception()
        reply = None if future.cancelled() or error is not None else future.result()
        if reply is None:
            if self._record is not None:
                self._record.outcome = "client_disconnected"
            self._record = None
            self._busy = False
            if self._transport is not None:
                self._transport.abort()
            if error is not None:
                raise error  # the loop's exception handler reports it
            return
        if self._transport is None:
            return
        self._transport.resume_reading()
        self._respond(reply)

    # -- bodies -------------------------------------------------------------------------

    def _take_body(self, data: bytes) -> None:
        body = self._body
        assert body is not None
        assert self._record is not None
        room = len(body) - self._filled
        piece = data if len(data) <= room else data[:room]
        if piece:
            body[self._filled : self._filled + len(piece)] = piece
            self._filled += len(piece)
            self._record.bytes_received = self._filled
        if len(data) > room:
            self._buffer += data[room:]
        self._throttle(len(piece))

    def _body_done(self) -> None:
        body = self._body
        assert body is not None
        if self._filled < len(body):
            return
        self._mode = ""
        target = self._target
        assert target is not None
        self._body, self._target = None, None
        if len(body) <= _INLINE_BYTES:
            self._respond(store_object(self.emu, target, body))
            return
        assert self._transport is not None
        self._transport.pause_reading()
        future = self._loop.run_in_executor(_EXECUTOR, store_object, self.emu, target, body)
        future.add_done_callback(self._stored)

    def _stored(self, future: asyncio.Future[Refusal]) -> None:
        if self._transport is None:
            return
        self._transport.resume_reading()
        self._respond(future.result())

    def _throttle(self, nbytes: int) -> None:
        """Go on with the body once the shared link has carried these bytes."""
        wait = self.emu.throttle.reserve(nbytes)
        if wait > 0 and self._transport is not None:
            # back-pressure: stop reading until then, as a slow link would
            self._transport.pause_reading()
            self._loop.call_later(wait, self._after_throttle)
            return
        self._body_done()

    def _after_throttle(self) -> None:
        if self._transport is None:
            return
        self._transport.resume_reading()
        self._body_done()

    def _drop(self, nbytes: int) -> None:
        """storage_drop: take part of the body, then cut the connection without answering."""
        assert self._record is not None
        self._record.bytes_received += nbytes
        self._buffer.clear()
        if self._transport is not None:
            self._transport.abort()

    def _expect_discard(self, length_text: str | None, reply: Refusal) -> None:
        if length_text is None or not length_text.isdigit() or len(length_text) > 18:
            self._keep_alive = False
            self._respond(reply)
            return
        self._reply_after = reply
        self._filled = int(length_text)
        self._mode = "discard"
        pending, self._buffer = bytes(self._buffer), bytearray()
        self._discard(pending)

    def _discard(self, data: bytes) -> None:
        take = min(self._filled, len(data))
        self._filled -= take
        if len(data) > take:
            self._buffer += data[take:]
        if self._filled == 0:
            self._mode = ""
            reply, self._reply_after = self._reply_after, None
            assert reply is not None
            self._respond(reply)

    # -- writing ------------------------------------------------------------------------

    def _respond(self, reply: Refusal) -> None:
        record = self._record
        if record is not None:
            record.status = reply.status
            record.outcome = reply.outcome or str(reply.status)
        self._write_head(reply.status, len(reply.body), reply.content_type, reply.headers)
        if self._transport is not None and reply.body:
            self._transport.write(reply.body)
        self._finish()

    def _write_head(
        self, status: int, length: int, content_type: bytes, extra: list[tuple[bytes, bytes]]
    ) -> None:
        if self._transport is None:
            return
        if status >= 400 and status != 404 and status != 403:
            self._keep_alive = self._keep_alive and status not in (411, 413)
        lines = [
            b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Status")),
            b"content-length: %d" % length,
            b"content-type: " + content_type,
        ]
        lines.extend(name + b": " + value for name, value in extra)
        if not self._keep_alive:
            lines.append(b"connection: close")
        self._transport.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def _finish(self) -> None:
        self._record = None
        self._busy = False
        if self._transport is None:
            return
        if not self._keep_alive or self._closing:
            self._transport.close()
            return
        if self._buffer:
            self._next_request()

    def _serve_get(self, target: Target, *, head: bool) -> None:
        try:
            handle = target.path.open("rb")
        except OSError:
            self._respond(target.refuse(404, "NoSuchKey", "The specified key does not exist.", ""))
            return
        # the task is kept: the loop holds only weak references to tasks
        self._task = self._loop.create_task(self._stream(handle, head=head))

    async def _stream(self, handle: BinaryIO, *, head: bool) -> None:
        record = self._record
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if record is not None:
                record.status = 200
                record.outcome = "served"
            self._write_head(200, size, b"application/octet-stream", [])
            if not head:
                while self._transport is not None:
                    block = handle.read(_READ_BLOCK)
                    if not block:
                        break
                    await self.emu.throttle.consume(len(block))
                    if self._transport is None:
                        break
                    self._transport.write(block)
                    await self._writable.wait()
        self._finish()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()
