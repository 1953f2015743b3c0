"""Shared MockTransport harness for the resource tests.

``api.reply(method, path, ...)`` queues the next expected request and its response; every request
is recorded in ``api.calls`` (method, raw percent-encoded path, query, JSON body, headers) so the
tests can assert exactly what went on the wire.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from roost import Roost

API_URL = "https://api.test"
TOKEN = "owk_test_x"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Call:
    request: httpx.Request

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def path(self) -> str:
        """The path exactly as sent (still percent-encoded)."""
        return self.request.url.raw_path.decode("ascii").split("?", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(self.request.url.params.items())

    @property
    def query_multi(self) -> list[tuple[str, str]]:
        return list(self.request.url.params.multi_items())

    @property
    def body(self) -> Any:
        return json.loads(self.request.content) if self.request.content else None

    @property
    def headers(self) -> httpx.Headers:
        return self.request.headers

    @property
    def idempotency_key(self) -> str | None:
        value: str | None = self.request.headers.get("idempotency-key")
        return value


@dataclass
class Expected:
    method: str
    path: str
    response: httpx.Response


@dataclass
class MockApi:
    queue: list[Expected] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def reply(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content: bytes | str | None = None,
    ) -> None:
        if content is not None:
            response = httpx.Response(status, content=content, headers=headers)
        elif json_body is not None:
            response = httpx.Response(status, json=json_body, headers=headers)
        else:
            response = httpx.Response(status, headers=headers)
        self.queue.append(Expected(method, path, response))

    def problem(self, method: str, path: str, status: int, code: str, **extra: Any) -> None:
        request_id = extra.pop("requestId", f"req-{code}")
        body = {
            "type": f"https://owlette.app/problems/{code.replace('_', '-')}",
            "title": code.replace("_", " "),
            "status": status,
            "detail": f"{code} happened",
            "code": code,
            "docsUrl": f"https://owlette.app/docs/api/errors#{code}",
            "requestId": request_id,
            **extra,
        }
        self.reply(
            method,
            path,
            content=json.dumps(body),
            status=status,
            headers={"content-type": "application/problem+json; charset=utf-8", "x-request-id": request_id},
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        request.read()
        call = Call(request)
        self.calls.append(call)
        if not self.queue:
            raise AssertionError(f"unexpected request {call.method} {call.path}")
        expected = self.queue.pop(0)
        assert (call.method, call.path) == (expected.method, expected.path)
        return expected.response

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def client(self) -> Roost:
        return Roost(
            token=TOKEN, api_url=API_URL, transport=httpx.MockTransport(self.handler), sleep=self.sleep
        )

    @property
    def last(self) -> Call:
        return self.calls[-1]

    def assert_done(self) -> None:
        assert not self.queue, f"expected requests never sent: {[(e.method, e.path) for e in self.queue]}"


@pytest.fixture
def api() -> MockApi:
    return MockApi()


@pytest.fixture
async def client(api: MockApi) -> AsyncIterator[Roost]:
    async with api.client() as roost_client:
        yield roost_client
    api.assert_done()
