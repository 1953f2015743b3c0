"""Unit tests of the engine's parts: URL pool, emitter, byte budget, crew, 412 parsing, plan."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost import RetryPolicy, RoostApiError, RoostClient
from roost._push.plan import build_manifest, missing_plan, version_body, version_json
from roost._push.publish import Head, _body, parse_stale_head
from roost._push.storage import StorageClient
from roost._push.tasks import ByteBudget, Emitter, crew
from roost._push.types import PushProgressCheckMissing, PushProgressEvent, PushProgressUpload
from roost._push.urls import UrlPool, parse_expiry
from roost.chunker import ChunkDescriptor, ChunkedFileEntry
from roost.client import JsonText

pytestmark = pytest.mark.anyio

H = [f"{i:064x}" for i in range(2000)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MintApi:
    def __init__(self, ttl_s: float, *, server_offset_s: float = 0.0, wall: float = 1_800_000_000.0) -> None:
        self.ttl_s = ttl_s
        self.server_offset_s = server_offset_s
        self.wall = wall
        self.batches: list[list[str]] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        hashes = json.loads(request.content)["hashes"]
        self.batches.append(hashes)
        server_now = datetime.fromtimestamp(self.wall + self.server_offset_s, timezone.utc)
        expires = server_now + timedelta(seconds=self.ttl_s)
        return httpx.Response(
            200,
            json={
                "urls": {h: f"https://s.test/{h}?v={len(self.batches)}" for h in hashes},
                "expiresAt": expires.isoformat().replace("+00:00", "Z"),
            },
            headers={"date": format_datetime(server_now, usegmt=True)},
        )

    def client(self) -> RoostClient:
        return RoostClient(
            token="owk_test_x",
            api_url="https://api.test",
            transport=httpx.MockTransport(self.handler),
            retry=RetryPolicy(base_delay_s=0.0),
        )


async def test_pool_mints_lazily_in_batches_of_at_most_900() -> None:
    api = MintApi(3600)
    async with api.client() as http:
        pool = UrlPool(http, "site-1", H)
        assert api.batches == []
        assert (await pool.get(H[0])).endswith("?v=1")
        assert api.batches == [H[:900]]
        for h in H[:900]:
            pool.done(h)
        assert (await pool.get(H[899 + 1])).endswith("?v=2")
        assert api.batches[1] == H[900:1800]
        await pool.get(H[1800])
        assert api.batches[2] == H[1800:]


async def test_pool_skips_done_and_fresh_hashes_when_batching() -> None:
    api = MintApi(3600)
    async with api.client() as http:
        pool = UrlPool(http, "site-1", H[:10], batch_size=4)
        await pool.get(H[0])
        assert api.batches == [H[0:4]]
        pool.done(H[4])
        await pool.get(H[3])  # fresh: no mint
        await pool.get(H[5])
        assert api.batches[1] == [H[5], H[6], H[7], H[8]]


async def test_pool_remints_near_expiry_and_after_reject() -> None:
    api = MintApi(2.0)
    clock = Clock()
    async with api.client() as http:
        pool = UrlPool(http, "site-1", H[:3], clock=clock, wall_clock=lambda: api.wall)
        first = await pool.get(H[0])
        clock.now += 1.0
        assert await pool.get(H[0]) == first  # 1 s left, margin is 0.5 s
        clock.now += 0.6
        second = await pool.get(H[0])  # 0.4 s left: re-minted
        assert second != first
        assert len(api.batches) == 2
        pool.reject(H[0], first)  # a stale rejection does not drop the new URL
        assert await pool.get(H[0]) == second
        pool.reject(H[0], second)
        third = await pool.get(H[0])
        assert third not in (first, second)
        assert len(api.batches) == 3


async def test_pool_trusts_the_date_header_when_the_local_clock_is_off() -> None:
    api = MintApi(3600, server_offset_s=-7200)  # local clock two hours ahead
    clock = Clock()
    async with api.client() as http:
        pool = UrlPool(http, "site-1", H[:1], clock=clock, wall_clock=lambda: api.wall)
        url = await pool.get(H[0])
        clock.now += 3000
        assert await pool.get(H[0]) == url
        clock.now += 580
        assert await pool.get(H[0]) != url


async def test_pool_uses_urls_that_expire_before_their_margin_once() -> None:
    api = MintApi(-5)  # already expired when minted
    async with api.client() as http:
        pool = UrlPool(http, "site-1", H[:1], wall_clock=lambda: api.wall)
        await pool.get(H[0])
        await pool.get(H[0])
        assert len(api.batches) == 2  # each get mints once, never loops


def test_parse_expiry() -> None:
    assert parse_expiry("2026-04-29T12:00:00.123Z") == pytest.approx(
        datetime(2026, 4, 29, 12, 0, 0, 123000, timezone.utc).timestamp()
    )
    assert (
        parse_expiry("2026-04-29T12:00:00+02:00")
        == datetime(2026, 4, 29, 10, tzinfo=timezone.utc).timestamp()
    )
    assert parse_expiry("soon") is None
    assert parse_expiry(None) is None


def test_stale_head_parsing_is_anchored() -> None:
    def error(code: str, detail: str) -> RoostApiError:
        return RoostApiError(412, {"code": code, "detail": detail})

    head = "9f" * 32
    stale = f"expectedCurrentVersionId did not match the current head ({head}). re-read + retry."
    assert parse_stale_head(error("version_stale", stale)) == Head(head)
    assert parse_stale_head(
        error(
            "version_stale",
            "expectedCurrentVersionId did not match the current head (null). re-read + retry.",
        )
    ) == Head(None)
    chunks = "3 referenced chunk(s) are not present in R2. upload them via /api/chunks/upload-urls"
    assert parse_stale_head(error("precondition_failed", chunks)) is None
    assert parse_stale_head(error("version_stale", chunks)) is None
    assert parse_stale_head(error("precondition_failed", stale)) is None
    assert parse_stale_head(RoostApiError(409, {"code": "version_stale", "detail": stale})) is None


async def test_emitter_delivers_in_call_order_one_at_a_time() -> None:
    delivered: list[int] = []
    active = 0

    async def callback(event: PushProgressEvent) -> None:
        nonlocal active
        assert isinstance(event, PushProgressUpload)
        active += 1
        assert active == 1
        await anyio.sleep(0.001 * (10 - event.uploaded))
        delivered.append(event.uploaded)
        active -= 1

    emit = Emitter(callback)
    async with anyio.create_task_group() as group:
        for i in range(10):
            group.start_soon(emit, PushProgressUpload(uploaded=i, total=10))
    assert delivered == sorted(delivered)
    assert len(delivered) == 10


async def test_emitter_skips_cancelled_waiters() -> None:
    delivered: list[int] = []
    gate = anyio.Event()

    async def callback(event: PushProgressEvent) -> None:
        assert isinstance(event, PushProgressUpload)
        if event.uploaded == 0:
            await gate.wait()
        delivered.append(event.uploaded)

    emit = Emitter(callback)
    async with anyio.create_task_group() as group:
        group.start_soon(emit, PushProgressUpload(0, 3))
        await anyio.sleep(0.01)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await emit(PushProgressUpload(1, 3))
        group.start_soon(emit, PushProgressUpload(2, 3))
        await anyio.sleep(0.01)
        gate.set()
    assert delivered == [0, 2]


async def test_emitter_calls_sync_callbacks_and_propagates_errors() -> None:
    seen: list[PushProgressEvent] = []
    emit = Emitter(seen.append)
    await emit(PushProgressCheckMissing(1, 0))
    assert seen == [PushProgressCheckMissing(1, 0)]

    def boom(event: PushProgressEvent) -> None:
        raise ValueError("callback")

    failing = Emitter(boom)
    with pytest.raises(ValueError, match="callback"):
        await failing(PushProgressCheckMissing(1, 0))
    with pytest.raises(ValueError, match="callback"):  # the failed turn does not block the next one
        await failing(PushProgressCheckMissing(1, 0))


async def test_emitter_deliver_calls_at_once_or_waits_its_turn() -> None:
    delivered: list[int] = []
    gate = anyio.Event()

    async def slow_first(event: PushProgressEvent) -> None:
        assert isinstance(event, PushProgressUpload)
        if event.uploaded == 0:
            await gate.wait()
        delivered.append(event.uploaded)

    sync_seen: list[PushProgressEvent] = []
    assert Emitter(sync_seen.append).deliver(PushProgressUpload(5, 9)) is None  # called already
    assert sync_seen == [PushProgressUpload(5, 9)]
    assert Emitter(None).deliver(PushProgressUpload(5, 9)) is None

    emit = Emitter(slow_first)
    async with anyio.create_task_group() as group:
        group.start_soon(emit, PushProgressUpload(0, 3))
        await anyio.sleep(0.01)  # event 0 is being delivered: event 1 must wait for it
        pending = emit.deliver(PushProgressUpload(1, 3))
        assert pending is not None
        assert delivered == []

        async def finish() -> None:
            assert pending is not None
            await pending

        group.start_soon(finish)
        await anyio.sleep(0.01)
        gate.set()
    after = emit.deliver(PushProgressUpload(2, 3))  # an async callback: awaited by the caller
    assert after is not None
    await after
    assert delivered == [0, 1, 2]


def boom_once() -> Callable[[PushProgressEvent], None]:
    calls = [0]

    def callback(event: PushProgressEvent) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise ValueError("callback")

    return callback


async def test_emitter_deliver_propagates_errors_and_frees_the_turn() -> None:
    emit = Emitter(boom_once())
    with pytest.raises(ValueError, match="callback"):
        emit.deliver(PushProgressCheckMissing(1, 0))
    assert emit.deliver(PushProgressCheckMissing(1, 0)) is None


async def test_byte_budget_blocks_until_released() -> None:
    budget = ByteBudget(10)
    await budget.acquire(6)
    order: list[str] = []

    async def second() -> None:
        await budget.acquire(6)
        order.append("acquired")

    async with anyio.create_task_group() as group:
        group.start_soon(second)
        await anyio.sleep(0.01)
        assert order == []
        budget.release(6)
    assert order == ["acquired"]
    assert budget.peak_in_use == 6
    budget.release(6)
    await budget.acquire(50)  # larger than the budget: waits for an empty budget, then takes it all
    assert budget.available == 0
    assert budget.peak_in_use == 10


async def test_crew_reraises_the_first_error_alone_and_cancels_the_rest() -> None:
    cancelled: list[bool] = []

    async def sleeper() -> None:
        try:
            await anyio.sleep_forever()
        except BaseException:
            cancelled.append(True)
            raise

    async def failer() -> None:
        await anyio.sleep(0.01)
        raise LookupError("first")

    async def run() -> None:
        async with crew() as tasks:
            tasks.spawn(sleeper)
            tasks.spawn(failer)

    with pytest.raises(LookupError, match="first"):
        await run()
    assert cancelled == [True]


def test_manifest_first_occurrence_wins_and_plan_lists_files() -> None:
    a = ChunkDescriptor("a" * 64, 4)
    b = ChunkDescriptor("b" * 64, 2)
    entries = [
        ChunkedFileEntry("z/one", 6, (a, b)),
        ChunkedFileEntry("two", 4, (a,)),
        ChunkedFileEntry("empty", 0, ()),
    ]
    manifest = build_manifest("/root", entries)
    assert manifest.unique == ("a" * 64, "b" * 64)
    assert manifest.sources["b" * 64].path == "/root/z/one"
    assert manifest.sources["b" * 64].offset == 4
    assert manifest.sources["a" * 64].rel_path == "z/one"
    plan = missing_plan(manifest, ["a" * 64])
    assert plan.files == ("two", "z/one")
    assert plan.bytes == 4
    body: dict[str, Any] = version_body(manifest, now=datetime(2026, 4, 29, 12, tzinfo=timezone.utc))
    assert [f["path"] for f in body["files"]] == ["empty", "two", "z/one"]
    assert body["config"]["createdAt"] == "2026-04-29T12:00:00Z"
    stats = manifest.stats(uploaded_chunks=1, uploaded_bytes=4)
    assert (stats.file_count, stats.total_bytes, stats.total_chunks, stats.unique_chunks) == (3, 10, 3, 2)
    assert (stats.empty_files, stats.uploaded_chunks, stats.uploaded_bytes) == (1, 1, 4)


_NOW = datetime(2026, 4, 29, 12, tzinfo=timezone.utc)
_compact = functools.partial(json.dumps, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),  # any characters: quotes, controls, U+2028, emoji
            st.lists(st.sampled_from(["a" * 64, "b" * 64, "0123456789abcdef" * 4]), max_size=3),
        ),
        max_size=6,
    )
)
def test_version_json_is_exactly_the_compact_encoding_of_version_body(
    files: list[tuple[str, list[str]]],
) -> None:
    entries = [
        ChunkedFileEntry(path, 3 * len(hashes), tuple(ChunkDescriptor(h, 3) for h in hashes))
        for path, hashes in files
    ]
    manifest = build_manifest("/root", entries)
    assert version_json(manifest, now=_NOW) == _compact(version_body(manifest, now=_NOW))


@pytest.mark.parametrize("odd", ['a"b', "a\\b", "a\nb", "\u2028", "\ud800"])
def test_version_json_encodes_hashes_that_need_escaping_like_json_does(odd: str) -> None:
    manifest = build_manifest("/root", [ChunkedFileEntry("f", 1, (ChunkDescriptor(odd, 1),))])
    assert version_json(manifest, now=_NOW) == _compact(version_body(manifest, now=_NOW))


@pytest.mark.parametrize("head", [None, Head(None), Head("v" * 64)])
@pytest.mark.parametrize("extras", [{}, {"name": 'show "one"', "targets": ["m-1"], "description": "\u2028"}])
def test_a_pre_encoded_version_gives_the_body_json_dumps_would(
    head: Head | None, extras: dict[str, Any]
) -> None:
    version = {"schemaVersion": 2, "files": [{"path": 'é/"x"', "size": 0, "chunks": []}]}
    spliced = _body("site-1", JsonText(_compact(version)), head, extras)
    plain = _body("site-1", version, head, extras)
    assert isinstance(spliced, JsonText)
    assert spliced.text == _compact(plain)


class RecordingTransport(httpx.MockTransport):
    closed = 0

    async def aclose(self) -> None:
        RecordingTransport.closed += 1


async def test_a_custom_transport_is_shared_but_never_closed_by_storage() -> None:
    transport = RecordingTransport(lambda request: httpx.Response(200))
    async with RoostClient(token="owk_test_secret", api_url="https://api.test", transport=transport) as http:
        storage = StorageClient(http, max_connections=64)
        assert len(storage.clients) == 1
        response = await storage.put("https://storage.test/x", b"data")
        assert response.status_code == 200
        assert "authorization" not in response.request.headers
        await storage.aclose()
        assert RecordingTransport.closed == 0
    assert RecordingTransport.closed == 1  # by the API client, its owner
