"""An in-process fake of the API routes a push uses, plus signed-URL storage, for MockTransport tests."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio
import httpx

from roost import RetryPolicy, RoostClient

API = "https://api.test"
STORAGE_HOST = "storage.test"
TOKEN = "owk_test_secret-token-value"
SITE = "site-1"

StorageFault = Callable[[httpx.Request, str, int], Awaitable[httpx.Response | None]]
PublishFault = Callable[[int, dict[str, Any]], httpx.Response | None]


def problem(status: int, code: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": code, "status": status, "code": code, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def stale_detail(head: str | None) -> str:
    return f"expectedCurrentVersionId did not match the current head ({head or 'null'}). re-read + retry."


def missing_detail(count: int) -> str:
    return (
        f"{count} referenced chunk(s) are not present in R2. "
        "upload them via /api/chunks/upload-urls before finalising."
    )


@dataclass
class Published:
    body: dict[str, Any]
    headers: dict[str, str]
    status: int


@dataclass
class FakeApi:
    """Chunk check, upload URLs, storage PUTs, roost GET and version publish, all in memory."""

    url_ttl_s: float = 3600.0
    head: str | None = None
    roost_exists: bool = True
    site_exists: bool = True
    roost_fields: dict[str, Any] = field(default_factory=dict)
    descriptions: dict[str, str | None] = field(default_factory=dict)
    storage_delay_s: float = 0.0
    store: dict[str, bytes] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    check_batches: list[list[str]] = field(default_factory=list)
    mint_batches: list[list[str]] = field(default_factory=list)
    puts: list[httpx.Request] = field(default_factory=list)
    put_statuses: list[int] = field(default_factory=list)
    publishes: list[Published] = field(default_factory=list)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: int = 0
    storage_fault: StorageFault | None = None
    publish_fault: PublishFault | None = None
    api_cookie: bool = False
    storage_cookie: bool = False
    puts_in_flight: int = 0
    peak_puts_in_flight: int = 0
    bytes_in_flight: int = 0
    peak_bytes_in_flight: int = 0
    put_attempts: dict[str, int] = field(default_factory=dict)
    _idempotency: dict[str, tuple[bytes, httpx.Response]] = field(default_factory=dict)
    _url_serial: int = 0

    def client(self, *, retry: RetryPolicy | None = None, token: str = TOKEN) -> RoostClient:
        return RoostClient(
            token=token,
            api_url=API,
            transport=httpx.MockTransport(self.handler),
            retry=retry or RetryPolicy(base_delay_s=0.0, max_delay_s=0.0, jitter=0.0),
        )

    def api_requests(self, path: str, method: str = "POST") -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path and r.method == method]

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == STORAGE_HOST:
            return await self._storage(request)
        response = self._api(request)
        if self.api_cookie:
            response.headers["set-cookie"] = "session=api-cookie; Path=/"
        return response

    # -- API ------------------------------------------------------------------------------------

    def _api(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return problem(401, "unauthorized", "missing credential")
        if path == "/api/chunks/check" and request.method == "POST":
            body = json.loads(request.content)
            assert body["siteId"] == SITE
            assert 0 < len(body["hashes"]) <= 900
            self.check_batches.append(body["hashes"])
            return httpx.Response(200, json={"missing": [h for h in body["hashes"] if h not in self.store]})
        if path == "/api/chunks/upload-urls" and request.method == "POST":
            body = json.loads(request.content)
            assert body["siteId"] == SITE
            assert 0 < len(body["hashes"]) <= 1000
            self.mint_batches.append(body["hashes"])
            expires = time.time() + self.url_ttl_s
            urls = {}
            for chunk_hash in body["hashes"]:
                self._url_serial += 1
                urls[chunk_hash] = (
                    f"https://{STORAGE_HOST}/put/{chunk_hash}?exp={expires:.6f}&n={self._url_serial}"
                )
            expires_at = datetime.fromtimestamp(expires, timezone.utc).isoformat().replace("+00:00", "Z")
            return httpx.Response(200, json={"urls": urls, "expiresAt": expires_at})
        if path.startswith("/api/roosts/") and path.endswith("/versions") and request.method == "POST":
            return self._publish(request)
        if not self.site_exists:
            return problem(404, "not_found", "site not found or no access")
        if path.startswith("/api/roosts/") and "/versions/" in path and request.method == "GET":
            version_id = path.rsplit("/", 1)[1]
            if version_id not in self.versions:
                return problem(410, "not_found", "version body gone")
            return httpx.Response(200, json={"versionId": version_id, "version": self.versions[version_id]})
        if path.startswith("/api/roosts/") and request.method == "GET":
            if not self.roost_exists:
                return problem(404, "not_found", "roost not found")
            current: dict[str, Any] | None = None
            if self.head is not None:
                number = list(self.versions).index(self.head) + 1 if self.head in self.versions else None
                current = {
                    "versionId": self.head,
                    "versionNumber": number,
                    "description": self.descriptions.get(self.head),
                }
            return httpx.Response(
                200,
                json={
                    "roostId": path.rsplit("/", 1)[1],
                    "currentVersionId": self.head,
                    "currentVersion": current,
                    **self.roost_fields,
                },
            )
        return problem(404, "not_found", f"no route {request.method} {path}")

    def _publish(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        headers = dict(request.headers)
        key = request.headers.get("idempotency-key", "")
        cached = self._idempotency.get(key)
        if cached is not None:
            if cached[0] != request.content:
                response = problem(422, "idempotency_key_mismatch", "key reused with another body")
            else:
                response = httpx.Response(
                    cached[1].status_code, content=cached[1].content, headers=cached[1].headers
                )
            self.publishes.append(Published(body, headers, response.status_code))
            return response
        response = self._publish_fresh(body)
        self.publishes.append(Published(body, headers, response.status_code))
        if response.status_code < 400 and key:
            self._idempotency[key] = (request.content, response)
        return response

    def _publish_fresh(self, body: dict[str, Any]) -> httpx.Response:
        if self.publish_fault is not None:
            injected = self.publish_fault(len(self.publishes), body)
            if injected is not None:
                return injected
        version = body["version"]
        assert version["schemaVersion"] == 2
        assert version["mediaType"] == "application/vnd.owlette.version.v1+json"
        hashes = [c["hash"] for f in version["files"] for c in f["chunks"]]
        absent = [h for h in dict.fromkeys(hashes) if h not in self.store]
        if absent:
            return problem(412, "precondition_failed", missing_detail(len(absent)), missingChunks=absent[:20])
        if "expectedCurrentVersionId" in body and body["expectedCurrentVersionId"] != self.head:
            return problem(412, "version_stale", stale_detail(self.head))
        canonical = json.dumps(version, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        version_id = hashlib.sha256(canonical.encode()).hexdigest()
        previous = self.head
        self.counter += 1
        self.versions[version_id] = version
        self.head = version_id
        self.roost_exists = True
        self.descriptions[version_id] = (body.get("description") or "").strip() or None
        for key in ("name", "targets", "extractPath"):
            if key in body:
                self.roost_fields[key] = body[key]
        return httpx.Response(
            201,
            json={
                "versionId": version_id,
                "versionNumber": self.counter,
                "currentVersionId": version_id,
                "previousVersionId": previous,
            },
        )

    # -- storage --------------------------------------------------------------------------------

    async def _storage(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "PUT"
        self.puts.append(request)
        chunk_hash = request.url.path.rsplit("/", 1)[1]
        attempt = self.put_attempts.get(chunk_hash, 0)
        self.put_attempts[chunk_hash] = attempt + 1
        data = request.content
        self.puts_in_flight += 1
        self.bytes_in_flight += len(data)
        self.peak_puts_in_flight = max(self.peak_puts_in_flight, self.puts_in_flight)
        self.peak_bytes_in_flight = max(self.peak_bytes_in_flight, self.bytes_in_flight)
        try:
            response = await self._storage_answer(request, chunk_hash, attempt, data)
        finally:
            self.puts_in_flight -= 1
            self.bytes_in_flight -= len(data)
        self.put_statuses.append(response.status_code)
        if self.storage_cookie:
            response.headers["set-cookie"] = "storage=yes; Path=/"
        return response

    async def _storage_answer(
        self, request: httpx.Request, chunk_hash: str, attempt: int, data: bytes
    ) -> httpx.Response:
        if self.storage_delay_s:
            await anyio.sleep(self.storage_delay_s)
        if self.storage_fault is not None:
            injected = await self.storage_fault(request, chunk_hash, attempt)
            if injected is not None:
                return injected
        query = parse_qs(request.url.query.decode())
        if time.time() >= float(query["exp"][0]):
            return httpx.Response(403, text="<Error><Code>AccessDenied</Code>Request has expired</Error>")
        if hashlib.sha256(data).hexdigest() != chunk_hash:
            return httpx.Response(400, text="BadDigest")
        self.store[chunk_hash] = data
        return httpx.Response(200)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def rebuild(api: FakeApi, version_id: str) -> dict[str, bytes]:
    """Every file of a published version, from the fake's storage."""
    return {
        entry["path"]: b"".join(api.store[c["hash"]] for c in entry["chunks"])
        for entry in api.versions[version_id]["files"]
    }
