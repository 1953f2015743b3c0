"""Every error path the contract lists, surfaced through resource calls, and ``client.http``."""

from __future__ import annotations

import httpx
import pytest

import roost
from roost import (
    ApiResponse,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitError,
    Roost,
    RoostApiError,
    UnprocessableEntityError,
)

from .conftest import MockApi

pytestmark = pytest.mark.anyio

# (status, code, exception class) for every public code of api-contract section 8.1 that does not retry.
NON_RETRIED = [
    (401, "unauthorized", AuthenticationError),
    (401, "token_expired", AuthenticationError),
    (403, "forbidden", PermissionDeniedError),
    (403, "scope_insufficient", PermissionDeniedError),
    (404, "not_found", NotFoundError),
    (410, "not_found", NotFoundError),
    (404, "version_not_found", NotFoundError),
    (400, "validation_failed", BadRequestError),
    (400, "unsupported_version", BadRequestError),
    (400, "forbidden_field", BadRequestError),
    (400, "version_ref_malformed", BadRequestError),
    (400, "version_content_immutable", BadRequestError),
    (400, "idempotency_key_required", BadRequestError),
    (400, "idempotency_key_invalid", BadRequestError),
    (422, "idempotency_key_mismatch", UnprocessableEntityError),
    (409, "conflict", ConflictError),
    (400, "rollback_no_op", BadRequestError),
    (412, "precondition_failed", PreconditionFailedError),
    (412, "version_stale", PreconditionFailedError),
    (413, "payload_too_large", RoostApiError),
    (402, "quota_exceeded", RoostApiError),
    (409, "machine_offline", ConflictError),
    (423, "cortex_unavailable", RoostApiError),
]


@pytest.mark.parametrize(("status", "code", "cls"), NON_RETRIED)
async def test_error_codes_raise_typed_errors_without_retry(
    api: MockApi, client: Roost, status: int, code: str, cls: type[RoostApiError]
) -> None:
    api.problem("GET", "/api/roosts/rst_abcdefgh", status, code, requestId=f"rq-{code}")
    with pytest.raises(cls) as info:
        await client.roosts.get("rst_abcdefgh", site_id="site-1")
    err = info.value
    assert isinstance(err, RoostApiError)
    assert (err.status, err.code, err.request_id) == (status, code, f"rq-{code}")
    assert err.problem["docsUrl"] == f"https://owlette.app/docs/api/errors#{code}"
    assert str(err) == f"{code} happened"
    assert len(api.calls) == 1
    assert api.sleeps == []


async def test_unsupported_version_extensions(api: MockApi, client: Roost) -> None:
    api.problem("GET", "/api/roosts", 400, "unsupported_version", sent="1999-01-01", supported=["2026-04-22"])
    with pytest.raises(BadRequestError) as info:
        await client.roosts.list_page(site_id="site-1")
    assert info.value.problem["supported"] == ["2026-04-22"]


async def test_scope_insufficient_carries_required(api: MockApi, client: Roost) -> None:
    required = {"resource": "roost", "id": "rst_abcdefgh", "permission": "deploy"}
    api.problem("POST", "/api/roosts/rst_abcdefgh/deploy", 403, "scope_insufficient", required=required)
    with pytest.raises(PermissionDeniedError) as info:
        await client.roosts.deploy("rst_abcdefgh", roost.DeployOptions(site_id="site-1"))
    assert info.value.problem["required"] == required


async def test_rate_limited_is_retried_honouring_retry_after(api: MockApi, client: Roost) -> None:
    api.problem("POST", "/api/chunks/check", 429, "rate_limited", retryAfter=3)
    api.reply("POST", "/api/chunks/check", {"missing": []})
    assert await client.chunks.check("site-1", ["a" * 64]) == []
    assert api.sleeps == [3.0]
    first, second = api.calls
    assert first.idempotency_key == second.idempotency_key  # one key per logical call


@pytest.mark.parametrize(
    ("status", "code"), [(500, "internal_error"), (503, "service_unavailable"), (502, "bad_gateway")]
)
async def test_server_errors_are_retried_then_raise(
    api: MockApi, client: Roost, status: int, code: str
) -> None:
    for _ in range(5):
        api.problem("GET", "/api/sites", status, code)
    with pytest.raises(InternalServerError) as info:
        await client.sites.list()
    assert info.value.code == code
    assert len(api.calls) == 5
    assert len(api.sleeps) == 4


async def test_rate_limit_exhausted(api: MockApi, client: Roost) -> None:
    for _ in range(5):
        api.problem("GET", "/api/sites", 429, "rate_limited", retryAfter=1)
    with pytest.raises(RateLimitError):
        await client.sites.list()
    assert api.sleeps == [1.0, 1.0, 1.0, 1.0]


async def test_non_json_error_body(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/sites",
        content="<html>bad gateway</html>",
        status=404,
        headers={"content-type": "text/html", "x-request-id": "rq-html"},
    )
    with pytest.raises(NotFoundError) as info:
        await client.sites.list()
    assert info.value.code is None
    assert info.value.request_id == "rq-html"
    assert "bad gateway" in str(info.value)


async def test_http_escape_hatch(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/sites/site-1/quota", {"siteId": "site-1"}, headers={"RateLimit-Remaining": "599"})
    response = await client.http.request("/api/sites/site-1/quota", query={"x": True, "skip": None})
    assert isinstance(response, ApiResponse)
    assert response.status == 200
    assert response.data == {"siteId": "site-1"}
    assert response.headers["ratelimit-remaining"] == "599"
    assert api.last.query == {"x": "true"}

    api.reply("POST", "/api/custom", status=204)
    response = await client.http.request("/api/custom", method="POST", body={"a": 1}, idempotency_key="")
    assert response.data is None
    assert api.last.idempotency_key is None
    assert api.last.body == {"a": 1}


async def test_mock_transport_example_from_the_docs() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/sites"
        assert request.headers["authorization"].startswith("Bearer owk_")
        return httpx.Response(200, json={"sites": []})

    async with Roost(token="owk_test_doc", transport=httpx.MockTransport(handler)) as client:
        assert (await client.sites.list()) == []
