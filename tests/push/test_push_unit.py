"""Push engine against an in-memory fake API + storage (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from roost import ChunkSourceChangedError, ChunkUploadError, RetryPolicy, RoostApiError
from roost._push.engine import push_directory
from roost._push.types import (
    PushOptions,
    PushProgressCheckMissing,
    PushProgressEvent,
    PushProgressPublish,
    PushProgressUpload,
    PushSourceNotADirectoryError,
    PushSourceNotFoundError,
)
from roost.chunker import CHUNK_SIZE_BYTES

from ..trees import MiB, blob
from .fakes import SITE, TOKEN, FakeApi, missing_detail, problem, rebuild, stale_detail, write_tree

pytestmark = pytest.mark.anyio


def real_path(path: Path) -> str:
    return os.path.realpath(path)


def sample_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha\n",
        "dir/b.bin": blob(1, 5 * MiB),  # two chunks
        "dir/sub/c.bin": blob(2, 3000),
        "dup.bin": blob(2, 3000),  # same chunk as dir/sub/c.bin
        "empty.txt": b"",
        "dir/empty-too": b"",
    }
    write_tree(root, files)
    return files


class Recorder:
    def __init__(self) -> None:
        self.events: list[PushProgressEvent] = []

    def __call__(self, event: PushProgressEvent) -> None:
        self.events.append(event)

    def phases(self) -> list[str]:
        return [e.phase for e in self.events]

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def push(api: FakeApi, root: Path, **options: Any) -> Any:
    async with api.client(retry=options.pop("retry", None)) as http:
        return await push_directory(http, root, "rst_unit_1", PushOptions(site_id=SITE, **options))


# -- the happy path ------------------------------------------------------------------------------


async def test_push_publishes_every_file_and_reports_stats(tmp_path: Path) -> None:
    files = sample_tree(tmp_path)
    api = FakeApi()
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events, description="first")

    assert rebuild(api, result.version_id) == files
    assert result.version_number == 1
    assert result.current_version_id == result.version_id
    assert result.previous_version_id is None
    stats = result.stats
    assert (stats.file_count, stats.empty_files, stats.total_bytes) == (6, 2, 6 + 5 * MiB + 6000)
    assert (stats.total_chunks, stats.unique_chunks, stats.uploaded_chunks) == (5, 4, 4)
    assert stats.uploaded_bytes == 6 + 5 * MiB + 3000
    assert result.dry_run is False
    assert result.plan is not None
    assert result.plan.bytes == stats.uploaded_bytes
    assert result.plan.files == ("a.txt", "dir/b.bin", "dir/sub/c.bin", "dup.bin")

    version = api.versions[result.version_id]
    assert [f["path"] for f in version["files"]] == sorted(files)
    empty = next(f for f in version["files"] if f["path"] == "empty.txt")
    assert empty == {"path": "empty.txt", "size": 0, "chunks": []}
    big = next(f for f in version["files"] if f["path"] == "dir/b.bin")
    assert [c["size"] for c in big["chunks"]] == [CHUNK_SIZE_BYTES, MiB]
    assert list(version) == ["schemaVersion", "mediaType", "config", "files"]
    assert list(version["config"]) == ["producer", "cliVersion", "createdAt", "hostname", "platform"]
    assert version["config"]["producer"] == "owlette-sdk python-sdk"

    publish = api.publishes[-1]
    assert list(publish.body) == ["siteId", "version", "expectedCurrentVersionId", "description"]
    assert publish.body["expectedCurrentVersionId"] is None  # the head read before publishing
    assert publish.headers["idempotency-key"].startswith("py-sdk-push-")

    assert events.phases()[0] == "discover"
    assert events.phases().count("hash") == 7
    assert events.of(PushProgressCheckMissing) == [PushProgressCheckMissing(total=4, missing=4)]
    # The scan, the check and the upload overlap: upload events may come before the check-missing
    # one (their totals grow until then); the one that ends the upload comes after it.
    assert events.of(PushProgressUpload)[-1] == PushProgressUpload(
        uploaded=4, total=4, bytes_uploaded=stats.uploaded_bytes, bytes_total=stats.uploaded_bytes
    )
    assert events.phases()[-1] == "upload"
    assert events.phases()[-2] in ("check-missing", "upload")


async def test_second_push_uploads_nothing_and_one_change_uploads_only_its_chunks(tmp_path: Path) -> None:
    files = sample_tree(tmp_path)
    api = FakeApi()
    first = await push(api, tmp_path)
    events = Recorder()
    second = await push(api, tmp_path, on_progress=events)
    assert second.stats.uploaded_chunks == 0
    assert not api.mint_batches[1:]  # no URLs minted for the re-push
    assert events.of(PushProgressCheckMissing) == [PushProgressCheckMissing(total=4, missing=0)]
    assert events.of(PushProgressUpload) == []
    assert second.previous_version_id == first.version_id
    assert api.publishes[-1].body["expectedCurrentVersionId"] == first.version_id

    changed = bytearray(files["dir/b.bin"])
    changed[-10] ^= 0xFF  # only the second chunk of dir/b.bin changes
    (tmp_path / "dir/b.bin").write_bytes(bytes(changed))
    puts_before = len(api.puts)
    third = await push(api, tmp_path)
    assert third.stats.uploaded_chunks == 1
    assert third.stats.uploaded_bytes == MiB
    assert [p.url.path.rsplit("/", 1)[1] for p in api.puts[puts_before:]] == [
        third.plan.chunks[0] if third.plan else ""
    ]
    assert rebuild(api, third.version_id)["dir/b.bin"] == bytes(changed)


async def test_check_runs_in_batches_of_900_with_one_check_missing_event(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i:04}.txt": f"file {i}".encode() for i in range(2000)})
    api = FakeApi()
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events)
    assert sorted(len(b) for b in api.check_batches) == [200, 900, 900]
    assert len(events.of(PushProgressCheckMissing)) == 1
    assert result.stats.uploaded_chunks == 2000
    uploads = events.of(PushProgressUpload)
    assert [e.uploaded for e in uploads] == list(range(4, 2001, 4))
    assert all(len(b) <= 900 for b in api.mint_batches)


async def test_upload_events_every_four_and_at_completion(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i}.txt": f"file {i}".encode() for i in range(7)})
    events = Recorder()
    await push(FakeApi(), tmp_path, on_progress=events)
    # Seven 6-byte files ("file 0" .. "file 6"): the byte counts follow the chunk counts.
    assert events.of(PushProgressUpload) == [
        PushProgressUpload(4, 7, 24, 42),
        PushProgressUpload(7, 7, 42, 42),
    ]


async def test_only_empty_files_publish_without_check_or_upload(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": b"", "b/c": b""})
    api = FakeApi()
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events)
    assert api.check_batches == []
    assert api.puts == []
    assert events.of(PushProgressCheckMissing) == [PushProgressCheckMissing(total=0, missing=0)]
    assert result.stats.file_count == 2
    assert result.stats.empty_files == 2
    assert rebuild(api, result.version_id) == {"a": b"", "b/c": b""}


async def test_dry_run_stops_after_the_check(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    api.store[hashlib.sha256(blob(2, 3000)).hexdigest()] = blob(2, 3000)  # already stored
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events, dry_run=True)
    assert result.dry_run is True
    assert (result.version_id, result.version_number, result.current_version_id) == ("", 0, "")
    assert result.plan is not None
    assert result.plan.files == ("a.txt", "dir/b.bin")
    assert len(result.plan.chunks) == 3
    assert result.plan.bytes == 6 + 5 * MiB
    assert result.stats.uploaded_chunks == 0
    assert api.mint_batches == []
    assert api.puts == []
    assert api.publishes == []
    assert {r.url.path for r in api.requests} == {"/api/chunks/check"}
    assert events.phases()[-1] == "check-missing"


# -- storage isolation ---------------------------------------------------------------------------


async def test_storage_puts_carry_no_api_credentials_or_cookies(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i}.txt": f"file {i}".encode() for i in range(10)})
    api = FakeApi(api_cookie=True, storage_cookie=True)
    await push(api, tmp_path)
    assert len(api.puts) == 10
    for put in api.puts:
        names = {name.lower() for name in put.headers}
        assert names == {"host", "content-type", "content-length"}
        assert "authorization" not in names
        assert "roost-version" not in names
        assert "cookie" not in names
        assert "idempotency-key" not in names
        assert TOKEN not in str(put.url)
        assert all(TOKEN not in v for v in put.headers.values())
        assert put.headers["content-type"] == "application/octet-stream"
    api_calls = [r for r in api.requests if r.url.host != "storage.test"]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api_calls)


# -- publish: idempotency and the 412 loop -------------------------------------------------------


async def test_publish_retries_5xx_and_429_with_one_idempotency_key(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    answers = [problem(503, "service_unavailable", "down"), problem(429, "rate_limited", "slow down")]
    api.publish_fault = lambda index, body: answers[index] if index < len(answers) else None
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events)
    assert result.version_number == 1
    keys = [p.headers["idempotency-key"] for p in api.publishes]
    assert len(keys) == 3
    assert len(set(keys)) == 1
    assert [p.status for p in api.publishes] == [503, 429, 201]
    assert events.of(PushProgressPublish) == []  # transient retries are not publish attempts


async def test_publish_replay_after_a_lost_response_is_idempotent(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    original = api._publish
    lost = {"done": False}

    def lose_first_answer(request: httpx.Request) -> httpx.Response:
        response = original(request)  # committed and cached under its Idempotency-Key
        if not lost["done"]:
            lost["done"] = True
            raise httpx.ReadError("connection dropped after the server committed")
        return response

    api._publish = lose_first_answer  # type: ignore[method-assign]
    result = await push(api, tmp_path)
    assert api.counter == 1
    assert result.version_number == 1
    assert [p.status for p in api.publishes] == [201, 201]  # the second one is the replay


async def test_version_stale_republishes_on_the_named_head_with_a_new_key(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi(head="a" * 64)

    def someone_else_published(index: int, body: dict[str, Any]) -> httpx.Response | None:
        if index == 0:
            api.head = "b" * 64  # a concurrent writer moved the head
        return None

    api.publish_fault = someone_else_published
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events)
    first, second = api.publishes
    assert first.status == 412
    assert second.status == 201
    assert first.body["expectedCurrentVersionId"] == "a" * 64
    assert second.body["expectedCurrentVersionId"] == "b" * 64
    assert first.headers["idempotency-key"] != second.headers["idempotency-key"]
    assert result.previous_version_id == "b" * 64
    assert events.of(PushProgressPublish) == [PushProgressPublish(attempt=1)]


async def test_version_stale_to_null_head_sends_explicit_null(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi(head="c" * 64)
    api.publish_fault = lambda index, body: (
        problem(412, "version_stale", stale_detail(None)) if index == 0 else None
    )
    api.head = None
    api.roost_exists = True
    await push(api, tmp_path)
    assert "expectedCurrentVersionId" in api.publishes[1].body
    assert api.publishes[1].body["expectedCurrentVersionId"] is None


async def test_missing_roost_publishes_expecting_no_head(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi(roost_exists=False)
    await push(api, tmp_path)
    assert api.publishes[0].body["expectedCurrentVersionId"] is None


async def test_unreadable_head_publishes_unguarded(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    original = api._api

    def forbid_get(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return problem(403, "scope_insufficient", "no read scope")
        return original(request)

    api._api = forbid_get  # type: ignore[method-assign]
    await push(api, tmp_path)
    assert "expectedCurrentVersionId" not in api.publishes[0].body


async def test_missing_chunks_are_uploaded_again_then_republished(tmp_path: Path) -> None:
    files = sample_tree(tmp_path)
    api = FakeApi()

    def storage_lost_one(index: int, body: dict[str, Any]) -> httpx.Response | None:
        if index == 0:
            lost = body["version"]["files"][0]["chunks"][0]["hash"]
            del api.store[lost]
        return None

    api.publish_fault = storage_lost_one
    events = Recorder()
    result = await push(api, tmp_path, on_progress=events)
    assert [p.status for p in api.publishes] == [412, 201]
    first, second = api.publishes
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]  # same body
    assert first.body == second.body
    assert "(s)" in missing_detail(1)
    assert second.body["expectedCurrentVersionId"] is None  # never "s" from "chunk(s)"
    assert result.stats.uploaded_chunks == 5
    assert rebuild(api, result.version_id) == files
    tail = events.phases()[-3:]
    assert tail == ["upload", "upload", "publish"]
    assert events.of(PushProgressPublish) == [PushProgressPublish(attempt=1)]


async def test_twenty_plus_missing_chunks_trigger_a_full_recheck(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i:02}": f"content {i}".encode() for i in range(30)})
    api = FakeApi()

    def storage_lost_all(index: int, body: dict[str, Any]) -> httpx.Response | None:
        if index == 0:
            api.store.clear()
        return None

    api.publish_fault = storage_lost_all
    result = await push(api, tmp_path)
    assert [p.status for p in api.publishes] == [412, 201]  # one repair round, not two
    assert result.stats.uploaded_chunks == 60


async def test_412_loop_gives_up_after_five_attempts(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    api.publish_fault = lambda index, body: problem(412, "version_stale", stale_detail(f"{index:064x}"))
    events = Recorder()
    with pytest.raises(RoostApiError) as caught:
        await push(api, tmp_path, on_progress=events)
    assert caught.value.code == "version_stale"
    assert len(api.publishes) == 5
    assert [e.attempt for e in events.of(PushProgressPublish)] == [1, 2, 3, 4]
    assert len({p.headers["idempotency-key"] for p in api.publishes}) == 5


async def test_unparseable_412_is_raised(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    api.publish_fault = lambda index, body: problem(412, "precondition_failed", "something (else)")
    with pytest.raises(RoostApiError) as caught:
        await push(api, tmp_path)
    assert caught.value.status == 412
    assert len(api.publishes) == 1


# -- storage faults, URL expiry ------------------------------------------------------------------


async def test_storage_5xx_429_and_drops_are_retried(tmp_path: Path) -> None:
    files = {f"f{i}.txt": f"file {i}".encode() for i in range(9)}
    write_tree(tmp_path, files)
    api = FakeApi()

    async def flaky(request: httpx.Request, chunk_hash: str, attempt: int) -> httpx.Response | None:
        if attempt == 0:
            return httpx.Response(500)
        if attempt == 1:
            return httpx.Response(429, headers={"retry-after": "0"})
        if attempt == 2:
            raise httpx.RemoteProtocolError("peer closed connection without sending a response")
        return None

    api.storage_fault = flaky
    result = await push(api, tmp_path)
    assert result.stats.uploaded_chunks == 9
    assert all(count == 4 for count in api.put_attempts.values())
    assert rebuild(api, result.version_id) == files


async def test_storage_failing_for_good_aborts_before_publish(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()

    async def down(request: httpx.Request, chunk_hash: str, attempt: int) -> httpx.Response | None:
        return httpx.Response(503)

    api.storage_fault = down
    with pytest.raises(ChunkUploadError, match="503") as caught:
        await push(api, tmp_path, retry=RetryPolicy(max_attempts=3, base_delay_s=0.0))
    assert len(caught.value.chunk_hash) == 64
    assert max(api.put_attempts.values()) == 3
    assert api.publishes == []


async def test_storage_4xx_is_not_retried(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()

    async def refuse(request: httpx.Request, chunk_hash: str, attempt: int) -> httpx.Response | None:
        return httpx.Response(400, text="bad request")

    api.storage_fault = refuse
    with pytest.raises(ChunkUploadError, match="HTTP 400"):
        await push(api, tmp_path)
    assert max(api.put_attempts.values()) == 1
    assert api.publishes == []


async def test_403_mints_a_fresh_url_without_spending_the_retry_budget(tmp_path: Path) -> None:
    files = {f"f{i}.txt": f"file {i}".encode() for i in range(6)}
    write_tree(tmp_path, files)
    api = FakeApi()

    async def refuse_first_url(
        request: httpx.Request, chunk_hash: str, attempt: int
    ) -> httpx.Response | None:
        return httpx.Response(403) if attempt < 2 else None

    api.storage_fault = refuse_first_url
    result = await push(api, tmp_path, retry=RetryPolicy(max_attempts=1))
    assert result.stats.uploaded_chunks == 6
    assert all(count == 3 for count in api.put_attempts.values())
    urls = [str(p.url) for p in api.puts]
    assert len(set(urls)) == len(urls)  # every retry used a newly minted URL
    assert len(api.mint_batches) >= 3


async def test_endless_403_gives_up(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a": b"a"})
    api = FakeApi()

    async def refuse(request: httpx.Request, chunk_hash: str, attempt: int) -> httpx.Response | None:
        return httpx.Response(403)

    api.storage_fault = refuse
    with pytest.raises(ChunkUploadError, match="fresh upload URLs"):
        await push(api, tmp_path)
    assert api.put_attempts
    assert max(api.put_attempts.values()) == 9
    assert api.publishes == []


async def test_short_lived_urls_are_reminted_before_they_expire(tmp_path: Path) -> None:
    files = {f"f{i}.bin": blob(i, 5 * MiB // 2) for i in range(6)}
    write_tree(tmp_path, files)
    api = FakeApi(url_ttl_s=1.2, storage_delay_s=0.25)
    result = await push(api, tmp_path, concurrency=1, retry=RetryPolicy(max_attempts=1))
    # One 2.5 MiB chunk at a time (4 MiB budget), 0.25 s each: 1.5 s outlives one 1.2 s batch.
    assert result.stats.uploaded_chunks == 6
    assert len(api.mint_batches) >= 2
    assert {h for batch in api.mint_batches for h in batch} == set(api.store)
    assert 403 not in api.put_statuses
    assert rebuild(api, result.version_id) == files


# -- bounded concurrency -------------------------------------------------------------------------


async def test_bytes_in_flight_stay_within_concurrency_x_4_mib(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"big{i}.bin": blob(10 + i, 9 * MiB) for i in range(3)})
    api = FakeApi(storage_delay_s=0.02)
    result = await push(api, tmp_path, concurrency=2)
    assert result.stats.uploaded_chunks == 9
    assert api.peak_bytes_in_flight <= 2 * CHUNK_SIZE_BYTES
    # the bytes are the bound: two 4 MiB chunks, or one with 1 MiB tails beside it (the PUT
    # count allows more for small chunks), so at least two PUTs overlap and maybe a tail more
    assert api.peak_puts_in_flight >= 2


async def test_small_chunks_get_more_parallel_puts(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"s{i:03}": f"small {i}".encode() for i in range(100)})
    api = FakeApi(storage_delay_s=0.02)
    await push(api, tmp_path, concurrency=2)
    assert 2 < api.peak_puts_in_flight <= 16


# -- local failures ------------------------------------------------------------------------------


async def test_file_changed_before_upload_aborts_and_names_it(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()

    def tamper(event: PushProgressEvent) -> None:
        if isinstance(event, PushProgressCheckMissing):
            (tmp_path / "dir" / "b.bin").write_bytes(blob(99, 5 * MiB))

    with pytest.raises(ChunkSourceChangedError) as caught:
        await push(api, tmp_path, on_progress=tamper)
    assert caught.value.path == os.path.join(real_path(tmp_path), "dir", "b.bin")
    assert "b.bin" in str(caught.value)
    assert api.publishes == []


async def test_file_deleted_before_upload_aborts(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()

    def delete(event: PushProgressEvent) -> None:
        if isinstance(event, PushProgressCheckMissing):
            (tmp_path / "a.txt").unlink()

    with pytest.raises(ChunkSourceChangedError, match=r"a\.txt"):
        await push(api, tmp_path, on_progress=delete)
    assert api.publishes == []


@pytest.mark.parametrize("make", ["missing", "file"])
async def test_bad_paths_raise_before_any_request(tmp_path: Path, make: str) -> None:
    api = FakeApi()
    target = tmp_path / "nope"
    if make == "file":
        target.write_bytes(b"x")
    expected = PushSourceNotFoundError if make == "missing" else PushSourceNotADirectoryError
    with pytest.raises(ValueError, match="nope") as caught:
        await push(api, target)
    assert isinstance(caught.value, expected)
    assert isinstance(caught.value, FileNotFoundError if make == "missing" else NotADirectoryError)
    assert api.requests == []


async def test_tree_without_files_raises_before_any_request(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_bytes(b"ref")
    api = FakeApi()
    with pytest.raises(ValueError, match="no files"):
        await push(api, tmp_path)
    assert api.requests == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"site_id": ""}, "site_id"),
        ({"site_id": SITE, "concurrency": 0}, "concurrency"),
        ({"site_id": SITE, "ignore": "dist"}, "ignore"),
    ],
)
async def test_bad_options_raise(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    async with api.client() as http:
        with pytest.raises(ValueError, match=message):
            await push_directory(http, tmp_path, "rst_unit_1", PushOptions(**options))
        with pytest.raises(ValueError, match="roost_id"):
            await push_directory(http, tmp_path, "", PushOptions(site_id=SITE))
    assert api.requests == []


# -- progress callbacks --------------------------------------------------------------------------


async def test_async_and_sync_callbacks_are_delivered_in_order(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i:02}": f"file {i}".encode() for i in range(10)})
    seen: list[str] = []

    async def slow(event: PushProgressEvent) -> None:
        await anyio.sleep(0.01 if isinstance(event, PushProgressUpload) and event.uploaded == 4 else 0)
        seen.append(event.phase if not isinstance(event, PushProgressUpload) else f"upload:{event.uploaded}")

    await push(FakeApi(), tmp_path, on_progress=slow)
    assert seen[0] == "discover"
    assert [s for s in seen if s.startswith("upload:")] == ["upload:4", "upload:8", "upload:10"]
    assert seen[-1] == "upload:10"
    assert seen.index("check-missing") > max(i for i, s in enumerate(seen) if s == "hash")


async def test_callback_exception_propagates_and_stops_the_push(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()

    async def boom(event: PushProgressEvent) -> None:
        if isinstance(event, PushProgressUpload):
            raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        await push(api, tmp_path, on_progress=boom)
    assert api.publishes == []


async def test_sync_callback_exception_in_hash_phase_propagates(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()

    def boom(event: PushProgressEvent) -> None:
        if event.phase == "hash":
            raise RuntimeError("stop hashing")

    with pytest.raises(RuntimeError, match="stop hashing"):
        await push(api, tmp_path, on_progress=boom)
    assert api.requests == []


# -- cancellation --------------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


async def test_cancelling_push_cancels_every_worker(tmp_path: Path) -> None:
    write_tree(tmp_path, {f"f{i:02}": blob(i, 64 * 1024) for i in range(40)})
    api = FakeApi()
    started: list[str] = []
    finished: list[str] = []

    async def hang(request: httpx.Request, chunk_hash: str, attempt: int) -> httpx.Response | None:
        started.append(chunk_hash)
        try:
            await anyio.sleep_forever()
        finally:
            finished.append(chunk_hash)
        return None

    api.storage_fault = hang
    fds_before = _open_fds()
    with anyio.move_on_after(0.5) as scope:
        await push(api, tmp_path, concurrency=2)
    assert scope.cancelled_caught
    assert len(started) == 16  # concurrency x 8 small PUTs were in flight
    assert sorted(finished) == sorted(started)  # every one of them was cancelled
    assert api.publishes == []
    await anyio.sleep(0.05)
    assert _open_fds() == fds_before


async def test_publish_body_is_json_with_version_and_extras(tmp_path: Path) -> None:
    sample_tree(tmp_path)
    api = FakeApi()
    await push(api, tmp_path, name="Show", targets=["m1", "m2"], extract_path="C:/show", description="d")
    body = api.publishes[0].body
    assert list(body) == [
        "siteId",
        "version",
        "expectedCurrentVersionId",
        "name",
        "targets",
        "extractPath",
        "description",
    ]
    assert (body["name"], body["targets"], body["extractPath"]) == ("Show", ["m1", "m2"], "C:/show")
    raw = next(r for r in api.requests if r.url.path.endswith("/versions")).content
    assert json.loads(raw) == body
