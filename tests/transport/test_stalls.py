"""Storage timeouts measure stalls, not transfers; progress and pacing on the lean transport."""

from __future__ import annotations

import socket
import sys

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from roost import RoostClient
from roost._transport import StorageClient, http11

from .test_http11 import OK, Seen, answering, clear_proxies, read_request, tcp_server

pytestmark = pytest.mark.anyio

KiB = 1024


def slow_reader(seen: Seen, *, piece: int, every_s: float, rcvbuf: int = 16 * KiB) -> object:
    """Reads the request body ``piece`` bytes at a time with a pause between, then answers."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        stream.extra(anyio.abc.SocketAttribute.raw_socket).setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf
        )
        reader = BufferedByteReceiveStream(stream)
        head = await reader.receive_until(b"\r\n\r\n", 65536)
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        received = 0
        while received < length:
            await anyio.sleep(every_s)
            received += len(await reader.receive(min(piece, length - received)))
        seen.bodies.append(b"x" * received)
        await stream.send(OK)

    return handle


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="send-queue drain is read on Linux only")
async def test_a_body_slower_than_the_stall_timeout_completes_while_it_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proxies(monkeypatch)
    seen = Seen()
    body = bytes(768 * KiB)  # ~1.2 s at 32 KiB per 50 ms: four times the stall timeout
    async with (
        tcp_server(slow_reader(seen, piece=32 * KiB, every_s=0.05), seen) as port,  # type: ignore[arg-type]
        RoostClient(token="owk_test_secret", api_url="https://api.test") as http,
    ):
        storage = StorageClient(http, stall_timeout_s=0.3)
        assert storage.lean
        sent: list[int] = []
        try:
            response = await storage.put(f"http://127.0.0.1:{port}/slow", body, on_sent=sent.append)
        finally:
            await storage.aclose()
    assert response.status_code == 200
    assert len(seen.bodies[0]) == len(body)
    # Bytes that left the socket, not bytes handed to it: the first report is not the whole body.
    assert 0 <= sent[0] < len(body)
    assert sent == sorted(sent)
    assert sent[-1] <= len(body)
    assert len(sent) >= len(body) // (64 * KiB)


async def test_a_peer_that_took_the_whole_body_gets_time_to_read_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server (or proxy) whose socket buffer swallows the body, then reads it slowly: nothing
    moves on this side, yet the answer is worth waiting for (emulator throttling does this)."""
    clear_proxies(monkeypatch)
    seen = Seen()
    body = bytes(192 * KiB)  # read in ~1.2 s; allowed 0.3 s + 192 KiB at 16 KiB/s
    async with (
        tcp_server(slow_reader(seen, piece=8 * KiB, every_s=0.05, rcvbuf=4 * 1024 * KiB), seen) as port,  # type: ignore[arg-type]
        RoostClient(token="owk_test_secret", api_url="https://api.test") as http,
    ):
        storage = StorageClient(http, stall_timeout_s=0.3)
        try:
            response = await storage.put(f"http://127.0.0.1:{port}/buffered", body)
        finally:
            await storage.aclose()
    assert response.status_code == 200
    assert len(seen.bodies[0]) == len(body)


async def test_a_body_that_stops_moving_fails_after_the_stall_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loopback acknowledges megabytes nobody reads, so the answer allowance for acknowledged bytes
    is shortened here (to 8 MiB/s) to keep the test short; the stall rule is what is tested."""
    clear_proxies(monkeypatch)
    monkeypatch.setattr(http11, "ACKED_BODY_FLOOR_BPS", 8 * 1024 * KiB)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def never_reads(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep(30)

    async with (
        anyio.create_task_group() as group,
        RoostClient(token="owk_test_secret", api_url="https://api.test") as http,
    ):
        group.start_soon(listener.serve, never_reads)
        storage = StorageClient(http, stall_timeout_s=0.3)
        try:
            with pytest.raises(httpx.TimeoutException):
                await storage.put(f"http://127.0.0.1:{port}/stuck", bytes(8 * 1024 * KiB))
        finally:
            await storage.aclose()
            group.cancel_scope.cancel()


async def test_lean_puts_are_paced_by_the_shared_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    seen = Seen()
    async with (
        tcp_server(answering(seen, OK), seen) as port,
        RoostClient(token="owk_test_secret", api_url="https://api.test") as http,
    ):
        storage = StorageClient(http, bandwidth_limit=10**9)
        try:
            small: list[int] = []
            await storage.put(f"http://127.0.0.1:{port}/a", b"tiny", on_sent=small.append)
            await storage.put(f"http://127.0.0.1:{port}/b", bytes(130 * KiB))
        finally:
            await storage.aclose()
    assert small == [4]
    assert storage.bucket is not None
    assert storage.bucket.granted == 4 + 130 * KiB  # every byte of both bodies went through it
    assert [len(b) for b in seen.bodies] == [4, 130 * KiB]


async def test_gets_run_as_wide_as_the_client_was_sized(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pull fetches many chunks at once: GETs must not queue behind a small default pool."""
    clear_proxies(monkeypatch)
    seen = Seen()
    everyone = anyio.Event()

    async def hold_until_all_arrived(stream: anyio.abc.SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        await read_request(reader, seen)
        if len(seen.heads) == 20:
            everyone.set()
        with anyio.move_on_after(5):
            await everyone.wait()
        await stream.send(OK)

    async with (
        tcp_server(hold_until_all_arrived, seen) as port,
        RoostClient(token="owk_test_secret", api_url="https://api.test") as http,
    ):
        storage = StorageClient(http, max_connections=32)
        bodies: list[bytes] = []

        async def fetch(i: int) -> None:
            async with storage.stream(f"http://127.0.0.1:{port}/chunk/{i}") as response:
                bodies.append(await response.aread())

        try:
            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(fetch, i)
        finally:
            await storage.aclose()
    assert everyone.is_set()  # all 20 were in flight together
    assert seen.peak_open == 20
    assert bodies == [b"ok"] * 20
    assert all(b"authorization" not in head.lower() for head in seen.heads)
