"""client.sites, client.machines (incl. commands and screenshots) and client.quotas."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost import (
    MachineDeployment,
    MachineDetail,
    MachineSummary,
    MalformedResponseError,
    QuotaHistoryDay,
    QuotaSnapshot,
    Roost,
    RoostApiError,
    Site,
)

from .conftest import MockApi

pytestmark = pytest.mark.anyio

MBASE = "/api/sites/site-1/machines"


async def test_sites_list_and_get(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/sites",
        {
            "sites": [
                {
                    "id": "site-1",
                    "name": "Lobby",
                    "plan": "pro",
                    "tier": "pro",
                    "timezone": "UTC",
                    "owner": "uid-1",
                    "createdAt": "2026-01-01T00:00:00.000Z",
                },
                {
                    "id": "site-2",
                    "name": "Atrium",
                    "plan": None,
                    "tier": None,
                    "timezone": None,
                    "owner": None,
                },
            ]
        },
    )
    sites = await client.sites.list()
    assert [(s.id, s.name) for s in sites] == [("site-1", "Lobby"), ("site-2", "Atrium")]
    assert sites[0] == Site(
        id="site-1",
        name="Lobby",
        plan="pro",
        timezone="UTC",
        owner="uid-1",
        created_at="2026-01-01T00:00:00.000Z",
        tier="pro",
    )

    api.reply("GET", "/api/sites/site%201", {"id": "site 1", "name": "Spaced"})
    site = await client.sites.get("site 1")
    assert site.id == "site 1"


async def test_sites_empty_for_scopeless_key(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/sites", {"sites": []})
    assert await client.sites.list() == []
    assert api.last.headers["authorization"].startswith("Bearer owk_")


async def test_sites_malformed(api: MockApi, client: Roost) -> None:
    api.reply("GET", "/api/sites", {"sites": [{"name": "no id"}]})
    with pytest.raises(MalformedResponseError, match="/api/sites"):
        await client.sites.list()


async def test_machines_list_get_deployments(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        MBASE,
        {
            "machines": [
                {
                    "id": "machine-a7f3",
                    "name": "Lobby PC",
                    "online": True,
                    "lastHeartbeat": "2026-04-22T15:30:00.000Z",
                    "agentVersion": "2.1.0",
                    "os": "windows",
                    "currentRoosts": [
                        {
                            "roostId": "rst_abcdefgh",
                            "name": "x",
                            "currentVersionId": None,
                            "versionCounter": 0,
                        }
                    ],
                },
                {"id": "machine-b", "online": "yes"},
            ]
        },
    )
    machines = await client.machines.list("site-1")
    assert all(isinstance(m, MachineSummary) for m in machines)
    m = machines[0]
    assert (m.id, m.online, m.last_heartbeat) == ("machine-a7f3", True, "2026-04-22T15:30:00.000Z")
    assert m.current_roosts[0]["roostId"] == "rst_abcdefgh"
    assert machines[1].online is False
    assert machines[1].name == "machine-b"

    api.reply(
        "GET",
        f"{MBASE}/machine-a7f3",
        {
            "id": "machine-a7f3",
            "name": "Lobby PC",
            "online": False,
            "hostname": "LOBBY",
            "metrics": {"cpu": 3},
            "processes": [],
        },
    )
    machine = await client.machines.get("site-1", "machine-a7f3")
    assert isinstance(machine, MachineDetail)
    assert machine.site_id == "site-1"
    assert machine.hostname == "LOBBY"
    assert machine.metrics == {"cpu": 3}

    api.reply(
        "GET",
        f"{MBASE}/machine-a7f3/deployments",
        {
            "siteId": "site-1",
            "machineId": "machine-a7f3",
            "deployments": [
                {
                    "roostId": "rst_abcdefgh",
                    "name": "lobby",
                    "currentVersionId": "c" * 64,
                    "previousVersionId": None,
                    "versionCounter": 3,
                    "extractPath": None,
                    "reportedVersionId": "c" * 64,
                    "reportedStatus": "synced",
                    "reportedAt": "t",
                }
            ],
        },
    )
    deploys = await client.machines.deployments("site-1", "machine-a7f3")
    assert deploys == [
        MachineDeployment(
            roost_id="rst_abcdefgh",
            name="lobby",
            current_version_id="c" * 64,
            reported_version_id="c" * 64,
            reported_status="synced",
            reported_at="t",
            version_counter=3,
        )
    ]


async def test_machine_not_found(api: MockApi, client: Roost) -> None:
    api.problem("GET", f"{MBASE}/nope", 404, "not_found")
    with pytest.raises(RoostApiError) as info:
        await client.machines.get("site-1", "nope")
    assert info.value.status == 404


async def test_dispatch_and_get_command(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        f"{MBASE}/machine-a7f3/commands",
        {"ok": True, "data": {"commandId": "cmd_1_a", "status": "pending"}},
        status=202,
    )
    out = await client.machines.dispatch_command("site-1", "machine-a7f3", "reboot_machine")
    assert out == {"commandId": "cmd_1_a", "status": "pending"}
    assert api.last.body == {"type": "reboot_machine", "params": {}}
    assert api.last.idempotency_key is not None

    api.reply("POST", f"{MBASE}/machine-a7f3/commands", {"ok": True, "data": {"commandId": "cmd_2_a"}})
    await client.machines.dispatch_command(
        "site-1",
        "machine-a7f3",
        "shutdown_machine",
        {"delay_seconds": 5},
        timeout_seconds=120,
        idempotency_key="cmd-key",
    )
    assert api.last.body == {
        "type": "shutdown_machine",
        "params": {"delay_seconds": 5},
        "timeout_seconds": 120,
    }
    assert api.last.idempotency_key == "cmd-key"

    api.reply(
        "GET",
        f"{MBASE}/machine-a7f3/commands/cmd_1_a",
        {"ok": True, "data": {"commandId": "cmd_1_a", "status": "completed"}},
    )
    assert (await client.machines.get_command("site-1", "machine-a7f3", "cmd_1_a"))["status"] == "completed"


async def test_dispatch_offline(api: MockApi, client: Roost) -> None:
    api.problem("POST", f"{MBASE}/m/commands", 409, "machine_offline")
    with pytest.raises(RoostApiError) as info:
        await client.machines.dispatch_command("site-1", "m", "reboot_machine")
    assert info.value.code == "machine_offline"


async def test_capture_screenshot_polls_and_downloads(api: MockApi, client: Roost, tmp_path: Path) -> None:
    api.reply(
        "POST", f"{MBASE}/m1/commands", {"ok": True, "data": {"commandId": "cmd_s_1", "status": "pending"}}
    )
    api.reply("GET", f"{MBASE}/m1/commands/cmd_s_1", {"ok": True, "data": {"status": "pending"}})
    api.reply("GET", f"{MBASE}/m1/commands/cmd_s_1", {"ok": True, "data": {"status": "in_progress"}})
    api.reply(
        "GET",
        f"{MBASE}/m1/commands/cmd_s_1",
        {
            "ok": True,
            "data": {
                "status": "completed",
                "result": {"screenshot_url": "https://storage.test/shot.png?sig=1", "expires_at": "t"},
            },
        },
    )
    api.reply("GET", "/shot.png", content=b"\x89PNG...", headers={"content-type": "image/png"})

    target = tmp_path / "shot.png"
    image = await client.machines.capture_screenshot("site-1", "m1", monitor="primary", download_to=target)

    assert image == b"\x89PNG..."
    assert target.read_bytes() == image
    assert api.calls[0].body == {"type": "capture_screenshot", "params": {"monitor": "primary"}}
    assert api.sleeps == [1.5, 1.5]
    download = api.calls[-1]
    assert download.request.url.host == "storage.test"
    assert "authorization" not in download.headers


async def test_capture_screenshot_failure_and_timeout(api: MockApi, client: Roost) -> None:
    api.reply("POST", f"{MBASE}/m1/commands", {"ok": True, "data": {"commandId": "cmd_s_2"}})
    api.reply(
        "GET",
        f"{MBASE}/m1/commands/cmd_s_2",
        {"ok": True, "data": {"status": "failed", "error": "no display"}},
    )
    with pytest.raises(RuntimeError, match="no display"):
        await client.machines.capture_screenshot("site-1", "m1")
    assert api.calls[0].body == {"type": "capture_screenshot", "params": {}}

    api.reply("POST", f"{MBASE}/m1/commands", {"ok": True, "data": {"commandId": "cmd_s_3"}})
    for _ in range(2):
        api.reply("GET", f"{MBASE}/m1/commands/cmd_s_3", {"ok": True, "data": {"status": "pending"}})
    with pytest.raises(TimeoutError):
        await client.machines.capture_screenshot("site-1", "m1", timeout_seconds=3.0)

    api.reply("POST", f"{MBASE}/m1/commands", {"ok": True, "data": {"commandId": "cmd_s_4"}})
    api.reply(
        "GET", f"{MBASE}/m1/commands/cmd_s_4", {"ok": True, "data": {"status": "completed", "result": {}}}
    )
    with pytest.raises(RuntimeError, match="screenshot_url"):
        await client.machines.capture_screenshot("site-1", "m1")


async def test_quota_current_and_history(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/sites/site-1/quota",
        {
            "siteId": "site-1",
            "tier": "pro",
            "usedBytes": 10,
            "pendingBytes": 5,
            "committedBytes": 15,
            "limitBytes": 107374182400,
            "fractionUsed": 0.0,
            "unlimited": False,
            "lastAlarmLevel": 0,
            "lastAlarmAt": None,
            "lastReconciledAt": None,
            "alarms": [{"id": "a", "threshold": 0.8, "firedAt": "t"}],
        },
    )
    quota = await client.quotas.current("site-1")
    assert isinstance(quota, QuotaSnapshot)
    assert (quota.used_bytes, quota.limit_bytes, quota.fraction_used) == (10, 107374182400, 0.0)
    assert quota.alarms == [{"id": "a", "threshold": 0.8, "firedAt": "t"}]

    api.reply("GET", "/api/sites/site-1/quota", {"limitBytes": None, "unlimited": True})
    unlimited = await client.quotas.current("site-1")
    assert unlimited.site_id == "site-1"
    assert unlimited.tier == "free"
    assert unlimited.limit_bytes is None
    assert unlimited.unlimited is True
    assert unlimited.fraction_used is None

    api.reply(
        "GET",
        "/api/sites/site-1/quota/history",
        {
            "siteId": "site-1",
            "period": "30d",
            "days": 1,
            "daily": [
                {
                    "date": "2026-04-22",
                    "storageBytesAvg": None,
                    "classAOps": 3,
                    "classBOps": 4,
                    "egressBytes": 5,
                }
            ],
        },
    )
    history = await client.quotas.history("site-1", period="30d")
    assert api.last.query == {"period": "30d"}
    assert QuotaHistoryDay.from_payload(history["daily"][0]) == QuotaHistoryDay("2026-04-22", None, 3, 4, 5)

    api.reply("GET", "/api/sites/site-1/quota/history", {"daily": []})
    await client.quotas.history("site-1")
    assert api.last.query == {"period": "30d"}
