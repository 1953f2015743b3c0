"""The deploy-plane methods end to end against the local emulator (``roost.testing``)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from roost import (
    BadRequestError,
    ConflictError,
    DeployOptions,
    NotFoundError,
    PushOptions,
    RollbackOptions,
    Roost,
    RoostDetail,
    RoostSummary,
)
from roost.resources.roosts import PushProgressEvent

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from roost.testing import EmulatorServer, start_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    running = start_server()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[Roost]:
    async with Roost(token=server.token, api_url=server.url) as roost_client:
        yield roost_client


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


async def test_roost_lifecycle_and_paging(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    ids = [f"rst_page_{n:02d}" for n in range(5)]
    for roost_id in ids:
        created = await client.roosts.create(
            site_id=site,
            name=f"paging {roost_id}",
            roost_id=roost_id,
            targets=["machine-a7f3"],
            extract_path="C:\\shows\\lobby",
        )
        assert isinstance(created, RoostSummary)
        assert created.roost_id == roost_id
        assert created.targets == ["machine-a7f3"]

    listed = [r.roost_id async for r in client.roosts.list(site_id=site, page_size=2)]
    assert set(ids) <= set(listed)

    rows, cursor = await client.roosts.list_page(site_id=site, page_size=2)
    assert len(rows) == 2
    assert cursor
    rows2, _ = await client.roosts.list_page(site_id=site, page_size=2, cursor=cursor)
    assert {r.roost_id for r in rows}.isdisjoint({r.roost_id for r in rows2})

    patched = await client.roosts.patch(ids[0], site_id=site, name="renamed")
    assert "name" in patched["updated"]
    detail = await client.roosts.get(ids[0], site_id=site)
    assert isinstance(detail, RoostDetail)
    assert detail.name == "renamed"
    assert detail.current_version is None

    removed = await client.roosts.remove(ids[1], site_id=site)
    assert removed["softDeleted"] is True
    live = [r.roost_id async for r in client.roosts.list(site_id=site)]
    assert ids[1] not in live
    deleted_too = [r async for r in client.roosts.list(site_id=site, include_deleted=True)]
    assert any(r.roost_id == ids[1] and r.deleted_at for r in deleted_too)

    with pytest.raises(ConflictError) as conflict:
        await client.roosts.create(site_id=site, name="again", roost_id=ids[0])
    assert conflict.value.code == "conflict"
    assert conflict.value.request_id

    with pytest.raises(NotFoundError) as missing:
        await client.roosts.get("rst_does_not_exist", site_id=site)
    assert missing.value.code == "not_found"


async def test_publish_versions_rollback_deploy(
    server: EmulatorServer, client: Roost, tmp_path: Path
) -> None:
    site = server.site_id
    roost_id = "rst_e2e_flow"
    await client.roosts.create(
        site_id=site, name="e2e flow", roost_id=roost_id, targets=["machine-a7f3", "machine-b"]
    )
    dist = write_tree(
        tmp_path / "dist", {"index.html": b"<h1>v1</h1>", "assets/video.bin": os.urandom(70_000)}
    )

    events: list[PushProgressEvent] = []
    first = await client.roosts.push(
        dist, roost_id, PushOptions(site_id=site, description="v1", on_progress=events.append)
    )
    assert first.version_number == 1
    assert first.stats.file_count == 2
    assert {e.phase for e in events} >= {"discover", "hash", "check-missing", "upload"}

    (dist / "index.html").write_bytes(b"<h1>v2</h1>")
    second = await client.roosts.push(dist, roost_id, PushOptions(site_id=site, description="v2"))
    assert second.version_number == 2
    assert second.previous_version_id == first.version_id

    detail = await client.roosts.get(roost_id, site_id=site)
    assert detail.current_version is not None
    assert detail.current_version.version_id == second.version_id
    assert detail.current_version.description == "v2"
    assert detail.previous_version is not None
    assert detail.previous_version.version_number == 1

    listed = [v async for v in client.versions.list(roost_id, site_id=site, page_size=1)]
    assert [v["versionNumber"] for v in listed] == [2, 1]
    rows, cursor = await client.versions.list_page(roost_id, site_id=site, page_size=1)
    assert rows[0]["versionNumber"] == 2
    assert cursor

    refs: list[tuple[int | str, int]] = [
        (1, 1),
        ("#1", 1),
        ("v2", 2),
        ("V1", 1),
        ("current", 2),
        ("previous", 1),
        ("first", 1),
        (first.version_id, 1),
        ("vrs_" + second.version_id, 2),
    ]
    for ref, number in refs:
        got = await client.versions.get(roost_id, ref, site_id=site)
        assert got["versionNumber"] == number, ref

    with pytest.raises(NotFoundError) as missing:
        await client.versions.get(roost_id, 99, site_id=site)
    assert missing.value.code == "version_not_found"
    with pytest.raises(BadRequestError) as malformed:
        await client.versions.get(roost_id, "latest-ish", site_id=site)
    assert malformed.value.code == "version_ref_malformed"

    patched = await client.versions.patch(roost_id, "#1", site_id=site, description="first release notes")
    assert patched["description"] == "first release notes"

    files = [f async for f in client.versions.files(roost_id, "current", site_id=site, page_size=1)]
    assert [f["path"] for f in files] == ["assets/video.bin", "index.html"]
    assert sum(c["size"] for c in files[0]["chunks"]) == 70_000
    only_assets = [
        f["path"] async for f in client.versions.files(roost_id, 2, site_id=site, prefix="assets/")
    ]
    assert only_assets == ["assets/video.bin"]

    diff = await client.versions.diff(roost_id, "current", site_id=site, against="previous")
    assert diff["summary"]["changed"] == 1
    assert [m["path"] for m in diff["modified"]] == ["index.html"]

    rolled = await client.roosts.rollback(roost_id, RollbackOptions(site_id=site, target_version=1))
    assert rolled.current_version_id == first.version_id
    assert rolled.previous_version_id == second.version_id
    with pytest.raises(BadRequestError) as no_op:
        await client.roosts.rollback(roost_id, RollbackOptions(site_id=site, target_version="current"))
    assert no_op.value.code == "rollback_no_op"
    toggled = await client.roosts.rollback(roost_id, RollbackOptions(site_id=site))
    assert toggled.current_version_id == second.version_id

    plan = await client.roosts.deploy(roost_id, DeployOptions(site_id=site, dry_run=True))
    assert plan.dry_run is True
    assert plan.canary == ["machine-a7f3"]
    assert plan.fleet == ["machine-b"]
    assert plan.version_id == second.version_id

    deploy = await client.roosts.deploy(roost_id, DeployOptions(site_id=site, machines=["machine-a7f3"]))
    assert deploy.stage == "canary"
    assert deploy.rollout_id == second.version_id
    again = await client.roosts.deploy(roost_id, DeployOptions(site_id=site, machines=["machine-a7f3"]))
    assert again.already_running is True

    scheduled = await client.roosts.deploy(
        roost_id, DeployOptions(site_id=site, version_id=first.version_id, schedule_at="2099-01-01T03:00:00Z")
    )
    assert scheduled.stage == "scheduled"
    assert scheduled.scheduled is not None

    rollouts = [d async for d in client.deployments.list(roost_id, site_id=site, page_size=1)]
    assert {d["rolloutId"] for d in rollouts} >= {first.version_id, second.version_id}
    page, _ = await client.deployments.list_page(roost_id, site_id=site)
    assert page
    rollout = await client.deployments.get(roost_id, deploy.rollout_id, site_id=site)
    assert rollout["canaryStatus"][0]["machineId"] == "machine-a7f3"


async def test_chunk_data_plane(server: EmulatorServer, client: Roost, tmp_path: Path) -> None:
    site = server.site_id
    await client.roosts.create(site_id=site, name="chunks a", roost_id="rst_chunks_a")
    await client.roosts.create(site_id=site, name="chunks b", roost_id="rst_chunks_b")
    blob = os.urandom(1000)
    digest = hashlib.sha256(blob).hexdigest()
    assert await client.chunks.check(site_id=site, hashes=[digest]) == [digest]
    payload = await client.chunks.upload_urls(site_id=site, hashes=[digest])
    async with httpx.AsyncClient() as http:
        for chunk_hash, url in payload.get("urls", {}).items():
            assert chunk_hash == digest
            put = await http.put(url, content=blob)
            assert put.status_code < 300
    assert await client.chunks.check(site, [digest]) == []

    downloads = await client.chunks.download_urls(site_id=site, hashes=[digest])
    async with httpx.AsyncClient() as http:
        assert (await http.get(downloads["urls"][digest])).content == blob

    dist = write_tree(tmp_path / "d", {"blob.bin": blob})
    await client.roosts.push(dist, "rst_chunks_a", PushOptions(site_id=site))
    mounted = await client.chunks.mount(
        digest, site_id=site, from_roost="rst_chunks_a", to_roost="rst_chunks_b"
    )
    assert mounted["mounted"] is True
    refs = [r async for r in client.chunks.referrers(digest, site_id=site, page_size=1)]
    assert {r["source"] for r in refs} == {"mount", "version"}
    assert any(r["roostId"] == "rst_chunks_a" for r in refs)

    with pytest.raises(BadRequestError) as bad:
        await client.chunks.check(site, ["sha256:" + digest])
    assert bad.value.code == "validation_failed"
