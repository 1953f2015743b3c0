"""The fleet-plane and account methods end to end against the local emulator (``roost.testing``).

Every SDK method outside the deploy plane goes through ``Roost(token=..., api_url=server.url)``
at least once; assertions cover the typed results, the raw dicts as the spec documents them and
a few documented error paths.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import (
    ApiKeyRecord,
    ApiKeyScope,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    ConversationSummary,
    InstallerDeploymentDetail,
    InstallerDeploymentSummary,
    InstallerDeploymentTarget,
    InstallerVersion,
    MachineDeployment,
    MachineDetail,
    MachineSummary,
    Member,
    NotFoundError,
    PermissionDeniedError,
    PlatformUser,
    ProcessRecord,
    PushOptions,
    QuotaSnapshot,
    Roost,
    RoostApiError,
    Site,
    WebhookSubscription,
    verify_signature,
)

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from roost.testing import EmulatorServer, start_server

from ..emulator._helpers import Receiver, webhook_receiver

pytestmark = pytest.mark.anyio

DAY_MS = 24 * 3600 * 1000
GIB = 1 << 30


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


def now_ms() -> int:
    return int(time.time() * 1000)


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def by_id(records: list[ApiKeyRecord]) -> dict[str, ApiKeyRecord]:
    return {record.id: record for record in records}


# ---------------------------------------------------------------------------------- account + keys


async def test_account_api_keys(server: EmulatorServer, client: Roost) -> None:
    created = await client.account.api_keys.create(name="preview publisher")
    assert created["success"] is True
    assert created["key"].startswith("owk_live_")
    assert created["keyPrefix"] == created["key"][:15]
    assert created["id"] == created["keyId"]
    assert created["name"] == "preview publisher"
    assert created["environment"] == "live"
    assert abs(created["expiresAt"] - (now_ms() + 90 * DAY_MS)) < 60_000
    # the new key inherits the caller's scopes (the emulator token has every scope)
    assert {(s["resource"], s["id"]) for s in created["scopes"]} >= {("user", "*"), ("site", "*")}

    default_named = await client.account.api_keys.create()
    assert default_named["name"] == "API Key"

    listed = by_id(await client.account.api_keys.list())
    record = listed[created["keyId"]]
    assert isinstance(record, ApiKeyRecord)
    assert record.name == "preview publisher"
    assert record.key_prefix == created["keyPrefix"]
    assert record.environment == "live"
    assert record.expires_at == created["expiresAt"]
    assert record.scopes is not None
    assert all(isinstance(scope, ApiKeyScope) for scope in record.scopes)
    every_permission = ["read", "write", "deploy", "rollback", "admin"]
    assert ApiKeyScope(resource="user", id="*", permissions=every_permission) in record.scopes
    assert default_named["keyId"] in listed

    # the wire createdAt is ISO-8601 here (server-semantics 0.1; OAS ApiKey.createdAt date-time); the
    # record keeps every key timestamp as Unix ms
    assert isinstance(record.created_at, int)
    assert abs(record.created_at - now_ms()) < 60_000

    async with Roost(token=created["key"], api_url=server.url) as minted:
        identity = await minted.account.whoami()
    assert identity.key is not None
    assert identity.key.key_id == created["keyId"]
    assert identity.user_id == server.user_id
    used = by_id(await client.account.api_keys.list())[created["keyId"]]
    assert isinstance(used.last_used_at, int)

    await client.account.api_keys.revoke(created["keyId"])
    await client.account.api_keys.revoke(default_named["id"])
    remaining = by_id(await client.account.api_keys.list())
    assert created["keyId"] not in remaining
    assert default_named["keyId"] not in remaining
    async with Roost(token=created["key"], api_url=server.url) as revoked:
        with pytest.raises(AuthenticationError) as refused:
            await revoked.account.whoami()
    assert refused.value.code == "unauthorized"
    with pytest.raises(NotFoundError) as missing:
        await client.account.api_keys.revoke(created["keyId"])
    assert missing.value.code == "not_found"

    # a narrower key cannot widen itself: the minted key copies exactly the caller's scopes
    narrow_scopes = [
        {"resource": "user", "id": "*", "permissions": ["admin"]},
        {"resource": "site", "id": server.site_id, "permissions": ["read"]},
    ]
    async with Roost(token=server.mint_key(scopes=narrow_scopes), api_url=server.url) as narrow:
        inherited = await narrow.account.api_keys.create(name="narrow child")
        assert inherited["scopes"] == narrow_scopes
        await narrow.account.api_keys.revoke(inherited["keyId"])

    server.add_user("fleet-keys-member", role="member")
    async with Roost(token=server.mint_key(user_id="fleet-keys-member"), api_url=server.url) as member:
        with pytest.raises(PermissionDeniedError) as forbidden:
            await member.account.api_keys.list()
    assert forbidden.value.code == "forbidden"
    assert str(forbidden.value) == "superadmin access required"


async def test_legacy_keys_need_an_id_token(server: EmulatorServer, client: Roost) -> None:
    with pytest.raises(AuthenticationError) as refused:
        await client.keys.list()
    assert refused.value.code == "unauthorized"
    assert str(refused.value) == "Unauthorized: Invalid ID token"

    site = server.site_id
    async with Roost(token=server.id_token, api_url=server.url) as session:
        created = await session.keys.create(
            name="ci publisher",
            environment="test",
            scopes=[
                ApiKeyScope(resource="site", id=site, permissions=["read"]),
                ApiKeyScope(resource="roost", id="*", permissions=["read", "write", "deploy"]),
            ],
            ttl_days=30,
        )
        assert created["success"] is True
        assert created["key"].startswith("owk_test_")
        assert created["keyPrefix"] == created["key"][:15]
        assert created["id"] == created["keyId"]
        assert created["environment"] == "test"
        assert created["scopes"] == [
            {"resource": "site", "id": site, "permissions": ["read"]},
            {"resource": "roost", "id": "*", "permissions": ["read", "write", "deploy"]},
        ]
        assert abs(created["expiresAt"] - (now_ms() + 30 * DAY_MS)) < 60_000

        async with Roost(token=created["key"], api_url=server.url) as minted:
            identity = await minted.account.whoami()
        assert identity.key is not None
        assert identity.key.key_id == created["keyId"]
        assert identity.key.environment == "test"
        assert identity.primary_site_id == site
        assert identity.key.scopes == [
            ApiKeyScope(resource="site", id=site, permissions=["read"]),
            ApiKeyScope(resource="roost", id="*", permissions=["read", "write", "deploy"]),
        ]

        listed = by_id(await session.keys.list())
        record = listed[created["keyId"]]
        assert record.name == "ci publisher"
        assert record.environment == "test"
        assert record.key_prefix == created["keyPrefix"]
        assert record.expires_at == created["expiresAt"]
        assert record.created_at is None  # a raw Firestore timestamp object on this route
        assert record.rotated_at is None
        assert record.revoked_at is None

        rotated = await session.keys.rotate(created["id"], ttl_days=90)
        assert rotated["keyId"] != created["keyId"]
        assert rotated["id"] == rotated["keyId"]
        assert rotated["key"].startswith("owk_test_")
        assert rotated["rotatedFromKeyId"] == created["keyId"]
        assert rotated["previousKey"]["keyId"] == created["keyId"]
        assert abs(rotated["previousKey"]["retiresAt"] - (now_ms() + DAY_MS)) < 60_000
        assert rotated["scopes"] == created["scopes"]
        with pytest.raises(ConflictError) as twice:
            await session.keys.rotate(created["keyId"])
        assert twice.value.code == "conflict"

        listed = by_id(await session.keys.list())
        old, new = listed[created["keyId"]], listed[rotated["keyId"]]
        assert old.rotated_at is not None
        assert old.retires_at == rotated["previousKey"]["retiresAt"]
        assert new.rotated_from_key_id == created["keyId"]
        async with Roost(token=created["key"], api_url=server.url) as in_grace:
            assert (await in_grace.account.whoami()).user_id == server.user_id

        await session.keys.revoke(rotated["id"])
        await session.keys.revoke(created["id"])
        assert {created["keyId"], rotated["keyId"]}.isdisjoint(by_id(await session.keys.list()))
        with pytest.raises(NotFoundError):
            await session.keys.revoke(created["keyId"])

        with pytest.raises(BadRequestError) as bad_scope:
            await session.keys.create(
                name="bad", scopes=[ApiKeyScope(resource="user", id=site, permissions=["read"])]
            )
        assert bad_scope.value.code == "validation_failed"
        assert str(bad_scope.value) == 'user scopes must use id "*"'
        with pytest.raises(ValueError, match="scopes"):
            await session.keys.create(name="no scopes", scopes=[])


# ---------------------------------------------------------------------------------- webhooks


async def test_webhook_subscription_lifecycle(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    hook = await client.webhooks.subscribe(
        site,
        "https://hooks.example.com",
        ["version.published", "deployment.failed", "version.published"],
        description="  ci hook  ",
    )
    assert re.fullmatch(r"wh_[0-9a-f]{18}", hook["id"])
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", hook["signingSecret"])
    assert hook["siteId"] == site
    assert hook["url"] == "https://hooks.example.com/"
    assert hook["events"] == ["version.published", "deployment.failed"]
    assert hook["paused"] is False
    assert hook["description"] == "ci hook"
    other = await client.webhooks.subscribe(site, "https://other.example.com/in", ["machine.offline"])
    assert "description" not in other

    listed = await client.webhooks.list(site, page_size=1)
    assert all(isinstance(row, WebhookSubscription) for row in listed)
    rows = {row.id: row for row in listed}
    assert {hook["id"], other["id"]} <= set(rows)
    row = rows[hook["id"]]
    assert row.url == "https://hooks.example.com/"
    assert row.events == ["version.published", "deployment.failed"]
    assert row.description == "ci hook"
    assert row.paused is False
    assert row.failure_count == 0
    assert row.created_at == hook["createdAt"]
    assert row.last_delivery_at is None
    assert row.last_delivery_status is None
    assert rows[other["id"]].description is None

    got = await client.webhooks.get(hook["id"], site)
    assert got["id"] == hook["id"]
    assert "signingSecret" not in got
    assert "siteId" not in got
    assert got["failureCount"] == 0

    updated = await client.webhooks.update(hook["id"], site, events=["version.published"], paused=True)
    assert updated["events"] == ["version.published"]
    assert updated["paused"] is True
    assert updated["description"] == "ci hook"
    cleared = await client.webhooks.update(hook["id"], site, description="")
    assert "description" not in cleared
    moved = await client.webhooks.update(hook["id"], site, url="https://hooks.example.com/v2", paused=False)
    assert moved["url"] == "https://hooks.example.com/v2"
    assert moved["paused"] is False
    with pytest.raises(ValueError, match="at least one"):
        await client.webhooks.update(hook["id"], site)

    rotated = await client.webhooks.rotate_secret(hook["id"], site)
    assert rotated["id"] == hook["id"]
    assert rotated["siteId"] == site
    assert re.fullmatch(r"whsec_[0-9a-f]{64}", rotated["signingSecret"])
    assert rotated["signingSecret"] != hook["signingSecret"]
    assert rotated["gracePeriodHours"] == 24
    assert rotated["previousSecretValidUntil"] > rotated["rotatedAt"]

    with pytest.raises(BadRequestError) as bad_scheme:
        await client.webhooks.subscribe(site, "http://hooks.example.com", ["version.published"])
    assert bad_scheme.value.code == "bad_scheme"
    assert bad_scheme.value.problem["errors"]["body.url"]
    with pytest.raises(BadRequestError) as unknown_event:
        await client.webhooks.subscribe(site, "https://hooks.example.com", ["version.exploded"])
    assert unknown_event.value.code == "validation_failed"

    await client.webhooks.remove(hook["id"], site)
    await client.webhooks.remove(hook["id"], site)  # repeat calls succeed
    await client.webhooks.remove(other["id"], site)
    with pytest.raises(NotFoundError) as gone:
        await client.webhooks.get(hook["id"], site)
    assert gone.value.code == "not_found"
    assert {hook["id"], other["id"]}.isdisjoint(row.id for row in await client.webhooks.list(site))


async def wait_for_state(client: Roost, hook_id: str, site: str, state: str) -> dict[str, Any]:
    """The newest delivery once it reaches ``state`` (the dispatcher runs on the server's loop)."""
    for _ in range(200):
        page = await client.webhooks.deliveries(hook_id, site)
        if page["deliveries"] and page["deliveries"][0]["state"] == state:
            row: dict[str, Any] = page["deliveries"][0]
            return row
        await anyio.sleep(0.025)
    raise AssertionError(f"no delivery reached {state!r}")


async def test_webhook_deliveries_retry_and_probe(
    server: EmulatorServer, client: Roost, tmp_path: Path
) -> None:
    site = server.site_id
    receiver: Receiver
    with webhook_receiver() as receiver:
        hook = await client.webhooks.subscribe(site, receiver.url, ["version.published"])
        try:
            await client.roosts.create(site_id=site, name="hooked", roost_id="rst_fleet_hooked")
            dist = write_tree(tmp_path / "dist", {"index.html": b"<h1>hooked</h1>"})
            published = await client.roosts.push(dist, "rst_fleet_hooked", PushOptions(site_id=site))

            received = receiver.wait_for(1)
            assert len(received) == 1
            first_request = received[0]
            assert first_request.headers["roost-event"] == "version.published"
            assert verify_signature(
                first_request.headers["roost-signature"], first_request.body, hook["signingSecret"]
            ).ok
            assert json.loads(first_request.body)["data"]["versionId"] == published.version_id

            row = await wait_for_state(client, hook["id"], site, "succeeded")
            subscription = {h.id: h for h in await client.webhooks.list(site)}[hook["id"]]
            assert subscription.last_delivery_status == 200
            assert subscription.last_delivery_at
            assert subscription.failure_count == 0
            assert row["event"] == "version.published"
            assert row["attempt"] == 1
            assert row["lastStatus"] == 200
            assert row["nextAttemptAt"] is None

            detail = await client.webhooks.delivery(hook["id"], row["id"], site)
            assert detail["id"] == row["id"]
            assert detail["webhookId"] == hook["id"]
            assert detail["siteId"] == site
            assert detail["state"] == "succeeded"
            assert detail["request"]["method"] == "POST"
            assert detail["request"]["url"] == receiver.url
            assert detail["request"]["body"] == first_request.body.decode()
            assert detail["response"]["status"] == 200

            retried = await client.webhooks.retry_delivery(hook["id"], row["id"], site)
            assert re.fullmatch(re.escape(row["id"]) + r"__retry_[0-9a-f]{8}", retried["id"])
            assert retried["webhookId"] == hook["id"]
            assert retried["siteId"] == site
            assert retried["retryOf"] == row["id"]
            assert retried["state"] == "pending"
            assert retried["nextAttemptAt"]
            again = receiver.wait_for(2)
            assert len(again) == 2
            assert again[1].body == first_request.body
            assert again[1].headers["roost-delivery"] == first_request.headers["roost-delivery"]

            await wait_for_state(client, hook["id"], site, "succeeded")
            page = await client.webhooks.deliveries(hook["id"], site, page_size=1)
            assert len(page["deliveries"]) == 1
            assert page["next_page_token"] == page["nextPageToken"] != ""
            rest = await client.webhooks.deliveries(
                hook["id"], site, page_size=1, page_token=page["next_page_token"]
            )
            assert {page["deliveries"][0]["id"], rest["deliveries"][0]["id"]} == {row["id"], retried["id"]}
            assert rest["next_page_token"] == ""

            with pytest.raises(NotFoundError):
                await client.webhooks.delivery(hook["id"], "no-such-delivery", site)

            secret = "whsec_" + "ab" * 20
            probe = await client.webhooks.probe(
                site,
                "version.published",
                url=receiver.url,
                payload={"roostId": "rst_abcdefgh", "versionId": "vrs_xyz", "versionNumber": 7},
                signing_secret=secret,
            )
            assert probe["status"] == 200
            assert probe["event"] == "version.published"
            assert probe["signingSecret"] == secret
            assert probe["responseBody"]
            assert isinstance(probe["durationMs"], int)
            sent = receiver.wait_for(3)[2]
            assert sent.body.decode() == probe["requestBody"]
            assert sent.headers["roost-delivery"] == probe["deliveryId"]
            assert sent.headers["roost-signature"] == probe["signature"]
            assert verify_signature(sent.headers["roost-signature"], sent.body, secret).ok
            envelope = json.loads(probe["requestBody"])
            assert list(envelope) == ["data", "event", "id", "occurredAt", "siteId"]
            assert envelope["data"] == {"roostId": "rst_abcdefgh", "versionId": "vrs_xyz", "versionNumber": 7}

            canned = await client.webhooks.probe(site, "deployment.completed", url=receiver.url)
            assert re.fullmatch(r"whsec_[0-9a-f]{64}", canned["signingSecret"])
            assert json.loads(canned["requestBody"])["data"]["stage"] == "complete"
            with pytest.raises(BadRequestError) as short_secret:
                await client.webhooks.probe(
                    site, "deployment.completed", url=receiver.url, signing_secret="x"
                )
            assert short_secret.value.code == "validation_failed"
        finally:
            await client.webhooks.remove(hook["id"], site)


# ---------------------------------------------------------------------------------- sites, machines


async def test_sites(server: EmulatorServer, client: Roost) -> None:
    site_id = server.site_id
    sites = await client.sites.list()
    assert all(isinstance(s, Site) for s in sites)
    mine = {s.id: s for s in sites}[site_id]
    assert mine.name == "Emulator site"
    assert mine.owner == server.user_id
    assert mine.timezone == "UTC"
    assert mine.plan == "free"
    assert mine.created_at

    got = await client.sites.get(site_id)
    assert isinstance(got, Site)
    assert got == mine

    with pytest.raises(NotFoundError) as missing:
        await client.sites.get("ghost-site")
    assert missing.value.code == "not_found"

    server.add_site("fleet-second-site", name="A second site")
    assert {"fleet-second-site", site_id} <= {s.id for s in await client.sites.list()}
    site_scoped = [{"resource": "site", "id": site_id, "permissions": ["read"]}]
    async with Roost(token=server.mint_key(scopes=site_scoped), api_url=server.url) as scoped:
        assert [s.id for s in await scoped.sites.list()] == [site_id]
        with pytest.raises(PermissionDeniedError) as other_site:
            await scoped.sites.get("fleet-second-site")
        assert other_site.value.code == "scope_insufficient"
    no_sites = [{"resource": "roost", "id": "*", "permissions": ["read"]}]
    async with Roost(token=server.mint_key(scopes=no_sites), api_url=server.url) as roost_only:
        assert await roost_only.sites.list() == []


async def test_machines_and_commands(server: EmulatorServer, client: Roost, tmp_path: Path) -> None:
    site = server.site_id
    roost_id = "rst_fleet_machines"
    await client.roosts.create(
        site_id=site, name="lobby", roost_id=roost_id, targets=["machine-01"], extract_path="C:\\lobby"
    )
    dist = write_tree(tmp_path / "dist", {"index.html": b"<h1>lobby</h1>"})
    published = await client.roosts.push(dist, roost_id, PushOptions(site_id=site))

    machines = await client.machines.list(site)
    assert all(isinstance(m, MachineSummary) for m in machines)
    by_machine = {m.id: m for m in machines}
    assert {"machine-01", "machine-02", "machine-03"} <= set(by_machine)
    first = by_machine["machine-01"]
    assert first.name == "machine-01"
    assert first.online is True
    assert first.last_heartbeat
    assert first.agent_version == "2.9.0"
    assert first.os == "Windows 11"
    assert {
        "roostId": roost_id,
        "name": "lobby",
        "currentVersionId": published.version_id,
        "versionCounter": 1,
    } in first.current_roosts
    assert not any(r["roostId"] == roost_id for r in by_machine["machine-02"].current_roosts)

    detail = await client.machines.get(site, "machine-01")
    assert isinstance(detail, MachineDetail)
    assert detail.id == "machine-01"
    assert detail.site_id == site
    assert detail.online is True
    assert detail.hostname == "machine-01.local"
    assert detail.metrics is not None
    assert "cpu" in detail.metrics
    assert detail.processes == []
    with pytest.raises(NotFoundError) as no_machine:
        await client.machines.get(site, "ghost-machine")
    assert no_machine.value.code == "not_found"
    assert no_machine.value.problem["title"] == "machine not found"

    deployments = await client.machines.deployments(site, "machine-01")
    assert all(isinstance(d, MachineDeployment) for d in deployments)
    deployment = {d.roost_id: d for d in deployments}[roost_id]
    assert deployment.name == "lobby"
    assert deployment.current_version_id == published.version_id
    assert deployment.previous_version_id is None
    assert deployment.extract_path == "C:\\lobby"
    assert deployment.version_counter == 1
    assert deployment.reported_status is None
    assert await client.machines.deployments(site, "machine-02") == [] or all(
        d.roost_id != roost_id for d in await client.machines.deployments(site, "machine-02")
    )

    dispatched = await client.machines.dispatch_command(
        site, "machine-02", "reboot_machine", {"delay_seconds": 5}, timeout_seconds=120
    )
    assert set(dispatched) == {"commandId", "status"}
    assert re.fullmatch(r"cmd_[0-9a-z]+_[0-9a-z]{8}", dispatched["commandId"])
    assert dispatched["status"] == "pending"
    running = await client.machines.get_command(site, "machine-02", dispatched["commandId"])
    assert running["commandId"] == dispatched["commandId"]
    assert running["status"] == "in_progress"
    assert "result" not in running
    done = await client.machines.get_command(site, "machine-02", dispatched["commandId"])
    assert done["status"] == "completed"
    assert done["result"]
    assert done["createdAt"]
    assert done["updatedAt"]

    with pytest.raises(BadRequestError) as unsupported:
        await client.machines.dispatch_command(site, "machine-02", "format_disk")
    assert unsupported.value.code == "unsupported_command_type"
    with pytest.raises(BadRequestError) as bad_params:
        await client.machines.dispatch_command(site, "machine-02", "capture_screenshot", {"monitor": "left"})
    assert bad_params.value.code == "validation_failed"
    server.add_machine("machine-fleet-off", online=False)
    with pytest.raises(ConflictError) as offline:
        await client.machines.dispatch_command(site, "machine-fleet-off", "reboot_machine")
    assert offline.value.code == "machine_offline"
    with pytest.raises(NotFoundError) as no_command:
        await client.machines.get_command(site, "machine-02", "cmd_nope_12345678")
    assert no_command.value.problem["title"] == "command not found"

    target = tmp_path / "shot.png"
    image = await client.machines.capture_screenshot(
        site, "machine-03", monitor="primary", download_to=target
    )
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    assert target.read_bytes() == image


# ---------------------------------------------------------------------------------- installer


async def test_installer_catalogue(server: EmulatorServer, client: Roost, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as none_yet:
        await client.installer.latest()
    assert none_yet.value.code == "latest_installer_not_found"

    uploads: dict[str, dict[str, Any]] = {}
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        binary = tmp_path / f"Owlette-Installer-{version}.exe"
        binary.write_bytes(f"installer build {version}".encode() * 100)
        uploads[version] = await client.installer.upload(
            binary,
            version=version,
            release_notes=f"notes for {version}",
            set_as_latest=version != "1.3.0",
        )
        finalized = uploads[version]
        assert finalized["version"] == version
        assert finalized["checksum_sha256"] == hashlib.sha256(binary.read_bytes()).hexdigest()
        assert finalized["file_size"] == binary.stat().st_size
        assert finalized["download_url"].startswith(server.url)

    latest = await client.installer.latest()
    assert isinstance(latest, InstallerVersion)
    assert latest.version == "1.2.0"  # 1.3.0 was uploaded with set_as_latest=False
    assert latest.checksum_sha256 == uploads["1.2.0"]["checksum_sha256"]
    assert latest.release_notes == "notes for 1.2.0"
    assert latest.file_size == uploads["1.2.0"]["file_size"]
    assert latest.uploaded_by == server.user_id
    assert isinstance(latest.uploaded_at, int)
    assert latest.promoted_at is not None
    assert latest.deleted_at is None
    assert latest.release_date

    page = await client.installer.list()
    assert all(isinstance(v, InstallerVersion) for v in page["versions"])
    assert {v.version for v in page["versions"]} == set(uploads)
    uploaded_at = [v.uploaded_at or 0 for v in page["versions"]]
    assert uploaded_at == sorted(uploaded_at, reverse=True)
    assert page["next_page_token"] == ""
    first_page = await client.installer.list(page_size=3)
    assert len(first_page["versions"]) == 3
    assert first_page["next_page_token"]
    second_page = await client.installer.list(page_size=3, page_token=first_page["next_page_token"])
    assert len(second_page["versions"]) == 1
    assert second_page["next_page_token"] == ""

    with pytest.raises(ConflictError) as protected:
        await client.installer.delete("1.2.0")
    assert protected.value.code == "latest_version_protected"

    promoted = await client.installer.set_latest("1.1.0")
    assert promoted["version"] == "1.1.0"
    assert promoted["latest"]["version"] == "1.1.0"
    assert promoted["latest"]["promoted_by"] == server.user_id
    assert (await client.installer.latest()).version == "1.1.0"

    removed = await client.installer.delete("1.0.0")
    assert removed["version"] == "1.0.0"
    assert removed["alreadyDeleted"] is False
    assert isinstance(removed["deletedAt"], int)
    again = await client.installer.delete("1.0.0")
    assert again == {**removed, "alreadyDeleted": True}
    await client.installer.delete("1.2.0")  # no longer latest, and three versions are still active
    with pytest.raises(ConflictError) as floor:
        await client.installer.delete("1.3.0")
    assert floor.value.code == "min_versions_violated"
    assert floor.value.problem["minActiveVersions"] == 2
    assert floor.value.problem["currentActiveCount"] == 2

    live = await client.installer.list()
    assert {v.version for v in live["versions"]} == {"1.1.0", "1.3.0"}
    everything = await client.installer.list(include_deleted=True)
    deleted = {v.version: v.deleted_at for v in everything["versions"] if v.deleted_at is not None}
    assert deleted.keys() == {"1.0.0", "1.2.0"}
    assert deleted["1.0.0"] == removed["deletedAt"]

    with pytest.raises(ConflictError) as deleted_latest:
        await client.installer.set_latest("1.0.0")
    assert deleted_latest.value.code == "version_deleted"
    with pytest.raises(NotFoundError):
        await client.installer.set_latest("9.9.9")


async def set_target_status(
    server: EmulatorServer, deployment_id: str, statuses: dict[str, str], *, site_id: str | None = None
) -> None:
    """Play the agents' part: report target progress (the emulator never advances installs itself)."""
    site = site_id or server.site_id
    store = server.emu.store
    doc = store.get("installer_deployment", site, deployment_id)
    assert doc is not None
    for target in doc["targets"]:
        if target["machineId"] in statuses:
            target["status"] = statuses[target["machineId"]]
    store.put("installer_deployment", site, deployment_id, doc)


async def test_installer_deployments(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    checksum = "AB" * 32
    created = await client.installer_deployments.create(
        site,
        name="TD update",
        installer_name="td.exe",
        installer_url="https://example.com/td.exe",
        silent_flags="/S",
        machines=["machine-01", "machine-02", "machine-03", "machine-01"],
        verify_path="C:\\TouchDesigner\\bin\\td.exe",
        sha256_checksum=checksum,
        close_processes=["TouchDesigner.exe"],
        parallel_install=True,
    )
    deployment_id = created["deploymentId"]
    assert re.fullmatch(r"deploy-\d+", deployment_id)
    assert created["siteId"] == site
    assert created["status"] == "in_progress"
    assert created["targets"] == [
        {"machineId": "machine-01", "status": "pending"},
        {"machineId": "machine-02", "status": "pending"},
        {"machineId": "machine-03", "status": "pending"},
    ]

    page = await client.installer_deployments.list(site)
    assert all(isinstance(item, InstallerDeploymentSummary) for item in page["items"])
    summary = {item.id: item for item in page["items"]}[deployment_id]
    assert summary.name == "TD update"
    assert summary.installer_name == "td.exe"
    assert summary.installer_url == "https://example.com/td.exe"
    assert summary.silent_flags == "/S"
    assert summary.verify_path == "C:\\TouchDesigner\\bin\\td.exe"
    assert summary.sha256_checksum == checksum.lower()
    assert summary.parallel_install is True
    assert summary.status == "in_progress"
    assert summary.created_at
    assert summary.completed_at is None
    assert summary.targets == [
        InstallerDeploymentTarget(machine_id=m, status="pending")
        for m in ("machine-01", "machine-02", "machine-03")
    ]

    detail = await client.installer_deployments.get(site, deployment_id)
    assert isinstance(detail, InstallerDeploymentDetail)
    assert detail.site_id == site
    assert detail.id == deployment_id
    assert detail.targets == summary.targets

    with pytest.raises(ConflictError) as nothing_failed:
        await client.installer_deployments.retry(site, deployment_id)
    assert nothing_failed.value.code == "no_failed_targets"
    with pytest.raises(ConflictError) as in_flight:
        await client.installer_deployments.delete(site, deployment_id)
    assert in_flight.value.code == "deployment_in_flight"
    with pytest.raises(ConflictError) as nothing_installed:
        await client.installer_deployments.uninstall(site, deployment_id)
    assert nothing_installed.value.code == "no_targets"

    await set_target_status(server, deployment_id, {"machine-01": "failed", "machine-02": "completed"})
    retried = await client.installer_deployments.retry(site, deployment_id)
    assert retried == {
        "deploymentId": deployment_id,
        "siteId": site,
        "status": "in_progress",
        "retried": 1,
        "machine_ids": ["machine-01"],
    }
    cancelled = await client.installer_deployments.cancel(site, deployment_id)
    assert cancelled["deploymentId"] == deployment_id
    assert cancelled["cancelled"] == 2
    assert cancelled["machine_ids"] == ["machine-01", "machine-03"]
    assert cancelled["status"] == "partial"
    with pytest.raises(ConflictError) as nothing_pending:
        await client.installer_deployments.cancel(site, deployment_id)
    assert nothing_pending.value.code == "no_cancellable_targets"

    write_only = [{"resource": "site", "id": site, "permissions": ["read", "write"]}]
    async with Roost(token=server.mint_key(scopes=write_only), api_url=server.url) as writer:
        with pytest.raises(PermissionDeniedError) as not_admin:
            await writer.installer_deployments.uninstall(site, deployment_id)
    assert not_admin.value.code == "scope_insufficient"
    assert not_admin.value.problem["required"] == {"resource": "site", "id": site, "permission": "admin"}

    uninstalled = await client.installer_deployments.uninstall(site, deployment_id)
    assert uninstalled == {
        "deploymentId": deployment_id,
        "siteId": site,
        "status": "uninstalling",
        "queued": 1,
        "machine_ids": ["machine-02"],
    }
    assert (await client.installer_deployments.get(site, deployment_id)).status == "uninstalling"

    second = await client.installer_deployments.create(
        site,
        name="rollback TD",
        installer_name="td-old.exe",
        installer_url="https://example.com/td-old.exe",
        silent_flags="",
        machines=["machine-02"],
    )
    first_page = await client.installer_deployments.list(site, page_size=1)
    assert [item.id for item in first_page["items"]] == [second["deploymentId"]]
    assert first_page["next_page_token"]
    next_page = await client.installer_deployments.list(
        site, page_size=1, page_token=first_page["next_page_token"]
    )
    assert next_page["items"][0].id == deployment_id
    assert (await client.installer_deployments.get(site, second["deploymentId"])).parallel_install is False

    await client.installer_deployments.cancel(site, second["deploymentId"])
    deleted = await client.installer_deployments.delete(site, second["deploymentId"])
    assert deleted == {"deploymentId": second["deploymentId"], "siteId": site, "deleted": True}
    with pytest.raises(NotFoundError):
        await client.installer_deployments.get(site, second["deploymentId"])

    with pytest.raises(RoostApiError) as too_many:
        await client.installer_deployments.create(
            site,
            name="everything",
            installer_name="td.exe",
            installer_url="https://example.com/td.exe",
            silent_flags="/S",
            machines=[f"machine-{n:03d}" for n in range(101)],
        )
    assert too_many.value.status == 413
    assert too_many.value.code == "over_quota"
    assert too_many.value.problem["quota"] == {"max_targets": 100, "requested": 101}
    with pytest.raises(BadRequestError) as not_https:
        await client.installer_deployments.create(
            site,
            name="plain",
            installer_name="td.exe",
            installer_url="http://example.com/td.exe",
            silent_flags="/S",
            machines=["machine-01"],
        )
    assert not_https.value.code == "installer_url_not_https"


# ---------------------------------------------------------------------------------- processes


async def test_processes(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    processes = client.processes(site, "machine-01")
    assert (processes.site_id, processes.machine_id) == (site, "machine-01")

    created = await processes.create(
        name="TouchDesigner", exe_path="C:/td.exe", cwd="C:/shows", priority="High", launch_mode="off"
    )
    process_id = created["processId"]
    assert created == {"processId": process_id}
    assert re.fullmatch(r"[0-9a-f-]{36}", process_id)

    listed = await processes.list()
    assert all(isinstance(p, ProcessRecord) for p in listed)
    record = {p.process_id: p for p in listed}[process_id]
    assert record.name == "TouchDesigner"
    assert record.exe_path == "C:/td.exe"
    assert record.cwd == "C:/shows"
    assert record.priority == "High"
    assert record.visibility == "Show"
    assert record.launch_mode == "off"
    assert record.autolaunch is False
    assert record.status == "unknown"  # no agent has reported on it yet (server-semantics 11.4)
    assert record.pid is None
    assert record.responsive is True
    assert record.last_updated

    with pytest.raises(ConflictError) as duplicate:
        await processes.create(name="TouchDesigner", exe_path="C:/other.exe")
    assert duplicate.value.code == "duplicate_process_name"
    # process routes answer with their own envelope: no requestId, no docsUrl (server-semantics 2.5)
    assert duplicate.value.problem["type"] == "about:blank"
    assert duplicate.value.problem["title"] == "duplicate_process_name"
    assert duplicate.value.request_id is None

    other = await processes.create(name="Notch", exe_path="C:/notch.exe")
    with pytest.raises(ConflictError) as renamed_onto:
        await processes.update(other["processId"], name="TouchDesigner")
    assert renamed_onto.value.code == "duplicate_process_name"

    updated = await processes.update(process_id, visibility="Hide", launch_mode="always")
    assert updated == {"processId": process_id}
    got = await processes.get(process_id)
    assert isinstance(got, ProcessRecord)
    assert got.visibility == "Hide"
    assert got.launch_mode == "always"
    with pytest.raises(ValueError, match="at least one field"):
        await processes.update(process_id)

    started = await processes.start(process_id)
    assert started["status"] == "pending"
    assert re.fullmatch(r"cmd_[0-9a-z]+_[0-9a-z]{8}", started["commandId"])
    running = await processes.get(process_id)
    assert running.status == "running"
    assert isinstance(running.pid, int)
    command = await client.machines.get_command(site, "machine-01", started["commandId"])
    assert command["status"] == "in_progress"
    stopped = await processes.stop(process_id)
    assert stopped["status"] == "pending"
    assert (await processes.get(process_id)).status == "stopped"
    killed = await processes.kill(process_id)
    assert killed["commandId"] not in (started["commandId"], stopped["commandId"])
    assert (await processes.get(process_id)).pid is None

    blocks = [{"days": ["mon", "tue"], "ranges": [{"start": "09:00", "stop": "17:00"}], "name": "shows"}]
    scheduled = await processes.schedule(process_id, mode="scheduled", blocks=blocks)
    assert scheduled == {"processId": process_id, "mode": "scheduled"}
    with_schedule = await processes.get(process_id)
    assert with_schedule.launch_mode == "scheduled"
    assert with_schedule.schedules == blocks
    assert with_schedule.autolaunch is True
    off = await processes.schedule(process_id, mode="off")
    assert off["mode"] == "off"
    assert (await processes.get(process_id)).autolaunch is False
    with pytest.raises(ValueError, match="blocks"):
        await processes.schedule(process_id, mode="scheduled")

    deleted = await processes.delete(process_id)
    assert deleted == {"processId": process_id, "alreadyDeleted": False}
    assert await processes.delete(process_id) == {"processId": process_id, "alreadyDeleted": True}
    with pytest.raises(NotFoundError) as gone:
        await processes.get(process_id)
    assert gone.value.code == "process_not_found"
    with pytest.raises(NotFoundError):
        await processes.kill(process_id)
    assert process_id not in {p.process_id for p in await processes.list()}
    await processes.delete(other["processId"])

    server.add_machine("machine-proc-off", online=False)
    offline = client.processes(site, "machine-proc-off")
    parked = await offline.create(name="Resolume", exe_path="C:/arena.exe")
    with pytest.raises(ConflictError) as machine_offline:
        await offline.start(parked["processId"])
    assert machine_offline.value.code == "machine_offline"
    assert await client.processes(site, "machine-02").list() == []


# ---------------------------------------------------------------------------------- chat


async def test_chat(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    conversation = await client.chat.new(site_id=site, machine_id="machine-01", title="  diagnostics  ")
    cid = conversation["conversationId"]
    assert re.fullmatch(r"conv_[A-Za-z0-9_-]{24}", cid)
    assert conversation["title"] == "diagnostics"
    assert conversation["siteId"] == site
    assert conversation["machineId"] == "machine-01"
    assert conversation["ownerUid"] == server.user_id
    assert conversation["messageCount"] == 0
    assert conversation["messages"] == []

    deltas = [delta async for delta in client.chat.send(cid, "summarize machine health")]
    assert len(deltas) > 1
    assert "".join(deltas) == "Hoot! The emulator heard: summarize machine health"

    untitled = await client.chat.new(site_id=site)
    assert untitled["title"] == "untitled chat"
    assert "machineId" not in untitled

    page = await client.chat.list(site_id=site)
    assert all(isinstance(c, ConversationSummary) for c in page["conversations"])
    summaries = {c.conversation_id: c for c in page["conversations"]}
    summary = summaries[cid]
    assert summary.title == "diagnostics"
    assert summary.site_id == site
    assert summary.machine_id == "machine-01"
    assert summary.owner_uid == server.user_id
    assert summary.message_count == 2
    assert summary.deleted_at is None
    assert summary.created_at
    assert summary.updated_at
    assert summaries[untitled["conversationId"]].machine_id is None
    assert page["next_page_token"] == ""

    first = await client.chat.list(site_id=site, page_size=1)
    assert len(first["conversations"]) == 1
    assert first["next_page_token"]
    second = await client.chat.list(site_id=site, page_size=1, page_token=first["next_page_token"])
    assert {first["conversations"][0].conversation_id, second["conversations"][0].conversation_id} == {
        cid,
        untitled["conversationId"],
    }

    renamed = await client.chat.rename(cid, "  health check  ")
    assert renamed == {"conversationId": cid, "title": "health check"}

    deleted = await client.chat.delete(cid)
    assert deleted == {"conversationId": cid, "alreadyDeleted": False}
    assert await client.chat.delete(cid) == {"conversationId": cid, "alreadyDeleted": True}
    assert cid not in {c.conversation_id for c in (await client.chat.list(site_id=site))["conversations"]}
    with pytest.raises(NotFoundError) as gone:
        async for _ in client.chat.send(cid, "are you there?"):
            pass
    assert gone.value.code == "not_found"
    with pytest.raises(ValueError, match="message"):
        client.chat.send(untitled["conversationId"], "   ")

    server.add_machine("machine-chat-off", online=False)
    pinned = await client.chat.new(site_id=site, machine_id="machine-chat-off")
    with pytest.raises(RoostApiError) as unavailable:
        async for _ in client.chat.send(pinned["conversationId"], "hello?"):
            pass
    assert unavailable.value.status == 503
    assert unavailable.value.code == "cortex_unavailable"
    await client.chat.delete(pinned["conversationId"])
    await client.chat.delete(untitled["conversationId"])


# ---------------------------------------------------------------------------------- users, members


async def test_users(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    server.add_user("fleet-user-admin", role="admin", sites=[])
    server.add_user("fleet-user-member", role="member")

    page = await client.users.list()
    assert all(isinstance(u, PlatformUser) for u in page["users"])
    users = {u.uid: u for u in page["users"]}
    assert {"fleet-user-admin", "fleet-user-member", server.user_id} <= set(users)
    me = users[server.user_id]
    assert me.role == "superadmin"
    assert me.email == "dev@roost.test"
    assert me.display_name == "Roost Emulator"
    assert me.first_name == "Roost"
    assert me.last_name == "Emulator"
    assert site in me.sites
    assert me.created_at
    assert me.deleted_at is None
    uids = [u.uid for u in page["users"]]
    assert uids == sorted(uids)

    admins = await client.users.list(role="admin")
    assert "fleet-user-admin" in {u.uid for u in admins["users"]}
    assert all(u.role == "admin" for u in admins["users"])
    on_site = await client.users.list(site=site)
    assert "fleet-user-member" in {u.uid for u in on_site["users"]}
    assert "fleet-user-admin" not in {u.uid for u in on_site["users"]}
    one = await client.users.list(page_size=1)
    assert len(one["users"]) == 1
    assert one["next_page_token"]
    following = await client.users.list(page_size=1, page_token=one["next_page_token"])
    assert following["users"][0].uid > one["users"][0].uid
    with pytest.raises(BadRequestError) as bad_role:
        await client.users.list(role="owner")
    assert bad_role.value.code == "validation_failed"

    got = await client.users.get("fleet-user-admin")
    assert isinstance(got, PlatformUser)
    assert got.role == "admin"
    assert got.sites == []
    assert got.email == "fleet-user-admin@roost.test"
    with pytest.raises(NotFoundError):
        await client.users.get("fleet-nobody")

    promoted = await client.users.promote("fleet-user-admin", role="superadmin")
    assert promoted == {
        "uid": "fleet-user-admin",
        "role": "superadmin",
        "previousRole": "admin",
        "changed": True,
    }
    same = await client.users.promote("fleet-user-admin", role="superadmin")
    assert same["changed"] is False
    demoted = await client.users.demote("fleet-user-admin")
    assert demoted == {
        "uid": "fleet-user-admin",
        "role": "member",
        "previousRole": "superadmin",
        "changed": True,
    }
    with pytest.raises(ConflictError) as last:
        await client.users.demote(server.user_id)
    assert last.value.code == "last_superadmin"
    assert last.value.problem["minSuperadmins"] == 1
    assert last.value.problem["currentActiveCount"] == 1
    await client.users.promote("fleet-user-admin", role="admin")

    assigned = await client.users.assign_sites("fleet-user-admin", [site, site])
    assert assigned == {"uid": "fleet-user-admin", "assignedSiteIds": [site]}
    assert (await client.users.get("fleet-user-admin")).sites == [site]
    with pytest.raises(BadRequestError) as unknown_site:
        await client.users.assign_sites("fleet-user-admin", ["ghost-site"])
    assert unknown_site.value.code == "unknown_site"
    assert unknown_site.value.problem["unknownSites"] == ["ghost-site"]
    removed = await client.users.remove_sites("fleet-user-admin", [site, "never-assigned"])
    assert removed == {"uid": "fleet-user-admin", "removedSiteIds": [site], "cancelledCommandCount": 0}
    with pytest.raises(ValueError, match="site_ids must not be empty"):
        await client.users.assign_sites("fleet-user-admin", [])
    with pytest.raises(ValueError, match="site_ids must not be empty"):
        await client.users.remove_sites("fleet-user-admin", [])

    server.add_user("fleet-user-owner", role="admin", sites=[])
    server.add_site("fleet-owned-site", owner="fleet-user-owner")
    with pytest.raises(ConflictError) as orphans:
        await client.users.delete("fleet-user-owner")
    assert orphans.value.code == "orphan_sites"
    assert orphans.value.problem["ownedSites"] == ["fleet-owned-site"]
    with pytest.raises(BadRequestError) as bad_successor:
        await client.users.delete("fleet-user-owner", successor_uid="fleet-user-member")
    assert bad_successor.value.code == "successor_invalid"
    assert bad_successor.value.problem["reason"] == "not_admin"
    owner_key = server.mint_key(user_id="fleet-user-owner")
    gone = await client.users.delete("fleet-user-owner", successor_uid="fleet-user-admin")
    assert gone["uid"] == "fleet-user-owner"
    assert gone["alreadyDeleted"] is False
    assert isinstance(gone["deletedAt"], int)
    assert gone["transferredSites"] == ["fleet-owned-site"]
    assert gone["revokedKeyIds"]
    assert (await client.sites.get("fleet-owned-site")).owner == "fleet-user-admin"
    async with Roost(token=owner_key, api_url=server.url) as revoked:
        with pytest.raises(AuthenticationError):
            await revoked.account.whoami()
    again = await client.users.delete("fleet-user-owner")
    assert again == {"uid": "fleet-user-owner", "alreadyDeleted": True, "deletedAt": gone["deletedAt"]}
    assert (await client.users.get("fleet-user-owner")).deleted_at == gone["deletedAt"]
    assert "fleet-user-owner" not in {u.uid for u in (await client.users.list())["users"]}
    with_deleted = await client.users.list(include_deleted=True)
    assert "fleet-user-owner" in {u.uid for u in with_deleted["users"]}

    server.add_user("fleet-user-plain", role="member")
    async with Roost(token=server.mint_key(user_id="fleet-user-plain"), api_url=server.url) as member:
        with pytest.raises(PermissionDeniedError) as not_superadmin:
            await member.users.list()
    assert not_superadmin.value.code == "forbidden"


async def test_members(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    members = client.members(site)
    assert members.site_id == site
    server.add_user("fleet-colleague", role="admin", sites=[])
    server.add_user("fleet-viewer", role="member", sites=[])

    listed = await members.list()
    assert all(isinstance(m, Member) for m in listed)
    roster = {m.uid: m for m in listed}
    owner = roster[server.user_id]
    assert owner.role == "owner"
    assert owner.global_role == "superadmin"
    assert owner.email == "dev@roost.test"
    assert owner.display_name == "Roost Emulator"
    assert site in owner.sites
    assert "fleet-colleague" not in roster

    added = await members.add("fleet-colleague", role="admin")
    assert added == {
        "uid": "fleet-colleague",
        "siteId": site,
        "requestedRole": "admin",
        "roleHonored": True,
        "globalRole": "admin",
    }
    viewer = await members.add("fleet-viewer", role="admin")
    assert viewer["roleHonored"] is False  # a global member stays a member
    assert viewer["globalRole"] == "member"
    default_role = await members.add("fleet-viewer")
    assert default_role["requestedRole"] == "member"
    assert default_role["roleHonored"] is True

    roster = {m.uid: m for m in await members.list()}
    assert roster["fleet-colleague"].role == "admin"
    assert roster["fleet-viewer"].role == "member"
    assert site in roster["fleet-colleague"].sites

    with pytest.raises(ConflictError) as owner_removal:
        await members.remove(server.user_id)
    assert owner_removal.value.code == "cannot_remove_owner"
    removed = await members.remove("fleet-colleague")
    assert removed == {"siteId": site, "uid": "fleet-colleague", "wasMember": True}
    assert await members.remove("fleet-colleague") == {
        "siteId": site,
        "uid": "fleet-colleague",
        "wasMember": False,
    }
    await members.remove("fleet-viewer")
    assert {"fleet-colleague", "fleet-viewer"}.isdisjoint(m.uid for m in await members.list())
    with pytest.raises(NotFoundError):
        await members.add("fleet-ghost")

    read_write = [{"resource": "site", "id": site, "permissions": ["read", "write"]}]
    async with Roost(token=server.mint_key(scopes=read_write), api_url=server.url) as not_admin:
        with pytest.raises(PermissionDeniedError) as scope:
            await not_admin.members(site).list()
    assert scope.value.code == "scope_insufficient"


# ---------------------------------------------------------------------------------- quotas


async def test_quotas(server: EmulatorServer, client: Roost, tmp_path: Path) -> None:
    site = server.site_id
    await client.roosts.create(site_id=site, name="quota", roost_id="rst_fleet_quota")
    dist = write_tree(tmp_path / "dist", {"blob.bin": b"q" * 10_000})
    await client.roosts.push(dist, "rst_fleet_quota", PushOptions(site_id=site))

    quota = await client.quotas.current(site)
    assert isinstance(quota, QuotaSnapshot)
    assert quota.site_id == site
    assert quota.tier == "free"
    assert quota.limit_bytes == 5 * GIB
    assert quota.unlimited is False
    assert quota.used_bytes >= 10_000
    assert quota.committed_bytes == quota.used_bytes + quota.pending_bytes
    assert quota.fraction_used == pytest.approx(quota.committed_bytes / (5 * GIB))
    assert quota.last_alarm_level == 0
    assert quota.alarms == []

    history = await client.quotas.history(site, period="7d")
    assert history["siteId"] == site
    assert history["period"] == "7d"
    assert history["days"] == 7
    assert len(history["daily"]) == 7
    dates = [day["date"] for day in history["daily"]]
    assert dates == sorted(dates)
    assert set(history["daily"][0]) == {"date", "storageBytesAvg", "classAOps", "classBOps", "egressBytes"}
    default = await client.quotas.history(site)
    assert default["period"] == "30d"
    assert len(default["daily"]) == 30
    with pytest.raises(BadRequestError) as bad_period:
        await client.quotas.history(site, period="1y")
    assert bad_period.value.code == "validation_failed"
    with pytest.raises(NotFoundError):
        await client.quotas.current("ghost-site")


# ---------------------------------------------------------------------------------- cross-cutting gates


async def test_account_identity_and_escape_hatch(server: EmulatorServer, client: Roost) -> None:
    identity = await client.account.whoami()
    assert identity.user_id == server.user_id
    assert identity.role == "superadmin"
    assert identity.primary_site_id == server.site_id
    assert identity.key is not None
    assert identity.key.environment == "test"
    assert identity.key.is_legacy is False
    assert identity.rate_limit is not None
    assert identity.rate_limit["limitPerMinute"] == 600
    assert identity.quota is not None
    assert identity.quota["siteId"] == server.site_id
    assert identity.quota["limitBytes"] is None  # planLimitBytes, no tier fallback (11.10)

    version = await client.account.version()
    assert version.current == "2026-04-22"
    assert version.supported == ["2026-04-22"]
    assert version.deprecated == []
    assert version.retired == []

    raw = await client.http.request(f"/api/sites/{server.site_id}/machines/machine-01")
    assert raw.status == 200
    assert raw.data["id"] == "machine-01"
    assert raw.headers["content-type"].startswith("application/json")


async def test_roost_version_is_checked_only_where_the_server_checks_it(server: EmulatorServer) -> None:
    site = server.site_id
    async with Roost(token=server.token, api_url=server.url, roost_version="2025-01-01") as stale:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: stale.sites.get(site),
            lambda: stale.machines.list(site),
            lambda: stale.quotas.current(site),
            lambda: stale.webhooks.list(site),
            lambda: stale.installer_deployments.list(site),
            lambda: stale.members(site).list(),
        ]
        for call in calls:
            with pytest.raises(BadRequestError) as unsupported:
                await call()
            assert unsupported.value.code == "unsupported_version"
            assert unsupported.value.problem["sent"] == "2025-01-01"
            assert unsupported.value.problem["supported"] == ["2026-04-22"]
        # machine-, platform- and chat-scoped helpers, /api/sites and /api/whoami never look (0.2)
        assert site in {s.id for s in await stale.sites.list()}
        assert isinstance(await stale.processes(site, "machine-01").list(), list)
        assert (await stale.users.list(page_size=1))["users"]
        assert isinstance((await stale.chat.list(site_id=site))["conversations"], list)
        assert (await stale.account.whoami()).user_id == server.user_id


async def test_expired_and_scoped_keys_on_fleet_routes(server: EmulatorServer) -> None:
    site = server.site_id
    expired = server.mint_key(expires_at_ms=now_ms() - 1000)
    async with Roost(token=expired, api_url=server.url) as old:
        with pytest.raises(AuthenticationError) as site_helper:
            await old.machines.list(site)
        assert site_helper.value.code == "token_expired"
        assert str(site_helper.value) == "the api key has expired; rotate or create a new key"
        assert isinstance(site_helper.value.problem["expiredAt"], int)
        with pytest.raises(AuthenticationError) as sites_route:
            await old.sites.list()
        assert sites_route.value.code == "token_expired"
        assert str(sites_route.value) == "Unauthorized: API key expired"
        with pytest.raises(AuthenticationError) as chat_route:
            await old.chat.list(site_id=site)
        assert chat_route.value.code == "unauthorized"  # the list route flattens every auth error

    machine_read = [{"resource": "machine", "id": "machine-01", "permissions": ["read"]}]
    async with Roost(token=server.mint_key(scopes=machine_read), api_url=server.url) as reader:
        assert isinstance(await reader.processes(site, "machine-01").list(), list)
        with pytest.raises(PermissionDeniedError) as no_write:
            await reader.processes(site, "machine-01").create(name="x", exe_path="C:/x.exe")
        assert no_write.value.code == "scope_insufficient"
        assert no_write.value.problem["required"] == {
            "resource": "machine",
            "id": "machine-01",
            "permission": "write",
        }
        with pytest.raises(PermissionDeniedError):
            await reader.processes(site, "machine-02").list()

    chat_one_site = [{"resource": "chat", "id": "fleet-chat-other", "permissions": ["read", "write"]}]
    async with Roost(token=server.mint_key(scopes=chat_one_site), api_url=server.url) as chatter:
        page = await chatter.chat.list(site_id=site)
        assert page == {"conversations": [], "next_page_token": ""}
        with pytest.raises(PermissionDeniedError) as chat_scope:
            await chatter.chat.new(site_id=site)
        assert chat_scope.value.code == "scope_insufficient"


async def test_member_capabilities_on_machines(server: EmulatorServer) -> None:
    site = server.site_id
    server.add_user("fleet-floor-member", role="member")
    async with Roost(token=server.mint_key(user_id="fleet-floor-member"), api_url=server.url) as member:
        assert {m.id for m in await member.machines.list(site)} >= {"machine-01"}
        with pytest.raises(PermissionDeniedError) as reboot:
            await member.machines.dispatch_command(site, "machine-01", "reboot_machine")
        assert reboot.value.code == "forbidden"
        shot = await member.machines.dispatch_command(site, "machine-01", "capture_screenshot")
        assert shot["status"] == "pending"
        with pytest.raises(PermissionDeniedError) as deployments:
            await member.installer_deployments.list(site)  # DEPLOYMENT_MANAGE, even for reads
        assert deployments.value.code == "forbidden"
        with pytest.raises(PermissionDeniedError):
            await member.processes(site, "machine-01").create(name="x", exe_path="C:/x.exe")


async def test_explicit_idempotency_keys_replay(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    key = "fleet-e2e-reboot-0001"
    first = await client.machines.dispatch_command(site, "machine-03", "reboot_machine", idempotency_key=key)
    replay = await client.machines.dispatch_command(site, "machine-03", "reboot_machine", idempotency_key=key)
    assert replay == first
    with pytest.raises(RoostApiError) as mismatch:
        await client.machines.dispatch_command(site, "machine-03", "shutdown_machine", idempotency_key=key)
    assert mismatch.value.status == 422
    assert mismatch.value.code == "idempotency_key_mismatch"

    conversation = await client.chat.new(site_id=site, title="once", idempotency_key="fleet-e2e-chat-0001")
    again = await client.chat.new(site_id=site, title="once", idempotency_key="fleet-e2e-chat-0001")
    assert again["conversationId"] == conversation["conversationId"]
    await client.chat.delete(conversation["conversationId"])


async def test_paging_limits_and_missing_parents(server: EmulatorServer, client: Roost) -> None:
    site = server.site_id
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.users.list(page_size=101),
        lambda: client.installer_deployments.list(site, page_size=101),
        lambda: client.installer.list(page_size=0),
        lambda: client.webhooks.deliveries("wh_000000000000000000", site, page_size=101),
    ]
    for call in calls:
        with pytest.raises(BadRequestError) as too_big:
            await call()
        assert too_big.value.code == "validation_failed"
        assert any(key.startswith("query.page_size") for key in too_big.value.problem["errors"])
    clamped = await client.chat.list(site_id=site, page_size=500)  # clamped, never a 400 (12)
    assert isinstance(clamped["conversations"], list)

    with pytest.raises(NotFoundError) as no_site:
        await client.machines.list("ghost-site")
    assert str(no_site.value) == "site not found or no access"
    with pytest.raises(NotFoundError) as no_hook:
        await client.webhooks.deliveries("wh_000000000000000000", site)
    assert no_hook.value.code == "not_found"
    ghost = client.processes(site, "ghost-machine")
    assert await ghost.list() == []  # a machine without a config has no processes (11.4)
    with pytest.raises(NotFoundError) as no_config:
        await ghost.create(name="x", exe_path="C:/x.exe")
    assert no_config.value.code == "process_config_error"


async def test_more_documented_validation_paths(
    server: EmulatorServer, client: Roost, tmp_path: Path
) -> None:
    site = server.site_id
    with pytest.raises(BadRequestError) as bad_command_id:
        await client.machines.get_command(site, "machine-01", "not-a-command")
    assert bad_command_id.value.problem["title"] == "invalid commandId"

    zip_file = tmp_path / "installer.zip"
    zip_file.write_bytes(b"PK")
    with pytest.raises(BadRequestError) as not_exe:
        await client.installer.upload(zip_file, version="4.0.0")
    assert not_exe.value.code == "invalid_file_name"
    exe = tmp_path / "Owlette.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(BadRequestError) as bad_version:
        await client.installer.upload(exe, version="4.0")
    assert bad_version.value.code == "validation_failed"

    async with Roost(token=server.id_token, api_url=server.url) as session:
        with pytest.raises(BadRequestError) as ttl:
            await session.keys.create(
                name="too long", scopes=[ApiKeyScope("site", "*", ["read"])], ttl_days=400
            )
        assert str(ttl.value) == "ttlDays must be an integer between 1 and 365"

    with pytest.raises(BadRequestError) as bad_uid:
        await client.users.get("not a uid!")
    assert bad_uid.value.code == "validation_failed"

    long_title = "t" * 150
    conversation = await client.chat.new(site_id=site, title=long_title)
    assert conversation["title"] == "t" * 100
    renamed = await client.chat.rename(conversation["conversationId"], "r" * 150)
    assert renamed["title"] == "r" * 100
    await client.chat.delete(conversation["conversationId"])
    with pytest.raises(NotFoundError) as never_existed:
        await client.chat.delete("conv_" + "x" * 24)
    assert never_existed.value.problem["title"] == "conversation not found"
