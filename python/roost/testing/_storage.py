"""Storage (``/storage/<object key>``): presigned PUT/GET of chunks and blobs, and its rules.

It needs no API token; the URL's HMAC signature and expiry are the authority. A chunk PUT whose
body does not hash to the object name is rejected with 400 and nothing is stored. The rules live
here once (:func:`resolve`, :func:`store_object`); :mod:`._storage_fast` serves them on the hot
path and :class:`StorageApp` (ASGI) serves the rare storage request that arrives on a connection
already handed to uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from roost import CHUNK_SIZE_BYTES

from ._emulator import Emulator, StorageRecord
from ._options import DEFAULT_STORAGE_SLACK
from ._presign import EXPIRES_PARAM, SIGNATURE_PARAM

__all__ = [
    "STORAGE_PREFIX",
    "ObjectWriter",
    "Refusal",
    "StorageApp",
    "Target",
    "error_xml",
    "resolve",
    "store_object",
]

STORAGE_PREFIX = "/storage/"
_CHUNK_KEY = re.compile(r"^project-content/([A-Za-z0-9_-]{1,128})/([0-9a-f]{2})/([0-9a-f]{64})$")
_BLOB_KEY = re.compile(r"^(agent-installers|screenshots)/[A-Za-z0-9_./-]+$")
_READ_BLOCK = 256 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def error_xml(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


@dataclass(slots=True)
class Refusal:
    """A complete storage answer (despite the name, also the 200 of a stored PUT)."""

    status: int
    body: bytes
    outcome: str
    record: StorageRecord | None = None
    content_type: bytes = b"application/xml"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Target:
    """An object a request may act on: the presigned URL was valid for it."""

    record: StorageRecord
    path: Path
    digest: str  # the chunk hash the body must have; "" for blobs
    limit: int

    def refuse(self, status: int, code: str, message: str, outcome: str) -> Refusal:
        return Refusal(status, error_xml(code, message), outcome, self.record)

    def too_large(self) -> Refusal:
        return self.refuse(413, "EntityTooLarge", f"body exceeds {self.limit} bytes", "too_large")


def put_limit(emu: Emulator, *, is_chunk: bool) -> int:
    """The largest PUT body storage accepts: a chunk is at most ``CHUNK_SIZE_BYTES``; installer
    binaries and other blobs get the configured blob limit."""
    if is_chunk:
        return CHUNK_SIZE_BYTES + DEFAULT_STORAGE_SLACK
    return emu.options.max_blob_body_bytes


def resolve(emu: Emulator, method: str, path: str, query: str, headers: dict[str, str]) -> Target | Refusal:
    """Record the request, then check method, object key and presigned URL."""
    decoded = unquote(path)
    record = StorageRecord(method=method, path=decoded, headers=headers)
    emu.record_storage(record)
    key = unquote(decoded[len(STORAGE_PREFIX) :])
    if method not in ("GET", "HEAD", "PUT"):
        return Refusal(405, error_xml("MethodNotAllowed", "method not allowed"), "405", record)
    chunk_match = _CHUNK_KEY.match(key)
    is_blob = bool(_BLOB_KEY.match(key)) and ".." not in key.split("/")
    if chunk_match is None and not is_blob:
        return Refusal(404, error_xml("NoSuchKey", "unknown object key"), "404", record)
    params = parse_qs(query)
    expires = params.get(EXPIRES_PARAM, [""])[0] or None
    signature = params.get(SIGNATURE_PARAM, [""])[0] or None
    reason = emu.presigner.check("GET" if method == "HEAD" else method, key, expires, signature)
    if reason == "expired":
        return Refusal(403, error_xml("AccessDenied", "Request has expired"), "expired", record)
    if reason is not None:
        return Refusal(403, error_xml("SignatureDoesNotMatch", "signature mismatch"), "bad_signature", record)
    if chunk_match is not None:
        site_id, _, digest = chunk_match.groups()
        return Target(record, emu.chunks.path(site_id, digest), digest, put_limit(emu, is_chunk=True))
    return Target(record, emu.blobs.root / key, "", put_limit(emu, is_chunk=False))


class ObjectWriter:
    """A PUT body on its way to storage: each piece is hashed and written as it arrives (no copy
    of the whole body is kept), and :meth:`finish` stores the object only when the body hashes to
    its name. Blocking; used on worker threads for large bodies (hashlib and os.write release the
    GIL)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._hash = hashlib.sha256()
        final = target.path
        final.parent.mkdir(parents=True, exist_ok=True)
        self._fd, self._temp = tempfile.mkstemp(
            prefix=f".{final.name[:16]}.", suffix=".part", dir=str(final.parent)
        )

    def write(self, piece: bytes | bytearray | memoryview) -> None:
        self._hash.update(piece)
        view = memoryview(piece)
        while view:
            view = view[os.write(self._fd, view) :]

    def finish(self) -> Refusal:
        """Verify the digest, then rename the temp file into place (or remove it)."""
        target = self.target
        computed = self._hash.hexdigest()
        if target.digest and computed != target.digest:
            self.discard()
            return target.refuse(
                400,
                "BadDigest",
                f"body sha-256 {computed} does not match object name {target.digest}",
                "bad_digest",
            )
        try:
            os.close(self._fd)
            self._fd = -1
            # No fsync: state must survive an emulator restart, which the page cache gives; an
            # fsync per chunk capped storage far below what a push needs to be measured against.
            os.replace(self._temp, target.path)
        except BaseException:
            self.discard()
            raise
        etag = f'"{computed}"'.encode()
        return Refusal(200, b"", "stored", target.record, b"text/plain", [(b"etag", etag)])

    def discard(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(OSError):
            os.unlink(self._temp)


def store_object(emu: Emulator, target: Target, body: bytes | bytearray | memoryview) -> Refusal:
    """Verify a whole chunk body against its name and store it (temp file + rename)."""
    writer = ObjectWriter(target)
    try:
        writer.write(body)
    except BaseException:
        writer.discard()
        raise
    return writer.finish()


class StorageApp:
    """The ASGI path for ``/storage/...`` (same rules; bodies are read whole, within the limit)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        emu = self.emu
        method = str(scope["method"]).upper()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        raw_path = scope.get("raw_path") or str(scope["path"]).encode()
        outcome = resolve(
            emu, method, raw_path.decode("latin-1"), scope.get("query_string", b"").decode("latin-1"), headers
        )
        if emu.faults.storage_latency_ms > 0:
            await asyncio.sleep(emu.faults.storage_latency_ms / 1000.0)
        if isinstance(outcome, Refusal):
            if outcome.status != 405:
                await self._drain(receive)
            await self._reply(send, outcome)
            return
        if method != "PUT":
            await self._get(send, outcome, head=method == "HEAD")
            return
        declared = headers.get("content-length")
        if declared is not None and (
            not declared.isdigit() or len(declared) > 18 or int(declared) > outcome.limit
        ):
            await self._reply(send, outcome.too_large(), close=True)
            return
        if emu.storage_dice.roll(emu.faults.storage_drop):
            await self._drop(receive, outcome.record)
            return
        if emu.storage_dice.roll(emu.faults.storage_5xx):
            await self._drain(receive)
            status = emu.storage_dice.choice((500, 503))
            await self._reply(send, outcome.refuse(status, "InternalError", "injected fault", "fault_5xx"))
            return
        parts: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                outcome.record.outcome = "client_disconnected"
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > outcome.limit:
                await self._reply(send, outcome.too_large(), close=True)
                return
            if chunk:
                await emu.throttle.consume(len(chunk))
                parts.append(chunk)
                outcome.record.bytes_received = received
            if not message.get("more_body"):
                break
        await self._reply(send, await asyncio.to_thread(store_object, emu, outcome, b"".join(parts)))

    async def _drain(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    async def _reply(self, send: Send, reply: Refusal, *, close: bool = False) -> None:
        if reply.record is not None:
            reply.record.status = reply.status
            reply.record.outcome = reply.outcome or str(reply.status)
        out = [(b"content-length", str(len(reply.body)).encode()), (b"content-type", reply.content_type)]
        out.extend(reply.headers)
        if close:
            out.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})

    async def _drop(self, receive: Receive, record: StorageRecord) -> None:
        """Read part of the body, then cut the connection without answering."""
        record.outcome = "dropped"
        message = await receive()
        record.bytes_received += len(message.get("body", b""))
        cycle = getattr(receive, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is not None:
            transport.abort()
            for _ in range(3):
                await asyncio.sleep(0)
            return
        raise ConnectionAbortedError("storage_drop fault")

    async def _get(self, send: Send, target: Target, *, head: bool) -> None:
        try:
            handle = target.path.open("rb")
        except OSError:
            await self._reply(send, target.refuse(404, "NoSuchKey", "The specified key does not exist.", ""))
            return
        target.record.status = 200
        target.record.outcome = "served"
        with handle:
            size = os.fstat(handle.fileno()).st_size
            start = [(b"content-length", str(size).encode()), (b"content-type", b"application/octet-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": start})
            if head:
                await send({"type": "http.response.body", "body": b""})
                return
            while True:
                block = handle.read(_READ_BLOCK)
                if not block:
                    break
                await self.emu.throttle.consume(len(block))
                await send({"type": "http.response.body", "body": block, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
