"""The fleet plane and account routes: every SDK method has a consistent counterpart."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest

from roost.testing import EmulatorServer

from ._helpers import api_client, assert_problem, push

pytestmark = pytest.mark.anyio


def key(name: str) -> dict[str, str]:
    return {"Idempotency-Key": f"test-{name}"}


async def test_machines_and_commands(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    base = f"/api/sites/{site}/machines"
    async with api_client(roost_server) as client:
        await push(client, site, "fleet-roost", {"a": b"x"}, targets=["machine-01"])
        machines = (await client.get(base)).json()["machines"]
        assert [m["id"] for m in machines] == ["machine-01", "machine-02", "machine-03"]
        assert machines[0]["currentRoosts"][0]["roostId"] == "fleet-roost"
        detail = await client.get(f"{base}/machine-01")
        assert detail.json()["siteId"] == site
        assert_problem(await client.get(f"{base}/nobody"), 404, "not_found")
        deployments = await client.get(f"{base}/machine-01/deployments")
        assert deployments.json()["deployments"][0]["roostId"] == "fleet-roost"
        no_key = await client.post(
            f"{base}/machine-01/commands", json={"type": "reboot_machine", "params": {}}
        )
        assert_problem(no_key, 400, "idempotency_key_required")
        unsupported = await client.post(
            f"{base}/machine-01/commands", json={"type": "format_disk", "params": {}}, headers=key("fmt")
        )
        assert_problem(unsupported, 400, "unsupported_command_type")
        dispatched = await client.post(
            f"{base}/machine-01/commands",
            json={"type": "reboot_machine", "params": {}},
            headers=key("reboot"),
        )
        assert dispatched.status_code == 202
        command = dispatched.json()["data"]
        assert re.fullmatch(r"cmd_[0-9a-z]+_[0-9a-z]{8}", command["commandId"])
        statuses = []
        for _ in range(3):
            got = await client.get(f"{base}/machine-01/commands/{command['commandId']}")
            statuses.append(got.json()["data"]["status"])
        assert statuses == ["in_progress", "completed", "completed"]
        roost_server.add_machine("machine-off", online=False)
        offline = await client.post(
            f"{base}/machine-off/commands", json={"type": "reboot_machine", "params": {}}, headers=key("off")
        )
        assert_problem(offline, 409, "machine_offline")
        shot = await client.post(
            f"{base}/machine-02/commands",
            json={"type": "capture_screenshot", "params": {}},
            headers=key("shot"),
        )
        shot_id = shot.json()["data"]["commandId"]
        await client.get(f"{base}/machine-02/commands/{shot_id}")
        done = (await client.get(f"{base}/machine-02/commands/{shot_id}")).json()["data"]
        assert done["status"] == "completed"
        async with httpx.AsyncClient() as plain:
            png = await plain.get(done["result"]["screenshot_url"])
        assert png.content.startswith(b"\x89PNG")


async def test_processes(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    base = f"/api/sites/{site}/machines/machine-01/processes"
    async with api_client(roost_server) as client:
        created = await client.post(
            base, json={"name": "TouchDesigner", "exe_path": "C:/td.exe"}, headers=key("p1")
        )
        assert created.status_code == 201
        process_id = created.json()["data"]["processId"]
        duplicate = await client.post(
            base, json={"name": "TouchDesigner", "exe_path": "C:/x.exe"}, headers=key("p2")
        )
        assert duplicate.status_code == 409
        assert duplicate.json() == {
            "type": "about:blank",
            "title": "duplicate_process_name",
            "status": 409,
            "code": "duplicate_process_name",
            "detail": duplicate.json()["detail"],
        }
        unknown = await client.post(base, json={"name": "x", "exe_path": "y", "colour": 1}, headers=key("p3"))
        assert unknown.json()["code"] == "unknown_field"
        listed = (await client.get(base)).json()["data"]
        assert listed["nextPageToken"] is None
        assert listed["processes"][0]["processId"] == process_id
        patched = await client.patch(f"{base}/{process_id}", json={"cwd": "C:/"}, headers=key("p4"))
        assert patched.json() == {"ok": True, "data": {"processId": process_id}}
        started = await client.post(f"{base}/{process_id}/start", json={}, headers=key("p5"))
        assert started.status_code == 202
        assert (await client.get(f"{base}/{process_id}")).json()["data"]["status"] == "running"
        scheduled = await client.post(
            f"{base}/{process_id}/schedule",
            json={
                "mode": "scheduled",
                "blocks": [{"days": ["mon"], "ranges": [{"start": "09:00", "stop": "17:00"}]}],
            },
            headers=key("p6"),
        )
        assert scheduled.json()["data"] == {"processId": process_id, "mode": "scheduled"}
        deleted = await client.delete(f"{base}/{process_id}")
        assert deleted.json()["data"]["alreadyDeleted"] is False
        again = await client.delete(f"{base}/{process_id}")
        assert again.json()["data"]["alreadyDeleted"] is True
        missing = await client.get(f"{base}/{process_id}")
        assert missing.json()["code"] == "process_not_found"


async def test_installer_upload_and_versions(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            binary = f"installer {version}".encode()
            start = await client.post(
                "/api/installer/upload",
                json={"version": version, "fileName": "Owlette-Installer.exe", "setAsLatest": True},
                headers=key(f"up-{version}"),
            )
            assert start.status_code == 200, start.text
            async with httpx.AsyncClient() as plain:
                put = await plain.put(start.json()["uploadUrl"], content=binary)
            assert put.status_code == 200
            finish = await client.put(
                "/api/installer/upload",
                json={
                    "uploadId": start.json()["uploadId"],
                    "checksum_sha256": hashlib.sha256(binary).hexdigest(),
                },
                headers=key(f"up-{version}"),
            )
            assert finish.status_code == 200, finish.text
            assert finish.json()["file_size"] == len(binary)
        latest = await client.get("/api/installer/latest")
        assert latest.json()["version"] == "1.2.0"
        protected = await client.delete("/api/installer/1.2.0")
        assert_problem(protected, 409, "latest_version_protected")
        removed = await client.delete("/api/installer/1.0.0")
        assert removed.json()["alreadyDeleted"] is False
        floor = await client.delete("/api/installer/1.1.0")
        assert_problem(floor, 409, "min_versions_violated")
        promoted = await client.post("/api/installer/1.1.0/set-latest", json={}, headers=key("latest"))
        assert promoted.json()["latest"]["version"] == "1.1.0"
        listed = await client.get("/api/installer")
        assert [v["version"] for v in listed.json()["versions"]] == ["1.2.0", "1.1.0"]


async def test_installer_deployments(roost_server: EmulatorServer) -> None:
    base = f"/api/sites/{roost_server.site_id}/deployments"
    body = {
        "name": "TD update",
        "installer_name": "td.exe",
        "installer_url": "https://example.com/td.exe",
        "silent_flags": "/S",
        "machines": ["machine-01", "machine-02"],
    }
    async with api_client(roost_server) as client:
        created = await client.post(base, json=body, headers=key("d1"))
        assert created.status_code == 201
        deployment_id = created.json()["deploymentId"]
        assert deployment_id.startswith("deploy-")
        in_flight = await client.request("DELETE", f"{base}/{deployment_id}", json={}, headers=key("d2"))
        assert_problem(in_flight, 409, "deployment_in_flight")
        no_failed = await client.post(f"{base}/{deployment_id}/retry", json={}, headers=key("d3"))
        assert_problem(no_failed, 409, "no_failed_targets")
        cancelled = await client.post(f"{base}/{deployment_id}/cancel", json={}, headers=key("d4"))
        assert cancelled.json()["cancelled"] == 2
        assert cancelled.json()["status"] == "cancelled"
        listed = await client.get(base)
        assert listed.json()["items"][0]["id"] == deployment_id
        assert "nextPageToken" not in listed.json()
        deleted = await client.request("DELETE", f"{base}/{deployment_id}", json={}, headers=key("d5"))
        assert deleted.json()["deleted"] is True
        too_many = await client.post(
            base, json={**body, "machines": [f"m{i}" for i in range(101)]}, headers=key("d6")
        )
        assert_problem(too_many, 413, "over_quota")


async def test_members_and_users(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    roost_server.add_user("colleague-1", role="admin", sites=[])
    async with api_client(roost_server) as client:
        added = await client.post(f"/api/sites/{site}/members", json={"uid": "colleague-1", "role": "admin"})
        assert added.json()["roleHonored"] is True
        members = (await client.get(f"/api/sites/{site}/members")).json()["members"]
        roles = {m["uid"]: m["role"] for m in members}
        assert roles == {roost_server.user_id: "owner", "colleague-1": "admin"}
        owner = await client.delete(f"/api/sites/{site}/members/{roost_server.user_id}")
        assert_problem(owner, 409, "cannot_remove_owner")
        removed = await client.delete(f"/api/sites/{site}/members/colleague-1")
        assert removed.json()["wasMember"] is True
        users = (await client.get("/api/users")).json()
        assert [u["uid"] for u in users["users"]] == ["colleague-1", roost_server.user_id]
        promoted = await client.post("/api/users/colleague-1/promote", json={"role": "superadmin"})
        assert promoted.json()["previousRole"] == "admin"
        demoted = await client.post("/api/users/colleague-1/demote", json={})
        assert demoted.json()["role"] == "member"
        last = await client.post(f"/api/users/{roost_server.user_id}/demote", json={})
        assert_problem(last, 409, "last_superadmin")
        assigned = await client.post("/api/users/colleague-1/assign-sites", json={"siteIds": [site]})
        assert assigned.json()["assignedSiteIds"] == [site]
        unknown = await client.post("/api/users/colleague-1/assign-sites", json={"siteIds": ["ghost"]})
        assert assert_problem(unknown, 400, "unknown_site")["unknownSites"] == ["ghost"]
        gone = await client.delete("/api/users/colleague-1")
        assert gone.json()["alreadyDeleted"] is False
        member_key = roost_server.mint_key(user_id="colleague-1")
        after = await client.get("/api/whoami", headers={"Authorization": f"Bearer {member_key}"})
        assert after.status_code == 200  # keys minted afterwards still resolve; the user is soft-deleted
        assert after.json()["userId"] == "colleague-1"


async def test_member_cannot_mutate_roosts(roost_server: EmulatorServer) -> None:
    roost_server.add_user("plain-member", role="member")
    member_key = roost_server.mint_key(user_id="plain-member")
    async with api_client(roost_server, member_key) as client:
        listed = await client.get("/api/roosts", params={"siteId": roost_server.site_id})
        assert listed.status_code == 200
        create = await client.post("/api/roosts", json={"siteId": roost_server.site_id, "name": "nope"})
        assert assert_problem(create, 403, "forbidden")["detail"] == "capability not granted"
        platform = await client.get("/api/users")
        assert assert_problem(platform, 403, "forbidden")["detail"] == "superadmin access required"


async def test_chat_stream(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        created = await client.post(
            "/api/cortex/conversations", json={"siteId": site, "title": "  hi  "}, headers=key("c1")
        )
        assert created.status_code == 201
        conversation = created.json()["data"]
        assert conversation["title"] == "hi"
        cid = conversation["conversationId"]
        assert re.fullmatch(r"conv_[A-Za-z0-9_-]{24}", cid)
        async with client.stream(
            "POST",
            f"/api/cortex/conversations/{cid}",
            json={"role": "user", "content": "status?"},
            headers=key("c2"),
        ) as response:
            assert response.status_code == 200
            assert response.headers["x-vercel-ai-data-stream"] == "v1"
            assert response.headers["content-type"] == "text/plain; charset=utf-8"
            lines = [line async for line in response.aiter_lines() if line]
        assert lines[-1] == 'd:{"finishReason":"stop"}'
        assert all(line.startswith("0:") for line in lines[:-1])
        extra = await client.post(
            f"/api/cortex/conversations/{cid}",
            json={"role": "user", "content": "x", "machineId": "m"},
            headers=key("c3"),
        )
        assert_problem(extra, 400, "forbidden_field")
        listed = await client.get("/api/cortex/conversations", params={"siteId": site})
        summary = listed.json()["data"]["conversations"][0]
        assert summary["messageCount"] == 2
        renamed = await client.patch(f"/api/cortex/conversations/{cid}", json={"title": "renamed"})
        assert renamed.json()["data"]["title"] == "renamed"
        deleted = await client.delete(f"/api/cortex/conversations/{cid}")
        assert deleted.json()["data"]["alreadyDeleted"] is False
        again = await client.delete(f"/api/cortex/conversations/{cid}")
        assert again.json()["data"]["alreadyDeleted"] is True
        missing = await client.post(
            f"/api/cortex/conversations/{cid}", json={"role": "user", "content": "x"}, headers=key("c4")
        )
        assert_problem(missing, 404, "not_found")


async def test_keys_need_a_session_and_account_keys_work(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        refused = await client.get("/api/keys")
        assert assert_problem(refused, 401, "unauthorized")["detail"] == "Unauthorized: Invalid ID token"
        account = await client.post("/api/account/api-keys", json={"name": "ci"})
        assert account.status_code == 200
        assert account.json()["key"].startswith("owk_live_")
        revoked = await client.delete(f"/api/account/api-keys/{account.json()['keyId']}")
        assert revoked.json() == {"success": True}
    async with api_client(roost_server, roost_server.id_token) as session:
        created = await session.post(
            "/api/keys",
            json={
                "name": "deploy bot",
                "scopes": [{"resource": "roost", "id": "*", "permissions": ["read", "write"]}],
                "ttlDays": 30,
                "environment": "test",
            },
        )
        assert created.status_code == 200
        raw = created.json()["key"]
        assert raw.startswith("owk_test_")
        rotated = await session.post(f"/api/keys/{created.json()['keyId']}/rotate", json={"ttlDays": 90})
        assert rotated.json()["rotatedFromKeyId"] == created.json()["keyId"]
        twice = await session.post(f"/api/keys/{created.json()['keyId']}/rotate", json={})
        assert_problem(twice, 409, "conflict")
        listed = await session.get("/api/keys")
        assert any(k["id"] == created.json()["keyId"] for k in listed.json()["keys"])
        deleted = await session.delete(f"/api/keys/{rotated.json()['keyId']}")
        assert deleted.json() == {"success": True}
