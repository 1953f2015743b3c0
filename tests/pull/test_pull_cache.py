"""The manifest cache: a re-pull of a version pulled before reads no manifest, and never trusts a bad entry."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import NotFoundError, Roost, UnsafeManifestPathError
from roost._pull import cache

from .conftest import ROOST, MiB, blob, disk_tree, publish, pull

pytestmark = pytest.mark.anyio


@dataclass
class Recording(httpx.AsyncBaseTransport):
    """The API transport, passing everything through and noting ``METHOD /path`` of each request."""

    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    seen: list[str] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def take(self) -> list[str]:
        """The API requests since the last call."""
        out = [line for line in self.seen if " /api/" in line]
        self.seen.clear()
        return out


def manifest_gets(requests: list[str]) -> list[str]:
    """Requests that read a version's file list (the document or its files route beyond one row)."""
    return [
        line for line in requests if line.startswith("GET") and "/versions/" in line and "/files" not in line
    ]


@pytest.fixture
async def recorded(server: Any) -> AsyncIterator[tuple[Roost, Recording]]:
    recording = Recording()
    async with Roost(token=server.token, api_url=server.url, transport=recording) as roost:
        yield roost, recording


def sample() -> dict[str, bytes]:
    return {
        "readme.txt": b"hello cache\n",
        "big/four-mib-plus-one.bin": blob(11, 4 * MiB + 1),
        "empty": b"",
        "unicodé/naïve 名前.txt": "ünïcödé".encode(),
        "deep/a/b/c.cfg": b"c",
    }


def cache_files() -> list[Path]:
    folder = Path(os.environ["ROOST_CACHE_DIR"]) / "pull-manifests"
    return sorted(folder.glob("*.bin")) if folder.is_dir() else []


async def test_a_cached_version_pulls_byte_exact_without_reading_its_manifest(
    chunker_backend: str, server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    client, api = recorded
    files = sample()
    version_id = await publish(client, server.site_id, tmp_path / "src", files)
    api.take()

    first = await pull(client, server.site_id, tmp_path / "one")
    assert len(manifest_gets(api.take())) == 1  # a miss: read once, then stored
    assert len(cache_files()) == 1

    # 'current' costs the roost read only; a version id costs nothing before the downloads.
    fresh = await pull(client, server.site_id, tmp_path / "two")
    requests = api.take()
    assert manifest_gets(requests) == []
    assert requests.count(f"GET /api/roosts/{ROOST}") == 1
    by_id = await pull(client, server.site_id, tmp_path / "three", ref=version_id)
    requests = api.take()
    assert manifest_gets(requests) == []
    assert all("/api/roosts/" not in line for line in requests)  # only URL mints

    for result, folder in ((first, "one"), (fresh, "two"), (by_id, "three")):
        assert disk_tree(tmp_path / folder) == files
        assert (result.version_id, result.version_number) == (version_id, 1)
        assert result.in_sync
    assert sorted(fresh.added) == sorted(files)


async def test_a_repull_from_the_cache_downloads_nothing_and_calls_nothing_for_a_version_id(
    chunker_backend: str, server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    client, api = recorded
    files = sample()
    version_id = await publish(client, server.site_id, tmp_path / "src", files)
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    before = {path: os.stat(dest / path).st_ino for path in files}
    server.clear_storage_requests()
    api.take()
    calls = server.api_calls

    again = await pull(client, server.site_id, dest, ref=version_id)

    assert server.api_calls == calls
    assert again.stats.downloaded_bytes == again.stats.written_files == 0
    assert again.stats.unchanged_files == len(files)
    assert again.added == again.changed == again.removed == ()
    assert server.storage_requests == []
    assert {path: os.stat(dest / path).st_ino for path in files} == before
    numbered = await pull(client, server.site_id, dest, ref="v1")  # one files row resolves it
    assert manifest_gets(api.take()) == []
    assert numbered.stats.downloaded_bytes == 0


async def test_another_version_id_is_never_served_from_the_cache(
    chunker_backend: str, server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    client, api = recorded
    src = tmp_path / "src"
    first = await publish(client, server.site_id, src, {"a.txt": b"one", "same.txt": b"same"})
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    second = await publish(client, server.site_id, src, {"a.txt": b"two", "same.txt": b"same"})
    api.take()

    result = await pull(client, server.site_id, dest)

    assert len(manifest_gets(api.take())) == 1
    assert (result.version_id, result.version_number) == (second, 2)
    assert result.changed == ("a.txt",)
    assert disk_tree(dest) == {"a.txt": b"two", "same.txt": b"same"}
    back = await pull(client, server.site_id, dest, ref=first)  # both cached now
    assert manifest_gets(api.take()) == []
    assert back.version_id == first
    assert disk_tree(dest) == {"a.txt": b"one", "same.txt": b"same"}
    assert len(cache_files()) == 2


def corrupt_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def corrupt_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def corrupt_garbage(path: Path) -> None:
    path.write_bytes(b"not a manifest cache file at all")


def corrupt_empty(path: Path) -> None:
    path.write_bytes(b"")


def loosen(path: Path) -> None:
    path.chmod(0o644)  # group/other bits: not owner-only any more


def swap_for_link(path: Path) -> None:
    copy = path.with_name("elsewhere")
    path.rename(copy)
    path.symlink_to(copy)


@pytest.mark.parametrize(
    "spoil", [corrupt_truncate, corrupt_flip, corrupt_garbage, corrupt_empty, loosen, swap_for_link]
)
async def test_a_spoiled_cache_file_is_ignored_and_replaced(
    server: Any, recorded: tuple[Roost, Recording], tmp_path: Path, spoil: Any
) -> None:
    client, api = recorded
    files = {"a.txt": b"a", "b/c.txt": b"c"}
    await publish(client, server.site_id, tmp_path / "src", files)
    await pull(client, server.site_id, tmp_path / "one")
    (entry,) = cache_files()
    spoil(entry)
    api.take()

    result = await pull(client, server.site_id, tmp_path / "two")

    assert len(manifest_gets(api.take())) == 1
    assert disk_tree(tmp_path / "two") == files
    assert result.in_sync
    assert not entry.is_symlink()
    assert entry.stat().st_mode & 0o777 == 0o600
    await pull(client, server.site_id, tmp_path / "three")
    assert manifest_gets(api.take()) == []  # the rewritten entry is trusted again


async def test_a_file_of_another_owner_is_ignored(
    server: Any, recorded: tuple[Roost, Recording], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, api = recorded
    await publish(client, server.site_id, tmp_path / "src", {"a.txt": b"a"})
    await pull(client, server.site_id, tmp_path / "one")
    api.take()
    stranger = os.geteuid() + 1
    monkeypatch.setattr(os, "geteuid", lambda: stranger)  # the file's owner is now someone else

    await pull(client, server.site_id, tmp_path / "two")

    assert len(manifest_gets(api.take())) == 1


async def test_cache_false_neither_reads_nor_writes_manifests(
    server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    client, api = recorded
    await publish(client, server.site_id, tmp_path / "src", {"a.txt": b"a"})
    api.take()
    for folder in ("one", "two"):
        result = await pull(client, server.site_id, tmp_path / folder, cache=False)
        assert result.in_sync
        assert len(manifest_gets(api.take())) == 1
    assert cache_files() == []


async def test_links_are_still_handled_on_a_cache_hit(
    server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    client, api = recorded
    files = {"conf.txt": b"conf", "sub/x.txt": b"x"}
    await publish(client, server.site_id, tmp_path / "src", files)
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    api.take()

    (dest / "conf.txt").unlink()
    (dest / "conf.txt").symlink_to(dest / "sub" / "x.txt")
    replaced = await pull(client, server.site_id, dest)
    assert replaced.changed == ("conf.txt",)
    assert not (dest / "conf.txt").is_symlink()
    assert disk_tree(dest) == files

    (dest / "sub").rename(tmp_path / "real-sub")
    (dest / "sub").symlink_to(tmp_path / "real-sub", target_is_directory=True)
    with pytest.raises(UnsafeManifestPathError, match="symbolic link"):
        await pull(client, server.site_id, dest)
    assert manifest_gets(api.take()) == []  # every one of these came from the cache
    assert (tmp_path / "real-sub" / "x.txt").read_bytes() == b"x"


def test_the_cache_keeps_the_most_recently_used_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    from roost._pull.manifest import VersionManifest

    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    keys = [cache.cache_key("https://api.test", "site", "rst_x", f"{n:064x}") for n in range(3)]
    for n, key in enumerate(keys):
        manifest = VersionManifest(f"{n:064x}", n + 1, ("a",), (1,), ("b" * 64,), verified=True)
        assert cache.store(key, manifest)
        os.utime(cache.cache_path(key), (1_000_000 + n, 1_000_000 + n))  # stored in this order
    assert cache.load(keys[0]) is not None  # a hit makes it the most recent
    assert cache.store(cache.cache_key("https://api.test", "site", "rst_x", "f" * 64), manifest)
    assert [cache.load(key) is not None for key in keys] == [True, False, True]


def test_an_entry_is_bound_to_its_api_site_and_roost() -> None:
    from roost._pull.manifest import VersionManifest

    version = "c" * 64
    manifest = VersionManifest(version, 1, ("a",), (1,), ("b" * 64,), verified=True)
    assert cache.store(cache.cache_key("https://api.test", "site", "rst_x", version), manifest)
    assert cache.load(cache.cache_key("https://api.test", "site", "rst_x", version)) == manifest
    for other in (
        cache.cache_key("https://other.test", "site", "rst_x", version),
        cache.cache_key("https://api.test", "site-2", "rst_x", version),
        cache.cache_key("https://api.test", "site", "rst_y", version),
    ):
        assert cache.load(other) is None
    unverified = VersionManifest("d" * 64, 1, ("a",), (1,), ("b" * 64,))
    assert not cache.store(cache.cache_key("https://api.test", "site", "rst_x", "d" * 64), unverified)


def served_id(fake: Any) -> str:
    text = json.dumps(fake.body(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def mock_manifest_gets(fake: Any) -> int:
    return sum(1 for request in fake.requests if "/versions/" in request.url.path)


async def test_only_a_body_that_hashes_to_its_version_id_is_cached(tmp_path: Path) -> None:
    from .test_pull_mock import pull as mock_pull
    from .test_pull_mock import serve

    files = {"a.txt": b"a", "dir/b.txt": b"b"}
    fake = serve(files)  # labelled "aaa...": not its body's id
    for folder in ("one", "two"):
        await mock_pull(fake, tmp_path / folder)
    assert mock_manifest_gets(fake) == 2
    assert cache_files() == []

    fake.version_id = served_id(fake)
    await mock_pull(fake, tmp_path / "three")
    assert mock_manifest_gets(fake) == 3
    fake.requests.clear()
    result = await mock_pull(fake, tmp_path / "four")
    assert mock_manifest_gets(fake) == 0  # the roost read and the URL mint only
    assert disk_tree(tmp_path / "four") == files
    assert result.version_id == fake.version_id


async def test_an_unsafe_manifest_is_never_cached(tmp_path: Path) -> None:
    from .test_pull_mock import entry, serve
    from .test_pull_mock import pull as mock_pull

    fake = serve({"good.txt": b"good"}, [entry("../x", b"evil")])
    fake.version_id = served_id(fake)
    for _ in range(2):
        with pytest.raises(UnsafeManifestPathError):
            await mock_pull(fake, tmp_path / "dest")
    assert mock_manifest_gets(fake) == 2
    assert cache_files() == []
    assert not (tmp_path / "dest").exists()


def test_a_temporary_file_a_killed_writer_left_is_removed_later() -> None:
    from roost._pull.manifest import VersionManifest

    manifest = VersionManifest("e" * 64, 1, ("a",), (1,), ("b" * 64,), verified=True)
    key = cache.cache_key("https://api.test", "site", "rst_x", "e" * 64)
    assert cache.store(key, manifest)
    folder = Path(cache.cache_path(key)).parent
    old, fresh = folder / ".tmp-old.bin", folder / ".tmp-fresh.bin"
    for leftover in (old, fresh):
        leftover.write_bytes(b"partial")
    os.utime(old, (1_000_000, 1_000_000))
    assert cache.store(key, manifest)
    assert not old.exists()
    assert fresh.exists()  # may be another pull's entry being written
    assert cache.load(key) == manifest


async def test_a_pointer_without_a_version_gets_the_servers_own_answer(
    server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    client, api = recorded
    await publish(client, server.site_id, tmp_path / "src", {"a.txt": b"a"})
    api.take()
    with pytest.raises(NotFoundError) as caught:
        await pull(client, server.site_id, tmp_path / "dest", ref="previous")  # one version only
    assert caught.value.code == "version_not_found"
    assert api.take() == [f"GET /api/roosts/{ROOST}", f"GET /api/roosts/{ROOST}/versions/previous"]
    assert not (tmp_path / "dest").exists()


def test_a_path_the_format_cannot_hold_is_not_stored() -> None:
    from roost._pull.manifest import VersionManifest

    # The path checks refuse a NUL before any store; the format refuses it again, whole.
    manifest = VersionManifest("9" * 64, 1, ("a\x00b", "c"), (1, 1), ("b" * 64, "d" * 64), verified=True)
    key = cache.cache_key("https://api.test", "site", "rst_x", "9" * 64)
    assert not cache.store(key, manifest)
    assert cache.load(key) is None
    fine = VersionManifest("9" * 64, 4, ("a b", "c/ü"), (1, 0), ("b" * 64, ""), verified=True)
    assert cache.store(key, fine)
    assert cache.load(key) == fine


async def test_a_stale_guess_of_current_is_dropped_with_whatever_it_found(
    server: Any, recorded: tuple[Roost, Recording], tmp_path: Path
) -> None:
    # The last pull left the hint "current = v1"; v1's paths now run through a link in dest, so
    # inspecting dest against v1 fails. The roost read names v2, which must pull as if no guess.
    client, api = recorded
    src = tmp_path / "src"
    await publish(client, server.site_id, src, {"sub/x.txt": b"x"})
    dest = tmp_path / "dest"
    await pull(client, server.site_id, dest)
    (src / "sub" / "x.txt").unlink()
    second = await publish(client, server.site_id, src, {"other.txt": b"o"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "sub" / "x.txt").unlink()
    (dest / "sub").rmdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    api.take()

    result = await pull(client, server.site_id, dest)

    assert result.version_id == second
    assert (dest / "other.txt").read_bytes() == b"o"
    assert (dest / "sub").is_symlink()
    assert list(outside.iterdir()) == []
    assert len(manifest_gets(api.take())) == 1  # v2 was not cached yet
    again = await pull(client, server.site_id, dest)  # the hint is v2 now, and confirmed
    assert manifest_gets(api.take()) == []
    assert again.stats.unchanged_files == 1


def test_a_hint_is_bound_to_its_key_and_must_be_a_version_id() -> None:
    key = cache.cache_key("https://api.test", "site", "rst_x", "@current")
    assert cache.load_hint(key) is None
    assert cache.store_hint(key, "7" * 64)
    assert cache.load_hint(key) == "7" * 64
    assert cache.load_hint(cache.cache_key("https://api.test", "site", "rst_y", "@current")) is None
    assert cache.store_hint(key, "not hex" + "0" * 57)
    assert cache.load_hint(key) is None
    Path(cache.cache_path(key, ".hint")).chmod(0o644)
    assert cache.store_hint(key, "7" * 64)  # rewritten owner-only
    assert cache.load_hint(key) == "7" * 64
