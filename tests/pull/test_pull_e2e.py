"""End to end: ``client.roosts.pull`` against the local emulator, on both chunker backends."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import PullOptions, RetryPolicy, Roost
from roost.resources.roosts import PullProgressDownload, PullProgressEvent

from .conftest import ROOST, MiB, blob, disk_tree, publish, pull, temp_files, write_tree

pytestmark = pytest.mark.anyio


def sample() -> dict[str, bytes]:
    return {
        "readme.txt": b"hello roost\n",
        "big/four-mib-plus-one.bin": blob(1, 4 * MiB + 1),
        "big/copy.bin": blob(1, 4 * MiB + 1),  # same chunks: downloaded once
        "empty-at-root": b"",
        "deep/a/b/empty.cfg": b"",
        "unicodé/naïve 名前.txt": "ünïcödé".encode(),
        "assets/one.png": blob(2, 200_000),
    }


def storage_gets(server: Any) -> int:
    return sum(1 for record in server.storage_requests if record.method == "GET")


async def test_pull_into_empty_directory_is_byte_exact(
    chunker_backend: str, server: Any, client: Roost, tmp_path: Path
) -> None:
    files = sample()
    version_id = await publish(client, server.site_id, tmp_path / "src", files)
    events: list[PullProgressEvent] = []
    result = await pull(client, server.site_id, tmp_path / "dest" / "new", on_progress=events.append)

    assert disk_tree(tmp_path / "dest" / "new") == files
    assert result.version_id == version_id
    assert result.version_number == 1
    assert sorted(result.added) == sorted(files)
    assert result.changed == ()
    assert result.removed == ()
    assert result.in_sync
    assert not result.check
    distinct = {blob(1, 4 * MiB + 1), b"hello roost\n", blob(2, 200_000), "ünïcödé".encode()}
    assert result.stats.downloaded_bytes == sum(len(data) for data in distinct)
    assert result.stats.downloaded_chunks == 5  # 2 + 1 + 1 + 1: the copy's chunks come once
    assert result.stats.written_files == len(files)
    assert result.stats.unchanged_files == 0
    assert storage_gets(server) == 5
    phases = [event.phase for event in events]
    assert phases[:2] == ["discover", "plan"]
    assert set(phases[2:]) == {"download"}
    last = events[-1]
    assert isinstance(last, PullProgressDownload)
    assert (last.downloaded, last.total, last.bytes_downloaded) == (5, 5, result.stats.downloaded_bytes)
    assert temp_files(tmp_path / "dest") == []


async def test_repull_downloads_nothing_and_touches_nothing(
    chunker_backend: str, server: Any, client: Roost, tmp_path: Path
) -> None:
    files = sample()
    await publish(client, server.site_id, tmp_path / "src", files)
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    before = {path: os.stat(dest / path).st_ino for path in files}
    server.clear_storage_requests()

    again = await pull(client, server.site_id, dest, ref=1)

    assert again.stats.downloaded_bytes == 0
    assert again.stats.downloaded_chunks == 0
    assert again.stats.written_files == 0
    assert again.stats.unchanged_files == len(files)
    assert again.added == again.changed == again.removed == ()
    assert again.in_sync
    assert storage_gets(server) == 0
    assert {path: os.stat(dest / path).st_ino for path in files} == before


async def test_one_chunk_change_downloads_exactly_that_chunk(
    chunker_backend: str, server: Any, client: Roost, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    files = {"data.bin": blob(5, 3 * 4 * MiB), "other.txt": b"unchanged"}
    await publish(client, server.site_id, src, files)
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    changed = bytearray(files["data.bin"])
    changed[4 * MiB + 10] ^= 0xFF  # the middle chunk only
    files["data.bin"] = bytes(changed)
    await publish(client, server.site_id, src, files)
    server.clear_storage_requests()

    result = await pull(client, server.site_id, dest)

    assert result.version_number == 2
    assert result.changed == ("data.bin",)
    assert result.added == ()
    assert (result.stats.downloaded_chunks, result.stats.downloaded_bytes) == (1, 4 * MiB)
    assert (result.stats.copied_chunks, result.stats.copied_bytes) == (2, 8 * MiB)
    assert storage_gets(server) == 1
    assert disk_tree(dest) == files


async def test_renamed_file_is_copied_not_downloaded(
    chunker_backend: str, server: Any, client: Roost, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    await publish(client, server.site_id, src, {"old/name.bin": blob(7, 5 * MiB), "keep.txt": b"k"})
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    os.rename(src / "old" / "name.bin", src / "new-name.bin")
    os.rmdir(src / "old")
    await publish(client, server.site_id, src, {})
    server.clear_storage_requests()

    result = await pull(client, server.site_id, dest, delete=True)

    assert result.added == ("new-name.bin",)
    assert result.removed == ("old/name.bin",)
    assert result.stats.downloaded_chunks == 0
    assert storage_gets(server) == 0
    assert (result.stats.copied_chunks, result.stats.copied_bytes) == (2, 5 * MiB)
    assert result.stats.deleted_files == 1
    assert disk_tree(dest) == {"new-name.bin": blob(7, 5 * MiB), "keep.txt": b"k"}
    assert not (dest / "old").exists()  # left empty by the delete: removed too


async def test_every_ref_form_pulls_the_same_version(server: Any, client: Roost, tmp_path: Path) -> None:
    src = tmp_path / "src"
    first = await publish(client, server.site_id, src, {"a.txt": b"one"})
    await publish(client, server.site_id, src, {"a.txt": b"two"})
    for index, ref in enumerate((1, "1", "v1", "#1", "first", first, "previous")):
        result = await pull(client, server.site_id, tmp_path / f"d{index}", ref=ref)
        assert result.version_id == first, ref
        assert (tmp_path / f"d{index}" / "a.txt").read_bytes() == b"one"
    current = await pull(client, server.site_id, tmp_path / "cur")
    assert current.version_number == 2
    assert (tmp_path / "cur" / "a.txt").read_bytes() == b"two"


async def test_check_reports_differences_and_writes_nothing(
    chunker_backend: str, server: Any, client: Roost, tmp_path: Path
) -> None:
    files = {"same.txt": b"same", "edit.txt": b"original", "gone.txt": b"gone", "sub/x.txt": b"x"}
    await publish(client, server.site_id, tmp_path / "src", files)
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    in_sync = await pull(client, server.site_id, dest, check=True)
    assert in_sync.in_sync
    assert in_sync.check
    assert in_sync.added == in_sync.changed == in_sync.removed == ()

    (dest / "edit.txt").write_bytes(b"edited")
    (dest / "gone.txt").unlink()
    (dest / "extra.txt").write_bytes(b"extra")
    before = disk_tree(dest)
    server.clear_storage_requests()

    result = await pull(client, server.site_id, dest, check=True)

    assert (result.added, result.changed, result.removed) == (("gone.txt",), ("edit.txt",), ("extra.txt",))
    assert not result.in_sync
    assert result.check
    assert result.stats.downloaded_chunks == 0
    assert result.stats.written_files == 0
    assert disk_tree(dest) == before
    assert storage_gets(server) == 0
    missing = await pull(client, server.site_id, tmp_path / "nowhere", check=True)
    assert sorted(missing.added) == sorted(files)
    assert not (tmp_path / "nowhere").exists()


async def test_files_not_in_the_version_are_kept_unless_delete(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    await publish(client, server.site_id, tmp_path / "src", {"a.txt": b"a"})
    dest = tmp_path / "dest"
    write_tree(dest, {"mine/notes.txt": b"keep me", "mine/deeper/x": b"x"})
    kept = await pull(client, server.site_id, dest)
    assert sorted(kept.removed) == ["mine/deeper/x", "mine/notes.txt"]
    assert not kept.in_sync
    assert (dest / "mine" / "notes.txt").read_bytes() == b"keep me"

    deleted = await pull(client, server.site_id, dest, delete=True)

    assert deleted.in_sync
    assert deleted.stats.deleted_files == 2
    assert disk_tree(dest) == {"a.txt": b"a"}
    assert not (dest / "mine").exists()


async def test_a_symlink_at_a_final_path_is_replaced_not_written_through(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    content = b"from the version"
    await publish(client, server.site_id, tmp_path / "src", {"conf.txt": content, "inner.txt": content})
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "conf.txt").symlink_to(outside)
    (dest / "real.txt").write_bytes(content)
    (dest / "inner.txt").symlink_to(dest / "real.txt")  # same content, still not trusted through a link

    result = await pull(client, server.site_id, dest)

    assert result.added == ("conf.txt",)  # the walk does not follow a link out of dest
    assert result.changed == ("inner.txt",)
    for name in ("conf.txt", "inner.txt"):
        assert not (dest / name).is_symlink()
        assert (dest / name).read_bytes() == content
    assert outside.read_bytes() == b"outside"
    assert (dest / "real.txt").read_bytes() == content


async def test_an_obstacle_fails_before_writing_unless_delete(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    await publish(client, server.site_id, tmp_path / "src", {"a/b.txt": b"b", "z.txt": b"z"})
    dest = tmp_path / "dest"
    write_tree(dest, {"a": b"a file where a directory must go"})

    with pytest.raises(FileExistsError, match="'a'"):
        await pull(client, server.site_id, dest)
    assert disk_tree(dest) == {"a": b"a file where a directory must go"}

    result = await pull(client, server.site_id, dest, delete=True)
    assert result.in_sync
    assert disk_tree(dest) == {"a/b.txt": b"b", "z.txt": b"z"}


async def test_a_directory_at_a_final_path_is_an_obstacle_in_a_listed_directory(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    # The parents exist as real directories, so the answer comes from their listing, not an lstat.
    await publish(client, server.site_id, tmp_path / "src", {"sub/z.txt": b"z", "sub/keep.txt": b"k"})
    dest = tmp_path / "dest"
    write_tree(dest, {"sub/z.txt/inside": b"a directory where a file must go", "sub/keep.txt": b"k"})

    with pytest.raises(FileExistsError, match=r"'sub/z\.txt'"):
        await pull(client, server.site_id, dest)
    assert (dest / "sub" / "z.txt" / "inside").exists()

    result = await pull(client, server.site_id, dest, delete=True)
    assert result.in_sync
    assert disk_tree(dest) == {"sub/z.txt": b"z", "sub/keep.txt": b"k"}


async def test_progress_moves_while_one_chunk_downloads(server: Any, client: Roost, tmp_path: Path) -> None:
    await publish(client, server.site_id, tmp_path / "src", {"one.bin": blob(9, 4 * MiB)})
    server.set_faults("storage_bandwidth_mbps=4")  # about a second for the chunk
    events: list[PullProgressEvent] = []
    await pull(client, server.site_id, tmp_path / "dest", on_progress=events.append)
    downloads = [event for event in events if isinstance(event, PullProgressDownload)]
    mid = [event for event in downloads if event.downloaded == 0]
    assert mid, downloads
    assert all(0 < event.bytes_downloaded < 4 * MiB and event.total == 1 for event in mid)
    assert downloads[-1].downloaded == 1
    assert downloads[-1].bytes_downloaded == 4 * MiB
    moved = [event.bytes_downloaded for event in downloads]
    assert moved == sorted(moved)


async def test_cancelling_a_pull_leaves_no_partial_file(server: Any, client: Roost, tmp_path: Path) -> None:
    files = {f"f{i}.bin": blob(20 + i, 2 * MiB) for i in range(6)}
    await publish(client, server.site_id, tmp_path / "src", files)
    server.set_faults("storage_bandwidth_mbps=8")
    dest = tmp_path / "dest"
    started = anyio.Event()

    def on_progress(event: PullProgressEvent) -> None:
        if isinstance(event, PullProgressDownload) and event.bytes_downloaded > 0:
            started.set()

    async with anyio.create_task_group() as group:

        async def run() -> None:
            await pull(client, server.site_id, dest, on_progress=on_progress, concurrency=1)

        group.start_soon(run)
        await started.wait()
        group.cancel_scope.cancel()

    assert temp_files(dest) == []
    for rel, data in disk_tree(dest).items():
        assert files[rel] == data  # whatever is at a final path is whole
    assert len(disk_tree(dest)) < len(files)


async def test_faulty_api_and_expiring_urls_ten_seeded_pulls_are_byte_exact(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    files = {f"dir{i % 3}/f{i}.bin": blob(40 + i, 300_000 + i) for i in range(12)}
    files["big.bin"] = blob(99, 6 * MiB)
    files["empty"] = b""
    await publish(client, server.site_id, tmp_path / "src", files)
    retry = RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.05)
    async with Roost(token=server.token, api_url=server.url, retry=retry) as patient:
        for seed in range(10):
            server.set_faults(f"api_5xx=0.2,storage_drop=0.2,download_url_ttl_s=2,seed={seed}")
            dest = tmp_path / f"dest{seed}"
            result = await patient.roosts.pull(
                ROOST, dest, PullOptions(site_id=server.site_id, concurrency=1)
            )
            assert disk_tree(dest) == files, seed
            assert result.in_sync
            assert temp_files(dest) == []


async def test_urls_near_expiry_are_minted_again(
    server: Any, client: Roost, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {f"f{i}.bin": blob(60 + i, MiB) for i in range(12)}
    await publish(client, server.site_id, tmp_path / "src", files)
    server.set_faults("download_url_ttl_s=1,storage_bandwidth_mbps=6")  # about two seconds of GETs
    caplog.set_level(logging.DEBUG, logger="roost")
    await pull(client, server.site_id, tmp_path / "dest", concurrency=1)
    assert disk_tree(tmp_path / "dest") == files
    mints = [record for record in caplog.records if record.getMessage().startswith("minted")]
    assert len(mints) >= 2
    assert all(server.token not in record.getMessage() for record in caplog.records)


async def test_a_killed_pulls_temp_files_are_reused_then_removed(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    files = {"sub/whole.bin": blob(70, 3 * MiB), "other.txt": b"other"}
    await publish(client, server.site_id, tmp_path / "src", files)
    dest = tmp_path / "dest"
    write_tree(dest, {"sub/.roost-tmp-0123456789abcdef": files["sub/whole.bin"]})

    result = await pull(client, server.site_id, dest)

    assert result.stats.copied_chunks == 1
    assert result.stats.downloaded_chunks == 1
    assert result.removed == ()
    assert disk_tree(dest) == files
