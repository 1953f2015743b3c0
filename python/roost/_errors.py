"""Exception types raised by the SDK.

Every HTTP error from the API is a :class:`RoostApiError` (or one of its status-family
subclasses, so ``except RoostApiError`` catches them all). Push-specific local failures have
their own types carrying the path or hash involved.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

# Defined with the chunker that raises it; the same class here and in ``roost``.
from .chunker._errors import ChunkSourceChangedError

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ChunkSourceChangedError",
    "ChunkUploadError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "PreconditionFailedError",
    "RateLimitError",
    "RoostApiError",
    "RoostConnectionError",
    "RoostError",
    "UnprocessableEntityError",
    "error_for_status",
]


class RoostError(Exception):
    """Base of the SDK's own exceptions."""


class RoostApiError(RoostError):
    """An HTTP error answered by the Owlette API, built from its problem+json body.

    ``retry_after_header`` is the response's raw ``Retry-After`` header, if any (the retry policy
    reads it when the body carries no ``retryAfter``).
    """

    status: int
    problem: dict[str, Any]
    code: str | None
    request_id: str | None
    retry_after_header: str | None

    def __init__(
        self,
        status: int,
        problem: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        retry_after_header: str | None = None,
    ):
        self.status = status
        self.retry_after_header = retry_after_header
        self.problem = dict(problem or {})
        code = self.problem.get("code")
        self.code = code if isinstance(code, str) else None
        body_request_id = self.problem.get("requestId")
        self.request_id = body_request_id if isinstance(body_request_id, str) else request_id
        super().__init__(self._message())

    def _message(self) -> str:
        detail = self.problem.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        title = self.problem.get("title")
        if isinstance(title, str) and title:
            return title
        return f"http {self.status}"

    @property
    def retry_after(self) -> float | None:
        """The problem body's ``retryAfter`` in seconds, when it is a positive number."""
        value = self.problem.get("retryAfter")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, request_id={self.request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        state = {"request_id": self.request_id, "retry_after_header": self.retry_after_header}
        return (type(self), (self.status, self.problem), state)


class BadRequestError(RoostApiError):
    """400: validation, unsupported Roost-Version, malformed version ref, ..."""


class AuthenticationError(RoostApiError):
    """401: missing, unknown or expired credential."""


class PermissionDeniedError(RoostApiError):
    """403: authenticated, but the key's scopes or the user's role do not allow the call."""


class NotFoundError(RoostApiError):
    """404 (and 410): the resource is absent or hidden."""


class ConflictError(RoostApiError):
    """409: the resource's state does not allow the call."""


class PreconditionFailedError(RoostApiError):
    """412: ``version_stale`` or ``precondition_failed`` (missing chunks)."""


class UnprocessableEntityError(RoostApiError):
    """422: e.g. ``idempotency_key_mismatch``."""


class RateLimitError(RoostApiError):
    """429: a rate-limit bucket is exhausted; retried automatically."""


class InternalServerError(RoostApiError):
    """5xx: the server failed; retried automatically."""


_BY_STATUS: dict[int, type[RoostApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    410: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    problem: dict[str, Any],
    *,
    request_id: str | None = None,
    retry_after_header: str | None = None,
) -> RoostApiError:
    """Build the most specific :class:`RoostApiError` subclass for ``status``."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else RoostApiError
    return cls(status, problem, request_id=request_id, retry_after_header=retry_after_header)


def _public_url(url: str) -> str:
    """``url`` without its query and credentials: a signed URL's query is a bearer secret."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class RoostConnectionError(RoostError, httpx.TransportError):
    """The API or storage could not be reached (after the retries the call had).

    Also an ``httpx.TransportError``, so handlers written for httpx's errors keep working. ``url``
    is where the request went, without query string or user info (signed storage URLs carry their
    signature there); the httpx error that ended the last attempt is the ``__cause__``.
    """

    def __init__(self, url: str, detail: str, *, request: httpx.Request | None = None):
        self.url = _public_url(url)
        self.detail = detail
        super().__init__(f"could not reach {self.url}: {detail}", request=request)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.detail))


class ChunkUploadError(RoostError, RuntimeError):
    """Storage refused a chunk after every retry."""

    def __init__(self, chunk_hash: str, detail: str):
        self.chunk_hash = chunk_hash
        super().__init__(f"upload of chunk {chunk_hash} failed: {detail}")
