"""The storage client's small HTTP/1.1 transport, against scripted servers on loopback sockets."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.tls import TLSListener
from hypothesis import example, given, settings
from hypothesis import strategies as st

from roost import RoostClient
from roost._transport import StorageClient, http11
from roost._transport.http11 import LeanHttp11Transport, plain_target

pytestmark = pytest.mark.anyio

Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@dataclass
class Seen:
    heads: list[bytes] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    peak_open: int = 0


@asynccontextmanager
async def tcp_server(handle: Handler, seen: Seen) -> AsyncIterator[int]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def counted(stream: anyio.abc.SocketStream) -> None:
        seen.connections += 1
        seen.open_now += 1
        seen.peak_open = max(seen.peak_open, seen.open_now)
        try:
            async with stream:
                await handle(stream)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.IncompleteRead):
            pass
        finally:
            seen.open_now -= 1

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, counted)
        yield port
        group.cancel_scope.cancel()


async def read_request(reader: BufferedByteReceiveStream, seen: Seen) -> None:
    head = await reader.receive_until(b"\r\n\r\n", 65536)
    seen.heads.append(head)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    seen.bodies.append(await reader.receive_exactly(length) if length else b"")


def answering(seen: Seen, reply: bytes, *, requests: int = 1000, close_after: bool = False) -> Handler:
    async def handle(stream: anyio.abc.SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        for _ in range(requests):
            await read_request(reader, seen)
            await stream.send(reply)
            if close_after:
                return

    return handle


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: x\r\n\r\nok"


def client(max_connections: int = 4, timeout: float = 5.0) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanHttp11Transport(max_connections=max_connections), timeout=timeout)


async def test_puts_reuse_one_connection_and_send_exact_requests() -> None:
    seen = Seen()
    async with tcp_server(answering(seen, OK), seen) as port, client() as http:
        for i in range(5):
            response = await http.put(
                f"http://127.0.0.1:{port}/storage/a%2Fb/{i}?X-Sig=abc&n={i}",
                content=bytes([i]) * (i * 1000),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert response.status_code == 200
            assert response.content == b"ok"
            assert response.headers["etag"] == "x"
    assert seen.connections == 1
    assert seen.bodies == [bytes([i]) * (i * 1000) for i in range(5)]
    lines = seen.heads[3].split(b"\r\n")
    assert lines[0] == b"PUT /storage/a%2Fb/3?X-Sig=abc&n=3 HTTP/1.1"
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines[1:])}
    assert headers[b"host"] == f"127.0.0.1:{port}".encode()
    assert headers[b"content-length"] == b"3000"
    assert headers[b"content-type"] == b"application/octet-stream"
    assert b"authorization" not in headers


async def test_large_body_is_sent_whole() -> None:
    seen = Seen()
    data = bytes(range(256)) * (4 * 4096)  # 4 MiB
    async with tcp_server(answering(seen, OK), seen) as port, client() as http:
        response = await http.put(f"http://127.0.0.1:{port}/big", content=data)
    assert response.status_code == 200
    assert seen.bodies == [data]


async def test_chunked_response_body_is_decoded() -> None:
    seen = Seen()
    reply = (
        b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nContent-Type: application/xml\r\n\r\n"
        b"5;ext=1\r\n<Err>\r\n7\r\nExpired\r\n0\r\nX-Trailer: y\r\n\r\n"
    )
    async with tcp_server(answering(seen, reply), seen) as port, client() as http:
        first = await http.put(f"http://127.0.0.1:{port}/x", content=b"a")
        second = await http.put(f"http://127.0.0.1:{port}/x", content=b"b")
    assert first.status_code == second.status_code == 403
    assert first.text == "<Err>Expired"
    assert seen.connections == 1


async def test_close_delimited_body_and_connection_close() -> None:
    seen = Seen()
    reply = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\nboom"
    async with tcp_server(answering(seen, reply, close_after=True), seen) as port, client() as http:
        for _ in range(2):
            response = await http.put(f"http://127.0.0.1:{port}/x", content=b"a")
            assert response.status_code == 500
            assert response.content == b"boom"
    assert seen.connections == 2


async def test_informational_answers_are_skipped() -> None:
    seen = Seen()
    reply = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with tcp_server(answering(seen, reply), seen) as port, client() as http:
        response = await http.put(f"http://127.0.0.1:{port}/x", content=b"a")
    assert response.status_code == 200
    assert response.content == b"ok"


async def test_a_connection_the_server_closed_is_replaced_transparently() -> None:
    seen = Seen()
    async with tcp_server(answering(seen, OK, close_after=True), seen) as port, client() as http:
        for _ in range(3):  # each reuse finds the previous connection closed by the server
            response = await http.put(f"http://127.0.0.1:{port}/x", content=b"a")
            assert response.status_code == 200
    assert seen.connections == 3
    assert len(seen.bodies) == 3


async def test_at_most_max_connections_are_open() -> None:
    seen = Seen()

    async def slow(stream: anyio.abc.SocketStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        while True:
            await read_request(reader, seen)
            await anyio.sleep(0.02)
            await stream.send(OK)

    async def put(http: httpx.AsyncClient, url: str) -> None:
        assert (await http.put(url, content=b"a")).status_code == 200

    async with (
        tcp_server(slow, seen) as port,
        client(max_connections=3) as http,
        anyio.create_task_group() as group,
    ):
        for _ in range(12):
            group.start_soon(put, http, f"http://127.0.0.1:{port}/x")
    assert seen.peak_open == 3
    assert len(seen.bodies) == 12


async def test_read_timeout() -> None:
    seen = Seen()

    async def silent(stream: anyio.abc.SocketStream) -> None:
        await read_request(BufferedByteReceiveStream(stream), seen)
        await anyio.sleep(5)

    async with tcp_server(silent, seen) as port, client(timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.put(f"http://127.0.0.1:{port}/x", content=b"a")


async def test_connection_refused_is_a_connect_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.put(f"http://127.0.0.1:{port}/x", content=b"a")


@pytest.mark.parametrize(
    "reply",
    [
        b"SPDY/9 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    ],
)
async def test_malformed_answers_are_protocol_errors(reply: bytes) -> None:
    seen = Seen()
    async with tcp_server(answering(seen, reply), seen) as port, client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.put(f"http://127.0.0.1:{port}/x", content=b"a")


async def test_a_dropped_fresh_connection_is_a_read_error() -> None:
    seen = Seen()

    async def drop(stream: anyio.abc.SocketStream) -> None:
        await read_request(BufferedByteReceiveStream(stream), seen)
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    async with tcp_server(drop, seen) as port, client() as http:
        with pytest.raises(httpx.ReadError):
            await http.put(f"http://127.0.0.1:{port}/x", content=b"a")


async def test_unsupported_scheme() -> None:
    async with client() as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.put("ftp://example.test/x", content=b"a")


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


async def test_storage_client_uses_the_lean_transport_unless_a_proxy_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_proxies(monkeypatch)
    async with RoostClient(token="owk_test_secret", api_url="https://api.test") as http:
        storage = StorageClient(http, max_connections=64)
        assert storage.lean
        assert storage.clients == []
        await storage.aclose()
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
        storage = StorageClient(http, max_connections=64)
        assert not storage.lean
        assert len(storage.clients) == 8  # httpx pools of 8 connections
        for client in storage.clients:
            assert not {name.lower() for name in client.headers}  # no defaults, no API headers
        await storage.aclose()


async def test_storage_client_puts_send_three_headers_and_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_proxies(monkeypatch)
    seen = Seen()
    async with (
        tcp_server(answering(seen, OK), seen) as port,
        RoostClient(token="owk_test_secret", api_url="https://api.test") as http,
    ):
        storage = StorageClient(http, max_connections=4)
        try:
            response = await storage.put(f"http://127.0.0.1:{port}/storage/k?sig=1", b"chunk bytes")
        finally:
            await storage.aclose()
    assert response.status_code == 200
    assert response.content == b"ok"
    assert seen.bodies == [b"chunk bytes"]
    lines = seen.heads[0].split(b"\r\n")
    assert lines[0] == b"PUT /storage/k?sig=1 HTTP/1.1"
    assert sorted(line.split(b":", 1)[0].lower() for line in lines[1:]) == [
        b"content-length",
        b"content-type",
        b"host",
    ]


@asynccontextmanager
async def tls_server(handle: Handler, seen: Seen, context: ssl.SSLContext) -> AsyncIterator[int]:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener = TLSListener(tcp, context, standard_compatible=False)

    async def served(stream: anyio.abc.ByteStream) -> None:
        seen.connections += 1
        try:
            async with stream:
                await handle(stream)  # type: ignore[arg-type]
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.IncompleteRead, ssl.SSLError):
            pass

    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, served)
        yield port
        group.cancel_scope.cancel()


def localhost_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for localhost from a new CA, and a client context
    that trusts that CA (the default context does not)."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    return server_context, trusting


async def test_https_puts_verify_the_server_certificate(caplog: pytest.LogCaptureFixture) -> None:
    """Storage URLs are https in production: TLS with SNI, and verification stays on."""
    server_context, trusting = localhost_tls()
    seen = Seen()
    async with tls_server(answering(seen, OK), seen, server_context) as port:
        url = f"https://localhost:{port}/chunks/abc"
        async with httpx.AsyncClient(
            transport=LeanHttp11Transport(max_connections=2, ssl_context=trusting)
        ) as client:
            response = await client.put(url, content=b"chunk bytes")
            assert response.status_code == 200
            assert response.content == b"ok"
        assert seen.bodies == [b"chunk bytes"]
        assert seen.heads[0].startswith(b"PUT /chunks/abc HTTP/1.1\r\n")

        # The default context trusts the public CAs only: a certificate from an unknown CA fails.
        async with httpx.AsyncClient(transport=LeanHttp11Transport(max_connections=2)) as client:
            with pytest.raises(httpx.ConnectError):
                await client.put(url, content=b"chunk bytes")
        assert seen.bodies == [b"chunk bytes"]


_SIGNED = (
    "https://r2.example.com/project-content/site-1/ab/" + "ab" * 32 + "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=k%2F20261203%2Fauto%2Fs3%2Faws4_request&X-Amz-Date=20261203T161000Z"
    "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "cd" * 32
)
_URL_PIECES = st.sampled_from(
    [
        "a",
        "Z",
        "0",
        "-",
        ".",
        "_",
        "~",
        "%2F",
        "%zz",
        "%",
        "/",
        "?",
        "&",
        "=",
        "+",
        ":",
        "@",
        "!",
        "'",
        "(",
        ")",
        "*",
        ",",
        ";",
        "$",
        " ",
        '"',
        "#",
        "[",
        "]",
        "<",
        "|",
        "\\",
        "^",
        "`",
        "{",
        "é",
        "/./",
        "/../",
        "/.",
        "\n",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["http://", "https://", "HTTP://", "ftp://"]),
    st.sampled_from(
        ["127.0.0.1", "r2.example.com", "R2.example.com", "[::1]", "xn--bcher-kva.example", "a_b"]
    ),
    st.sampled_from(["", ":80", ":443", ":8080", ":0", ":99999", ":"]),
    st.lists(_URL_PIECES, max_size=12).map("".join),
)
@example("https://", "r2.example.com", "", "/" + _SIGNED.split("/", 3)[3])
def test_a_plain_target_is_what_httpx_would_send(scheme: str, host: str, port: str, rest: str) -> None:
    url = f"{scheme}{host}{port}/{rest}"
    parts = plain_target(url)
    if parts is None:
        return
    parsed = httpx.URL(url)
    origin, target, netloc = parts
    assert origin == (parsed.scheme, parsed.host, parsed.port or {"http": 80, "https": 443}[parsed.scheme])
    assert target == parsed.raw_path
    assert netloc == parsed.netloc


def test_a_signed_url_is_plain_and_odd_ones_are_not() -> None:
    assert plain_target(_SIGNED) is not None
    assert plain_target(_SIGNED.replace("https://", "http://").replace(".com/", ".com:9000/")) is not None
    for odd in (
        _SIGNED.replace("r2.", "R2."),  # httpx lower-cases the host
        _SIGNED.replace(".com/", ".com:443/"),  # and drops a default port
        _SIGNED + " ",
        _SIGNED + "#frag",
        _SIGNED.replace("%2F", "%2"),
        "https://user:pw@r2.example.com/x",
        "https://[::1]/x",
        "https://r2.example.com/a/../x",
        "https://r2.example.com",
    ):
        assert plain_target(odd) is None, odd


async def test_a_plain_put_sends_the_bytes_an_httpx_request_would() -> None:
    seen = Seen()
    async with tcp_server(answering(seen, OK), seen) as port:
        transport = LeanHttp11Transport(max_connections=1)
        try:
            for url in (
                f"http://127.0.0.1:{port}/storage/a%2Fb/1?X-Sig=ab&n=1",
                f"http://127.0.0.1:{port}/s/x y",
            ):
                plain = await transport.put(url, b"body", b"application/octet-stream", {})
                request = httpx.Request(
                    "PUT", url, content=b"body", headers={"Content-Type": "application/octet-stream"}
                )
                through = await transport.handle_async_request(request)
                assert plain.status_code == through.status_code == 200
                assert await plain.aread() == b"ok"
        finally:
            await transport.aclose()
    assert plain_target(f"http://127.0.0.1:{port}/storage/a%2Fb/1?X-Sig=ab&n=1") is not None
    assert seen.heads[0] == seen.heads[1]  # the plain path
    assert seen.heads[2] == seen.heads[3]  # a URL httpx re-encodes: through httpx.Request
    assert seen.heads[2].startswith(b"PUT /s/x%20y HTTP/1.1")
    assert seen.bodies == [b"body"] * 4


async def test_a_plain_https_put_verifies_the_server_certificate() -> None:
    server_context, trusting = localhost_tls()
    seen = Seen()
    async with tls_server(answering(seen, OK), seen, server_context) as port:
        url = f"https://localhost:{port}/chunks/abc?sig=1"
        assert plain_target(url) is not None
        trusted = LeanHttp11Transport(max_connections=1, ssl_context=trusting)
        default = LeanHttp11Transport(max_connections=1)
        try:
            response = await trusted.put(url, b"chunk bytes", b"application/octet-stream", {})
            assert response.status_code == 200
            with pytest.raises(httpx.ConnectError):  # the public CAs only, by default
                await default.put(url, b"chunk bytes", b"application/octet-stream", {})
        finally:
            await trusted.aclose()
            await default.aclose()
    assert seen.bodies == [b"chunk bytes"]
    assert seen.heads[0].startswith(b"PUT /chunks/abc?sig=1 HTTP/1.1\r\nHost: localhost:")


class _RecordingStream:
    """A byte stream that takes every send at once, whose peer always keeps up."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    async def send(self, item: bytes) -> None:
        self.sent.append(len(item))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        raise anyio.EndOfStream


async def test_a_connection_starts_its_next_body_no_larger_than_a_start_piece(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _RecordingStream()
    connection = http11._Connection(stream)  # type: ignore[arg-type]
    monkeypatch.setattr(connection, "send_queue", lambda: lambda: 0)  # nothing ever queued
    body = bytes(http11.PIECE_BYTES)
    await http11._send_request(connection, b"HEAD", body, None, {})
    assert connection.step == http11.PIECE_BYTES  # grew while the peer kept up
    stream.sent.clear()
    await http11._send_request(connection, b"HEAD", body, None, {})
    # the link may have slowed since: the first piece is no larger than a start piece
    assert stream.sent[1] == http11.START_PIECE_BYTES
    assert sum(stream.sent[1:]) == len(body)
    assert max(stream.sent[1:]) > http11.START_PIECE_BYTES  # and it grows again from there
