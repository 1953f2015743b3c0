"""Webhook signatures: ``Roost-Signature: t=<unix seconds>,v1=<hex>``.

``v1`` is the lower-case hex HMAC-SHA256 (key: the signing secret as UTF-8) of the ASCII decimal
timestamp, a ``.``, and the raw request body. Several ``v1`` entries may be present (during a
secret rotation); any one matching is enough.
"""

from __future__ import annotations

import hashlib
import hmac
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

# Bounds on what the parser looks at, so a hostile header costs little and cannot raise. A real
# header is ``t=<10 digits>,v1=<64 hex>`` plus a few more ``v1`` entries during a rotation.
MAX_HEADER_CHARS = 4096
MAX_HEADER_PARTS = 32
#: The largest ``t`` accepted (about the year 318,000); it keeps every later computation exact.
MAX_TIMESTAMP_SECONDS = 10**13 - 1
_MAX_TIMESTAMP_CHARS = 24  # leading zeros are tolerated, up to this many characters


@dataclass(slots=True)
class VerifySignatureResult:
    """The outcome of :func:`verify_signature`: ``ok``, else a ``reason``."""

    ok: bool
    reason: VerifyReason | None = None
    timestamp: int | None = None


def _as_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _safe_digest(timestamp: int, body: object, secret: object) -> bytes | None:
    """The expected digest, or ``None`` when the body or secret cannot be signed at all.

    A non-string secret, a body of another type, or text with lone surrogates (not encodable as
    UTF-8) can never match a signature, so they read as ``bad_signature`` instead of raising.
    """
    if not isinstance(secret, str) or not secret:
        return None
    if not isinstance(body, (bytes, bytearray, memoryview, str)):
        return None
    try:
        return _digest(timestamp, _as_bytes(body), secret)
    except UnicodeEncodeError:
        return None


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
    if not 0 < timestamp <= MAX_TIMESTAMP_SECONDS:
        raise ValueError(
            f"sign_body: timestamp_seconds must be within 1..{MAX_TIMESTAMP_SECONDS}, got {timestamp}"
        )
    return f"t={timestamp},v1={_digest(timestamp, _as_bytes(body), secret).hex()}"


def _parse_timestamp(value: str) -> int | None:
    """A positive decimal ``t``, or ``None``; bounded before ``int()`` so it can never raise.

    ``int()`` refuses more than 4,300 digits (``ValueError``) and a huge value overflows the float
    arithmetic of the tolerance check, so the text is limited first.
    """
    text = value.strip()
    digits = text[1:] if text[:1] == "+" else text
    if not digits or len(digits) > _MAX_TIMESTAMP_CHARS or not (digits.isascii() and digits.isdigit()):
        return None
    parsed = int(digits)
    return parsed if 0 < parsed <= MAX_TIMESTAMP_SECONDS else None


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
    ``malformed_header`` (a part without ``key=value``, a ``t`` that is not a positive integer up
    to :data:`MAX_TIMESTAMP_SECONDS`, a ``v1`` that is not 64 hex digits, a header longer than
    :data:`MAX_HEADER_CHARS` or with more than :data:`MAX_HEADER_PARTS` parts); ``missing_timestamp``; ``missing_v1``;
    ``timestamp_out_of_tolerance`` (``abs(now - t) > tolerance_seconds``; ``float("inf")``
    disables it); ``bad_signature``.
    """
    if not isinstance(header, str) or not header.strip():
        return VerifySignatureResult(ok=False, reason="missing_header")
    parts = header.split(",", MAX_HEADER_PARTS) if len(header) <= MAX_HEADER_CHARS else None
    if parts is None or len(parts) > MAX_HEADER_PARTS:
        return VerifySignatureResult(ok=False, reason="malformed_header")
    timestamp: int | None = None
    signatures: list[bytes] = []
    malformed = False
    for raw_part in parts:
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
    # Written as "not within" so that a NaN ``now`` or tolerance fails closed instead of passing.
    if not abs(current - timestamp) <= tolerance_seconds:
        return VerifySignatureResult(ok=False, reason="timestamp_out_of_tolerance", timestamp=timestamp)
    expected = _safe_digest(timestamp, body, secret)
    if expected is None:
        return VerifySignatureResult(ok=False, reason="bad_signature", timestamp=timestamp)
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
