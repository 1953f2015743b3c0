"""How fast and how wide storage transfers go: a shared rate cap and two in-flight controllers.

- :class:`TokenBucket` caps the bytes per second of every transfer that shares it
  (``PushOptions.bandwidth_limit``).
- :class:`ThroughputWindow` (AIMD) sizes the bytes of large uploads in flight from the
  throughput each connection gets: on a slow uplink, eight 4 MiB bodies sharing 0.5 MB/s move at
  62 kB/s each, so every attempt takes a minute and one stall throws away 4 MiB; fewer, faster
  transfers finish the same bytes as soon and fail cheaply.
- :class:`LatencyFanOut` sizes the count of small uploads in flight from their round-trip time:
  small PUTs are latency-bound (``rate = in_flight / latency``), so a 100 ms link needs ten times
  the requests in flight of a 10 ms one to move small files at the same rate.

Each takes a ``clock`` so that tests drive it with a fake one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["LatencyFanOut", "ThroughputWindow", "TokenBucket"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """At most ``rate`` bytes per second on average, bursts of at most ``burst`` bytes.

    ``take(n)`` spends ``n`` tokens at once, going into debt if needed, then sleeps until the debt
    is repaid. Every caller sees the debt of the ones before it, so concurrent transfers share the
    rate first come, first served. ``granted`` and ``waited_s`` are the accounting (tests read them).
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: int | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"TokenBucket: rate must be a positive number of bytes/s, got {rate!r}")
        self.rate = float(rate)
        # A tenth of a second of data (at least one 64 KiB piece): smooth, yet no sleep per piece.
        self.burst = float(burst if burst is not None else max(64 * 1024, rate / 10))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self.granted = 0
        self.waited_s = 0.0

    async def take(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= nbytes
        self.granted += nbytes
        if self._tokens < 0:
            wait = -self._tokens / self.rate
            self.waited_s += wait
            await self._sleep(wait)


class ThroughputWindow:
    """Additive-increase / multiplicative-decrease of the bytes of uploads in flight.

    ``capacity`` starts at ``ceiling`` and stays within ``[floor, ceiling]`` (``floor`` is one
    full-size chunk, so progress never stops). Each finished upload of at least
    :data:`MIN_SAMPLE_BYTES` reports its size and duration:

    - below ``slow_bps`` per connection (or a failed attempt, e.g. a stall), the window halves,
      at most once per round: samples from uploads that started before the last cut do not cut
      again (they measured the old window);
    - otherwise it grows by ``floor * size / capacity`` (about one chunk per window of uploads).
    """

    #: Smaller bodies measure latency more than throughput: they do not move the window.
    MIN_SAMPLE_BYTES = 1024 * 1024

    def __init__(self, *, floor: int, ceiling: int, slow_bps: float, clock: Clock = time.monotonic) -> None:
        if floor <= 0 or ceiling < floor:
            raise ValueError(f"ThroughputWindow: need 0 < floor <= ceiling, got {floor}, {ceiling}")
        self.floor = floor
        self.ceiling = ceiling
        self.slow_bps = slow_bps
        self.capacity = float(ceiling)
        self._clock = clock
        self._cut_at = -math.inf
        self.cuts = 0

    def _cut(self, started: float) -> None:
        if started < self._cut_at:
            return
        self.capacity = max(float(self.floor), self.capacity / 2)
        self._cut_at = self._clock()
        self.cuts += 1

    def observe(self, nbytes: int, started: float, finished: float) -> None:
        """An upload of ``nbytes`` that ran from ``started`` to ``finished`` (clock seconds) succeeded."""
        if nbytes < self.MIN_SAMPLE_BYTES:
            return
        seconds = max(finished - started, 1e-6)
        if nbytes / seconds < self.slow_bps:
            self._cut(started)
        else:
            self.capacity = min(float(self.ceiling), self.capacity + self.floor * nbytes / self.capacity)

    def failed(self, nbytes: int, started: float) -> None:
        """An upload attempt of ``nbytes`` failed on the network (stall, reset): the link is struggling."""
        if nbytes >= self.MIN_SAMPLE_BYTES:
            self._cut(started)


class LatencyFanOut:
    """How many small uploads may be in flight, from their measured round-trip time.

    ``limit`` is ``base`` until small PUTs take longer than ``reference_s``; then it grows in
    proportion (``base * latency / reference_s``), up to ``cap``, so that ``limit / latency``,
    the small-PUT rate, stays what it is on a ``reference_s`` link. Latency is the smallest round
    trip seen: queueing (a busy server or client CPU) inflates the mean, and adding requests to a
    queue only lengthens it, while the minimum is the link's own delay.
    """

    #: Bodies up to this size are latency-bound: their round trip is the sample.
    MAX_SAMPLE_BYTES = 64 * 1024

    def __init__(self, *, base: int, cap: int, reference_s: float = 0.010) -> None:
        if base < 1 or cap < base or reference_s <= 0:
            raise ValueError(f"LatencyFanOut: need 1 <= base <= cap and reference_s > 0, got {base}, {cap}")
        self.base = base
        self.cap = cap
        self.reference_s = reference_s
        self.latency_s: float | None = None

    @property
    def limit(self) -> int:
        if self.latency_s is None or self.latency_s <= self.reference_s:
            return self.base
        return min(self.cap, math.ceil(self.base * self.latency_s / self.reference_s))

    def observe(self, nbytes: int, seconds: float) -> None:
        if nbytes > self.MAX_SAMPLE_BYTES or seconds < 0:
            return
        if self.latency_s is None or seconds < self.latency_s:
            self.latency_s = seconds
