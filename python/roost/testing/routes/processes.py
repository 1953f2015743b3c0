"""``/api/sites/{siteId}/machines/{machineId}/processes``: configured processes and their controls."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import ApiError, local_problem
from ._shared import machine_parent
from .machines import machine_path_ids, new_command

__all__ = [
    "ROUTES",
    "live_processes",
    "process_body",
    "process_control",
    "process_create",
    "process_delete",
    "process_doc",
    "process_get",
    "process_item",
    "process_patch",
    "process_schedule",
    "processes_list",
    "validate_process_fields",
]


_PROCESS_STRING_FIELDS = (
    "file_path",
    "cwd",
    "priority",
    "visibility",
    "time_delay",
    "time_to_init",
    "relaunch_attempts",
    "schedulePresetId",
)


_PROCESS_FIELDS = ("name", "exe_path", "launch_mode", "schedules", "autolaunch", *_PROCESS_STRING_FIELDS)


def process_item(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "processId": doc["processId"],
        "id": doc["processId"],
        "name": doc.get("name"),
        "exe_path": doc.get("exe_path"),
        "file_path": doc.get("file_path", ""),
        "cwd": doc.get("cwd", ""),
        "priority": doc.get("priority", "Normal"),
        "visibility": doc.get("visibility", "Show"),
        "time_delay": doc.get("time_delay", "0"),
        "time_to_init": doc.get("time_to_init", "10"),
        "relaunch_attempts": doc.get("relaunch_attempts", "3"),
        "autolaunch": bool(doc.get("autolaunch", doc.get("launch_mode", "off") != "off")),
        "launch_mode": doc.get("launch_mode", "off"),
        "schedules": doc.get("schedules"),
        "schedule": doc.get("schedule"),
        "schedulePresetId": doc.get("schedulePresetId"),
        "status": doc.get("status", "unknown"),
        "pid": doc.get("pid"),
        "responsive": doc.get("responsive", True),
        "last_updated": iso(doc.get("updatedAt")),
    }


async def process_body(ctx: Ctx) -> dict[str, Any]:
    try:
        body = await ctx.json_lenient()
    except ApiError:
        raise local_problem(400, "invalid_body", "request body is not valid json") from None
    if not isinstance(body, dict):
        raise local_problem(400, "invalid_body", "request body must be a JSON object")
    return body


def validate_process_fields(body: dict[str, Any], *, create: bool) -> dict[str, Any]:
    for forbidden_key in ("processId", "id"):
        if forbidden_key in body:
            raise local_problem(400, "forbidden_field", f"`{forbidden_key}` cannot be set")
    unknown = [k for k in body if k not in _PROCESS_FIELDS]
    if unknown:
        raise local_problem(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
    if not create and not body:
        raise local_problem(400, "no_fields", "at least one field must be provided")
    out: dict[str, Any] = {}
    for key in ("name", "exe_path"):
        if key in body or create:
            value = body.get(key)
            if value is None and create:
                raise local_problem(400, "missing_field", f"`{key}` is required")
            if not isinstance(value, str) or not value.strip():
                raise local_problem(400, "invalid_field", f"`{key}` must be a non-empty string")
            out[key] = value.strip()
    for key in _PROCESS_STRING_FIELDS:
        if key in body:
            if not isinstance(body[key], str):
                raise local_problem(400, "invalid_field", f"`{key}` must be a string")
            out[key] = body[key]
    if "autolaunch" in body:
        if not isinstance(body["autolaunch"], bool):
            raise local_problem(400, "invalid_field", "`autolaunch` must be a boolean")
        out["autolaunch"] = body["autolaunch"]
    if "launch_mode" in body:
        if body["launch_mode"] not in ("off", "always", "scheduled"):
            raise local_problem(400, "invalid_field", "`launch_mode` must be one of off, always, scheduled")
        out["launch_mode"] = body["launch_mode"]
    if "schedules" in body:
        if body["schedules"] is not None and not isinstance(body["schedules"], list):
            raise local_problem(400, "invalid_field", "`schedules` must be an array")
        out["schedules"] = body["schedules"]
    if out.get("launch_mode") == "scheduled" and not out.get("schedules") and create:
        raise local_problem(400, "missing_schedules", "`schedules` is required when launch_mode is scheduled")
    return out


def process_doc(emu: Emulator, site_id: str, machine_id: str, process_id: str) -> dict[str, Any]:
    store = emu.store
    doc = store.get("process", machine_parent(site_id, machine_id), process_id)
    if doc is None or doc.get("deletedAt") is not None:
        raise local_problem(404, "process_not_found", f"process {process_id} not found")
    return doc


def live_processes(emu: Emulator, site_id: str, machine_id: str) -> list[dict[str, Any]]:
    store = emu.store
    return [
        d
        for _, d in store.docs("process", machine_parent(site_id, machine_id), newest_first=False)
        if d.get("deletedAt") is None
    ]


async def processes_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "read", "MACHINE_VIEW")
    items = [process_item(d) for d in live_processes(emu, site_id, machine_id)]
    return ok({"ok": True, "data": {"processes": items, "nextPageToken": None}})


async def process_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "read", "MACHINE_VIEW")
    return ok(
        {"ok": True, "data": process_item(process_doc(emu, site_id, machine_id, ctx.param("processId")))}
    )


async def process_create(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
    fields = validate_process_fields(await process_body(ctx), create=True)
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    if store.get("machine", site_id, machine_id) is None:
        raise local_problem(404, "process_config_error", "Configuration not found for this machine")
    if any(p.get("name") == fields["name"] for p in live_processes(emu, site_id, machine_id)):
        raise local_problem(409, "duplicate_process_name", f"a process named {fields['name']} already exists")
    process_id = str(uuid.uuid4())
    now = now_ms()
    store.put(
        "process",
        machine_parent(site_id, machine_id),
        process_id,
        {
            "processId": process_id,
            **fields,
            "pid": None,
            "createdAt": now,
            "updatedAt": now,
        },
    )
    return ok({"ok": True, "data": {"processId": process_id}}, 201)


async def process_patch(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
    fields = validate_process_fields(await process_body(ctx), create=False)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    process_id = ctx.param("processId")
    doc = process_doc(emu, site_id, machine_id, process_id)
    if "name" in fields and any(
        p.get("name") == fields["name"] and p["processId"] != process_id
        for p in live_processes(emu, site_id, machine_id)
    ):
        raise local_problem(409, "duplicate_process_name", f"a process named {fields['name']} already exists")
    doc.update(fields)
    doc["updatedAt"] = now_ms()
    store.put("process", machine_parent(site_id, machine_id), process_id, doc)
    return ok({"ok": True, "data": {"processId": process_id}})


async def process_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
    process_id = ctx.param("processId")
    doc = store.get("process", machine_parent(site_id, machine_id), process_id)
    if doc is None or doc.get("deletedAt") is not None:
        return ok({"ok": True, "data": {"processId": process_id, "alreadyDeleted": True}})
    doc["deletedAt"] = now_ms()
    store.put("process", machine_parent(site_id, machine_id), process_id, doc)
    return ok({"ok": True, "data": {"processId": process_id, "alreadyDeleted": False}})


def process_control(verb: str) -> Any:
    async def handler(ctx: Ctx) -> Response:
        emu = ctx.emu
        store = emu.store
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_EXEC_COMMAND")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        process_id = ctx.param("processId")
        machine = store.get("machine", site_id, machine_id)
        if machine is None:
            raise local_problem(404, "machine_not_found", f"machine {machine_id} not found")
        doc = process_doc(emu, site_id, machine_id, process_id)
        if machine.get("online") is False:
            raise local_problem(409, "machine_offline", f"machine {machine_id} is offline")
        command_id = new_command(
            emu,
            site_id,
            machine_id,
            f"{verb}_process",
            {"process_id": process_id, "process_name": doc.get("name")},
            60,
        )
        doc["status"] = {"kill": "stopped", "stop": "stopped", "start": "running", "restart": "running"}[verb]
        doc["pid"] = 4000 + secrets.randbelow(60000) if doc["status"] == "running" else None
        doc["updatedAt"] = now_ms()
        store.put("process", machine_parent(site_id, machine_id), process_id, doc)
        return ok({"ok": True, "data": {"commandId": command_id, "status": "pending"}}, 202)

    return handler


async def process_schedule(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id, machine_id = machine_path_ids(ctx)
    ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
    body = await process_body(ctx)
    mode = body.get("mode")
    if mode not in ("off", "always", "scheduled"):
        raise local_problem(400, "invalid_field", "`mode` must be one of off, always, scheduled")
    blocks = body.get("blocks")
    if mode == "scheduled":
        if not isinstance(blocks, list) or not blocks:
            raise local_problem(400, "missing_schedules", "`blocks` is required when mode is scheduled")
        for block in blocks:
            if (
                not isinstance(block, dict)
                or not isinstance(block.get("days"), list)
                or not isinstance(block.get("ranges"), list)
            ):
                raise local_problem(400, "invalid_field", "each block needs `days` and `ranges` arrays")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    process_id = ctx.param("processId")
    doc = process_doc(emu, site_id, machine_id, process_id)
    doc["launch_mode"] = mode
    doc["schedules"] = blocks if mode == "scheduled" else doc.get("schedules")
    doc["autolaunch"] = mode != "off"
    doc["updatedAt"] = now_ms()
    store.put("process", machine_parent(site_id, machine_id), process_id, doc)
    return ok({"ok": True, "data": {"processId": process_id, "mode": mode}})


ROUTES: RouteTable = [
    ("/api/sites/{siteId}/machines/{machineId}/processes", {"GET": processes_list, "POST": process_create}),
    (
        "/api/sites/{siteId}/machines/{machineId}/processes/{processId}",
        {"GET": process_get, "PATCH": process_patch, "DELETE": process_delete},
    ),
    (
        "/api/sites/{siteId}/machines/{machineId}/processes/{processId}/kill",
        {"POST": process_control("kill")},
    ),
    (
        "/api/sites/{siteId}/machines/{machineId}/processes/{processId}/start",
        {"POST": process_control("start")},
    ),
    (
        "/api/sites/{siteId}/machines/{machineId}/processes/{processId}/stop",
        {"POST": process_control("stop")},
    ),
    (
        "/api/sites/{siteId}/machines/{machineId}/processes/{processId}/restart",
        {"POST": process_control("restart")},
    ),
    ("/api/sites/{siteId}/machines/{machineId}/processes/{processId}/schedule", {"POST": process_schedule}),
]
