"""The push ledger (a re-push checks only unknown chunks), skip_unchanged, and skipped entries."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from roost import PushOptions, PushResult, chunker
from roost._push import engine, ledger, push_directory
from roost.chunker import ChunkProgressEvent, DiscoverProgress, SkippedEntry

from .fakes import API, SITE, FakeApi, rebuild, write_tree

pytestmark = pytest.mark.anyio

ROOST = "rst_ledger"
H = [f"{i:064x}" for i in range(10)]


def tree(root: Path, count: int = 20) -> dict[str, bytes]:
    files = {f"f{i:02}.txt": f"file number {i}".encode() for i in range(count)}
    write_tree(root, files)
    return files


def ledger_exists() -> bool:
    return os.path.exists(ledger.ledger_path(API, SITE))


async def push(api: FakeApi, root: Path, **options: Any) -> PushResult:
    async with api.client() as http:
        return await push_directory(http, root, ROOST, PushOptions(site_id=SITE, **options))


# -- the ledger file -----------------------------------------------------------------------------


def test_ledger_round_trip_is_private_and_keyed_by_api_and_site(tmp_path: Path) -> None:
    path = ledger.ledger_path(API, SITE)
    assert path != ledger.ledger_path(API, "other-site") != ledger.ledger_path("https://other", SITE)
    assert SITE not in path
    assert "api.test" not in path
    book = ledger.Ledger.load(path)
    assert book.known(H) == set()
    assert book.record(H[:3], ROOST, ledger.KnownHead("v" * 64, "d" * 64))
    again = ledger.Ledger.load(path)
    assert again.known(H) == set(H[:3])
    assert again.known(["not-hex"]) == set()
    assert again.head(ROOST) == ledger.KnownHead("v" * 64, "d" * 64)
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_ledger_takes_only_hex_digests_in_bulk_and_one_by_one() -> None:
    path = ledger.ledger_path(API, SITE)
    book = ledger.Ledger.load(path)
    odd = ["not-hex", "ab", "g" * 64, H[0].upper(), " " + H[1][1:]]
    # a record with odd entries among the digests stores the digests alone, readable again
    assert book.record([*odd, H[2], H[3]])
    again = ledger.Ledger.load(path)
    assert again.known(H) == {H[0], H[2], H[3]}  # hex is read case-blind, as bytes.fromhex does
    assert again.known([*odd, H[2]]) == {H[0].upper(), H[2]}
    assert again.known(H[2:4]) == set(H[2:4])  # the bulk path: all well-formed


def test_corrupt_ledger_is_ignored_and_replaced() -> None:
    path = ledger.ledger_path(API, SITE)
    assert ledger.Ledger.load(path).record(H[:2])
    data = bytearray(Path(path).read_bytes())
    data[-1] ^= 0xFF
    Path(path).write_bytes(bytes(data))
    assert ledger.Ledger.load(path).known(H) == set()
    Path(path).write_bytes(b"garbage")
    book = ledger.Ledger.load(path)
    assert book.known(H) == set()
    assert book.record(H[5:6])
    assert ledger.Ledger.load(path).known(H) == {H[5]}


def test_ledger_keeps_the_most_recent_chunks_and_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger, "MAX_CHUNKS", 4)
    monkeypatch.setattr(ledger, "MAX_HEADS", 2)
    path = ledger.ledger_path(API, SITE)
    book = ledger.Ledger.load(path)
    book.record(H[:4], "rst_one_0", ledger.KnownHead("1", "a"))
    book.record([H[0]], "rst_two_0", ledger.KnownHead("2", "b"))  # H[0] used again: kept
    book.record(H[4:6], "rst_three", ledger.KnownHead("3", "c"))
    again = ledger.Ledger.load(path)
    assert again.known(H) == {H[0], H[3], H[4], H[5]}
    assert again.head("rst_one_0") is None
    assert again.head("rst_three") == ledger.KnownHead("3", "c")


def test_concurrent_writers_lose_nothing() -> None:
    path = ledger.ledger_path(API, SITE)
    hashes = [f"{i:064x}" for i in range(400)]

    def writer(part: int) -> None:
        for i in range(part, 400, 8):
            assert ledger.Ledger.load(path).record([hashes[i]])

    threads = [threading.Thread(target=writer, args=(part,)) for part in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.Ledger.load(path).known(hashes) == set(hashes)


def test_a_ledger_written_since_it_was_loaded_is_read_again_before_its_record() -> None:
    path = ledger.ledger_path(API, SITE)
    first, second = ledger.Ledger.load(path), ledger.Ledger.load(path)
    assert first.record(["a" * 64])
    assert second.record(["b" * 64])  # loaded before the first record: must not drop "a"
    assert ledger.Ledger.load(path).known(["a" * 64, "b" * 64]) == {"a" * 64, "b" * 64}
    assert second.record(["c" * 64])  # its own write since: no re-read needed, nothing lost
    assert ledger.Ledger.load(path).known(["a" * 64, "b" * 64, "c" * 64]) == {"a" * 64, "b" * 64, "c" * 64}


def test_a_ledger_that_wrote_last_is_not_read_again_before_its_next_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A push's ledger knows the file it wrote itself (a small one included, whose bytes sit in
    the write buffer until flushed): its next record merges without loading the file again."""
    path = ledger.ledger_path(API, SITE)
    book = ledger.Ledger.load(path)
    assert book.record(H[:2], ROOST, ledger.KnownHead("v" * 64, "d" * 64))
    loads: list[str] = []
    real = ledger.Ledger.load.__func__  # type: ignore[attr-defined]

    def counted(cls: type[ledger.Ledger], where: str) -> ledger.Ledger:
        loads.append(where)
        return real(cls, where)  # type: ignore[no-any-return]

    monkeypatch.setattr(ledger.Ledger, "load", classmethod(counted))
    assert book.record(H[2:3], ROOST, ledger.KnownHead("w" * 64, "d" * 64))
    assert loads == []
    monkeypatch.undo()
    again = ledger.Ledger.load(path)
    assert again.known(H) == set(H[:3])
    assert again.head(ROOST) == ledger.KnownHead("w" * 64, "d" * 64)


# -- the ledger in a push ------------------------------------------------------------------------


async def test_repush_checks_only_chunks_the_ledger_does_not_know(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi()
    await push(api, tmp_path)
    assert sum(len(batch) for batch in api.check_batches) == 20
    api.check_batches.clear()
    second = await push(api, tmp_path)
    assert api.check_batches == []
    assert second.stats.uploaded_chunks == 0
    (tmp_path / "new.txt").write_bytes(b"a new file")
    third = await push(api, tmp_path)
    assert [len(batch) for batch in api.check_batches] == [1]
    assert third.stats.uploaded_chunks == 1


async def test_cache_false_uses_no_ledger(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi()
    await push(api, tmp_path, cache=False)
    assert not ledger_exists()
    await push(api, tmp_path)  # writes the ledger
    api.check_batches.clear()
    await push(api, tmp_path, cache=False)
    assert sum(len(batch) for batch in api.check_batches) == 20


async def test_chunks_the_ledger_lists_but_storage_lost_are_uploaded_again(tmp_path: Path) -> None:
    files = tree(tmp_path, 30)
    api = FakeApi()
    await push(api, tmp_path)
    lost = sorted(api.store)[:25]  # more than one 412 lists (20): the repair asks about them all
    for chunk_hash in lost:
        del api.store[chunk_hash]
    (tmp_path / "f00.txt").write_bytes(b"changed")
    files["f00.txt"] = b"changed"
    result = await push(api, tmp_path)
    assert rebuild(api, result.version_id) == files
    referenced = {c["hash"] for f in api.versions[result.version_id]["files"] for c in f["chunks"]}
    assert len(referenced & set(lost)) >= 24
    assert referenced <= set(api.store)
    assert [p.status for p in api.publishes[1:]] == [412, 201]


async def test_dry_run_uses_but_does_not_write_the_ledger(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi()
    await push(api, tmp_path, dry_run=True)
    assert not ledger_exists()


# -- skip_unchanged ------------------------------------------------------------------------------


async def test_skip_unchanged_with_a_warm_ledger_costs_one_request(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi(roost_exists=False)
    first = await push(api, tmp_path, description="build 1", name="Lobby")
    api.requests.clear()
    again = await push(api, tmp_path, skip_unchanged=True, name="Lobby")
    assert len(api.requests) == 1
    assert api.requests[0].method == "GET"
    assert again.unchanged is True
    assert again.version_id == again.current_version_id == first.version_id
    assert again.version_number == first.version_number == 1
    assert again.previous_version_id is None
    assert again.stats.file_count == 20
    assert again.stats.uploaded_chunks == 0
    assert len(api.publishes) == 1


async def test_skip_unchanged_without_the_ledger_reads_the_head_version(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi()
    first = await push(api, tmp_path, cache=False)
    api.requests.clear()
    again = await push(api, tmp_path, skip_unchanged=True, cache=False)
    assert [r.method for r in api.requests] == ["GET", "GET"]
    assert again.unchanged is True
    assert again.version_id == first.version_id


async def test_skip_unchanged_with_a_ledger_that_lacks_the_head_trusts_the_head_chunks(
    tmp_path: Path,
) -> None:
    tree(tmp_path)
    api = FakeApi()
    first = await push(api, tmp_path)
    # another machine's ledger: it knows other chunks, not this roost's head nor its chunks
    os.remove(ledger.ledger_path(API, SITE))
    assert ledger.Ledger.load(ledger.ledger_path(API, SITE)).record(H[:3])
    api.requests.clear()
    api.check_batches.clear()
    again = await push(api, tmp_path, skip_unchanged=True)
    # the roost and its head version's files: the head's chunks are stored, none is checked
    assert [r.method for r in api.requests] == ["GET", "GET"]
    assert api.check_batches == []
    assert again.unchanged is True
    assert again.version_id == first.version_id


@pytest.mark.parametrize(
    "change",
    ["file", "description", "name", "targets", "extract_path"],
)
async def test_skip_unchanged_publishes_when_anything_differs(tmp_path: Path, change: str) -> None:
    tree(tmp_path)
    api = FakeApi()
    base: dict[str, Any] = {"description": "d", "name": "n", "targets": ["m1"], "extract_path": "C:\\x"}
    first = await push(api, tmp_path, **base)
    options = dict(base)
    if change == "file":
        (tmp_path / "f01.txt").write_bytes(b"edited")
    else:
        options[change] = ["m2"] if change == "targets" else "other"
    again = await push(api, tmp_path, skip_unchanged=True, **options)
    assert again.unchanged is False
    assert again.version_number == 2
    assert again.previous_version_id == first.version_id


async def test_skip_unchanged_compares_fields_as_the_server_stores_them(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi()
    await push(api, tmp_path, description="  d  ", name="n", targets=["m1"])
    api.roost_fields["name"] = "n"  # the server trims
    again = await push(api, tmp_path, skip_unchanged=True, description="d", name=" n ", targets=["m1", "m1"])
    assert again.unchanged is True


async def test_skip_unchanged_publishes_when_the_head_body_is_gone(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi()
    first = await push(api, tmp_path, cache=False)
    api.versions.pop(first.version_id)
    again = await push(api, tmp_path, skip_unchanged=True, cache=False)
    assert again.unchanged is False
    assert again.version_number == 2


async def test_skip_unchanged_on_a_new_roost_publishes(tmp_path: Path) -> None:
    tree(tmp_path)
    api = FakeApi(roost_exists=False)
    result = await push(api, tmp_path, skip_unchanged=True)
    assert result.unchanged is False
    assert result.created_roost is True


# -- what the walk skipped -----------------------------------------------------------------------


async def test_skipped_entries_and_unmatched_ignores_reach_the_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree(tmp_path, 3)
    skipped = (
        SkippedEntry("a/link", "link_outside_root"),
        SkippedEntry("b/dangling", "broken_link"),
        SkippedEntry("c/link", "link_outside_root"),
        SkippedEntry("fifo", "special_file"),
    )
    real = chunker._stream_tree

    def walk_that_skips(*args: Any, **kwargs: Any) -> Any:
        forward = kwargs["on_progress"]

        def rewrite(event: ChunkProgressEvent) -> Any:
            if isinstance(event, DiscoverProgress):
                event = DiscoverProgress(
                    event.file_count,
                    event.total_bytes,
                    skipped=skipped,
                    unmatched_ignores=("*.tmp", "build/"),
                )
            return forward(event)

        kwargs["on_progress"] = rewrite
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_stream_tree", walk_that_skips)
    seen: list[Any] = []
    result = await push(FakeApi(), tmp_path, on_progress=seen.append)
    assert result.skipped == skipped
    assert result.stats.skipped == {"link_outside_root": 2, "broken_link": 1, "special_file": 1}
    assert result.warnings == (
        "ignore pattern '*.tmp' matched nothing",
        "ignore pattern 'build/' matched nothing",
    )
    assert next(e for e in seen if isinstance(e, DiscoverProgress)).skipped == skipped
    dry = await push(FakeApi(), tmp_path, dry_run=True)
    assert dry.stats.skipped == result.stats.skipped
    assert dry.skipped == skipped


async def test_nothing_skipped_means_empty_counts(tmp_path: Path) -> None:
    tree(tmp_path, 2)
    result = await push(FakeApi(), tmp_path)
    assert result.skipped == ()
    assert dict(result.stats.skipped) == {}
    assert result.warnings == ()
