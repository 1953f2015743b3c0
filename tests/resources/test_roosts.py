"""client.roosts: wire shapes, typed results, paging, rollback/deploy options, push delegation."""

from __future__ import annotations

import sys
import types
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from roost import (
    DeployOptions,
    DeployResult,
    MalformedResponseError,
    NotFoundError,
    PushOptions,
    PushResult,
    PushStats,
    RollbackOptions,
    RollbackResult,
    Roost,
    RoostApiError,
    RoostDetail,
    RoostSummary,
    VersionSummary,
)
from roost.client import RoostClient
from roost.resources import roosts as roosts_module

from .conftest import MockApi

pytestmark = pytest.mark.anyio

RID = "rst_lobby_td"


def roost_row(roost_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "roostId": roost_id,
        "siteId": "site-1",
        "name": f"name of {roost_id}",
        "targets": ["machine-a7f3"],
        "extractPath": None,
        "currentVersionId": "a" * 64,
        "previousVersionId": None,
        "versionCounter": 2,
        "createdAt": "2026-04-22T15:30:00.000Z",
        "updatedAt": "2026-04-22T15:31:00.000Z",
        "deletedAt": None,
        "tombstoneExpiresAt": None,
        "someFutureField": {"ignored": True},
        **extra,
    }


async def test_list_follows_tokens_across_pages(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/roosts",
        {
            "roosts": [roost_row("rst_00000001"), roost_row("rst_00000002")],
            "next_page_token": "rst_00000002",
            "nextPageToken": "rst_00000002",
        },
    )
    api.reply("GET", "/api/roosts", {"roosts": [roost_row("rst_00000003")], "nextPageToken": "rst_00000003"})
    api.reply(
        "GET", "/api/roosts", {"roosts": [roost_row("rst_00000004")], "next_page_token": "rst_00000004"}
    )
    api.reply("GET", "/api/roosts", {"roosts": [], "next_page_token": "", "nextPageToken": ""})

    rows = [r async for r in client.roosts.list(site_id="site-1")]

    assert [r.roost_id for r in rows] == ["rst_00000001", "rst_00000002", "rst_00000003", "rst_00000004"]
    assert all(isinstance(r, RoostSummary) for r in rows)
    assert rows[0].current_version_id == "a" * 64
    assert rows[0].targets == ["machine-a7f3"]
    assert rows[0].version_counter == 2
    assert [c.query for c in api.calls] == [
        {"siteId": "site-1", "page_size": "50"},
        {"siteId": "site-1", "page_size": "50", "page_token": "rst_00000002"},
        {"siteId": "site-1", "page_size": "50", "page_token": "rst_00000003"},
        {"siteId": "site-1", "page_size": "50", "page_token": "rst_00000004"},
    ]
    assert all(c.idempotency_key is None for c in api.calls)


async def test_list_include_deleted_and_page_size(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/roosts", {"roosts": []})
    assert [r async for r in client.roosts.list(site_id="site-1", include_deleted=True, page_size=7)] == []
    assert api.last.query == {"siteId": "site-1", "page_size": "7", "includeDeleted": "true"}


async def test_list_raises_on_repeated_token(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/roosts", {"roosts": [roost_row("rst_00000001")], "nextPageToken": "t1"})
    api.reply("GET", "/api/roosts", {"roosts": [roost_row("rst_00000002")], "nextPageToken": "t1"})
    seen: list[str] = []

    async def consume() -> None:
        async for r in client.roosts.list(site_id="site-1"):
            seen.append(r.roost_id)

    with pytest.raises(RuntimeError, match="repeated page token"):
        await consume()
    assert seen == ["rst_00000001", "rst_00000002"]


async def test_list_page_returns_rows_and_cursor(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/roosts", {"roosts": [roost_row("rst_00000001")], "nextPageToken": "rst_00000001"})
    api.reply("GET", "/api/roosts", {"roosts": [roost_row("rst_00000002")], "next_page_token": ""})

    rows, cursor = await client.roosts.list_page(site_id="site-1", page_size=20)
    assert [r.roost_id for r in rows] == ["rst_00000001"]
    assert cursor == "rst_00000001"
    assert api.last.query == {"siteId": "site-1", "page_size": "20"}

    rows2, cursor2 = await client.roosts.list_page(site_id="site-1", cursor=cursor)
    assert [r.roost_id for r in rows2] == ["rst_00000002"]
    assert cursor2 == ""
    assert api.last.query == {"siteId": "site-1", "page_token": "rst_00000001"}


async def test_list_page_token_wins_over_cursor(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/roosts", {"roosts": []})
    rows, cursor = await client.roosts.list_page(site_id="site-1", page_token="a", cursor="b")
    assert (rows, cursor) == ([], "")
    assert api.last.query["page_token"] == "a"


async def test_get_returns_detail_with_version_objects(api: MockApi, client: Roost) -> None:
    current = {
        "versionId": "c" * 64,
        "versionNumber": 3,
        "description": "fixed lobby video",
        "versionUrl": "https://r2/v3.json",
        "createdAt": "2026-04-22T15:30:00.000Z",
        "createdBy": "uid-1",
        "totalSize": 1234,
        "totalFiles": 5,
        "parentVersionId": "b" * 64,
    }
    api.reply(
        "GET",
        f"/api/roosts/{RID}",
        {
            **roost_row(RID),
            "schemaVersion": 2,
            "versionUrl": "https://r2/v3.json",
            "createdBy": "uid-1",
            "currentVersion": current,
            "previousVersion": None,
        },
    )

    r = await client.roosts.get(RID, site_id="site-1")

    assert api.last.query == {"siteId": "site-1"}
    assert isinstance(r, RoostDetail)
    assert r.current_version == VersionSummary(
        version_id="c" * 64,
        version_number=3,
        description="fixed lobby video",
        version_url="https://r2/v3.json",
        created_at="2026-04-22T15:30:00.000Z",
        created_by="uid-1",
        total_size=1234,
        total_files=5,
        parent_version_id="b" * 64,
    )
    assert r.current_version.version_id == "c" * 64
    assert r.previous_version is None
    assert r.schema_version == 2
    assert r.version_counter == 2
    assert r.created_by == "uid-1"


async def test_get_missing_optional_fields_are_none(api: MockApi, client: Roost) -> None:
    api.reply("GET", f"/api/roosts/{RID}", {"roostId": RID})
    r = await client.roosts.get(RID, site_id="site-1")
    assert r.current_version is None
    assert r.current_version_id is None
    assert r.extract_path is None
    assert r.targets == []
    assert r.schema_version == 2


async def test_get_percent_encodes_roost_id(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/roosts/a%2Fb%3Fc%23d", {"roostId": "a/b?c#d"})
    r = await client.roosts.get("a/b?c#d", site_id="site 1")
    assert r.roost_id == "a/b?c#d"
    assert api.last.query == {"siteId": "site 1"}


async def test_get_not_found_raises_typed_error(api: MockApi, client: Roost) -> None:
    api.problem("GET", "/api/roosts/rst_missing", 404, "not_found", requestId="req-123")
    with pytest.raises(NotFoundError) as info:
        await client.roosts.get("rst_missing", site_id="site-1")
    err = info.value
    assert err.status == 404
    assert err.code == "not_found"
    assert err.request_id == "req-123"
    assert err.problem["docsUrl"].endswith("#not_found")
    assert len(api.calls) == 1  # 404 is never retried


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "expected a JSON object"),
        ({"name": "no id"}, "roostId"),
        ({"roostId": RID, "currentVersion": {"versionNumber": 1}}, "versionId"),
        ({"roostId": RID, "currentVersion": "nope"}, "currentVersion"),
    ],
)
async def test_get_malformed_response(api: MockApi, client: Roost, body: Any, field: str) -> None:
    api.reply("GET", f"/api/roosts/{RID}", body)
    with pytest.raises(MalformedResponseError, match=field) as info:
        await client.roosts.get(RID, site_id="site-1")
    assert f"/api/roosts/{RID}" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [{"roosts": "x"}, {"roosts": [{"name": "no id"}]}, {"roosts": [3]}, "text"],
)
async def test_list_page_malformed(api: MockApi, client: Roost, body: Any) -> None:
    api.reply("GET", "/api/roosts", body)
    with pytest.raises(MalformedResponseError, match="/api/roosts"):
        await client.roosts.list_page(site_id="site-1")


async def test_create_sends_camel_case_body(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        "/api/roosts",
        {
            "roostId": RID,
            "siteId": "site-1",
            "name": "lobby touchdesigner",
            "targets": ["machine-a7f3"],
            "extractPath": "C:\\Projects\\lobby",
        },
        status=201,
    )

    created = await client.roosts.create(
        site_id="site-1",
        name="lobby touchdesigner",
        targets=["machine-a7f3"],
        extract_path=r"C:\Projects\lobby",
        roost_id=RID,
    )

    assert api.last.body == {
        "siteId": "site-1",
        "name": "lobby touchdesigner",
        "targets": ["machine-a7f3"],
        "extractPath": "C:\\Projects\\lobby",
        "roostId": RID,
    }
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-")
    assert isinstance(created, RoostSummary)
    assert created.roost_id == RID
    assert created.extract_path == "C:\\Projects\\lobby"
    assert created.current_version_id is None


async def test_create_minimal_body(api: MockApi, client: Roost) -> None:
    api.reply("POST", "/api/roosts", {"roostId": "rst_0123456789abcdef01", "siteId": "site-1", "name": "x"})
    created = await client.roosts.create(site_id="site-1", name="x")
    assert api.last.body == {"siteId": "site-1", "name": "x"}
    assert created.roost_id == "rst_0123456789abcdef01"


async def test_create_conflict(api: MockApi, client: Roost) -> None:
    api.problem("POST", "/api/roosts", 409, "conflict")
    with pytest.raises(RoostApiError) as info:
        await client.roosts.create(site_id="site-1", name="x", roost_id=RID)
    assert info.value.code == "conflict"


async def test_patch_and_remove(api: MockApi, client: Roost) -> None:
    api.reply(
        "PATCH", f"/api/roosts/{RID}", {"roostId": RID, "siteId": "site-1", "updated": ["name", "updatedAt"]}
    )
    patched = await client.roosts.patch(RID, site_id="site-1", name="lobby (v2)")
    assert api.last.body == {"siteId": "site-1", "name": "lobby (v2)"}
    assert patched["updated"] == ["name", "updatedAt"]

    api.reply("PATCH", f"/api/roosts/{RID}", {"roostId": RID, "siteId": "site-1", "updated": ["targets"]})
    await client.roosts.patch(RID, site_id="site-1", targets=[], extract_path="")
    assert api.last.body == {"siteId": "site-1", "targets": [], "extractPath": ""}

    api.reply(
        "DELETE",
        f"/api/roosts/{RID}",
        {
            "roostId": RID,
            "siteId": "site-1",
            "softDeleted": True,
            "tombstoneExpiresAt": "2026-05-22T00:00:00.000Z",
        },
    )
    removed = await client.roosts.remove(RID, site_id="site-1")
    assert api.last.query == {"siteId": "site-1"}
    assert api.last.body is None
    assert api.last.idempotency_key is not None
    assert removed["softDeleted"] is True


async def test_patch_without_fields_is_refused_locally(client: Roost) -> None:
    with pytest.raises(ValueError, match="at least one"):
        await client.roosts.patch(RID, site_id="site-1")


@pytest.mark.parametrize(
    ("target", "sent"),
    [(3, 3), ("#3", "#3"), ("v3", "v3"), (" previous ", "previous"), ("vrs_" + "d" * 64, "vrs_" + "d" * 64)],
)
async def test_rollback_target_forms(api: MockApi, client: Roost, target: int | str, sent: int | str) -> None:
    api.reply(
        "POST",
        f"/api/roosts/{RID}/rollback",
        {
            "ok": True,
            "roostId": RID,
            "siteId": "site-1",
            "currentVersionId": "c" * 64,
            "currentVersionNumber": 3,
            "previousVersionId": "d" * 64,
        },
    )
    result = await client.roosts.rollback(RID, RollbackOptions(site_id="site-1", target_version=target))
    assert api.last.body == {"siteId": "site-1", "targetVersion": sent}
    assert type(api.last.body["targetVersion"]) is type(sent)
    assert result == RollbackResult(
        current_version_id="c" * 64,
        previous_version_id="d" * 64,
        current_version_number=3,
        roost_id=RID,
        site_id="site-1",
    )


async def test_rollback_default_and_explicit_key(api: MockApi, client: Roost) -> None:
    api.reply("POST", f"/api/roosts/{RID}/rollback", {"currentVersionId": "c" * 64})
    result = await client.roosts.rollback(RID, RollbackOptions(site_id="site-1", idempotency_key="my-key-1"))
    assert api.last.body == {"siteId": "site-1"}
    assert api.last.idempotency_key == "my-key-1"
    assert result.previous_version_id is None


@pytest.mark.parametrize("bad", [True, False, 0, -1, "", "   ", 2.5, ["3"]])
async def test_rollback_rejects_bad_target_locally(api: MockApi, client: Roost, bad: Any) -> None:
    with pytest.raises(ValueError, match="target_version"):
        await client.roosts.rollback(RID, RollbackOptions(site_id="site-1", target_version=bad))
    assert api.calls == []


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "rollback_no_op"),
        (404, "version_not_found"),
        (409, "version_url_missing"),
        (400, "version_ref_malformed"),
    ],
)
async def test_rollback_errors(api: MockApi, client: Roost, status: int, code: str) -> None:
    api.problem("POST", f"/api/roosts/{RID}/rollback", status, code)
    with pytest.raises(RoostApiError) as info:
        await client.roosts.rollback(RID, RollbackOptions(site_id="site-1", target_version="first"))
    assert info.value.status == status
    assert info.value.code == code


async def test_rollback_malformed(api: MockApi, client: Roost) -> None:
    api.reply("POST", f"/api/roosts/{RID}/rollback", {"ok": True})
    with pytest.raises(MalformedResponseError, match="currentVersionId"):
        await client.roosts.rollback(RID, RollbackOptions(site_id="site-1"))


def deploy_body(**extra: Any) -> dict[str, Any]:
    return {
        "rolloutId": "c" * 64,
        "versionId": "c" * 64,
        "siteId": "site-1",
        "roostId": RID,
        "stage": "canary",
        "canary": ["machine-a7f3"],
        "fleet": ["machine-b"],
        "extractRoot": "~/Documents/Owlette",
        "versionUrl": "https://r2/v.json",
        **extra,
    }


async def test_deploy_full_options(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        f"/api/roosts/{RID}/deploy",
        deploy_body(
            stage="scheduled",
            scheduled={"at": "2026-04-25T03:00:00.000Z", "warning": "not auto-fired"},
        ),
        status=202,
    )
    result = await client.roosts.deploy(
        RID,
        DeployOptions(
            site_id="site-1",
            version_id="c" * 64,
            machines=["machine-a7f3"],
            schedule_at="2026-04-25T03:00:00Z",
            dry_run=False,
            idempotency_key="dep-1",
        ),
    )
    assert api.last.body == {
        "siteId": "site-1",
        "versionId": "c" * 64,
        "machines": ["machine-a7f3"],
        "scheduleAt": "2026-04-25T03:00:00Z",
    }
    assert api.last.idempotency_key == "dep-1"
    assert isinstance(result, DeployResult)
    assert result.stage == "scheduled"
    assert result.scheduled == {"at": "2026-04-25T03:00:00.000Z", "warning": "not auto-fired"}
    assert result.canary == ["machine-a7f3"]
    assert result.fleet == ["machine-b"]
    assert result.dry_run is False
    assert result.already_running is False


async def test_deploy_minimal_dry_run_and_datetime(api: MockApi, client: Roost) -> None:
    api.reply("POST", f"/api/roosts/{RID}/deploy", deploy_body(dryRun=True))
    result = await client.roosts.deploy(RID, DeployOptions(site_id="site-1", dry_run=True))
    assert api.last.body == {"siteId": "site-1", "dryRun": True}
    assert result.dry_run is True

    api.reply("POST", f"/api/roosts/{RID}/deploy", deploy_body(alreadyRunning=True))
    when = datetime(2026, 4, 25, 3, 0, tzinfo=timezone.utc)
    result = await client.roosts.deploy(RID, DeployOptions(site_id="site-1", schedule_at=when))
    assert api.last.body == {"siteId": "site-1", "scheduleAt": "2026-04-25T03:00:00Z"}
    assert result.already_running is True


async def test_deploy_local_validation(api: MockApi, client: Roost) -> None:
    with pytest.raises(ValueError, match="machines"):
        await client.roosts.deploy(RID, DeployOptions(site_id="site-1", machines=[]))
    with pytest.raises(ValueError, match="timezone"):
        await client.roosts.deploy(RID, DeployOptions(site_id="site-1", schedule_at=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="site_id"):
        await client.roosts.deploy(RID, DeployOptions(site_id=""))
    assert api.calls == []


async def test_deploy_soft_deleted_conflict(api: MockApi, client: Roost) -> None:
    api.problem("POST", f"/api/roosts/{RID}/deploy", 409, "conflict")
    with pytest.raises(RoostApiError, match="conflict happened"):
        await client.roosts.deploy(RID, DeployOptions(site_id="site-1"))


async def test_empty_ids_are_refused_locally(client: Roost) -> None:
    with pytest.raises(ValueError, match="roost_id"):
        await client.roosts.get("", site_id="site-1")
    with pytest.raises(ValueError, match="site_id"):
        await client.roosts.get(RID, site_id="")
    with pytest.raises(ValueError, match="site_id"):
        await client.roosts.list_page(site_id="")


async def test_push_delegates_to_engine(
    monkeypatch: pytest.MonkeyPatch, client: Roost, tmp_path: Path
) -> None:
    seen: list[Any] = []
    expected = PushResult("v" * 64, 4, "v" * 64, None, PushStats(1, 2, 1, 1, 1))

    async def push_directory(
        http: RoostClient, dir_path: Any, roost_id: str, opts: PushOptions
    ) -> PushResult:
        seen.append((http, dir_path, roost_id, opts))
        return expected

    fake = types.ModuleType("roost._push.engine")
    fake.push_directory = push_directory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "roost._push.engine", fake)

    opts = PushOptions(site_id="site-1", description="initial publish")
    result = await client.roosts.push(tmp_path, RID, opts)

    assert result is expected
    assert seen == [(client.http, tmp_path, RID, opts)]


def test_push_types_reexported_from_roosts_module() -> None:
    for name in (
        "PushOptions",
        "PushResult",
        "PushStats",
        "PushProgressEvent",
        "PushProgressCheckMissing",
        "PushProgressUpload",
        "PushProgressPublish",
        "DiscoverProgress",
        "HashProgress",
    ):
        assert hasattr(roosts_module, name), name
        assert name in roosts_module.__all__
