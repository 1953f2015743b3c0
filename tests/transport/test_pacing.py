"""The rate cap and the two in-flight controllers, driven by a fake clock."""

from __future__ import annotations

import anyio
import pytest

from roost._push.upload import REFERENCE_LATENCY_S, SLOW_CONNECTION_BPS, max_parallel_puts
from roost._transport import LatencyFanOut, ThroughputWindow, TokenBucket
from roost.chunker import CHUNK_SIZE_BYTES

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_token_bucket_holds_the_rate_beyond_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1_000_000, burst=100_000, clock=clock, sleep=clock.sleep)
    started = clock.now
    for _ in range(200):
        await bucket.take(64 * 1024)
    sent = 200 * 64 * 1024
    assert bucket.granted == sent
    assert clock.now - started == pytest.approx((sent - 100_000) / 1_000_000)
    assert bucket.waited_s == pytest.approx(clock.now - started)


async def test_token_bucket_is_shared_first_come_first_served() -> None:
    clock = FakeClock()
    waits: list[float] = []

    async def record(seconds: float) -> None:  # concurrent takers: the clock has not moved yet
        waits.append(seconds)

    bucket = TokenBucket(1000, burst=1000, clock=clock, sleep=record)
    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(bucket.take, 1000)
    # The first spends the burst; each next one waits for the debt of all before it.
    assert waits == [pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]


async def test_token_bucket_refills_while_idle_up_to_the_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=500, clock=clock, sleep=clock.sleep)
    await bucket.take(500)
    assert clock.sleeps == []
    clock.now += 3600  # an hour idle earns one burst, not 3.6 MB
    await bucket.take(500)
    await bucket.take(250)
    assert clock.sleeps == [0.25]
    assert TokenBucket(10**6).burst == 100_000  # default: a tenth of a second
    assert TokenBucket(1000).burst == 64 * 1024  # at least one piece
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_window_halves_on_slow_connections_once_per_round_and_grows_back_when_fast() -> None:
    clock = FakeClock()
    window = ThroughputWindow(floor=4 * MiB, ceiling=32 * MiB, slow_bps=256 * 1024, clock=clock)
    assert window.capacity == 32 * MiB
    # Eight chunks started together on a 0.5 MB/s link: 62 kB/s each.
    start = clock.now
    clock.now += 67
    for _ in range(8):
        window.observe(4 * MiB, start, clock.now)
    assert window.capacity == 16 * MiB  # one cut for the round, not eight
    assert window.cuts == 1
    later = clock.now
    clock.now += 33
    window.observe(4 * MiB, later, clock.now)  # still slow in the new round
    assert window.capacity == 8 * MiB
    window.failed(4 * MiB, clock.now)  # a stall
    assert window.capacity == 4 * MiB
    clock.now += 1
    window.failed(4 * MiB, clock.now)
    assert window.capacity == 4 * MiB  # never below one chunk
    window.observe(64 * 1024, clock.now, clock.now + 100)  # small bodies measure latency: ignored
    assert window.capacity == 4 * MiB
    for _ in range(40):  # a fast link again: about one chunk more per window of uploads
        window.observe(4 * MiB, clock.now, clock.now + 0.1)
    assert window.capacity == 32 * MiB


def test_fan_out_grows_with_the_smallest_round_trip_up_to_the_cap() -> None:
    fanout = LatencyFanOut(base=64, cap=256, reference_s=0.025)
    assert fanout.limit == 64
    fanout.observe(1000, 0.004)
    assert fanout.limit == 64  # a fast link keeps the base
    slow = LatencyFanOut(base=64, cap=256, reference_s=0.025)
    for seconds in (0.30, 0.05, 0.12):  # queueing inflates some samples; the minimum is the link
        slow.observe(1000, seconds)
    assert slow.latency_s == 0.05
    assert slow.limit == 128
    slow.observe(4 * MiB, 0.001)  # large bodies measure throughput: ignored
    assert slow.limit == 128
    far = LatencyFanOut(base=64, cap=256, reference_s=0.025)
    far.observe(1000, 0.100)
    assert far.limit == 256  # 100 ms: 256 in flight, 2,560 PUT/s instead of 640


def test_upload_stage_constants_fit_together() -> None:
    assert max_parallel_puts(8) == 256
    assert max_parallel_puts(64) == 512
    assert CHUNK_SIZE_BYTES / SLOW_CONNECTION_BPS == 16  # a full chunk may take 16 s before cutting
    assert 0 < REFERENCE_LATENCY_S < 0.1
