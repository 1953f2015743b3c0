"""Webhook signatures: ``Roost-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is the lower-case hex HMAC-SHA256 (key: the signing secret as UTF-8) of the ASCII decimal
timestamp, a ``.``, and the raw request body. Several ``v1`` entries may be present (during a
secret rotation); any one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_REPLAY_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "VerifyReason",
    "VerifySignatureResult",
    "is_signature_valid",
    "sign_body",
    "verify_signature",
]

DEFAULT_REPLAY_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "Roost-Signature"

VerifyReason = Literal[
    "missing_header",
    "malformed_header",
    "missing_timestamp",
    "missing_v1",
    "timestamp_out_of_tolerance",
    "bad_signature",
]

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(slots=True)
class VerifySignatureResult:
    """The outcome of :func:`verify_signature`: ``ok``, else a ``reason``."""

    ok: bool
    reason: VerifyReason | None = None
    timestamp: int | None = None


def _as_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _digest(timestamp: int, body: bytes, secret: str) -> bytes:
    return hmac.new(
        secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).digest()


def sign_body(
    body: bytes | bytearray | memoryview | str, secret: str, *, timestamp_seconds: int | None = None
) -> str:
    """The ``Roost-Signature`` header value for ``body`` (``t`` defaults to now)."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("sign_body: secret must be a non-empty string")
    timestamp = int(time.time()) if timestamp_seconds is None else int(timestamp_seconds)
    if timestamp <= 0:
        raise ValueError(f"sign_body: timestamp_seconds must be positive, got {timestamp}")
    return f"t={timestamp},v1={_digest(timestamp, _as_bytes(body), secret).hex()}"


def _parse_timestamp(value: str) -> int | None:
    text = value.strip()
    if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        return None
    if not text.isascii():
        return None
    parsed = int(text)
    return parsed if parsed > 0 else None


def verify_signature(
    header: str | None,
    body: bytes | bytearray | memoryview | str,
    secret: str,
    *,
    tolerance_seconds: float = DEFAULT_REPLAY_TOLERANCE_SECONDS,
    now: float | None = None,
) -> VerifySignatureResult:
    """Check a ``Roost-Signature`` header against the raw body. Never raises on bad input.

    Reasons, in the order they are decided: ``missing_header`` (absent or blank);
    ``malformed_header`` (a part without ``key=value``, a ``t`` that is not a positive integer, a
    ``v1`` that is not 64 hex digits); ``missing_timestamp``; ``missing_v1``;
    ``timestamp_out_of_tolerance`` (``abs(now - t) > tolerance_seconds``; ``float("inf")``
    disables it); ``bad_signature``.
    """
    if not isinstance(header, str) or not header.strip():
        return VerifySignatureResult(ok=False, reason="missing_header")
    timestamp: int | None = None
    signatures: list[bytes] = []
    malformed = False
    for raw_part in header.split(","):
        part = raw_part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        value = value.strip()
        if not sep or not key:
            malformed = True
            continue
        if key == "t":
            parsed = _parse_timestamp(value)
            if parsed is None:
                malformed = True
            else:
                timestamp = parsed
        elif key == "v1":
            if len(value) != 64 or not set(value) <= _HEX_DIGITS:
                malformed = True
            else:
                signatures.append(bytes.fromhex(value))
    if malformed:
        return VerifySignatureResult(ok=False, reason="malformed_header", timestamp=timestamp)
    if timestamp is None:
        return VerifySignatureResult(ok=False, reason="missing_timestamp")
    if not signatures:
        return VerifySignatureResult(ok=False, reason="missing_v1", timestamp=timestamp)
    current = time.time() if now is None else now
    if not math.isinf(tolerance_seconds) and abs(current - timestamp) > tolerance_seconds:
        return VerifySignatureResult(ok=False, reason="timestamp_out_of_tolerance", timestamp=timestamp)
    if not isinstance(secret, str) or not secret:
        return VerifySignatureResult(ok=False, reason="bad_signature", timestamp=timestamp)
    expected = _digest(timestamp, _as_bytes(body), secret)
    for candidate in signatures:
        if hmac.compare_digest(candidate, expected):
            return VerifySignatureResult(ok=True, timestamp=timestamp)
    return VerifySignatureResult(ok=False, reason="bad_signature", timestamp=timestamp)


def is_signature_valid(
    header: str | None,
    body: bytes | bytearray | memoryview | str,
    secret: str,
    *,
    tolerance_seconds: float = DEFAULT_REPLAY_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """``verify_signature(...).ok``."""
    return verify_signature(header, body, secret, tolerance_seconds=tolerance_seconds, now=now).ok
