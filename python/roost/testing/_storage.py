"""The storage endpoint (``/storage/<object key>``): presigned PUT/GET of chunks and blobs.

It needs no API token; the URL's HMAC signature and expiry are the authority. A chunk PUT whose
body does not hash to the object name is rejected with 400 and nothing is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote

from roost import CHUNK_SIZE_BYTES

from ._emulator import Emulator, StorageRecord
from ._options import DEFAULT_STORAGE_SLACK
from ._presign import EXPIRES_PARAM, SIGNATURE_PARAM
from ._store import ChunkStore

__all__ = ["STORAGE_PREFIX", "StorageApp"]

STORAGE_PREFIX = "/storage/"
_CHUNK_KEY = re.compile(r"^project-content/([A-Za-z0-9_-]{1,128})/([0-9a-f]{2})/([0-9a-f]{64})$")
_BLOB_KEY = re.compile(r"^(agent-installers|screenshots)/[A-Za-z0-9_./-]+$")
_READ_BLOCK = 256 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _error_xml(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    ).encode()


class StorageApp:
    """An ASGI app for ``/storage/...`` requests."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        emu = self.emu
        method = str(scope["method"]).upper()
        raw_path = str(scope["path"])
        key = unquote(raw_path[len(STORAGE_PREFIX) :])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        record = StorageRecord(method=method, path=raw_path, headers=headers)
        emu.record_storage(record)
        if emu.faults.storage_latency_ms > 0:
            await asyncio.sleep(emu.faults.storage_latency_ms / 1000.0)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        expires = (query.get(EXPIRES_PARAM) or [None])[0]
        signature = (query.get(SIGNATURE_PARAM) or [None])[0]
        sign_method = "GET" if method == "HEAD" else method
        chunk_match = _CHUNK_KEY.match(key)
        is_blob = bool(_BLOB_KEY.match(key)) and ".." not in key.split("/")
        if method not in ("GET", "HEAD", "PUT"):
            await self._reply(send, record, 405, _error_xml("MethodNotAllowed", "method not allowed"))
            return
        if chunk_match is None and not is_blob:
            await self._drain(receive)
            await self._reply(send, record, 404, _error_xml("NoSuchKey", "unknown object key"))
            return
        reason = emu.presigner.check(sign_method, key, expires, signature)
        if reason is not None:
            await self._drain(receive)
            if reason == "expired":
                await self._reply(
                    send, record, 403, _error_xml("AccessDenied", "Request has expired"), "expired"
                )
            else:
                await self._reply(
                    send,
                    record,
                    403,
                    _error_xml("SignatureDoesNotMatch", "signature mismatch"),
                    "bad_signature",
                )
            return
        if chunk_match is not None:
            site_id, _, digest = chunk_match.groups()
            path = emu.chunks.path(site_id, digest)
        else:
            digest = ""
            path = emu.blobs.root / key
        if method == "PUT":
            limit = put_limit(emu, is_chunk=chunk_match is not None)
            declared = headers.get("content-length")
            if declared is not None and (
                not declared.isdigit() or len(declared) > 18 or int(declared) > limit
            ):
                await self._reply(
                    send,
                    record,
                    413,
                    _error_xml("EntityTooLarge", f"body exceeds {limit} bytes"),
                    "too_large",
                    headers=[(b"connection", b"close")],
                )
                return
            await self._put(receive, send, record, path, digest, limit)
        else:
            await self._get(send, record, path, head=method == "HEAD")

    async def _drain(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                return

    async def _reply(
        self,
        send: Send,
        record: StorageRecord,
        status: int,
        body: bytes = b"",
        outcome: str = "",
        headers: list[tuple[bytes, bytes]] | None = None,
        content_type: bytes = b"application/xml",
    ) -> None:
        record.status = status
        record.outcome = outcome or str(status)
        out = [(b"content-length", str(len(body)).encode()), (b"content-type", content_type)]
        out.extend(headers or [])
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

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

    async def _put(
        self, receive: Receive, send: Send, record: StorageRecord, final: Path, digest: str, limit: int
    ) -> None:
        emu = self.emu
        if emu.storage_dice.roll(emu.faults.storage_drop):
            await self._drop(receive, record)
            return
        if emu.storage_dice.roll(emu.faults.storage_5xx):
            await self._drain(receive)
            status = emu.storage_dice.choice((500, 503))
            await self._reply(
                send, record, status, _error_xml("InternalError", "injected fault"), "fault_5xx"
            )
            return
        fd: int | None
        fd, temp_path = _open_temp(final)
        hasher = hashlib.sha256()
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    record.outcome = "client_disconnected"
                    ChunkStore.discard_temp(fd, temp_path)
                    return
                chunk = message.get("body", b"")
                if record.bytes_received + len(chunk) > limit:
                    # a chunked or lying body: refuse it as it streams, never buffer it whole
                    ChunkStore.discard_temp(fd, temp_path)
                    await self._reply(
                        send,
                        record,
                        413,
                        _error_xml("EntityTooLarge", f"body exceeds {limit} bytes"),
                        "too_large",
                        headers=[(b"connection", b"close")],
                    )
                    return
                if chunk:
                    await emu.throttle.consume(len(chunk))
                    hasher.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view) :]
                    record.bytes_received += len(chunk)
                if not message.get("more_body"):
                    break
        except BaseException:
            ChunkStore.discard_temp(fd, temp_path)
            raise
        computed = hasher.hexdigest()
        if digest and computed != digest:
            ChunkStore.discard_temp(fd, temp_path)
            await self._reply(
                send,
                record,
                400,
                _error_xml("BadDigest", f"body sha-256 {computed} does not match object name {digest}"),
                "bad_digest",
            )
            return
        pending_fd, fd = fd, None
        await asyncio.to_thread(ChunkStore.commit_temp, pending_fd, temp_path, final)
        await self._reply(
            send,
            record,
            200,
            b"",
            "stored",
            headers=[(b"etag", f'"{computed}"'.encode())],
            content_type=b"text/plain",
        )

    async def _get(self, send: Send, record: StorageRecord, path: Path, *, head: bool) -> None:
        try:
            size, handle = _open_for_read(path)
        except OSError:
            await self._reply(send, record, 404, _error_xml("NoSuchKey", "The specified key does not exist."))
            return
        record.status = 200
        record.outcome = "served"
        with handle:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", str(size).encode()),
                        (b"content-type", b"application/octet-stream"),
                    ],
                }
            )
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


def put_limit(emu: Emulator, *, is_chunk: bool) -> int:
    """The largest PUT body storage accepts: a chunk is at most ``CHUNK_SIZE_BYTES``; installer
    binaries and other blobs get the configured blob limit."""
    if is_chunk:
        return CHUNK_SIZE_BYTES + DEFAULT_STORAGE_SLACK
    return emu.options.max_blob_body_bytes


def _open_temp(final: Path) -> tuple[int, str]:
    final.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=str(final.parent))


def _open_for_read(path: Path) -> tuple[int, BinaryIO]:
    handle = path.open("rb")
    return os.fstat(handle.fileno()).st_size, handle
