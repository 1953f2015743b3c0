"""The pull against a scripted server (httpx MockTransport): hostile manifests, storage failures."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost import ChunkDownloadError, PullOptions, RetryPolicy, Roost, UnsafeManifestPathError
from roost._wire import MalformedResponseError

from .conftest import disk_tree

pytestmark = pytest.mark.anyio

TOKEN = "owk_test_pullmocktoken"
SITE = "site-mock"
ROOST = "rst_mock_pull"
API = "https://api.test"
STORAGE = "https://storage.test"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(path: str, data: bytes) -> dict[str, Any]:
    chunks = [{"hash": digest(data), "size": len(data)}] if data else []
    return {"path": path, "size": len(data), "chunks": chunks}


StorageReply = Callable[[str, int], httpx.Response]


@dataclass
class FakeServer:
    """The versions route, the download-urls route and a storage host, with a log of requests."""

    files: list[dict[str, Any]]
    blobs: dict[str, bytes] = field(default_factory=dict)
    storage: StorageReply | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    mints: int = 0
    gets: dict[str, int] = field(default_factory=dict)
    version_id: str = "a" * 64

    def body(self) -> dict[str, Any]:
        return {"schemaVersion": 2, "files": self.files}

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url.startswith(STORAGE):
            chunk_hash = request.url.path.rsplit("/", 1)[1]
            attempt = self.gets.get(chunk_hash, 0)
            self.gets[chunk_hash] = attempt + 1
            if self.storage is not None:
                return self.storage(chunk_hash, attempt)
            return httpx.Response(200, content=self.blobs[chunk_hash])
        if request.url.path == "/api/chunks/download-urls":
            self.mints += 1
            hashes = json.loads(request.content)["hashes"]
            urls = {h: f"{STORAGE}/c/{h}?sig={self.mints}" for h in hashes}
            return httpx.Response(200, json={"urls": urls, "expiresAt": "2999-01-01T00:00:00Z"})
        if request.url.path.startswith(f"/api/roosts/{ROOST}/versions/"):
            document = {"versionId": self.version_id, "versionNumber": 3, "version": self.body()}
            return httpx.Response(200, json=document)
        if request.url.path == f"/api/roosts/{ROOST}":
            return httpx.Response(
                200, json={"roostId": ROOST, "siteId": SITE, "currentVersionId": self.version_id}
            )
        return httpx.Response(404, json={"title": "not found"})

    def storage_requests(self) -> list[httpx.Request]:
        return [request for request in self.requests if str(request.url).startswith(STORAGE)]


def serve(files: dict[str, bytes], extra: list[dict[str, Any]] | None = None) -> FakeServer:
    listed = [entry(path, data) for path, data in files.items()] + (extra or [])
    return FakeServer(listed, {digest(data): data for data in files.values() if data})


def client(fake: FakeServer) -> Roost:
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.0, max_delay_s=0.0)
    return Roost(token=TOKEN, api_url=API, transport=httpx.MockTransport(fake.handle), retry=retry)


async def pull(fake: FakeServer, dest: Path, **options: Any) -> Any:
    async with client(fake) as roost:
        return await roost.roosts.pull(ROOST, dest, PullOptions(site_id=SITE, **options))


UNSAFE = [
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("/etc/passwd", "absolute"),
    ("C:/Windows/x", "drive letter"),
    ("c:x", "drive letter"),
    ("a\\..\\x", "backslash"),
    ("a\x00b", "NUL"),
    ("a//b", "empty segment"),
    ("a/", "empty segment"),
    ("./a", "'.'"),
    ("", "empty path"),
]


@pytest.mark.parametrize(("path", "reason"), UNSAFE)
async def test_an_unsafe_manifest_path_writes_nothing(tmp_path: Path, path: str, reason: str) -> None:
    dest = tmp_path / "dest"
    (dest / "kept").mkdir(parents=True)
    (dest / "kept" / "file.txt").write_bytes(b"mine")
    fake = serve({"good.txt": b"good", "sub/other.txt": b"other"}, [entry(path, b"evil")])

    with pytest.raises(UnsafeManifestPathError, match=reason) as caught:
        await pull(fake, dest, delete=True)

    assert caught.value.path == path
    assert disk_tree(tmp_path) == {"dest/kept/file.txt": b"mine"}
    assert fake.storage_requests() == []
    assert fake.mints == 0


async def test_colliding_manifest_paths_write_nothing(tmp_path: Path) -> None:
    for extra in ([entry("a", b"file")], [entry("good.txt", b"twice")]):
        fake = serve({"a/b.txt": b"b", "good.txt": b"good"}, extra)
        with pytest.raises(UnsafeManifestPathError, match=r"both a file and a directory|listed twice"):
            await pull(fake, tmp_path / "dest")
        assert not (tmp_path / "dest").exists()


async def test_a_link_in_dest_cannot_carry_writes_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "through").symlink_to(outside, target_is_directory=True)
    fake = serve({"ok.txt": b"ok", "through/escaped.txt": b"evil"})

    with pytest.raises(UnsafeManifestPathError, match="symbolic link") as caught:
        await pull(fake, dest)

    assert caught.value.path == "through/escaped.txt"
    assert list(outside.iterdir()) == []
    assert sorted(os.listdir(dest)) == ["through"]
    assert fake.storage_requests() == []


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "x", "size": 5, "chunks": [{"hash": "A" * 64, "size": 5}]},
        {"path": "x", "size": 6, "chunks": [{"hash": "a" * 64, "size": 5}]},
        {"path": "x", "size": -1, "chunks": []},
        {"path": "x", "size": 5 * 2**20, "chunks": [{"hash": "a" * 64, "size": 5 * 2**20}]},
        {"path": 7, "size": 0, "chunks": []},
    ],
)
async def test_a_malformed_manifest_entry_writes_nothing(tmp_path: Path, bad: dict[str, Any]) -> None:
    fake = serve({"ok.txt": b"ok"}, [bad])
    with pytest.raises(MalformedResponseError):
        await pull(fake, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


async def test_storage_failures_are_retried_and_every_byte_verified(tmp_path: Path) -> None:
    files = {"a.bin": b"a" * 1000, "b.bin": b"b" * 2000, "c.bin": b"c" * 3000}
    fake = serve(files)
    by_hash = dict(fake.blobs)

    def flaky(chunk_hash: str, attempt: int) -> httpx.Response:
        if attempt == 0:
            return {
                digest(files["a.bin"]): httpx.Response(503),
                digest(files["b.bin"]): httpx.Response(200, content=b"x" * 2000),  # wrong bytes
                digest(files["c.bin"]): httpx.Response(200, content=b"c" * 10),  # short
            }[chunk_hash]
        return httpx.Response(200, content=by_hash[chunk_hash])

    fake.storage = flaky
    result = await pull(fake, tmp_path / "dest")

    assert disk_tree(tmp_path / "dest") == files
    assert result.stats.downloaded_chunks == 3
    assert sorted(fake.gets.values()) == [2, 2, 2]
    for request in fake.storage_requests():
        assert "authorization" not in request.headers
        assert "roost-version" not in request.headers
        assert TOKEN not in str(request.url)


async def test_a_refused_url_is_minted_again(tmp_path: Path) -> None:
    fake = serve({"a.bin": b"a" * 100})
    data = fake.blobs

    def expired_once(chunk_hash: str, attempt: int) -> httpx.Response:
        return httpx.Response(403) if attempt == 0 else httpx.Response(200, content=data[chunk_hash])

    fake.storage = expired_once
    await pull(fake, tmp_path / "dest")
    assert (tmp_path / "dest" / "a.bin").read_bytes() == b"a" * 100
    assert fake.mints == 2


async def test_a_chunk_that_never_verifies_fails_the_pull_and_leaves_no_temp(tmp_path: Path) -> None:
    good = b"g" * 50
    bad = b"b" * 70
    fake = serve({"good.txt": good, "zz-bad.bin": bad})
    fake.storage = lambda h, _: httpx.Response(200, content=good if h == digest(good) else b"x" * 70)

    with pytest.raises(ChunkDownloadError, match="do not hash") as caught:
        await pull(fake, tmp_path / "dest", concurrency=1)

    assert caught.value.chunk_hash == digest(bad)
    assert fake.gets[digest(bad)] == 3  # RetryPolicy.max_attempts
    leftovers = [name for name in disk_tree(tmp_path / "dest") if name != "good.txt"]
    assert leftovers == []


async def test_a_missing_chunk_fails_at_once(tmp_path: Path) -> None:
    fake = serve({"a.bin": b"a"})
    fake.storage = lambda _h, _a: httpx.Response(404)
    with pytest.raises(ChunkDownloadError, match="HTTP 404"):
        await pull(fake, tmp_path / "dest")
    assert sum(fake.gets.values()) == 1
    assert disk_tree(tmp_path / "dest") == {}


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"concurrency": 0}, ValueError, "concurrency"),
        # each download in flight may hold 4 MiB: bounded as the push's, and a huge number is
        # refused by its size, not by an OverflowError or Python's 4,300-digit print limit
        ({"concurrency": 257}, ValueError, "concurrency"),
        ({"concurrency": 10**5000}, ValueError, "concurrency .* about 5000 digits"),
        ({"ref": 0}, ValueError, "ref"),
        ({"ref": True}, ValueError, "ref"),
        ({"ref": "  "}, ValueError, "ref"),
        ({"site_id": ""}, ValueError, "site_id"),
        ({"on_progress": 3}, TypeError, "on_progress"),
    ],
)
async def test_bad_options_fail_before_any_request(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    fake = serve({"a.txt": b"a"})
    merged: dict[str, Any] = {"site_id": SITE, **options}
    async with client(fake) as roost:
        with pytest.raises(error, match=match):
            await roost.roosts.pull(ROOST, tmp_path / "dest", PullOptions(**merged))
    assert fake.requests == []


async def test_a_file_as_destination_fails_before_any_request(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"x")
    fake = serve({"a.txt": b"a"})
    with pytest.raises(NotADirectoryError, match="file"):
        await pull(fake, target)
    assert fake.requests == []
