"""The signed-URL pool: mints storage URLs lazily, in batches, and knows when each expires.

One pool serves the push (``kind="upload"``: PUT URLs) and the pull (``kind="download"``: GET URLs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import anyio

from .._errors import ChunkUploadError
from .._transport.retry import parse_http_date
from .._wire import MalformedResponseError, expect_object
from ..client import RoostClient

__all__ = ["MINT_BATCH_SIZE", "UrlPool", "parse_expiry"]

logger = logging.getLogger("roost")

MINT_BATCH_SIZE = 900
#: Lifetime assumed when the API sends no (or an unreadable) ``expiresAt``: well below the
#: documented 60 minutes of upload URLs and 15 minutes of download URLs.
FALLBACK_LIFETIME_S = 600.0
#: A URL closer than this to its expiry is re-minted before use (at most a quarter of its lifetime).
MAX_EXPIRY_MARGIN_S = 30.0
#: Clock difference with the API above which the ``Date`` header is trusted over the local clock.
CLOCK_SKEW_TOLERANCE_S = 2.0


@dataclass(frozen=True, slots=True)
class _Signed:
    url: str
    deadline: float  # monotonic seconds
    margin: float


def parse_expiry(value: object) -> float | None:
    """``expiresAt`` (ISO-8601, ``Z`` allowed) as unix seconds, or ``None``."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _server_now(headers: dict[str, str]) -> float | None:
    return parse_http_date(headers.get("date"))


class UrlPool:
    """Signed URLs (PUT for ``kind="upload"``, GET for ``"download"``) for one run, minted on demand.

    ``get(h)`` returns a URL for ``h`` that is not near its expiry; when there is none it mints one
    batch: ``h`` plus the following not-yet-uploaded hashes of the run (in upload order) lacking a
    fresh URL, at most :data:`MINT_BATCH_SIZE` per call. ``reject(h, url)`` drops a URL storage
    answered 401/403 for, so the next ``get`` mints a new one. Minting goes through
    ``RoostClient.request`` (its retry policy covers 429/5xx); one mint runs at a time.
    """

    def __init__(
        self,
        http: RoostClient,
        site_id: str,
        order: Sequence[str],
        *,
        kind: Literal["upload", "download"] = "upload",
        missing: Callable[[str, str], Exception] = ChunkUploadError,
        batch_size: int = MINT_BATCH_SIZE,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._route = f"/api/chunks/{kind}-urls"
        self._kind = kind
        self._missing = missing
        self._site_id = site_id
        self._order = list(order)
        self._index = {chunk_hash: i for i, chunk_hash in enumerate(self._order)}
        self._batch_size = max(1, min(batch_size, 1000))
        self._clock = clock
        self._wall_clock = wall_clock
        self._urls: dict[str, _Signed] = {}
        self._done: set[str] = set()
        self._lock = anyio.Lock()
        self.mint_calls = 0
        self.minted = 0

    def _fresh(self, signed: _Signed | None) -> bool:
        return signed is not None and signed.deadline - self._clock() > signed.margin

    async def get(self, chunk_hash: str) -> str:
        signed = self._urls.get(chunk_hash)
        if self._fresh(signed):
            assert signed is not None
            return signed.url
        async with self._lock:
            signed = self._urls.get(chunk_hash)
            if not self._fresh(signed):
                await self._mint(self._batch_for(chunk_hash))
                signed = self._urls.get(chunk_hash)
        if signed is None:
            raise self._missing(chunk_hash, f"the API returned no {self._kind} URL for this chunk")
        # Freshly minted URLs are used even when their whole lifetime is below the margin.
        return signed.url

    def add(self, hashes: Sequence[str]) -> None:
        """Append ``hashes`` to the run's order (a streaming push learns what to upload as it goes)."""
        for chunk_hash in hashes:
            if chunk_hash not in self._index:
                self._index[chunk_hash] = len(self._order)
                self._order.append(chunk_hash)

    def reject(self, chunk_hash: str, url: str) -> None:
        signed = self._urls.get(chunk_hash)
        if signed is not None and signed.url == url:
            del self._urls[chunk_hash]

    def done(self, chunk_hash: str) -> None:
        self._done.add(chunk_hash)
        self._urls.pop(chunk_hash, None)

    def _batch_for(self, chunk_hash: str) -> list[str]:
        batch = [chunk_hash]
        start = self._index.get(chunk_hash)
        if start is None:
            return batch
        for position in range(start + 1, len(self._order)):
            if len(batch) >= self._batch_size:
                break
            candidate = self._order[position]
            if candidate in self._done or self._fresh(self._urls.get(candidate)):
                continue
            batch.append(candidate)
        return batch

    async def _mint(self, batch: list[str]) -> None:
        sent_at = self._clock()
        response = await self._http.request(
            self._route, method="POST", body={"siteId": self._site_id, "hashes": batch}
        )
        self.mint_calls += 1
        data = expect_object(response.data, f"POST {self._route}")
        urls: Any = data.get("urls")
        if not isinstance(urls, dict):
            raise MalformedResponseError(f"POST {self._route}", "field 'urls' is not an object")
        deadline, margin = self._deadline(data.get("expiresAt"), response.headers, sent_at)
        wanted = set(batch)
        for chunk_hash, url in urls.items():
            if chunk_hash in wanted and isinstance(url, str) and url:
                self._urls[chunk_hash] = _Signed(url, deadline, margin)
                self.minted += 1
        logger.debug("minted %d %s URLs (%.1fs to expiry)", len(batch), self._kind, deadline - self._clock())

    def _deadline(self, expires_at: object, headers: dict[str, str], sent_at: float) -> tuple[float, float]:
        """Monotonic deadline and near-expiry margin of a batch minted at ``sent_at``."""
        expires = parse_expiry(expires_at)
        now = self._clock()
        if expires is None:
            lifetime = FALLBACK_LIFETIME_S
        else:
            local_now = self._wall_clock()
            lifetime = expires - local_now
            server_now = _server_now(headers)
            # The Date header has whole-second resolution: only trust it over a clearly wrong clock.
            if server_now is not None and abs(server_now - local_now) > CLOCK_SKEW_TOLERANCE_S:
                lifetime = expires - server_now - 1.0
        # Measured from when the request was sent, so a slow mint cannot overstate the lifetime.
        deadline = sent_at + lifetime
        margin = min(MAX_EXPIRY_MARGIN_S, max(lifetime, 0.0) / 4)
        return max(deadline, now), margin
