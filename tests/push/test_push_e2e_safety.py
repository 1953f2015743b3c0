"""End to end against the emulator: fail early, created roosts, portable names, the ledger."""

from __future__ import annotations

import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import AuthenticationError, NotFoundError, PushOptions, Roost, UnportablePathError
from roost._push import engine
from roost.chunker import HashProgress

from ..trees import disk_tree, write_tree
from .test_push_e2e import rebuild

pytest.importorskip("uvicorn", reason="the emulator needs the server extra")
pytest.importorskip("starlette", reason="the emulator needs the server extra")
testing = pytest.importorskip("roost.testing")

pytestmark = pytest.mark.anyio

ROOST = "rst_e2e_push"  # test_push_e2e.rebuild reads this roost


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    async with testing.serve() as running:
        yield running


def many(root: Path, count: int) -> dict[str, bytes]:
    rng = random.Random(count)
    return write_tree(root, {f"d{i % 16}/f{i:04}.bin": rng.randbytes(2048) for i in range(count)})


async def test_long_description_fails_with_no_file_opened_and_no_request(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many(tmp_path, 50)
    scans: list[object] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        scans.append(args)
        raise AssertionError("the scan must not start")

    monkeypatch.setattr(engine, "_stream_tree", spy)
    async with Roost(token=server.token, api_url=server.url) as client:
        with pytest.raises(ValueError, match="description"):
            await client.roosts.push(
                tmp_path, ROOST, PushOptions(site_id=server.site_id, description="x" * 501)
            )
    assert scans == []
    assert server.api_calls == 0
    assert server.storage_requests == []


@pytest.mark.parametrize("kind", ["bogus", "expired"])
async def test_bad_token_stops_the_scan_of_a_large_tree(server: Any, tmp_path: Path, kind: str) -> None:
    total = 400
    many(tmp_path, total)
    token = "owk_test_" + "0" * 40 if kind == "bogus" else server.mint_key(expires_at_ms=1_000)
    hashed: list[str] = []

    async def slow(event: object) -> None:
        if isinstance(event, HashProgress) and event.file:
            hashed.append(event.file)
            await anyio.sleep(0.02)  # 400 files: 8 s of scan unless the failed read stops it

    async with Roost(token=token, api_url=server.url) as client:
        with pytest.raises(AuthenticationError):
            await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id, on_progress=slow))
    assert 1 <= len(hashed) < total // 2
    assert server.storage_requests == []


async def test_created_roost_then_not(server: Any, tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.txt": b"alpha"})
    async with Roost(token=server.token, api_url=server.url) as client:
        first = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
        (tmp_path / "a.txt").write_bytes(b"beta")
        second = await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
        await client.roosts.create(site_id=server.site_id, name="made first", roost_id="rst_made_first")
        third = await client.roosts.push(tmp_path, "rst_made_first", PushOptions(site_id=server.site_id))
    assert (first.created_roost, second.created_roost, third.created_roost) == (True, False, False)


async def test_unportable_names_publish_nothing_unless_allowed(server: Any, tmp_path: Path) -> None:
    files = write_tree(
        tmp_path, {"ok.txt": b"fine", "sub/nul.txt": b"device", "Case.txt": b"1", "case.txt": b"2"}
    )
    async with Roost(token=server.token, api_url=server.url) as client:
        with pytest.raises(UnportablePathError) as caught:
            await client.roosts.push(tmp_path, ROOST, PushOptions(site_id=server.site_id))
        assert {p.path for p in caught.value.paths} == {"sub/nul.txt", "case.txt"}
        assert server.storage_requests == []
        with pytest.raises(NotFoundError):
            await client.roosts.get(ROOST, site_id=server.site_id)
        result = await client.roosts.push(
            tmp_path, ROOST, PushOptions(site_id=server.site_id, allow_unportable_paths=True)
        )
        assert await rebuild(client, server.site_id, result.version_id) == files


async def test_ledger_repush_is_one_check_and_lost_chunks_are_repaired(server: Any, tmp_path: Path) -> None:
    files = many(tmp_path, 60)
    edited = hashlib.sha256(files["d0/f0000.bin"]).hexdigest()
    async with Roost(token=server.token, api_url=server.url) as client:
        opts = PushOptions(site_id=server.site_id)
        first = await client.roosts.push(tmp_path, ROOST, opts)
        stored = [r.path.rsplit("/", 1)[1] for r in server.storage_requests]
        for chunk_hash in [h for h in stored if h != edited][:30]:  # storage loses chunks the ledger lists
            assert server.delete_chunk(chunk_hash)
        (tmp_path / "d0" / "f0000.bin").write_bytes(b"changed")
        server.clear_storage_requests()
        calls = server.api_calls
        second = await client.roosts.push(tmp_path, ROOST, opts)
        # read, one check (the new chunk), mint, publish (412), full check, mint, publish
        assert server.api_calls - calls <= 8
        assert second.stats.uploaded_chunks == 31
        assert await rebuild(client, server.site_id, second.version_id) == disk_tree(tmp_path)
        assert second.previous_version_id == first.version_id


async def test_skip_unchanged_costs_one_api_call_with_a_warm_ledger(server: Any, tmp_path: Path) -> None:
    many(tmp_path, 40)
    async with Roost(token=server.token, api_url=server.url) as client:
        opts = PushOptions(site_id=server.site_id, description="nightly", skip_unchanged=True)
        first = await client.roosts.push(tmp_path, ROOST, opts)
        assert first.unchanged is False
        calls = server.api_calls
        again = await client.roosts.push(tmp_path, ROOST, opts)
        assert server.api_calls - calls == 1
        assert again.unchanged is True
        assert (again.version_id, again.version_number) == (first.version_id, 1)
        (tmp_path / "d1" / "f0001.bin").write_bytes(b"edited")
        third = await client.roosts.push(tmp_path, ROOST, opts)
        assert third.unchanged is False
        assert third.version_number == 2
