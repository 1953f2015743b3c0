"""client.processes(site, machine), client.members(site) and client.users."""

from __future__ import annotations

import pytest

from roost import Member, PlatformUser, ProcessRecord, Roost, RoostApiError

from .conftest import MockApi

pytestmark = pytest.mark.anyio

PBASE = "/api/sites/site-1/machines/machine-a7f3/processes"
PID = "6f1c2d3e-0000-4000-8000-000000000001"


def process(**extra: object) -> dict[str, object]:
    return {
        "processId": PID,
        "id": PID,
        "name": "TouchDesigner",
        "exe_path": "C:/td.exe",
        "file_path": "",
        "cwd": None,
        "priority": "Normal",
        "visibility": "Show",
        "time_delay": "0",
        "autolaunch": True,
        "launch_mode": "always",
        "schedules": None,
        "schedule": None,
        "status": "running",
        "pid": 4321,
        "responsive": True,
        "last_updated": 1700000000,
        **extra,
    }


async def test_processes_handle_is_bound(client: Roost) -> None:
    handle = client.processes("site-1", "machine-a7f3")
    assert (handle.site_id, handle.machine_id) == ("site-1", "machine-a7f3")
    assert client.processes("site-1", "machine-a7f3") is not handle
    with pytest.raises(AttributeError):
        handle.site_id = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="machine_id"):
        client.processes("site-1", "")


async def test_processes_list_get(api: MockApi, client: Roost) -> None:
    procs = client.processes("site-1", "machine-a7f3")
    api.reply(
        "GET",
        PBASE,
        {
            "ok": True,
            "data": {"processes": [process(), process(pid="12", processId="p2")], "nextPageToken": None},
        },
    )
    rows = await procs.list()
    assert all(isinstance(p, ProcessRecord) for p in rows)
    assert rows[0].pid == 4321
    assert rows[1].pid is None
    assert rows[0].autolaunch is True
    assert rows[0].launch_mode == "always"

    api.reply("GET", f"{PBASE}/{PID}", {"ok": True, "data": process()})
    p = await procs.get(PID)
    assert (p.process_id, p.name, p.exe_path, p.status) == (PID, "TouchDesigner", "C:/td.exe", "running")

    api.problem("GET", f"{PBASE}/nope", 404, "process_not_found")
    with pytest.raises(RoostApiError) as info:
        await procs.get("nope")
    assert info.value.code == "process_not_found"


async def test_processes_mutations(api: MockApi, client: Roost) -> None:
    procs = client.processes("site-1", "machine-a7f3")
    api.reply("POST", PBASE, {"ok": True, "data": {"processId": PID}}, status=201)
    assert await procs.create(name="TD", exe_path="C:/td.exe", launch_mode="off") == {"processId": PID}
    assert api.last.body == {"name": "TD", "exe_path": "C:/td.exe", "launch_mode": "off"}
    assert api.last.idempotency_key is not None

    api.reply("PATCH", f"{PBASE}/{PID}", {"ok": True, "data": {"processId": PID}})
    await procs.update(PID, cwd="C:/", priority="High", idempotency_key="u-1")
    assert api.last.body == {"cwd": "C:/", "priority": "High"}
    assert api.last.idempotency_key == "u-1"
    with pytest.raises(ValueError, match="at least one field"):
        await procs.update(PID)

    api.reply("DELETE", f"{PBASE}/{PID}", {"ok": True, "data": {"processId": PID, "alreadyDeleted": False}})
    assert (await procs.delete(PID))["alreadyDeleted"] is False

    for verb in ("kill", "start", "stop"):
        api.reply(
            "POST",
            f"{PBASE}/{PID}/{verb}",
            {"ok": True, "data": {"commandId": "cmd_x", "status": "pending"}},
            status=202,
        )
        out = await getattr(procs, verb)(PID)
        assert out == {"commandId": "cmd_x", "status": "pending"}
        assert api.last.body == {}

    api.reply(
        "POST", f"{PBASE}/{PID}/schedule", {"ok": True, "data": {"processId": PID, "mode": "scheduled"}}
    )
    blocks = [{"days": ["mon"], "ranges": [{"start": "09:00", "stop": "17:00"}]}]
    await procs.schedule(PID, mode="scheduled", blocks=blocks)
    assert api.last.body == {"mode": "scheduled", "blocks": blocks}

    api.reply("POST", f"{PBASE}/{PID}/schedule", {"ok": True, "data": {"processId": PID, "mode": "off"}})
    await procs.schedule(PID, mode="off")
    assert api.last.body == {"mode": "off"}

    with pytest.raises(ValueError, match="blocks"):
        await procs.schedule(PID, mode="scheduled")

    api.problem("POST", PBASE, 409, "duplicate_process_name")
    with pytest.raises(RoostApiError) as info:
        await procs.create(name="TD", exe_path="x")
    assert info.value.code == "duplicate_process_name"


async def test_members(api: MockApi, client: Roost) -> None:
    members = client.members("site-1")
    assert members.site_id == "site-1"
    api.reply(
        "GET",
        "/api/sites/site-1/members",
        {
            "members": [
                {
                    "uid": "u1",
                    "email": "a@x",
                    "role": "owner",
                    "globalRole": "admin",
                    "sites": ["site-1"],
                    "displayName": "A",
                },
                {"uid": "u2", "email": None, "role": "wizard"},
            ]
        },
    )
    rows = await members.list()
    assert rows[0] == Member(
        uid="u1", email="a@x", role="owner", display_name="A", global_role="admin", sites=["site-1"]
    )
    assert rows[1].role == "member"

    api.reply(
        "POST",
        "/api/sites/site-1/members",
        {
            "uid": "u3",
            "siteId": "site-1",
            "requestedRole": "member",
            "roleHonored": True,
            "globalRole": "member",
        },
    )
    await members.add("u3")
    assert api.last.body == {"uid": "u3", "role": "member"}
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-")

    api.reply("POST", "/api/sites/site-1/members", {"roleHonored": False})
    await members.add("u3", role="admin", idempotency_key="m-1")
    assert api.last.body == {"uid": "u3", "role": "admin"}
    assert api.last.idempotency_key == "m-1"

    api.reply("DELETE", "/api/sites/site-1/members/u3", {"siteId": "site-1", "uid": "u3", "wasMember": True})
    await members.remove("u3")
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-members-remove-")

    api.problem("DELETE", "/api/sites/site-1/members/u1", 409, "cannot_remove_owner")
    with pytest.raises(RoostApiError) as info:
        await members.remove("u1")
    assert info.value.code == "cannot_remove_owner"


def user(uid: str, **extra: object) -> dict[str, object]:
    return {
        "uid": uid,
        "email": f"{uid}@x",
        "role": "admin",
        "sites": ["site-1"],
        "displayName": None,
        "firstName": "F",
        "lastName": "L",
        "createdAt": "t",
        "deletedAt": None,
        **extra,
    }


async def test_users_list_get(api: MockApi, client: Roost) -> None:
    api.reply(
        "GET",
        "/api/users",
        {"users": [user("u1"), user("u2", role=None)], "next_page_token": "u2", "nextPageToken": "u2"},
    )
    page = await client.users.list(
        role="admin", site="site-1", include_deleted=True, page_size=2, page_token="u0"
    )
    assert api.last.query == {
        "role": "admin",
        "site": "site-1",
        "includeDeleted": "true",
        "page_size": "2",
        "page_token": "u0",
    }
    assert [u.uid for u in page["users"]] == ["u1", "u2"]
    assert page["users"][1].role == "member"
    assert page["next_page_token"] == "u2"

    api.reply("GET", "/api/users", {"users": []})
    await client.users.list()
    assert api.last.query == {}

    api.reply("GET", "/api/users/u1", user("u1", deletedAt=1700000000000))
    u = await client.users.get("u1")
    assert isinstance(u, PlatformUser)
    assert u.deleted_at == 1700000000000
    assert u.first_name == "F"


async def test_users_mutations(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        "/api/users/u1/promote",
        {"uid": "u1", "role": "superadmin", "previousRole": "admin", "changed": True},
    )
    assert (await client.users.promote("u1", role="superadmin"))["changed"] is True
    assert api.last.body == {"role": "superadmin"}

    api.reply("POST", "/api/users/u1/demote", {"uid": "u1", "role": "member"})
    await client.users.demote("u1", idempotency_key="d-1")
    assert api.last.body == {}
    assert api.last.idempotency_key == "d-1"

    api.reply("POST", "/api/users/u1/assign-sites", {"uid": "u1", "assignedSiteIds": ["site-1", "site-2"]})
    await client.users.assign_sites("u1", ["site-1", "site-2"])
    assert api.last.body == {"siteIds": ["site-1", "site-2"]}

    api.reply(
        "POST",
        "/api/users/u1/remove-sites",
        {"uid": "u1", "removedSiteIds": ["site-2"], "cancelledCommandCount": 0},
    )
    await client.users.remove_sites("u1", ["site-2"])
    assert api.last.body == {"siteIds": ["site-2"]}

    for method in (client.users.assign_sites, client.users.remove_sites):
        with pytest.raises(ValueError, match="site_ids must not be empty"):
            await method("u1", [])

    api.reply("DELETE", "/api/users/u1", {"uid": "u1", "alreadyDeleted": False, "deletedAt": 5})
    await client.users.delete("u1", successor_uid="u2")
    assert api.last.query == {"successorUid": "u2"}
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-users-delete-")

    api.problem(
        "POST", "/api/users/u9/demote", 409, "last_superadmin", minSuperadmins=1, currentActiveCount=1
    )
    with pytest.raises(RoostApiError) as info:
        await client.users.demote("u9")
    assert info.value.problem["minSuperadmins"] == 1
