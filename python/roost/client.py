"""The low-level HTTP client every resource goes through (``client.http``).

It owns the auth headers, the Idempotency-Key rule, retries with backoff, problem+json error
mapping and DEBUG logging. It knows no resource.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx

from ._errors import RoostApiError, RoostConnectionError, error_for_status
from ._transport.retry import RetryPolicy, parse_retry_after_header
from ._version import SDK_VERSION

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_ROOST_VERSION",
    "SDK_VERSION",
    "ApiResponse",
    "Environment",
    "HttpMethod",
    "RetryPolicy",
    "RoostApiError",
    "RoostClient",
    "RoostConnectionError",
    "parse_retry_after_header",
]

DEFAULT_API_URL = "https://owlette.app"
DEFAULT_ROOST_VERSION = "2026-04-22"
USER_AGENT = f"owlette-sdk-python/{SDK_VERSION}"

Environment = Literal["live", "test"]
HttpMethod = Literal["GET", "POST", "PATCH", "PUT", "DELETE"]

MUTATING_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
IDEMPOTENCY_HEADER = "Idempotency-Key"

logger = logging.getLogger("roost")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class ApiResponse:
    """A decoded API response: status, JSON (or text, or ``None`` when empty) and lower-cased headers."""

    status: int
    data: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JsonText:
    """A request body already encoded as JSON, sent as it is (a 20,000-file version manifest is
    formatted directly, several times faster than ``json.dumps`` of its dicts)."""

    text: str


def _json_content(body: Any) -> str | None:
    if body is None:
        return None
    if isinstance(body, JsonText):
        return body.text
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def new_idempotency_key(prefix: str = "py-sdk-") -> str:
    return f"{prefix}{uuid.uuid4()}"


def _encode_query(query: Mapping[str, Any] | None) -> list[tuple[str, str | int | float | bool | None]]:
    pairs: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in (query or {}).items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            pairs.append((key, ("true" if item else "false") if isinstance(item, bool) else str(item)))
    return pairs


def _decode_body(response: httpx.Response) -> Any:
    content = response.content
    if not content:
        return None
    content_type = response.headers.get("content-type", "")
    stripped = content.lstrip()
    if "json" in content_type or stripped[:1] in (b"{", b"["):
        try:
            return json.loads(content)
        except ValueError:
            pass
    return response.text


def problem_from_body(data: Any) -> dict[str, Any]:
    """The problem+json dict of an error body; anything else becomes ``{"detail": <text>}``."""
    if isinstance(data, dict):
        return data
    if data is None:
        return {}
    text = data if isinstance(data, str) else json.dumps(data)
    return {"detail": text.strip()[:2000]}


def api_error_from_response(response: httpx.Response, data: Any) -> RoostApiError:
    problem = problem_from_body(data)
    if not problem.get("detail") and not problem.get("title"):
        problem.setdefault("title", f"http {response.status_code} {response.reason_phrase}".strip())
    return error_for_status(
        response.status_code,
        problem,
        request_id=response.headers.get("x-request-id"),
        retry_after_header=response.headers.get("retry-after"),
    )


class RoostClient:
    """Authenticated HTTP access to the Owlette API (``client.http``)."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        roost_version: str = DEFAULT_ROOST_VERSION,
        environment: Environment | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 30.0,
        sleep: Sleep | None = None,
    ) -> None:
        if not isinstance(token, str) or not token.strip():
            raise ValueError(
                "RoostClient: token must be a non-empty string (an owk_live_* or owk_test_* key)"
            )
        if not isinstance(api_url, str) or not api_url.strip():
            raise ValueError("RoostClient: api_url must be a non-empty URL")
        self.api_url = api_url.strip().rstrip("/")
        self.roost_version = roost_version
        self.environment = environment
        self.retry = retry if retry is not None else RetryPolicy()
        self.timeout = timeout
        self._sleep: Sleep = sleep if sleep is not None else anyio.sleep
        self._transport = transport
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Roost-Version": roost_version,
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"RoostClient(api_url={self.api_url!r}, roost_version={self.roost_version!r}, token='***')"

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """The custom transport passed to the constructor, if any (the push storage client reuses it)."""
        return self._transport

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Release the connection pool. Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        await self._http.aclose()

    async def __aenter__(self) -> RoostClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _request_headers(
        self, method: str, idempotency_key: str | None, headers: Mapping[str, str] | None, key_prefix: str
    ) -> dict[str, str]:
        merged = dict(headers or {})
        if method in MUTATING_METHODS and idempotency_key != "":
            has_header = any(name.lower() == IDEMPOTENCY_HEADER.lower() for name in merged)
            if not has_header:
                merged[IDEMPOTENCY_HEADER] = idempotency_key or new_idempotency_key(key_prefix)
        return merged

    async def request(
        self,
        path: str,
        *,
        method: HttpMethod | str = "GET",
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        no_retry: bool = False,
        key_prefix: str = "py-sdk-",
    ) -> ApiResponse:
        """Send one logical API call, retrying it per :class:`RetryPolicy`.

        ``path`` is relative to ``api_url`` and must already be percent-encoded (the resources
        build it with :func:`roost._wire.api_path`). Mutating methods get one Idempotency-Key,
        generated once and reused by every retry; ``idempotency_key=""`` sends none.
        """
        method = method.upper()
        request_headers = self._request_headers(method, idempotency_key, headers, key_prefix)
        params = _encode_query(query)
        content = _json_content(body)
        if content is not None:
            request_headers.setdefault("Content-Type", "application/json")
        attempts = 1 if no_retry else self.retry.max_attempts
        for attempt in range(attempts):
            try:
                return await self._send_once(method, path, params, content, request_headers, attempt)
            except (RoostApiError, httpx.TransportError) as error:
                if attempt + 1 >= attempts or not self.retry.is_retryable(error):
                    if isinstance(error, httpx.TransportError):
                        raise self._unreachable(path, error) from error
                    raise
                delay = self.retry.delay_for(attempt, error)
                logger.debug("retrying %s %s in %.2fs after %s", method, path, delay, _describe(error))
                await self._sleep(delay)
        raise AssertionError("unreachable: the retry loop returns or raises")

    async def _send_once(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str | int | float | bool | None]],
        content: str | None,
        headers: dict[str, str],
        attempt: int,
    ) -> ApiResponse:
        response = await self._http.request(
            method,
            path,
            params=params,
            content=content.encode() if content is not None else None,
            headers=headers,
        )
        data = _decode_body(response)
        error = api_error_from_response(response, data) if response.status_code >= 400 else None
        logger.debug(
            "%s %s -> %s (attempt %d, request id %s)",
            method,
            response.request.url,
            response.status_code,
            attempt + 1,
            error.request_id if error is not None else response.headers.get("x-request-id"),
        )
        if error is not None:
            raise error
        return ApiResponse(
            status=response.status_code,
            data=data,
            headers={name.lower(): value for name, value in response.headers.items()},
        )

    def _unreachable(self, path: str, error: httpx.TransportError) -> RoostConnectionError:
        if isinstance(error, RoostConnectionError):
            return error
        request: httpx.Request | None
        try:
            request = error.request
        except RuntimeError:  # raised before the request was built
            request = None
        url = str(request.url) if request is not None else self.api_url + path
        return RoostConnectionError(url, f"{type(error).__name__}: {error}", request=request)

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        method: HttpMethod | str = "POST",
        body: Any = None,
        idempotency_key: str | None = None,
        key_prefix: str = "py-sdk-",
    ) -> AsyncIterator[httpx.Response]:
        """Open a streamed response (no retries: a stream cannot be replayed).

        An error status is read fully and raised as :class:`RoostApiError` before yielding.
        """
        method = method.upper()
        headers = self._request_headers(method, idempotency_key, None, key_prefix)
        text = _json_content(body)
        content = None if text is None else text.encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(method, path, content=content, headers=headers)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as error:
            raise self._unreachable(path, error) from error
        try:
            logger.debug(
                "%s %s -> %s (stream, request id %s)",
                method,
                response.request.url,
                response.status_code,
                response.headers.get("x-request-id"),
            )
            if response.status_code >= 400:
                await response.aread()
                raise api_error_from_response(response, _decode_body(response))
            yield response
        finally:
            await response.aclose()


def _describe(error: BaseException) -> str:
    if isinstance(error, RoostApiError):
        return f"http {error.status} ({error.code}, request id {error.request_id})"
    return type(error).__name__
