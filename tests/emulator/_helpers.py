"""Plain-httpx helpers for driving the emulator in tests (deliberately not the SDK)."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from roost.testing import EmulatorServer

MEDIA_TYPE = "application/vnd.owlette.version.v1+json"
CHUNK = 4 * 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def api_client(server: EmulatorServer, token: str | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers=server.headers(token), timeout=30.0)


def storage_client() -> httpx.AsyncClient:
    """A client with no API headers, the way a careful SDK talks to storage."""
    return httpx.AsyncClient(timeout=30.0)


def make_version(files: dict[str, bytes], *, tag: str = "") -> tuple[dict[str, Any], dict[str, bytes]]:
    """A version body for ``files`` plus the chunk bytes by hash."""
    chunks: dict[str, bytes] = {}
    entries = []
    for path in sorted(files):
        data = files[path]
        refs = []
        for offset in range(0, len(data), CHUNK):
            piece = data[offset : offset + CHUNK]
            digest = sha(piece)
            chunks[digest] = piece
            refs.append({"hash": digest, "size": len(piece)})
        entries.append({"path": path, "size": len(data), "chunks": refs})
    version = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE,
        "config": {"producer": "tests", "createdAt": "2026-04-22T15:30:00.000Z", "tag": tag},
        "files": entries,
    }
    return version, chunks


async def upload_chunks(client: httpx.AsyncClient, site_id: str, chunks: dict[str, bytes]) -> list[str]:
    """check -> upload-urls -> PUT each missing chunk; returns the hashes that were missing."""
    hashes = list(chunks)
    response = await client.post("/api/chunks/check", json={"siteId": site_id, "hashes": hashes})
    assert response.status_code == 200, response.text
    missing: list[str] = response.json()["missing"]
    if not missing:
        return missing
    response = await client.post("/api/chunks/upload-urls", json={"siteId": site_id, "hashes": missing})
    assert response.status_code == 200, response.text
    urls = response.json()["urls"]
    async with storage_client() as storage:
        for digest in missing:
            put = await storage.put(
                urls[digest], content=chunks[digest], headers={"Content-Type": "application/octet-stream"}
            )
            assert put.status_code == 200, put.text
    return missing


async def publish(
    client: httpx.AsyncClient, site_id: str, roost_id: str, version: dict[str, Any], **extra: Any
) -> httpx.Response:
    body: dict[str, Any] = {"siteId": site_id, "version": version, **extra}
    return await client.post(f"/api/roosts/{roost_id}/versions", json=body)


async def push(
    client: httpx.AsyncClient,
    site_id: str,
    roost_id: str,
    files: dict[str, bytes],
    *,
    tag: str = "",
    **extra: Any,
) -> dict[str, Any]:
    version, chunks = make_version(files, tag=tag)
    await upload_chunks(client, site_id, chunks)
    response = await publish(client, site_id, roost_id, version, **extra)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    for key in ("type", "title", "status", "detail", "code", "docsUrl", "requestId"):
        assert key in body, (key, body)
    assert body["docsUrl"] == f"https://owlette.app/docs/api/errors#{code}"
    assert response.headers["x-request-id"] == body["requestId"]
    return body


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server that records webhook POSTs and answers with ``statuses`` in turn."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = threading.Event()
        waited = 0.0
        while len(self.requests) < count and waited < timeout:
            deadline.wait(0.02)
            waited += 0.02
        return list(self.requests)


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver = holder["r"]
            receiver.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            payload = json.dumps({"received": True}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    holder["r"] = Receiver(url=f"http://127.0.0.1:{port}/hooks", statuses=list(statuses or []))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder["r"]
    finally:
        httpd.shutdown()
        httpd.server_close()
