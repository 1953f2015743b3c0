"""``/api/sites/{siteId}/machines``: machines, their deployments and commands.

Commands advance ``pending -> in_progress -> completed`` one step per status read (screenshots
complete with a real PNG behind a presigned URL)."""

from __future__ import annotations

import re
import secrets
import struct
import time
import zlib
from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import ApiError, conflict, not_found, problem, validation
from ._shared import UID_RE, machine_parent

__all__ = [
    "ROUTES",
    "advance",
    "command_get",
    "command_post",
    "live_roosts",
    "machine_delete",
    "machine_deployments",
    "machine_doc",
    "machine_get",
    "machine_path_ids",
    "machines_list",
    "new_command",
    "validate_command_params",
]


COMMAND_TYPES = (
    "reboot_machine",
    "shutdown_machine",
    "cancel_reboot",
    "dismiss_reboot_pending",
    "capture_screenshot",
    "start_live_view",
    "stop_live_view",
    "restart_process",
    "start_process",
    "stop_process",
    "kill_process",
    "set_launch_mode",
    "apply_display_topology",
    "ack_display_topology",
    "enumerate_display_modes",
    "test_display_apply",
    "mcp_tool_call",
    "update_owlette",
)


VIEW_COMMANDS = ("capture_screenshot", "start_live_view", "stop_live_view")


_COMMAND_ID_RE = re.compile(r"^cmd_[A-Za-z0-9_-]{1,80}$")


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    out = ""
    while True:
        number, digit = divmod(number, 36)
        out = _BASE36[digit] + out
        if number == 0:
            return out


def _command_id() -> str:
    return f"cmd_{_base36(now_ms())}_{''.join(secrets.choice(_BASE36) for _ in range(8))}"


def _png(width: int = 4, height: int = 4) -> bytes:
    """A tiny valid PNG (an owl-grey square)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80\x80\x90" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _write_blob(emu: Emulator, key: str) -> None:
    path = emu.blobs.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{time.monotonic_ns()}.part")
    temp.write_bytes(_png())
    temp.replace(path)


def machine_path_ids(ctx: Ctx) -> tuple[str, str]:
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    machine_id = ctx.param("machineId")
    if not UID_RE.match(machine_id):
        raise validation("machineId is malformed", {"path.machineId": ["invalid format"]})
    return site_id, machine_id


def machine_doc(emu: Emulator, site_id: str, machine_id: str) -> dict[str, Any]:
    store = emu.store
    doc = store.get("machine", site_id, machine_id)
    if doc is None:
        raise not_found(f"machine {machine_id} not found on site {site_id}", title="machine not found")
    return doc


def live_roosts(emu: Emulator, site_id: str) -> list[dict[str, Any]]:
    store = emu.store
    return [d for _, d in store.docs("roost", site_id) if d.get("deletedAt") is None]


async def machines_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    ctx.auth_site(site_id, "read")
    roosts = live_roosts(emu, site_id)
    machines = []
    for _, doc in store.docs("machine", site_id):
        machines.append(
            {
                "id": doc["id"],
                "name": doc.get("name") or doc.get("machine_name") or doc["id"],
                "online": doc.get("online") is True,
                "lastHeartbeat": iso(doc.get("lastHeartbeat")),
                "agentVersion": doc.get("agentVersion"),
                "os": doc.get("os"),
                "currentRoosts": [
                    {
                        "roostId": r["roostId"],
                        "name": r.get("name") or r["roostId"],
                        "currentVersionId": r.get("currentVersionId"),
                        "versionCounter": r.get("versionCounter") or 0,
                    }
                    for r in roosts
                    if doc["id"] in (r.get("targets") or [])
                ],
            }
        )
    machines.sort(key=lambda m: str(m["name"]).lower())
    return ok({"machines": machines})


async def machine_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site(site_id, "read")
    doc = machine_doc(emu, site_id, machine_id)
    return ok(
        {
            "id": doc["id"],
            "siteId": site_id,
            "name": doc.get("name") or doc["id"],
            "online": doc.get("online") is True,
            "lastHeartbeat": iso(doc.get("lastHeartbeat")),
            "agentVersion": doc.get("agentVersion"),
            "os": doc.get("os"),
            "hostname": doc.get("hostname"),
            "metrics": doc.get("metrics"),
            "processes": [],
        }
    )


async def machine_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_REMOVE")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    machine_doc(emu, site_id, machine_id)
    with store.transaction():
        store.delete("machine", site_id, machine_id)
        for process_id, _ in store.docs("process", machine_parent(site_id, machine_id)):
            store.delete("process", machine_parent(site_id, machine_id), process_id)
        for command_id, _ in store.docs("command", machine_parent(site_id, machine_id)):
            store.delete("command", machine_parent(site_id, machine_id), command_id)
    base = f"sites/{site_id}/machines/{machine_id}"
    deleted = {
        "machine": base,
        "config": f"config/{site_id}/machines/{machine_id}",
        "pendingCommands": f"{base}/commands/pending",
        "completedCommands": f"{base}/commands/completed",
    }
    return ok({"ok": True, "data": {"siteId": site_id, "machineId": machine_id, "deleted": deleted}})


async def machine_deployments(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site(site_id, "read")
    rows = []
    for roost in live_roosts(emu, site_id):
        if machine_id not in (roost.get("targets") or []):
            continue
        state = store.get("target_state", f"{site_id}/{roost['roostId']}", machine_id) or {}
        rows.append(
            {
                "roostId": roost["roostId"],
                "name": roost.get("name") or roost["roostId"],
                "currentVersionId": roost.get("currentVersionId"),
                "previousVersionId": roost.get("previousVersionId"),
                "versionCounter": roost.get("versionCounter") or 0,
                "extractPath": roost.get("extractPath"),
                "reportedVersionId": state.get("reportedVersionId"),
                "reportedStatus": state.get("status"),
                "reportedAt": iso(state.get("reportedAt")),
            }
        )
    rows.sort(key=lambda r: str(r["name"]).lower())
    return ok({"siteId": site_id, "machineId": machine_id, "deployments": rows})


def new_command(
    emu: Emulator, site_id: str, machine_id: str, command_type: str, params: dict[str, Any], timeout: int
) -> str:
    store = emu.store
    command_id = _command_id()
    now = now_ms()
    store.put(
        "command",
        machine_parent(site_id, machine_id),
        command_id,
        {
            "commandId": command_id,
            "type": command_type,
            "params": params,
            "timeoutSeconds": timeout,
            "status": "pending",
            "createdAt": now,
            "updatedAt": now,
        },
        new_seq=True,
    )
    return command_id


def validate_command_params(command_type: str, params: dict[str, Any]) -> None:
    def fail(detail: str) -> ApiError:
        return validation(detail, {"body.params": [detail]})

    if command_type in ("reboot_machine", "shutdown_machine") and "delay_seconds" in params:
        delay = params["delay_seconds"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise fail("params.delay_seconds must be a number >= 0")
    if command_type == "capture_screenshot" and "monitor" in params:
        monitor = params["monitor"]
        if monitor not in ("all", "primary") and not (
            isinstance(monitor, int) and not isinstance(monitor, bool) and monitor >= 0
        ):
            raise fail('params.monitor must be "all", "primary" or an integer >= 0')
    if command_type == "start_live_view":
        for key in ("interval", "duration"):
            value = params.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 1
            ):
                raise fail(f"params.{key} must be a number >= 1")
    if command_type in ("restart_process", "start_process", "stop_process", "kill_process") and not (
        params.get("process_name") or params.get("process_id")
    ):
        raise fail("params.process_name or params.process_id is required")
    if command_type == "set_launch_mode" and not (params.get("process_name") and params.get("mode")):
        raise fail("params.process_name and params.mode are required")
    if command_type == "mcp_tool_call" and not isinstance(params.get("tool_name"), str):
        raise fail("params.tool_name is required")


async def command_post(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id, machine_id = machine_path_ids(ctx)
    peek = await ctx.json_lenient()
    peek_type = peek.get("type") if isinstance(peek, dict) else None
    capability = "MACHINE_VIEW" if peek_type in VIEW_COMMANDS else "MACHINE_EXEC_COMMAND"
    ctx.auth_site_handler(site_id, "machine", machine_id, "write", capability)
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    if not isinstance(peek, dict):
        raise validation("request body must be a JSON object")
    command_type = peek.get("type")
    if not isinstance(command_type, str) or not command_type:
        raise validation(
            "field `type` is required and must be a non-empty string", {"body.type": ["required"]}
        )
    if command_type not in COMMAND_TYPES:
        raise problem(
            400,
            "validation-failed",
            "unsupported command type",
            f"command type '{command_type}' is not accepted on this endpoint. allowed types: "
            + ", ".join(sorted(COMMAND_TYPES)),
            code="unsupported_command_type",
        )
    params = peek.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise validation("params must be an object when provided", {"body.params": ["must be an object"]})
    validate_command_params(command_type, params)
    timeout_raw = peek.get("timeout_seconds", 60)
    if isinstance(timeout_raw, bool) or not isinstance(timeout_raw, int | float) or timeout_raw <= 0:
        raise validation(
            "timeout_seconds must be a positive number", {"body.timeout_seconds": ["must be > 0"]}
        )
    timeout = min(600, int(timeout_raw))
    machine = machine_doc(emu, site_id, machine_id)
    if machine.get("online") is False:
        raise conflict(f"machine {machine_id} is offline", title="machine offline", code="machine_offline")
    command_id = new_command(emu, site_id, machine_id, command_type, params, timeout)
    return ok({"ok": True, "data": {"commandId": command_id, "status": "pending"}}, 202)


def advance(emu: Emulator, site_id: str, machine_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    store = emu.store
    if doc.get("internal") or doc.get("status") in ("completed", "failed"):
        return doc
    now = now_ms()
    if doc.get("status") == "pending":
        doc["status"] = "in_progress"
    else:
        doc["status"] = "completed"
        doc["completedAt"] = now
        if doc.get("type") == "capture_screenshot":
            key = f"screenshots/{site_id}/{machine_id}/{doc['commandId']}.png"
            _write_blob(emu, key)
            doc["result"] = {
                "screenshot_key": key,
                "monitor": (doc.get("params") or {}).get("monitor", "primary"),
            }
        else:
            doc["result"] = {"message": f"{doc.get('type')} completed", "completedBy": "emulator"}
    doc["updatedAt"] = now
    store.put("command", machine_parent(site_id, machine_id), str(doc["commandId"]), doc)
    return doc


async def command_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    command_id = ctx.param("commandId")
    if not _COMMAND_ID_RE.match(command_id):
        raise validation(f"commandId {command_id} is malformed", title="invalid commandId")
    ctx.auth_site_handler(site_id, "machine", machine_id, "read", "MACHINE_VIEW")
    doc = store.get("command", machine_parent(site_id, machine_id), command_id)
    if doc is None:
        raise not_found(f"command {command_id} not found on machine {machine_id}", title="command not found")
    doc = advance(emu, site_id, machine_id, doc)
    data: dict[str, Any] = {"commandId": command_id, "status": doc.get("status", "pending")}
    result = doc.get("result")
    if data["status"] == "completed" and result:
        result = dict(result)
        key = result.pop("screenshot_key", None)
        if isinstance(key, str):
            url, expires = emu.presigner.url("GET", key, 3600)
            result["screenshot_url"] = url
            result["expires_at"] = iso(expires)
        data["result"] = result
    if data["status"] == "failed" and isinstance(doc.get("error"), str):
        data["error"] = doc["error"]
    data["createdAt"] = iso(doc.get("createdAt"))
    data["updatedAt"] = iso(doc.get("updatedAt"))
    return ok({"ok": True, "data": data})


ROUTES: RouteTable = [
    ("/api/sites/{siteId}/machines", {"GET": machines_list}),
    ("/api/sites/{siteId}/machines/{machineId}", {"GET": machine_get, "DELETE": machine_delete}),
    ("/api/sites/{siteId}/machines/{machineId}/deployments", {"GET": machine_deployments}),
    ("/api/sites/{siteId}/machines/{machineId}/commands", {"POST": command_post}),
    ("/api/sites/{siteId}/machines/{machineId}/commands/{commandId}", {"GET": command_get}),
]
