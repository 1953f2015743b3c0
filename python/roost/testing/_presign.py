"""Presigned storage URLs: HMAC-SHA256 over method, object key and expiry (unix ms)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

__all__ = ["Presigner"]

EXPIRES_PARAM = "X-Roost-Expires"
SIGNATURE_PARAM = "X-Roost-Signature"


class Presigner:
    """Mints and checks the storage URLs the emulator serves under ``/storage/``."""

    def __init__(self, secret: bytes, base_url: str) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")

    def _sign(self, method: str, key: str, expires: int) -> str:
        message = f"{method.upper()}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def url(self, method: str, key: str, ttl_s: float) -> tuple[str, int]:
        """A URL for ``method`` on ``key`` valid for ``ttl_s``; returns it and its expiry (unix ms)."""
        expires = int((time.time() + ttl_s) * 1000)
        signature = self._sign(method, key, expires)
        path = quote(key, safe="/")
        return (
            f"{self.base_url}/storage/{path}?{EXPIRES_PARAM}={expires}&{SIGNATURE_PARAM}={signature}",
            expires,
        )

    def check(self, method: str, key: str, expires_text: str | None, signature: str | None) -> str | None:
        """``None`` when valid, else the reason (``expired`` or ``bad_signature``)."""
        if not expires_text or not signature or not expires_text.isdigit():
            return "bad_signature"
        expected = self._sign(method, key, int(expires_text))
        if not hmac.compare_digest(expected, signature.lower()):
            return "bad_signature"
        if time.time() * 1000 >= int(expires_text):
            return "expired"
        return None
