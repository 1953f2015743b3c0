"""The storage client on a custom transport, the one retry policy, and RoostConnectionError."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import RetryPolicy, Roost, RoostApiError, RoostClient, RoostConnectionError, RoostError
from roost._transport import StorageClient, check_transfer_options, parse_http_date
from roost._transport.retry import is_retryable_status

pytestmark = pytest.mark.anyio

API = "https://api.test"
TOKEN = "owk_test_secret-token"
NO_WAIT = RetryPolicy(base_delay_s=0.0, max_delay_s=0.0, jitter=0.0)


class Recorder(httpx.AsyncBaseTransport):
    """API and storage in one transport; the API answers set a cookie; counts aclose calls."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.closed = 0
        self.shot_status = 200
        self.storage_refuses = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        path = request.url.path
        if request.url.host == "storage.test":
            if self.storage_refuses:
                raise httpx.ConnectError("connection refused", request=request)
            if request.method == "GET":
                if self.shot_status == 302:
                    return httpx.Response(302, headers={"location": f"{API}/api/whoami"})
                return httpx.Response(self.shot_status, content=b"\x89PNG image")
            return httpx.Response(200, headers={"set-cookie": "storage=1; Path=/"})
        cookie = {"set-cookie": "session=api-secret; Path=/"}
        if path == "/api/installer/upload" and request.method == "POST":
            body = {"uploadUrl": "https://storage.test/put/inst?X-Sig=s3cr3t", "uploadId": "up-1"}
            return httpx.Response(200, json=body, headers=cookie)
        if path == "/api/installer/upload" and request.method == "PUT":
            return httpx.Response(200, json={"version": "2.0.0", "file_size": 3}, headers=cookie)
        if path.endswith("/commands") and request.method == "POST":
            return httpx.Response(
                200, json={"data": {"commandId": "cmd_1", "status": "pending"}}, headers=cookie
            )
        if "/commands/" in path:
            result = {"screenshot_url": "https://storage.test/shot.png?X-Sig=s3cr3t"}
            done = {"data": {"status": "completed", "result": result}}
            return httpx.Response(200, json=done, headers=cookie)
        return httpx.Response(404, json={"code": "not_found"})

    async def aclose(self) -> None:
        self.closed += 1

    def storage(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == "storage.test"]


async def installer_and_screenshot(session: Roost, tmp_path: Path) -> bytes:
    binary = tmp_path / "Owlette-Installer-2.0.0.exe"
    binary.write_bytes(b"MZ!")
    await session.installer.upload(binary, version="2.0.0")
    return await session.machines.capture_screenshot("site-1", "m-1")


async def test_resources_share_but_never_close_the_callers_transport(tmp_path: Path) -> None:
    transport = Recorder()
    async with Roost(token=TOKEN, api_url=API, transport=transport, retry=NO_WAIT) as session:
        assert await installer_and_screenshot(session, tmp_path) == b"\x89PNG image"
        assert transport.closed == 0  # the installer and screenshot storage clients left it open
        await installer_and_screenshot(session, tmp_path)  # and the API client still works on it
    assert transport.closed == 1
    storage = transport.storage()
    assert [r.method for r in storage] == ["PUT", "GET", "PUT", "GET"]
    for request in storage:
        assert {"authorization", "roost-version", "cookie", "idempotency-key"}.isdisjoint(request.headers)
    assert storage[0].content == b"MZ!"
    assert storage[0].headers["content-length"] == "3"
    api = [r for r in transport.requests if r.url.host == "api.test"]
    assert "session=api-secret" in api[-1].headers.get("cookie", "")  # the API jar did take it


async def test_a_storage_redirect_is_not_followed(tmp_path: Path) -> None:
    transport = Recorder()
    transport.shot_status = 302
    async with Roost(token=TOKEN, api_url=API, transport=transport, retry=NO_WAIT) as session:
        with pytest.raises(RuntimeError, match="HTTP 302"):
            await session.machines.capture_screenshot("site-1", "m-1")
    assert [r.url.host for r in transport.requests].count("storage.test") == 1


async def test_unreachable_storage_is_a_connection_error_without_the_signature(tmp_path: Path) -> None:
    transport = Recorder()
    transport.storage_refuses = True
    async with Roost(token=TOKEN, api_url=API, transport=transport, retry=NO_WAIT) as session:
        with pytest.raises(RoostConnectionError) as info:
            await installer_and_screenshot(session, tmp_path)
    error = info.value
    assert isinstance(error, httpx.TransportError)
    assert isinstance(error, RoostError)
    assert error.url == "https://storage.test/put/inst"
    assert "s3cr3t" not in str(error)
    assert TOKEN not in str(error)
    assert isinstance(error.__cause__, httpx.ConnectError)


async def test_unreachable_api_is_a_connection_error_after_the_retries() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    async with RoostClient(
        token=TOKEN, api_url=API, transport=httpx.MockTransport(refuse), retry=NO_WAIT
    ) as http:
        with pytest.raises(
            RoostConnectionError, match=r"could not reach https://api\.test/api/sites"
        ) as info:
            await http.request("/api/sites", query={"page_token": "abc"})
        assert len(calls) == 5
        assert info.value.url == "https://api.test/api/sites"
        assert TOKEN not in str(info.value)
        with pytest.raises(httpx.TransportError):  # handlers written for httpx keep working
            await http.request("/api/sites", no_retry=True)
        with pytest.raises(RoostConnectionError):
            async with http.stream("/api/chat"):
                pass
    restored = pickle.loads(pickle.dumps(info.value))
    assert (type(restored), restored.url, str(restored)) == (
        RoostConnectionError,
        info.value.url,
        str(info.value),
    )


async def test_retry_after_header_is_a_declared_field_that_survives_pickling() -> None:
    answers = [
        httpx.Response(503, json={"code": "unavailable"}, headers={"retry-after": "0.01"}),
        httpx.Response(200, json={"ok": True}),
    ]
    async with RoostClient(
        token=TOKEN, api_url=API, transport=httpx.MockTransport(lambda r: answers.pop(0))
    ) as http:
        assert (await http.request("/api/x")).data == {"ok": True}
    error = RoostApiError(429, {"code": "rate_limited"}, retry_after_header="7")
    assert error.retry_after_header == "7"
    assert RetryPolicy(jitter=0.0).delay_for(0, error) == 7.0
    assert pickle.loads(pickle.dumps(error)).retry_after_header == "7"


def test_one_retryable_set_and_one_date_parser() -> None:
    assert [s for s in (400, 401, 403, 404, 408, 409, 412, 425, 429, 500, 503) if is_retryable_status(s)] == [
        408,
        425,
        429,
        500,
        503,
    ]
    assert parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT") == 1445412480.0
    assert parse_http_date("not a date") is None
    assert parse_http_date(None) is None
    policy = RetryPolicy(jitter=0.0, base_delay_s=1.0, max_delay_s=4.0)
    hinted = httpx.Response(429, headers={"retry-after": "3"})
    assert policy.delay_for_response(0, hinted) == 3.0
    assert policy.delay_for_response(3, httpx.Response(500, headers={"retry-after": "3"})) == 4.0
    assert policy.delay_for_response(1, None) == 2.0


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("bandwidth_limit", 0, ">= 1"),
        ("bandwidth_limit", 1.5, "integer"),
        ("bandwidth_limit", True, "integer"),
        ("stall_timeout_s", 0, "> 0"),
        ("stall_timeout_s", float("inf"), "finite"),
        ("stall_timeout_s", "60", "number"),
    ],
)
def test_transfer_options_are_checked_naming_field_rule_and_value(field: str, value: Any, rule: str) -> None:
    options: dict[str, Any] = {"bandwidth_limit": None, "stall_timeout_s": 60.0, field: value}
    with pytest.raises(ValueError, match=rf"PushOptions\.{field} must .*{rule}.*got {value!r}"):
        check_transfer_options(**options)


async def test_storage_put_through_a_custom_transport_sends_paced_pieces_and_reports_them() -> None:
    bodies: list[bytes] = []

    async def store(request: httpx.Request) -> httpx.Response:
        bodies.append(await request.aread())
        return httpx.Response(200)

    async with RoostClient(token=TOKEN, api_url=API, transport=httpx.MockTransport(store)) as http:
        storage = StorageClient(http, bandwidth_limit=10**9)
        sent: list[int] = []
        data = bytes(200 * 1024)
        response = await storage.put("https://storage.test/c", data, on_sent=sent.append)
        await storage.aclose()
    assert response.status_code == 200
    assert bodies == [data]
    assert sent == [65536, 131072, 196608, 204800]
    assert storage.bucket is not None
    assert storage.bucket.granted == len(data)
