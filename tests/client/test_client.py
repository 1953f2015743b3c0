"""The client core: headers, idempotency, retries, error mapping, encoding, redaction."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from roost import (
    AuthenticationError,
    InternalServerError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitError,
    RetryPolicy,
    Roost,
    RoostApiError,
    RoostClient,
)
from roost._wire import api_path
from roost.client import DEFAULT_API_URL, DEFAULT_ROOST_VERSION, SDK_VERSION, parse_retry_after_header

pytestmark = pytest.mark.anyio

TOKEN = "owk_test_SECRETSECRETSECRET"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def problem(status: int, code: str, **extra: object) -> httpx.Response:
    body = {"type": f"https://owlette.app/problems/{code}", "title": code, "status": status, "code": code}
    body.update(extra)
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def make_client(handler: Handler, sleep: FakeSleep | None = None, **kwargs: object) -> Roost:
    return Roost(
        token=TOKEN,
        api_url="https://api.test/",
        transport=httpx.MockTransport(handler),
        sleep=sleep or FakeSleep(),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_default_headers_on_every_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"sites": []})

    async with make_client(handler) as client:
        assert await client.sites.list() == []
        await client.http.request("/api/x", method="POST", body={"a": 1})
    for request in seen:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["accept"] == "application/json"
        assert request.headers["roost-version"] == DEFAULT_ROOST_VERSION
        assert request.headers["user-agent"] == f"owlette-sdk-python/{SDK_VERSION}"
        assert str(request.url).startswith("https://api.test/api/")
    assert seen[1].headers["content-type"] == "application/json"
    assert json.loads(seen[1].content) == {"a": 1}


async def test_constructor_validation_and_defaults() -> None:
    with pytest.raises(ValueError, match="token"):
        Roost(token="")
    with pytest.raises(ValueError, match="token"):
        RoostClient(token=None)  # type: ignore[arg-type]
    client = RoostClient(token=TOKEN)
    assert client.api_url == DEFAULT_API_URL
    assert client.retry == RetryPolicy()
    await client.close()
    await client.close()  # idempotent
    assert client.closed


async def test_get_carries_no_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with make_client(handler) as client:
        await client.http.request("/api/whoami")
    assert "idempotency-key" not in seen[0].headers


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
async def test_same_idempotency_key_across_retries(method: str) -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) < 3:
            return problem(503, "service_unavailable")
        return httpx.Response(200, json={"ok": True})

    async with make_client(handler) as client:
        response = await client.http.request("/api/thing", method=method, body={})
    assert response.data == {"ok": True}
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert keys[0].startswith("py-sdk-")


async def test_each_logical_call_gets_a_fresh_key_and_caller_key_wins() -> None:
    keys: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers.get("idempotency-key"))
        return httpx.Response(200, json={})

    async with make_client(handler) as client:
        await client.http.request("/a", method="POST")
        await client.http.request("/a", method="POST")
        await client.http.request("/a", method="POST", idempotency_key="mine")
        await client.http.request("/a", method="POST", headers={"Idempotency-Key": "from-header"})
        await client.http.request("/a", method="POST", idempotency_key="")
    assert keys[0] != keys[1]
    assert keys[2:] == ["mine", "from-header", None]


async def test_retry_counts_and_exponential_delays() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return problem(500, "internal_error", requestId="req-1")

    sleep = FakeSleep()
    async with make_client(handler, sleep, retry=RetryPolicy(max_attempts=4, jitter=0)) as client:
        with pytest.raises(InternalServerError) as info:
            await client.http.request("/api/x")
    assert calls == 4
    assert sleep.delays == [0.25, 0.5, 1.0]
    assert info.value.status == 500
    assert info.value.request_id == "req-1"


async def test_delays_are_jittered_within_bounds_and_capped() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, jitter=0.25)
    for attempt in range(6):
        nominal = min(4.0, 2.0**attempt)
        for _ in range(50):
            assert nominal * 0.75 <= policy.delay_for(attempt) <= nominal * 1.25


async def test_transport_errors_are_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("boom", request=request)
        return httpx.Response(200, json={"current": "2026-04-22", "supported": ["2026-04-22"]})

    async with make_client(handler) as client:
        version = await client.account.version()
    assert calls == 2
    assert version.current == "2026-04-22"


async def test_retry_after_from_body_wins_and_is_capped() -> None:
    statuses = iter(
        [problem(429, "rate_limited", retryAfter=3), problem(429, "rate_limited", retryAfter=999)]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(statuses, httpx.Response(200, json={}))

    sleep = FakeSleep()
    async with make_client(handler, sleep) as client:
        await client.http.request("/api/x")
    assert sleep.delays == [3.0, 16.0]


async def test_retry_after_header_seconds_and_http_date() -> None:
    future = email.utils.formatdate(time.time() + 5, usegmt=True)
    responses = iter(
        [
            httpx.Response(429, text="slow down", headers={"Retry-After": "2"}),
            httpx.Response(503, text="maintenance", headers={"Retry-After": future}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return next(responses, httpx.Response(200, json={}))

    sleep = FakeSleep()
    async with make_client(handler, sleep) as client:
        await client.http.request("/api/x")
    assert sleep.delays[0] == 2.0
    assert 3.0 <= sleep.delays[1] <= 5.0


def test_parse_retry_after_header() -> None:
    assert parse_retry_after_header("7") == 7.0
    assert parse_retry_after_header("0") is None
    assert parse_retry_after_header("soon") is None
    assert parse_retry_after_header("") is None
    assert parse_retry_after_header("Wed, 21 Oct 2015 07:28:00 GMT") is None  # in the past
    when = email.utils.formatdate(1_000_060, usegmt=True)
    assert parse_retry_after_header(when, now=1_000_000) == pytest.approx(60)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 422])
async def test_other_4xx_are_never_retried(status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return problem(status, "nope")

    sleep = FakeSleep()
    async with make_client(handler, sleep) as client:
        with pytest.raises(RoostApiError) as info:
            await client.http.request("/api/x", method="POST")
    assert calls == 1
    assert sleep.delays == []
    assert info.value.status == status


async def test_no_retry_is_single_shot() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return problem(503, "service_unavailable")

    async with make_client(handler) as client:
        with pytest.raises(RoostApiError):
            await client.http.request("/api/x", method="POST", no_retry=True)
    assert calls == 1


async def test_problem_json_maps_to_typed_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("missing"):
            return problem(404, "not_found", detail="roost not found", requestId="rid-404")
        if request.url.path.endswith("stale"):
            return problem(412, "version_stale", detail="head moved")
        return problem(401, "token_expired", title="token expired")

    async with make_client(handler) as client:
        with pytest.raises(NotFoundError) as not_found:
            await client.http.request("/api/missing")
        with pytest.raises(PreconditionFailedError) as stale:
            await client.http.request("/api/stale")
        with pytest.raises(AuthenticationError) as expired:
            await client.http.request("/api/other")
    assert str(not_found.value) == "roost not found"
    assert not_found.value.code == "not_found"
    assert not_found.value.request_id == "rid-404"
    assert not_found.value.problem["detail"] == "roost not found"
    assert stale.value.code == "version_stale"
    assert str(expired.value) == "token expired"
    assert isinstance(expired.value, RoostApiError)
    assert repr(not_found.value) == "NotFoundError(status=404, code='not_found', request_id='rid-404')"


async def test_request_id_falls_back_to_header_and_non_json_bodies_are_useful() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("html"):
            return httpx.Response(
                502,
                text="<html>Bad gateway</html>",
                headers={"X-Request-Id": "hdr-1", "content-type": "text/html"},
            )
        if request.url.path.endswith("array"):
            return httpx.Response(400, json=[1, 2])
        return httpx.Response(418, content=b"")

    async with make_client(handler, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(RoostApiError) as html:
            await client.http.request("/html")
        with pytest.raises(RoostApiError) as array:
            await client.http.request("/array")
        with pytest.raises(RoostApiError) as empty:
            await client.http.request("/empty")
    assert html.value.request_id == "hdr-1"
    assert "Bad gateway" in str(html.value)
    assert str(array.value) == "[1, 2]"
    assert empty.value.status == 418
    assert "418" in str(empty.value)


async def test_rate_limit_error_type() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return problem(429, "rate_limited", retryAfter=1)

    async with make_client(handler, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(RateLimitError) as info:
            await client.http.request("/api/x")
    assert info.value.retry_after == 1.0


async def test_response_decoding() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/empty":
            return httpx.Response(204)
        if path == "/text":
            return httpx.Response(200, text="plain words", headers={"X-Thing": "v"})
        if path == "/redirect":
            return httpx.Response(302, headers={"Location": "/elsewhere"})
        return httpx.Response(200, content=b'{"a": 1}', headers={"content-type": "text/plain"})

    async with make_client(handler) as client:
        assert (await client.http.request("/empty")).data is None
        text = await client.http.request("/text")
        assert text.data == "plain words"
        assert text.headers["x-thing"] == "v"
        assert (await client.http.request("/sniffed")).data == {"a": 1}
        assert (await client.http.request("/redirect")).status == 302


async def test_query_encoding_drops_none_and_lowercases_booleans() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with make_client(handler) as client:
        await client.http.request(
            "/api/roosts",
            query={"siteId": "site 1", "includeDeleted": True, "x": False, "gone": None, "n": 3},
        )
    params = seen[0].url.params
    assert params["siteId"] == "site 1"
    assert params["includeDeleted"] == "true"
    assert params["x"] == "false"
    assert params["n"] == "3"
    assert "gone" not in params


async def test_path_segments_are_percent_encoded_on_the_wire() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    async with make_client(handler) as client:
        await client.http.request(api_path("api", "roosts", "rst_abcdefgh", "versions", "#3"))
        await client.http.request(api_path("api", "x", "a/b?c d"))
    assert seen[0].url.raw_path == b"/api/roosts/rst_abcdefgh/versions/%233"
    assert seen[1].url.raw_path == b"/api/x/a%2Fb%3Fc%20d"
    with pytest.raises(ValueError, match="empty path segment"):
        api_path("api", "")


async def test_token_never_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return problem(403, "scope_insufficient", detail="nope", requestId="r-9")

    caplog.set_level(logging.DEBUG, logger="roost")
    async with make_client(handler) as client:
        assert TOKEN not in repr(client)
        assert TOKEN not in repr(client.http)
        with pytest.raises(RoostApiError) as info:
            await client.http.request("/api/x")
    rendered = [str(info.value), repr(info.value), repr(info.value.problem), caplog.text]
    assert all(TOKEN not in text for text in rendered)
    assert "GET https://api.test/api/x -> 403 (attempt 1, request id r-9)" in caplog.text


async def test_roost_resources_and_factories() -> None:
    async with make_client(lambda r: httpx.Response(200, json={})) as client:
        assert client.account is client.account
        for name in [
            "account",
            "roosts",
            "chunks",
            "versions",
            "deployments",
            "keys",
            "webhooks",
            "sites",
            "machines",
            "installer_deployments",
            "installer",
            "chat",
            "users",
            "quotas",
        ]:
            assert getattr(client, name) is not None
        processes = client.processes("site-1", "machine-1")
        assert (processes.site_id, processes.machine_id) == ("site-1", "machine-1")
        assert client.processes("site-1", "machine-1") is not processes
        assert client.members("site-1").site_id == "site-1"
        assert isinstance(client.http, RoostClient)


async def test_whoami_and_version_are_typed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/whoami":
            return httpx.Response(
                200,
                json={
                    "userId": "u1",
                    "email": "a@b.c",
                    "role": "admin",
                    "key": {"keyId": "k1", "keyPrefix": "owk_test_abcdef", "scopes": None, "isLegacy": True},
                    "rateLimit": {"tier": "api"},
                    "quota": None,
                    "primarySiteId": "site-1",
                    "unknownField": 1,
                },
            )
        return httpx.Response(200, json={"current": "2026-04-22", "supported": ["2026-04-22"]})

    async with make_client(handler) as client:
        identity = await client.account.whoami()
        version = await client.account.version()
    assert identity.primary_site_id == "site-1"
    assert identity.key is not None
    assert identity.key.key_prefix == "owk_test_abcdef"
    assert identity.key.is_legacy
    assert identity.quota is None
    assert version.supported == ["2026-04-22"]
    assert version.deprecated == []


def test_public_module_paths() -> None:
    import roost
    import roost.client

    for name in ("ApiResponse", "RetryPolicy", "RoostApiError", "RoostClient"):
        assert getattr(roost.client, name) is getattr(roost, name)
    assert roost.client.DEFAULT_API_URL == "https://owlette.app"
    assert roost.__version__ == SDK_VERSION == "1.0.0rc0"


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
