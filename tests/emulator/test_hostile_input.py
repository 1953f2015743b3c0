"""Hostile requests: huge integers anywhere answer 400, never 500; bodies are bounded."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from roost.testing import EmulatorServer, start_server
from roost.testing.routes import TABLES

from ._helpers import api_client, assert_problem, make_version, publish, upload_chunks

pytestmark = pytest.mark.anyio

HUGE = "9" * 4000
HUGER = "9" * 5000  # past Python's int-str conversion limit (4,300 digits)
_PLACEHOLDER = '"__HUGE__"'
_PARAM = re.compile(r"\{([A-Za-z]+)\}")


def _valid(name: str, site_id: str, roost_id: str) -> str:
    return {"siteId": site_id, "roostId": roost_id, "versionRef": "1", "machineId": "machine-01"}.get(
        name, "abcdefgh1234"
    )


def _fill(template: str, site_id: str, roost_id: str, hostile: str, digits: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return digits if name == hostile else _valid(name, site_id, roost_id)

    return _PARAM.sub(one, template)


def _hostile_body(site_id: str, digits: str) -> str:
    fields = [
        "size",
        "totalSize",
        "versionNumber",
        "ttlDays",
        "ttl_days",
        "timeout_seconds",
        "pageSize",
        "limit",
        "days",
        "deployQuota",
        "expiresInDays",
        "gracePeriodHours",
        "version",
        "expectedCurrentVersionId",
        "scheduledAt",
        "priority",
    ]
    body: dict[str, Any] = {name: "__HUGE__" for name in fields}
    body["siteId"] = site_id
    body["hashes"] = ["a" * 64]
    body["version"] = {
        "schemaVersion": "__HUGE__",
        "mediaType": "application/vnd.owlette.version.v1+json",
        "config": {"createdAt": "__HUGE__"},
        "files": [{"path": "a", "size": "__HUGE__", "chunks": [{"hash": "a" * 64, "size": "__HUGE__"}]}],
    }
    return json.dumps(body).replace(_PLACEHOLDER, digits)


def _cases(site_id: str, roost_id: str) -> list[tuple[str, str, dict[str, str], str | None]]:
    cases: list[tuple[str, str, dict[str, str], str | None]] = []
    for table in TABLES:
        for template, methods in table:
            names = _PARAM.findall(template)
            for method in methods:
                plain = _PARAM.sub(lambda m: _valid(m.group(1), site_id, roost_id), template)
                query = {
                    "siteId": site_id,
                    "page_size": HUGE,
                    "limit": HUGE,
                    "pageSize": HUGE,
                    "days": HUGE,
                    "page_token": HUGE,
                    "cursor": HUGE,
                    "since": HUGE,
                }
                cases.append((method, plain, query, None))
                if method in ("POST", "PUT", "PATCH"):
                    for digits in (HUGE, HUGER):
                        cases.append((method, plain, {"siteId": site_id}, _hostile_body(site_id, digits)))
                for name in names:
                    for digits in (HUGE, HUGER, "#" + HUGER, "v" + HUGE):
                        path = _fill(template, site_id, roost_id, name, digits)
                        cases.append((method, path, {"siteId": site_id}, None))
    return cases


async def test_huge_integers_anywhere_never_answer_500(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        # a roost with a version, so that version routes get past "not found"
        version, chunks = make_version({"a": b"fuzz"})
        await upload_chunks(client, site, chunks)
        assert (await publish(client, site, "fuzz-roost-01", version)).status_code == 201
        failures = []
        cases = _cases(site, "fuzz-roost-01") + _cases(site, "absent-roost-01")
        for method, path, query, body in cases:
            headers = {"Content-Type": "application/json", "Idempotency-Key": "fuzz-key"}
            response = await client.request(
                method, path, params=query, content=body.encode() if body else None, headers=headers
            )
            if response.status_code >= 500:
                failures.append(f"{method} {path[:80]} body={bool(body)}: {response.status_code}")
        assert not failures, "\n".join(failures)


async def test_huge_page_size_names_the_field(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        for digits in (HUGE, HUGER):
            response = await client.get(
                "/api/roosts", params={"siteId": roost_server.site_id, "page_size": digits}
            )
            body = assert_problem(response, 400, "validation_failed")
            assert "query.page_size" in body["errors"]


async def test_huge_json_number_names_the_field(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    version, chunks = make_version({"a": b"numbers"})
    async with api_client(roost_server) as client:
        await upload_chunks(client, site, chunks)
        for digits in (HUGE, HUGER):
            version["files"][0]["size"] = "__HUGE__"
            text = json.dumps({"siteId": site, "version": version}).replace(_PLACEHOLDER, digits)
            response = await client.post(
                "/api/roosts/numbers-roost/versions",
                content=text,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400, response.text
            assert "size" in response.text


async def test_huge_version_number_in_a_path_is_malformed(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        for ref in (HUGER, f"v{HUGER}"):
            response = await client.get(
                f"/api/roosts/abcdefgh1234/versions/{ref}", params={"siteId": roost_server.site_id}
            )
            assert response.status_code in (400, 404), response.text
            assert response.headers["content-type"].startswith("application/problem+json")


def _raw_request(server: EmulatorServer, head: bytes, body_parts: list[bytes]) -> bytes:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        try:
            for part in body_parts:
                sock.sendall(part)
        except OSError:
            pass  # the server may answer and close before the whole body is sent
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
    return answer


@pytest.mark.roost_server(max_json_body_bytes=1 << 20)
def test_api_body_over_the_limit_is_413_from_content_length(roost_server: EmulatorServer) -> None:
    auth = roost_server.headers()["Authorization"].encode()
    head = (
        b"POST /api/chunks/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + auth + b"\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n"
    )
    answer = _raw_request(roost_server, head, [b"[" * 1024])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert b"payload_too_large" in answer


@pytest.mark.roost_server(max_json_body_bytes=1 << 20)
def test_chunked_api_body_over_the_limit_is_413_while_streaming(roost_server: EmulatorServer) -> None:
    auth = roost_server.headers()["Authorization"].encode()
    head = (
        b"POST /api/chunks/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + auth + b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    piece = b"x" * 65536
    parts = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(40)] + [b"0\r\n\r\n"]
    answer = _raw_request(roost_server, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_storage_put_over_the_chunk_limit_is_refused(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    digest = "b" * 64
    async with api_client(roost_server) as client:
        urls = await client.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": [digest]})
        url = urls.json()["urls"][digest]
    target = url.removeprefix(roost_server.url).encode()
    declared = (
        b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5242880\r\nConnection: close\r\n\r\n"
    )
    assert _raw_request(roost_server, declared, [b"z" * 65536]).startswith(b"HTTP/1.1 413")
    chunked = (
        b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    piece = b"z" * (1 << 20)
    parts = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for _ in range(6)] + [b"0\r\n\r\n"]
    # as S3 does, a presigned PUT without a length is refused before any byte is kept
    assert _raw_request(roost_server, chunked, parts).startswith(b"HTTP/1.1 411")
    assert not roost_server.has_chunk(digest)
    leftovers = [p.name for p in (roost_server.data_dir / "chunks").rglob("*") if p.name.endswith(".part")]
    assert leftovers == []


def test_stale_part_files_are_removed_at_start_and_secrets_are_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "emu"
    with start_server(data_dir=data) as server:
        token = server.token
    stale = data / "chunks" / "dev-site" / "ab" / (".ab12." + "x" * 8 + ".part")
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a chunk")
    blob = data / "blobs" / "screenshots" / ".shot.png.123.part"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(b"half")
    with start_server(data_dir=data) as server:
        assert server.token == token
        assert not stale.exists()
        assert not blob.exists()
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for path in data.glob("meta.sqlite3*"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
