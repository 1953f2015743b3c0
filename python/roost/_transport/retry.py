"""The one retry policy (API calls and storage transfers) and the one HTTP-date parser."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass

import httpx

from .._errors import RoostApiError

__all__ = [
    "RETRYABLE_STATUSES",
    "RetryPolicy",
    "is_retryable_status",
    "parse_http_date",
    "parse_retry_after_header",
]

#: 4xx answers worth another try besides 5xx: storage (S3/R2) answers 408 to a body that came
#: too slowly and 425 to a replay it will accept later; 429 is a rate limit.
RETRYABLE_STATUSES = frozenset({408, 425, 429})
#: Statuses whose ``Retry-After`` is honoured.
_HINTED_STATUSES = frozenset({429, 503})


def is_retryable_status(status: int) -> bool:
    return status >= 500 or status in RETRYABLE_STATUSES


def parse_http_date(value: str | None) -> float | None:
    """An RFC 9110 HTTP date (``Date``, ``Retry-After``) as unix seconds; ``None`` when unreadable."""
    if not value or not value.strip():
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def parse_retry_after_header(value: str, *, now: float | None = None) -> float | None:
    """Parse ``Retry-After`` (delta seconds or an HTTP date) into seconds from now."""
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = parse_http_date(value)
        if when is None:
            return None
        seconds = when - (time.time() if now is None else now)
    if seconds != seconds or seconds <= 0:  # NaN or already past
        return None
    return seconds


@dataclass(slots=True)
class RetryPolicy:
    """How failed calls are retried: 408/425/429, 5xx and transport errors, never other 4xx.

    ``max_attempts`` counts the first call. Delays grow as ``base_delay_s * 2**attempt`` up to
    ``max_delay_s``, scaled by a random factor in ``[1 - jitter, 1 + jitter]``. A 429/503 that
    says when to come back (body ``retryAfter``, else the ``Retry-After`` header) is honoured,
    capped at ``2 * max_delay_s``. The same policy drives API calls and storage transfers.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("RetryPolicy delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")

    def is_retryable(self, error: BaseException) -> bool:
        if isinstance(error, RoostApiError):
            return is_retryable_status(error.status)
        return isinstance(error, httpx.TransportError)

    def backoff(self, attempt: int, server_hint: float | None = None) -> float:
        """Seconds to wait after the failed 0-based ``attempt``; a server's hint wins (capped)."""
        if server_hint is not None:
            return min(server_hint, 2 * self.max_delay_s)
        nominal: float = min(self.max_delay_s, self.base_delay_s * float(2**attempt))
        factor = random.uniform(1 - self.jitter, 1 + self.jitter)
        return max(0.0, nominal * factor)

    def delay_for(self, attempt: int, error: BaseException | None = None) -> float:
        """Seconds to wait after the failed 0-based ``attempt`` of an API call before the next one."""
        hint: float | None = None
        if isinstance(error, RoostApiError):
            hint = error.retry_after
            if hint is None and error.retry_after_header is not None:
                hint = parse_retry_after_header(error.retry_after_header)
        return self.backoff(attempt, hint)

    def delay_for_response(self, attempt: int, response: httpx.Response | None) -> float:
        """Seconds to wait after a failed storage ``attempt`` (``response`` is None for a transport error)."""
        hint: float | None = None
        if response is not None and response.status_code in _HINTED_STATUSES:
            hint = parse_retry_after_header(response.headers.get("retry-after", ""))
        return self.backoff(attempt, hint)
