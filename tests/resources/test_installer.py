"""client.installer and client.installer_deployments."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from roost import (
    InstallerDeploymentDetail,
    InstallerDeploymentSummary,
    InstallerDeploymentTarget,
    InstallerVersion,
    Roost,
    RoostApiError,
)

from .conftest import MockApi

pytestmark = pytest.mark.anyio

DBASE = "/api/sites/site-1/deployments"


def version_item(v: str) -> dict[str, object]:
    return {
        "version": v,
        "download_url": f"https://dl/{v}",
        "checksum_sha256": "a" * 64,
        "release_notes": None,
        "file_size": 100,
        "uploaded_at": 1700000000000,
        "uploaded_by": "uid-1",
        "release_date": None,
        "deletedAt": None,
    }


async def test_installer_list_and_latest(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/installer",
        {
            "versions": [version_item("2.1.0"), version_item("2.0.0")],
            "next_page_token": "2.0.0",
            "nextPageToken": "2.0.0",
        },
    )
    page = await client.installer.list(include_deleted=True, page_size=2)
    assert api.last.query == {"includeDeleted": "true", "page_size": "2"}
    assert [v.version for v in page["versions"]] == ["2.1.0", "2.0.0"]
    assert page["next_page_token"] == "2.0.0"
    assert page["versions"][0].uploaded_at == 1700000000000

    api.reply("GET", "/api/installer", {"versions": []})
    page = await client.installer.list(page_token="2.0.0")
    assert api.last.query == {"page_token": "2.0.0"}
    assert page == {"versions": [], "next_page_token": ""}

    api.reply(
        "GET", "/api/installer/latest", {**version_item("2.1.0"), "promoted_at": 5, "promoted_by": "uid-2"}
    )
    latest = await client.installer.latest()
    assert isinstance(latest, InstallerVersion)
    assert (latest.version, latest.promoted_at, latest.promoted_by) == ("2.1.0", 5, "uid-2")


async def test_installer_latest_missing(api: MockApi, client: Roost) -> None:
    api.problem("GET", "/api/installer/latest", 404, "latest_installer_not_found")
    with pytest.raises(RoostApiError) as info:
        await client.installer.latest()
    assert info.value.code == "latest_installer_not_found"


async def test_installer_upload_three_steps_share_one_key(
    api: MockApi, client: Roost, tmp_path: Path
) -> None:
    binary = tmp_path / "Owlette-Installer-v2.2.0.exe"
    binary.write_bytes(b"MZ" + b"\0" * 100)
    api.reply(
        "POST",
        "/api/installer/upload",
        {
            "uploadUrl": "https://storage.test/put/abc?sig=1",
            "uploadId": "up-1",
            "storagePath": "p",
            "expiresAt": "t",
        },
    )
    api.reply("PUT", "/put/abc", {})
    api.reply(
        "PUT",
        "/api/installer/upload",
        {"version": "2.2.0", "download_url": "u", "checksum_sha256": "c", "file_size": 102},
    )
    out = await client.installer.upload(binary, version="2.2.0", release_notes="notes")

    start, put, finalize = api.calls
    assert start.body == {
        "version": "2.2.0",
        "fileName": binary.name,
        "setAsLatest": True,
        "releaseNotes": "notes",
    }
    assert put.request.content == binary.read_bytes()
    assert put.headers["content-type"] == "application/octet-stream"
    assert "authorization" not in put.headers
    assert finalize.body == {
        "uploadId": "up-1",
        "checksum_sha256": hashlib.sha256(binary.read_bytes()).hexdigest(),
    }
    assert start.idempotency_key == finalize.idempotency_key
    assert start.idempotency_key is not None
    assert start.idempotency_key.startswith("py-sdk-installer-upload-")
    assert out["file_size"] == 102


async def test_installer_upload_storage_failure(api: MockApi, client: Roost, tmp_path: Path) -> None:
    binary = tmp_path / "x.exe"
    binary.write_bytes(b"MZ")
    api.reply(
        "POST", "/api/installer/upload", {"uploadUrl": "https://storage.test/put/x", "uploadId": "up-2"}
    )
    api.reply("PUT", "/put/x", status=403)
    with pytest.raises(RuntimeError, match="403"):
        await client.installer.upload(binary, version="2.2.1", set_as_latest=False, idempotency_key="inst-1")
    assert api.calls[0].body == {"version": "2.2.1", "fileName": "x.exe", "setAsLatest": False}
    assert api.calls[0].idempotency_key == "inst-1"


async def test_installer_set_latest_and_delete(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST", "/api/installer/2.1.0/set-latest", {"version": "2.1.0", "latest": version_item("2.1.0")}
    )
    out = await client.installer.set_latest("2.1.0")
    assert api.last.body == {}
    assert out["latest"]["version"] == "2.1.0"

    api.reply("DELETE", "/api/installer/2.0.0", {"version": "2.0.0", "deletedAt": 5, "alreadyDeleted": False})
    await client.installer.delete("2.0.0")
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-installer-delete-")

    api.problem("DELETE", "/api/installer/2.1.0", 409, "latest_version_protected")
    with pytest.raises(RoostApiError) as info:
        await client.installer.delete("2.1.0", idempotency_key="d-1")
    assert info.value.code == "latest_version_protected"
    assert api.last.idempotency_key == "d-1"


def deployment(n: int) -> dict[str, object]:
    return {
        "id": f"deploy-{n}",
        "name": "agent",
        "installer_name": "Owlette.exe",
        "installer_url": "https://dl/x.exe",
        "silent_flags": "/S",
        "verify_path": None,
        "sha256_checksum": None,
        "parallel_install": False,
        "targets": [{"machineId": "m1", "status": "failed", "error": "exit 1"}],
        "status": "partial_failed",
        "createdAt": "t",
        "completedAt": None,
        "updatedAt": "t",
    }


async def test_installer_deployments_list_get(api: MockApi, client: Roost) -> None:
    api.reply("GET", DBASE, {"items": [deployment(2), deployment(1)], "next_page_token": "deploy-1"})
    page = await client.installer_deployments.list("site-1", page_size=2)
    assert api.last.query == {"page_size": "2"}
    assert all(isinstance(d, InstallerDeploymentSummary) for d in page["items"])
    assert page["items"][0].targets == [InstallerDeploymentTarget("m1", "failed", "exit 1")]
    assert page["next_page_token"] == "deploy-1"

    api.reply("GET", f"{DBASE}/deploy-2", {**deployment(2), "siteId": "site-1"})
    detail = await client.installer_deployments.get("site-1", "deploy-2")
    assert isinstance(detail, InstallerDeploymentDetail)
    assert (detail.id, detail.site_id, detail.status) == ("deploy-2", "site-1", "partial_failed")


async def test_installer_deployments_mutations(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        DBASE,
        {
            "deploymentId": "deploy-3",
            "siteId": "site-1",
            "status": "in_progress",
            "targets": [{"machineId": "m1", "status": "pending"}],
        },
        status=201,
    )
    created = await client.installer_deployments.create(
        "site-1",
        name="agent",
        installer_name="Owlette.exe",
        installer_url="https://dl/x.exe",
        silent_flags="",
        machines=["m1"],
        sha256_checksum="a" * 64,
        parallel_install=True,
        idempotency_key="idk-1",
    )
    assert api.last.body == {
        "name": "agent",
        "installer_name": "Owlette.exe",
        "installer_url": "https://dl/x.exe",
        "silent_flags": "",
        "machines": ["m1"],
        "sha256_checksum": "a" * 64,
        "parallel_install": True,
    }
    assert api.last.idempotency_key == "idk-1"
    assert created["deploymentId"] == "deploy-3"

    api.reply("POST", DBASE, {"deploymentId": "deploy-4"})
    await client.installer_deployments.create(
        "site-1",
        name="a",
        installer_name="b",
        installer_url="https://c",
        silent_flags="/S",
        machines=["m1"],
        verify_path="C:/x",
        close_processes=["td.exe"],
        suppress_projects=True,
    )
    assert api.last.body == {
        "name": "a",
        "installer_name": "b",
        "installer_url": "https://c",
        "silent_flags": "/S",
        "machines": ["m1"],
        "verify_path": "C:/x",
        "close_processes": ["td.exe"],
        "suppress_projects": True,
    }

    for verb in ("retry", "cancel", "uninstall"):
        api.reply("POST", f"{DBASE}/deploy-3/{verb}", {"deploymentId": "deploy-3", "machine_ids": ["m1"]})
        out = await getattr(client.installer_deployments, verb)("site-1", "deploy-3")
        assert api.last.body == {}
        assert api.last.idempotency_key is not None
        assert out["machine_ids"] == ["m1"]

    api.reply("DELETE", f"{DBASE}/deploy-3", {"deploymentId": "deploy-3", "deleted": True})
    await client.installer_deployments.delete("site-1", "deploy-3")
    assert api.last.body == {}

    api.problem("POST", DBASE, 413, "over_quota", quota={"max_targets": 100, "requested": 101})
    with pytest.raises(RoostApiError) as info:
        await client.installer_deployments.create(
            "site-1",
            name="a",
            installer_name="b",
            installer_url="https://c",
            silent_flags="",
            machines=["m"] * 101,
        )
    assert info.value.code == "over_quota"
