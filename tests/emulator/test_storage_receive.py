"""Large PUT bodies on an unthrottled link are received on a receiver thread, piece by piece,
hashed and written as they arrive: these prove that path keeps every rule of the storage plane
(verified digest, nothing half stored, keep-alive, disconnects, shutdown) over real sockets."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx
import pytest

from roost.testing import EmulatorServer, start_server
from roost.testing import _storage_fast as storage_fast
from roost.testing._storage import Refusal, Target

from ._helpers import sha

LARGE = 3 * 1024 * 1024 + 17  # above the inline limit, not a multiple of the piece size
SMALL = 4096


@pytest.fixture
def receiver_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The body lengths the receiver thread handled (the real receiver still runs)."""
    calls: list[int] = []
    real = storage_fast.receive_object

    def spy(
        target: Target, fd: int, length: int, prefix: bytes, stopping: Callable[[], bool]
    ) -> Refusal | None:
        calls.append(length)
        return real(target, fd, length, prefix, stopping)

    monkeypatch.setattr(storage_fast, "receive_object", spy)
    return calls


def _upload_urls(server: EmulatorServer, hashes: list[str]) -> dict[str, str]:
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as client:
        response = client.post("/api/chunks/upload-urls", json={"siteId": server.site_id, "hashes": hashes})
        response.raise_for_status()
        urls: dict[str, str] = response.json()["urls"]
        return urls


def _head(url: str, length: int) -> bytes:
    parts = urlsplit(url)
    return (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _connect(server: EmulatorServer) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=30)


def _read_answer(reader: BinaryIO) -> bytes:
    """One whole response (head and its content-length body) from ``sock.makefile("rb")``."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        assert line, f"connection closed after {head!r}"
        head += line
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    return head + reader.read(length)


def _temp_files(server: EmulatorServer) -> list[Path]:
    return [p for p in server.data_dir.rglob("*.part")]


def _wait_for(condition: Callable[[], bool]) -> None:
    """Poll for an outcome the server reaches on its own thread (a hang guard, not a timing)."""
    deadline = time.monotonic() + 20
    while not condition():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.01)


def test_large_bodies_go_through_the_receiver_and_are_stored_whole(
    roost_server: EmulatorServer, receiver_calls: list[int]
) -> None:
    large, small = os.urandom(LARGE), os.urandom(SMALL)
    urls = _upload_urls(roost_server, [sha(large), sha(small)])
    with httpx.Client(timeout=30) as storage:
        for body in (large, small, large):
            response = storage.put(urls[sha(body)], content=body)
            assert response.status_code == 200, response.text
            assert response.headers["etag"] == f'"{sha(body)}"'
    assert receiver_calls == [LARGE, LARGE]
    assert roost_server.chunk_path(sha(large)).read_bytes() == large
    assert roost_server.chunk_path(sha(small)).read_bytes() == small
    records = [r for r in roost_server.storage_requests if r.method == "PUT"]
    assert [(r.outcome, r.bytes_received) for r in records] == [
        ("stored", LARGE),
        ("stored", SMALL),
        ("stored", LARGE),
    ]
    assert _temp_files(roost_server) == []


@pytest.mark.roost_server(faults="storage_bandwidth_mbps=400")
def test_a_bandwidth_cap_keeps_large_bodies_on_the_paced_path(
    roost_server: EmulatorServer, receiver_calls: list[int]
) -> None:
    body = os.urandom(LARGE)
    url = _upload_urls(roost_server, [sha(body)])[sha(body)]
    with httpx.Client(timeout=30) as storage:
        assert storage.put(url, content=body).status_code == 200
    assert receiver_calls == []
    assert roost_server.chunk_path(sha(body)).read_bytes() == body


def test_a_large_body_that_does_not_match_its_name_is_refused_and_the_connection_lives_on(
    roost_server: EmulatorServer, receiver_calls: list[int]
) -> None:
    body, other = os.urandom(LARGE), os.urandom(SMALL)
    urls = _upload_urls(roost_server, [sha(body), sha(other)])
    wrong = bytearray(body)
    wrong[LARGE // 2] ^= 0xFF
    with _connect(roost_server) as sock, sock.makefile("rb") as reader:
        sock.sendall(_head(urls[sha(body)], LARGE))
        sock.sendall(wrong)
        answer = _read_answer(reader)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"BadDigest" in answer
        # same connection: the next request is parsed where the refused body ended
        sock.sendall(_head(urls[sha(other)], SMALL) + other)
        assert _read_answer(reader).startswith(b"HTTP/1.1 200")
    assert receiver_calls == [LARGE]
    assert not roost_server.has_chunk(sha(body))
    assert roost_server.has_chunk(sha(other))
    assert _temp_files(roost_server) == []
    assert [r.outcome for r in roost_server.storage_requests] == ["bad_digest", "stored"]


def test_a_request_sent_right_behind_a_large_body_is_answered(
    roost_server: EmulatorServer, receiver_calls: list[int]
) -> None:
    large, small = os.urandom(LARGE), os.urandom(SMALL)
    urls = _upload_urls(roost_server, [sha(large), sha(small)])
    with _connect(roost_server) as sock, sock.makefile("rb") as reader:
        # pipelined: the second request is on the wire before the first answer
        sock.sendall(_head(urls[sha(large)], LARGE) + large + _head(urls[sha(small)], SMALL) + small)
        assert _read_answer(reader).startswith(b"HTTP/1.1 200")
        assert _read_answer(reader).startswith(b"HTTP/1.1 200")
    assert receiver_calls == [LARGE]
    assert roost_server.chunk_path(sha(large)).read_bytes() == large
    assert roost_server.chunk_path(sha(small)).read_bytes() == small


def test_a_client_that_leaves_mid_body_stores_nothing(
    roost_server: EmulatorServer, receiver_calls: list[int]
) -> None:
    body = os.urandom(LARGE)
    url = _upload_urls(roost_server, [sha(body)])[sha(body)]
    with _connect(roost_server) as sock:
        sock.sendall(_head(url, LARGE) + body[: LARGE // 2])
        _wait_for(lambda: any(r.bytes_received >= LARGE // 2 for r in roost_server.storage_requests))
    _wait_for(lambda: roost_server.storage_requests[-1].outcome == "client_disconnected")
    assert receiver_calls == [LARGE]
    assert not roost_server.has_chunk(sha(body))
    _wait_for(lambda: _temp_files(roost_server) == [])


def test_stopping_the_server_ends_a_receiver_waiting_for_a_stalled_body(
    tmp_path: Path, receiver_calls: list[int]
) -> None:
    server = start_server(data_dir=tmp_path / "data")
    stopped = threading.Event()
    try:
        body = os.urandom(LARGE)
        url = _upload_urls(server, [sha(body)])[sha(body)]
        with _connect(server) as sock:
            sock.sendall(_head(url, LARGE) + body[:SMALL])
            _wait_for(lambda: receiver_calls == [LARGE])

            def stop() -> None:
                server.stop()
                stopped.set()

            stopper = threading.Thread(target=stop, daemon=True)
            stopper.start()
            stopper.join(timeout=30)
            assert stopped.is_set(), "stop() waited on a receiver that never gives up"
            assert not server.has_chunk(sha(body))
            assert [p for p in (tmp_path / "data").rglob("*.part")] == []
    finally:
        server.stop()
