"""The fleet plane: machines, commands, processes, installer, installer deployments, members, users, chat.

State is simple but consistent: commands advance ``pending -> in_progress -> completed`` one step
per status read (screenshots complete with a real PNG behind a presigned URL), installer
deployments stay ``pending`` until cancelled or retried, and chat replies are deterministic.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from ._core import Ctx, api_route, ok, paginate, with_pagination
from ._emulator import Emulator, Principal
from ._jsonutil import dumps, iso, now_ms
from ._problems import ApiError, conflict, local_problem, not_found, problem, scope_insufficient, validation

__all__ = ["fleet_routes"]

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
_UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_INSTALLER_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
_SHA256_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}$")
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
_TERMINAL_DEPLOYMENT = ("completed", "failed", "partial", "partial_failed", "cancelled", "uninstalled")
_ACTIVE_TARGET = ("pending", "closing_processes", "downloading", "installing")
_CANCELLABLE_TARGET = ("pending", "closing_processes", "downloading")
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


def _machine_parent(site_id: str, machine_id: str) -> str:
    return f"{site_id}/{machine_id}"


def fleet_routes(emu: Emulator) -> list[BaseRoute]:
    store = emu.store

    def machine_path_ids(ctx: Ctx) -> tuple[str, str]:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        machine_id = ctx.param("machineId")
        if not _UID_RE.match(machine_id):
            raise validation("machineId is malformed", {"path.machineId": ["invalid format"]})
        return site_id, machine_id

    def machine_doc(site_id: str, machine_id: str) -> dict[str, Any]:
        doc = store.get("machine", site_id, machine_id)
        if doc is None:
            raise not_found(f"machine {machine_id} not found on site {site_id}", title="machine not found")
        return doc

    def live_roosts(site_id: str) -> list[dict[str, Any]]:
        return [d for _, d in store.docs("roost", site_id) if d.get("deletedAt") is None]

    # ------------------------------------------------------------------ machines

    async def machines_list(ctx: Ctx) -> Response:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        ctx.auth_site(site_id, "read")
        roosts = live_roosts(site_id)
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
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site(site_id, "read")
        doc = machine_doc(site_id, machine_id)
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
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_REMOVE")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        machine_doc(site_id, machine_id)
        with store.transaction():
            store.delete("machine", site_id, machine_id)
            for process_id, _ in store.docs("process", _machine_parent(site_id, machine_id)):
                store.delete("process", _machine_parent(site_id, machine_id), process_id)
            for command_id, _ in store.docs("command", _machine_parent(site_id, machine_id)):
                store.delete("command", _machine_parent(site_id, machine_id), command_id)
        base = f"sites/{site_id}/machines/{machine_id}"
        deleted = {
            "machine": base,
            "config": f"config/{site_id}/machines/{machine_id}",
            "pendingCommands": f"{base}/commands/pending",
            "completedCommands": f"{base}/commands/completed",
        }
        return ok({"ok": True, "data": {"siteId": site_id, "machineId": machine_id, "deleted": deleted}})

    async def machine_deployments(ctx: Ctx) -> Response:
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site(site_id, "read")
        rows = []
        for roost in live_roosts(site_id):
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

    # ------------------------------------------------------------------ commands

    def new_command(
        site_id: str, machine_id: str, command_type: str, params: dict[str, Any], timeout: int
    ) -> str:
        command_id = _command_id()
        now = now_ms()
        store.put(
            "command",
            _machine_parent(site_id, machine_id),
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
        machine = machine_doc(site_id, machine_id)
        if machine.get("online") is False:
            raise conflict(
                f"machine {machine_id} is offline", title="machine offline", code="machine_offline"
            )
        command_id = new_command(site_id, machine_id, command_type, params, timeout)
        return ok({"ok": True, "data": {"commandId": command_id, "status": "pending"}}, 202)

    def advance(site_id: str, machine_id: str, doc: dict[str, Any]) -> dict[str, Any]:
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
        store.put("command", _machine_parent(site_id, machine_id), str(doc["commandId"]), doc)
        return doc

    async def command_get(ctx: Ctx) -> Response:
        site_id, machine_id = machine_path_ids(ctx)
        command_id = ctx.param("commandId")
        if not _COMMAND_ID_RE.match(command_id):
            raise validation(f"commandId {command_id} is malformed", title="invalid commandId")
        ctx.auth_site_handler(site_id, "machine", machine_id, "read", "MACHINE_VIEW")
        doc = store.get("command", _machine_parent(site_id, machine_id), command_id)
        if doc is None:
            raise not_found(
                f"command {command_id} not found on machine {machine_id}", title="command not found"
            )
        doc = advance(site_id, machine_id, doc)
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

    # ------------------------------------------------------------------ processes

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
                raise local_problem(
                    400, "invalid_field", "`launch_mode` must be one of off, always, scheduled"
                )
            out["launch_mode"] = body["launch_mode"]
        if "schedules" in body:
            if body["schedules"] is not None and not isinstance(body["schedules"], list):
                raise local_problem(400, "invalid_field", "`schedules` must be an array")
            out["schedules"] = body["schedules"]
        if out.get("launch_mode") == "scheduled" and not out.get("schedules") and create:
            raise local_problem(
                400, "missing_schedules", "`schedules` is required when launch_mode is scheduled"
            )
        return out

    def process_doc(site_id: str, machine_id: str, process_id: str) -> dict[str, Any]:
        doc = store.get("process", _machine_parent(site_id, machine_id), process_id)
        if doc is None or doc.get("deletedAt") is not None:
            raise local_problem(404, "process_not_found", f"process {process_id} not found")
        return doc

    def live_processes(site_id: str, machine_id: str) -> list[dict[str, Any]]:
        return [
            d
            for _, d in store.docs("process", _machine_parent(site_id, machine_id), newest_first=False)
            if d.get("deletedAt") is None
        ]

    async def processes_list(ctx: Ctx) -> Response:
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "read", "MACHINE_VIEW")
        items = [process_item(d) for d in live_processes(site_id, machine_id)]
        return ok({"ok": True, "data": {"processes": items, "nextPageToken": None}})

    async def process_get(ctx: Ctx) -> Response:
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "read", "MACHINE_VIEW")
        return ok(
            {"ok": True, "data": process_item(process_doc(site_id, machine_id, ctx.param("processId")))}
        )

    async def process_create(ctx: Ctx) -> Response:
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
        fields = validate_process_fields(await process_body(ctx), create=True)
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        if store.get("machine", site_id, machine_id) is None:
            raise local_problem(404, "process_config_error", "Configuration not found for this machine")
        if any(p.get("name") == fields["name"] for p in live_processes(site_id, machine_id)):
            raise local_problem(
                409, "duplicate_process_name", f"a process named {fields['name']} already exists"
            )
        process_id = str(uuid.uuid4())
        now = now_ms()
        store.put(
            "process",
            _machine_parent(site_id, machine_id),
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
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
        fields = validate_process_fields(await process_body(ctx), create=False)
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        process_id = ctx.param("processId")
        doc = process_doc(site_id, machine_id, process_id)
        if "name" in fields and any(
            p.get("name") == fields["name"] and p["processId"] != process_id
            for p in live_processes(site_id, machine_id)
        ):
            raise local_problem(
                409, "duplicate_process_name", f"a process named {fields['name']} already exists"
            )
        doc.update(fields)
        doc["updatedAt"] = now_ms()
        store.put("process", _machine_parent(site_id, machine_id), process_id, doc)
        return ok({"ok": True, "data": {"processId": process_id}})

    async def process_delete(ctx: Ctx) -> Response:
        site_id, machine_id = machine_path_ids(ctx)
        ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_CONFIG_WRITE")
        process_id = ctx.param("processId")
        doc = store.get("process", _machine_parent(site_id, machine_id), process_id)
        if doc is None or doc.get("deletedAt") is not None:
            return ok({"ok": True, "data": {"processId": process_id, "alreadyDeleted": True}})
        doc["deletedAt"] = now_ms()
        store.put("process", _machine_parent(site_id, machine_id), process_id, doc)
        return ok({"ok": True, "data": {"processId": process_id, "alreadyDeleted": False}})

    def process_control(verb: str) -> Any:
        async def handler(ctx: Ctx) -> Response:
            site_id, machine_id = machine_path_ids(ctx)
            ctx.auth_site_handler(site_id, "machine", machine_id, "write", "MACHINE_EXEC_COMMAND")
            replay = await ctx.idempotency(required=True)
            if replay is not None:
                return replay
            process_id = ctx.param("processId")
            machine = store.get("machine", site_id, machine_id)
            if machine is None:
                raise local_problem(404, "machine_not_found", f"machine {machine_id} not found")
            doc = process_doc(site_id, machine_id, process_id)
            if machine.get("online") is False:
                raise local_problem(409, "machine_offline", f"machine {machine_id} is offline")
            command_id = new_command(
                site_id,
                machine_id,
                f"{verb}_process",
                {"process_id": process_id, "process_name": doc.get("name")},
                60,
            )
            doc["status"] = {"kill": "stopped", "stop": "stopped", "start": "running", "restart": "running"}[
                verb
            ]
            doc["pid"] = 4000 + secrets.randbelow(60000) if doc["status"] == "running" else None
            doc["updatedAt"] = now_ms()
            store.put("process", _machine_parent(site_id, machine_id), process_id, doc)
            return ok({"ok": True, "data": {"commandId": command_id, "status": "pending"}}, 202)

        return handler

    async def process_schedule(ctx: Ctx) -> Response:
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
        doc = process_doc(site_id, machine_id, process_id)
        doc["launch_mode"] = mode
        doc["schedules"] = blocks if mode == "scheduled" else doc.get("schedules")
        doc["autolaunch"] = mode != "off"
        doc["updatedAt"] = now_ms()
        store.put("process", _machine_parent(site_id, machine_id), process_id, doc)
        return ok({"ok": True, "data": {"processId": process_id, "mode": mode}})

    # ------------------------------------------------------------------ installer

    def installer_item(doc: dict[str, Any]) -> dict[str, Any]:
        url, _ = emu.presigner.url("GET", str(doc["storageKey"]), 7 * 24 * 3600)
        item: dict[str, Any] = {
            "version": doc["version"],
            "download_url": url,
            "checksum_sha256": doc.get("checksum_sha256"),
            "release_notes": doc.get("release_notes"),
            "file_size": doc.get("file_size"),
            "uploaded_at": doc.get("uploaded_at"),
            "uploaded_by": doc.get("uploaded_by"),
            "release_date": iso(doc.get("uploaded_at")),
            "deletedAt": doc.get("deletedAt"),
        }
        if doc.get("promoted_at") is not None:
            item["promoted_at"] = doc["promoted_at"]
            item["promoted_by"] = doc.get("promoted_by")
        return item

    def latest_version() -> str | None:
        value = store.meta_get("installer_latest")
        return value or None

    def installer_version_param(ctx: Ctx) -> str:
        version = ctx.param("version")
        if not _INSTALLER_VERSION_RE.match(version):
            raise validation("version must be X.Y.Z", {"path.version": ["invalid format"]})
        return version

    async def installer_list(ctx: Ctx) -> Response:
        size = ctx.page_size(20, 100)
        ctx.auth_platform("installer", "read")
        include_deleted = ctx.query("includeDeleted") == "true"
        rows = sorted(
            store.docs("installer_version", ""), key=lambda r: int(r[1].get("uploaded_at") or 0), reverse=True
        )
        page, token = paginate(
            rows, ctx.page_token(), size, None if include_deleted else (lambda d: d.get("deletedAt") is None)
        )
        return ok(with_pagination({"versions": [installer_item(d) for d in page]}, token))

    async def installer_latest(ctx: Ctx) -> Response:
        ctx.auth_platform("installer", "read")
        latest = latest_version()
        doc = store.get("installer_version", "", latest) if latest else None
        if doc is None:
            raise not_found(
                "no installer version is marked latest",
                title="latest installer not found",
                code="latest_installer_not_found",
            )
        return ok(installer_item(doc))

    async def installer_upload_start(ctx: Ctx) -> Response:
        body = await ctx.json_lenient()
        principal = ctx.auth_platform("installer", "write")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        if not isinstance(body, dict):
            raise validation("request body must be a JSON object")
        version = body.get("version")
        if not isinstance(version, str) or not _INSTALLER_VERSION_RE.match(version):
            raise validation("version must be X.Y.Z", {"body.version": ["invalid format"]})
        file_name = body.get("fileName")
        if not isinstance(file_name, str) or not file_name.lower().endswith(".exe"):
            raise validation(
                "fileName must end with .exe", {"body.fileName": ["must be *.exe"]}, code="invalid_file_name"
            )
        existing = store.get("installer_version", "", version)
        if existing is not None and existing.get("deletedAt") is not None:
            raise conflict(f"installer version {version} is deleted", code="version_deleted")
        upload_id = str(uuid.uuid4())
        storage_key = f"agent-installers/versions/{version}/Owlette-Installer-v{version}.exe"
        url, expires = emu.presigner.url("PUT", storage_key, 15 * 60)
        store.put(
            "installer_upload",
            "",
            upload_id,
            {
                "uploadId": upload_id,
                "version": version,
                "status": "pending",
                "storageKey": storage_key,
                "expiresAt": expires,
                "releaseNotes": body.get("releaseNotes")
                if isinstance(body.get("releaseNotes"), str)
                else None,
                "setAsLatest": body.get("setAsLatest", True) is not False,
                "uploadedBy": principal.uid,
            },
        )
        return ok(
            {"uploadUrl": url, "uploadId": upload_id, "storagePath": storage_key, "expiresAt": iso(expires)}
        )

    async def installer_upload_finish(ctx: Ctx) -> Response:
        body = await ctx.json_lenient()
        ctx.auth_platform("installer", "write")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        upload_id = body.get("uploadId") if isinstance(body, dict) else None
        if not isinstance(upload_id, str) or not upload_id:
            raise validation("uploadId is required", {"body.uploadId": ["required"]})
        upload = store.get("installer_upload", "", upload_id)
        if upload is None:
            raise not_found("upload record not found")
        if upload.get("status") != "pending":
            raise conflict("upload is not pending", code="upload_not_pending")
        if now_ms() > int(upload["expiresAt"]):
            raise problem(
                410, "not-found", "upload expired", "the upload window has expired", code="upload_expired"
            )
        path = emu.blobs.root / str(upload["storageKey"])
        try:
            data = path.read_bytes()
        except OSError:
            raise not_found("the installer binary was not uploaded", code="binary_missing") from None
        checksum = hashlib.sha256(data).hexdigest()
        expected = body.get("checksum_sha256")
        if isinstance(expected, str) and expected and expected.lower() != checksum:
            raise problem(
                412,
                "precondition-failed",
                "checksum mismatch",
                f"checksum_sha256 {expected} does not match the uploaded binary ({checksum})",
                code="checksum_mismatch",
            )
        now = now_ms()
        version = str(upload["version"])
        with store.transaction():
            doc = {
                "version": version,
                "storageKey": upload["storageKey"],
                "checksum_sha256": checksum,
                "release_notes": upload.get("releaseNotes"),
                "file_size": len(data),
                "uploaded_at": now,
                "uploaded_by": upload.get("uploadedBy"),
                "deletedAt": None,
            }
            if upload.get("setAsLatest"):
                doc["promoted_at"] = now
                doc["promoted_by"] = upload.get("uploadedBy")
                store.meta_set("installer_latest", version)
            store.put("installer_version", "", version, doc)
            upload["status"] = "completed"
            store.put("installer_upload", "", upload_id, upload)
        item = installer_item(doc)
        return ok(
            {
                "version": version,
                "download_url": item["download_url"],
                "checksum_sha256": checksum,
                "file_size": len(data),
            }
        )

    async def installer_set_latest(ctx: Ctx) -> Response:
        version = installer_version_param(ctx)
        principal = ctx.auth_platform("installer", "admin")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        doc = store.get("installer_version", "", version)
        if doc is None:
            raise not_found(f"installer version {version} not found")
        if doc.get("deletedAt") is not None:
            raise conflict(f"installer version {version} is deleted", code="version_deleted")
        doc["promoted_at"] = now_ms()
        doc["promoted_by"] = principal.uid
        with store.transaction():
            store.put("installer_version", "", version, doc)
            store.meta_set("installer_latest", version)
        return ok({"version": version, "latest": installer_item(doc)})

    async def installer_delete(ctx: Ctx) -> Response:
        version = installer_version_param(ctx)
        ctx.auth_platform("installer", "admin")
        doc = store.get("installer_version", "", version)
        if doc is None:
            raise not_found(f"installer version {version} not found")
        if doc.get("deletedAt") is not None:
            return ok({"version": version, "deletedAt": doc["deletedAt"], "alreadyDeleted": True})
        if latest_version() == version:
            raise conflict(
                f"installer version {version} is the latest; promote another first",
                code="latest_version_protected",
            )
        active = [d for _, d in store.docs("installer_version", "") if d.get("deletedAt") is None]
        if len(active) <= 2:
            raise conflict(
                "deleting this version would leave fewer than 2 active versions",
                code="min_versions_violated",
                minActiveVersions=2,
                currentActiveCount=len(active),
            )
        doc["deletedAt"] = now_ms()
        store.put("installer_version", "", version, doc)
        return ok({"version": version, "deletedAt": doc["deletedAt"], "alreadyDeleted": False})

    # ------------------------------------------------------------------ installer deployments

    def deployment_item(doc: dict[str, Any], *, detail: bool = False) -> dict[str, Any]:
        item: dict[str, Any] = {"id": doc["id"]}
        if detail:
            item["siteId"] = doc["siteId"]
        item.update(
            {
                "name": doc.get("name"),
                "installer_name": doc.get("installer_name"),
                "installer_url": doc.get("installer_url"),
                "silent_flags": doc.get("silent_flags"),
                "verify_path": doc.get("verify_path"),
                "sha256_checksum": doc.get("sha256_checksum"),
                "parallel_install": bool(doc.get("parallel_install")),
                "targets": doc.get("targets") or [],
                "status": doc.get("status"),
                "createdAt": iso(doc.get("createdAt")),
                "completedAt": iso(doc.get("completedAt")),
                "updatedAt": iso(doc.get("updatedAt")),
            }
        )
        return item

    def deployment_doc(site_id: str, deployment_id: str) -> dict[str, Any]:
        doc = store.get("installer_deployment", site_id, deployment_id)
        if doc is None:
            raise not_found(f"deployment {deployment_id} not found on site {site_id}")
        return doc

    def deployments_auth(ctx: Ctx, permission: str) -> str:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        ctx.check_roost_version()
        ctx.auth_site_handler(site_id, "site", site_id, permission, "DEPLOYMENT_MANAGE")
        return site_id

    def rollup(targets: list[dict[str, Any]]) -> str:
        statuses = {t.get("status") for t in targets}
        if statuses & set(_ACTIVE_TARGET):
            return "in_progress"
        if statuses <= {"cancelled"}:
            return "cancelled"
        if statuses <= {"completed"}:
            return "completed"
        if statuses <= {"uninstalled"}:
            return "uninstalled"
        if statuses <= {"failed", "cancelled"}:
            return "failed"
        return "partial"

    async def deployments_list(ctx: Ctx) -> Response:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        size = ctx.page_size(25, 100)
        ctx.check_roost_version()
        ctx.auth_site_handler(site_id, "site", site_id, "read", "DEPLOYMENT_MANAGE")
        rows = store.docs("installer_deployment", site_id)
        page, token = paginate(rows, ctx.page_token(), size)
        return ok(with_pagination({"items": [deployment_item(d) for d in page]}, token, camel=False))

    async def deployment_get(ctx: Ctx) -> Response:
        site_id = deployments_auth(ctx, "read")
        return ok(deployment_item(deployment_doc(site_id, ctx.param("deploymentId")), detail=True))

    async def deployment_create(ctx: Ctx) -> Response:
        site_id = deployments_auth(ctx, "write")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        body = await ctx.json_lenient()
        if not isinstance(body, dict):
            raise validation("request body must be a JSON object", code="invalid_body")
        for key, code in (("name", "invalid_name"), ("installer_name", "invalid_installer_name")):
            if not isinstance(body.get(key), str) or not body[key].strip():
                raise validation(
                    f"{key} is required", {f"body.{key}": ["required non-empty string"]}, code=code
                )
        url = body.get("installer_url")
        if not isinstance(url, str) or not url:
            raise validation(
                "installer_url is required",
                {"body.installer_url": ["required"]},
                code="invalid_installer_url",
            )
        if not url.startswith("https://"):
            raise validation(
                "installer_url must be https",
                {"body.installer_url": ["must be https"]},
                code="installer_url_not_https",
            )
        if not isinstance(body.get("silent_flags"), str):
            raise validation(
                "silent_flags must be a string",
                {"body.silent_flags": ["must be a string"]},
                code="invalid_silent_flags",
            )
        machines = body.get("machines")
        if (
            not isinstance(machines, list)
            or not machines
            or not all(isinstance(m, str) and m for m in machines)
        ):
            raise validation(
                "machines must be a non-empty array of machine ids",
                {"body.machines": ["required"]},
                code="invalid_machines",
            )
        checksum = body.get("sha256_checksum")
        if checksum is not None and (not isinstance(checksum, str) or not _SHA256_ANY_CASE.match(checksum)):
            raise validation(
                "sha256_checksum must be 64 hex characters", {"body.sha256_checksum": ["invalid"]}
            )
        verify_path = body.get("verify_path")
        if verify_path is not None and not isinstance(verify_path, str):
            raise validation("verify_path must be a string", code="invalid_verify_path")
        unique = list(dict.fromkeys(machines))
        site = emu.site(site_id) or {}
        quota = int(site.get("deployQuota") or 100)
        if len(unique) > min(100, quota):
            raise problem(
                413,
                "payload-too-large",
                "over quota",
                f"deployment targets {len(unique)} machines; the maximum is {min(100, quota)}",
                code="over_quota",
                quota={"max_targets": min(100, quota), "requested": len(unique)},
            )
        now = now_ms()
        deployment_id = f"deploy-{now}"
        while store.get("installer_deployment", site_id, deployment_id) is not None:
            now += 1
            deployment_id = f"deploy-{now}"
        targets = [{"machineId": m, "status": "pending"} for m in unique]
        doc = {
            "id": deployment_id,
            "siteId": site_id,
            "name": body["name"].strip(),
            "installer_name": body["installer_name"].strip(),
            "installer_url": url,
            "silent_flags": body["silent_flags"],
            "verify_path": verify_path,
            "sha256_checksum": checksum.lower() if isinstance(checksum, str) else None,
            "parallel_install": body.get("parallel_install") is True,
            "close_processes": body.get("close_processes"),
            "suppress_projects": body.get("suppress_projects"),
            "targets": targets,
            "status": "in_progress",
            "createdAt": now,
            "updatedAt": now,
            "completedAt": None,
        }
        store.put("installer_deployment", site_id, deployment_id, doc, new_seq=True)
        return ok(
            {"deploymentId": deployment_id, "siteId": site_id, "status": "in_progress", "targets": targets},
            201,
        )

    async def deployment_delete(ctx: Ctx) -> Response:
        site_id = deployments_auth(ctx, "write")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        deployment_id = ctx.param("deploymentId")
        doc = deployment_doc(site_id, deployment_id)
        if doc.get("status") not in _TERMINAL_DEPLOYMENT or any(
            t.get("status") in ("pending", "closing_processes", "downloading", "installing")
            for t in doc["targets"]
        ):
            raise conflict(
                f"deployment {deployment_id} is still in flight; cancel it first", code="deployment_in_flight"
            )
        store.delete("installer_deployment", site_id, deployment_id)
        return ok({"deploymentId": deployment_id, "siteId": site_id, "deleted": True})

    def deployment_mutation(kind: str) -> Any:
        async def handler(ctx: Ctx) -> Response:
            site_id = deployments_auth(ctx, "write")
            if kind == "uninstall":
                principal = ctx.principal
                if principal is not None and not principal.has_scope("site", site_id, "admin"):
                    raise scope_insufficient("site", site_id, "admin")
            replay = await ctx.idempotency(required=True)
            if replay is not None:
                return replay
            deployment_id = ctx.param("deploymentId")
            doc = deployment_doc(site_id, deployment_id)
            now = now_ms()
            affected: list[str] = []
            for target in doc["targets"]:
                status = target.get("status")
                if kind == "retry" and status == "failed":
                    target.update({"status": "pending", "retriedAt": now})
                    target.pop("error", None)
                elif kind == "cancel" and status in _CANCELLABLE_TARGET:
                    target.update({"status": "cancelled", "cancelledAt": now})
                elif kind == "uninstall" and status in ("completed", "failed"):
                    target.update({"status": "uninstalling"})
                else:
                    continue
                affected.append(str(target["machineId"]))
            if not affected:
                codes = {
                    "retry": "no_failed_targets",
                    "cancel": "no_cancellable_targets",
                    "uninstall": "no_targets",
                }
                raise conflict(
                    f"no targets eligible to {kind} on deployment {deployment_id}", code=codes[kind]
                )
            doc["status"] = "uninstalling" if kind == "uninstall" else rollup(doc["targets"])
            if doc["status"] in _TERMINAL_DEPLOYMENT:
                doc["completedAt"] = now
            doc["updatedAt"] = now
            store.put("installer_deployment", site_id, deployment_id, doc)
            counter = {"retry": "retried", "cancel": "cancelled", "uninstall": "queued"}[kind]
            return ok(
                {
                    "deploymentId": deployment_id,
                    "siteId": site_id,
                    "status": doc["status"],
                    counter: len(affected),
                    "machine_ids": affected,
                }
            )

        return handler

    # ------------------------------------------------------------------ members

    def members_auth(ctx: Ctx, permission: str) -> tuple[str, dict[str, Any]]:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        ctx.check_roost_version()
        principal, site = ctx.auth_site_handler(site_id, "site", site_id, permission, "SITE_MEMBER_MANAGE")
        if not principal.has_scope("site", site_id, "admin"):
            raise scope_insufficient("site", site_id, "admin")
        return site_id, site

    async def members_list(ctx: Ctx) -> Response:
        site_id, site = members_auth(ctx, "read")
        members = []
        seen: set[str] = set()
        for uid, user in store.docs("user", "", newest_first=False):
            if user.get("deletedAt") is not None:
                continue
            if site_id in (user.get("sites") or []) or uid == site.get("owner"):
                seen.add(uid)
                members.append(member_item(user, site))
        owner = site.get("owner")
        if isinstance(owner, str) and owner not in seen:
            owner_doc = emu.user(owner)
            if owner_doc is not None:
                members.append(member_item(owner_doc, site))
        return ok({"members": members})

    def member_item(user: dict[str, Any], site: dict[str, Any]) -> dict[str, Any]:
        global_role = user.get("role") or "member"
        return {
            "uid": user["uid"],
            "email": user.get("email"),
            "role": "owner" if user["uid"] == site.get("owner") else global_role,
            "globalRole": global_role,
            "sites": user.get("sites") or [],
            "displayName": user.get("displayName"),
        }

    async def members_add(ctx: Ctx) -> Response:
        site_id, _ = members_auth(ctx, "write")
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        body = await ctx.json_lenient()
        uid = body.get("uid") if isinstance(body, dict) else None
        role = body.get("role", "member") if isinstance(body, dict) else None
        if not isinstance(uid, str) or not _UID_RE.match(uid):
            raise validation("uid is required", {"body.uid": ["invalid format"]})
        if role not in ("member", "admin"):
            raise validation("role must be member or admin", {"body.role": ["must be member or admin"]})
        user = emu.user(uid)
        if user is None:
            raise not_found(f"user {uid} not found")
        if user.get("deletedAt") is not None:
            raise validation(f"user {uid} is deleted")
        if site_id not in (user.get("sites") or []):
            user["sites"] = [*(user.get("sites") or []), site_id]
            store.put("user", "", uid, user)
        global_role = user.get("role") or "member"
        honored = role == "member" or global_role in ("admin", "superadmin")
        return ok(
            {
                "uid": uid,
                "siteId": site_id,
                "requestedRole": role,
                "roleHonored": honored,
                "globalRole": global_role,
            }
        )

    async def members_remove(ctx: Ctx) -> Response:
        site_id, site = members_auth(ctx, "write")
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        uid = ctx.param("uid")
        user = emu.user(uid)
        if user is None:
            raise not_found(f"user {uid} not found")
        if site.get("owner") == uid:
            raise conflict("the site owner cannot be removed", code="cannot_remove_owner")
        was_member = site_id in (user.get("sites") or [])
        if was_member:
            user["sites"] = [s for s in user.get("sites") or [] if s != site_id]
            store.put("user", "", uid, user)
        return ok({"siteId": site_id, "uid": uid, "wasMember": was_member})

    # ------------------------------------------------------------------ users

    def user_item(user: dict[str, Any]) -> dict[str, Any]:
        return {
            "uid": user["uid"],
            "email": user.get("email"),
            "role": user.get("role") or "member",
            "sites": user.get("sites") or [],
            "displayName": user.get("displayName"),
            "firstName": user.get("firstName"),
            "lastName": user.get("lastName"),
            "createdAt": iso(user.get("createdAt")),
            "deletedAt": user.get("deletedAt"),
        }

    def user_param(ctx: Ctx) -> dict[str, Any]:
        uid = ctx.param("uid")
        if not _UID_RE.match(uid):
            raise validation("uid is malformed", {"path.uid": ["invalid format"]})
        user = emu.user(uid)
        if user is None:
            raise not_found(f"user {uid} not found")
        return user

    def active_superadmins() -> int:
        return sum(
            1
            for _, u in store.docs("user", "")
            if u.get("role") == "superadmin" and u.get("deletedAt") is None
        )

    async def users_list(ctx: Ctx) -> Response:
        size = ctx.page_size(20, 100)
        role = ctx.query("role")
        if role is not None and role not in ("member", "admin", "superadmin"):
            raise validation("role filter is invalid", {"query.role": ["invalid value"]})
        ctx.auth_platform("user", "read")
        site = ctx.query("site")
        include_deleted = ctx.query("includeDeleted") == "true"
        rows = sorted(store.docs("user", ""), key=lambda r: r[0])

        def include(user: dict[str, Any]) -> bool:
            if role is not None and (user.get("role") or "member") != role:
                return False
            if site is not None and site not in (user.get("sites") or []):
                return False
            return include_deleted or user.get("deletedAt") is None

        page, token = paginate(rows, ctx.page_token(), size, include)
        return ok(with_pagination({"users": [user_item(u) for u in page]}, token))

    async def user_get(ctx: Ctx) -> Response:
        ctx.auth_platform("user", "read")
        return ok(user_item(user_param(ctx)))

    def role_change(kind: str) -> Any:
        async def handler(ctx: Ctx) -> Response:
            ctx.auth_platform("user", "write")
            replay = await ctx.idempotency()
            if replay is not None:
                return replay
            body = await ctx.json_lenient()
            user = user_param(ctx)
            if kind == "promote":
                role = body.get("role") if isinstance(body, dict) else None
                if role not in ("admin", "superadmin"):
                    raise validation("role must be admin or superadmin", {"body.role": ["invalid value"]})
            else:
                role = "member"
            if user.get("deletedAt") is not None:
                raise validation(f"user {user['uid']} is deleted")
            previous = user.get("role") or "member"
            if previous == "superadmin" and role != "superadmin" and active_superadmins() <= 1:
                raise conflict(
                    "at least one superadmin must remain",
                    code="last_superadmin",
                    minSuperadmins=1,
                    currentActiveCount=active_superadmins(),
                )
            user["role"] = role
            store.put("user", "", str(user["uid"]), user)
            return ok(
                {"uid": user["uid"], "role": role, "previousRole": previous, "changed": previous != role}
            )

        return handler

    def site_assignment(kind: str) -> Any:
        async def handler(ctx: Ctx) -> Response:
            ctx.auth_platform("user", "write")
            replay = await ctx.idempotency()
            if replay is not None:
                return replay
            body = await ctx.json_lenient()
            user = user_param(ctx)
            site_ids = body.get("siteIds") if isinstance(body, dict) else None
            if (
                not isinstance(site_ids, list)
                or not 1 <= len(site_ids) <= 100
                or not all(isinstance(s, str) and s for s in site_ids)
            ):
                raise validation("siteIds must be an array of 1-100 site ids", {"body.siteIds": ["invalid"]})
            if kind == "assign":
                unknown = [s for s in site_ids if emu.site(s) is None]
                if unknown:
                    raise validation(
                        f"unknown site(s): {', '.join(unknown)}", code="unknown_site", unknownSites=unknown
                    )
                sites = list(dict.fromkeys([*(user.get("sites") or []), *site_ids]))
                user["sites"] = sites
                store.put("user", "", str(user["uid"]), user)
                return ok({"uid": user["uid"], "assignedSiteIds": list(dict.fromkeys(site_ids))})
            removed = [s for s in dict.fromkeys(site_ids) if s in (user.get("sites") or [])]
            user["sites"] = [s for s in user.get("sites") or [] if s not in removed]
            store.put("user", "", str(user["uid"]), user)
            return ok({"uid": user["uid"], "removedSiteIds": removed, "cancelledCommandCount": 0})

        return handler

    async def user_delete(ctx: Ctx) -> Response:
        principal = ctx.auth_platform("user", "admin")
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        user = user_param(ctx)
        uid = str(user["uid"])
        if user.get("deletedAt") is not None:
            return ok({"uid": uid, "alreadyDeleted": True, "deletedAt": user["deletedAt"]})
        owned = [s["id"] for _, s in store.docs("site", "") if s.get("owner") == uid]
        successor_uid = ctx.query("successorUid")
        successor: dict[str, Any] | None = None
        if successor_uid:
            successor = emu.user(successor_uid)
            reason = None
            if successor is None:
                reason = "not_found"
            elif successor.get("deletedAt") is not None:
                reason = "soft_deleted"
            elif successor.get("role") not in ("admin", "superadmin"):
                reason = "not_admin"
            if reason is not None:
                raise validation(
                    f"successor {successor_uid} is not valid ({reason})",
                    code="successor_invalid",
                    successorUid=successor_uid,
                    reason=reason,
                )
        if owned and successor is None:
            raise conflict(
                f"user {uid} owns sites; pass successorUid to transfer them",
                code="orphan_sites",
                ownedSites=owned,
            )
        if uid == principal.uid and active_superadmins() <= 1 and user.get("role") == "superadmin":
            raise conflict(
                "at least one superadmin must remain",
                code="last_superadmin",
                minSuperadmins=1,
                currentActiveCount=active_superadmins(),
            )
        now = now_ms()
        revoked: list[str] = []
        with store.transaction():
            for site_id in owned:
                site = emu.site(site_id) or {}
                site["owner"] = successor_uid
                store.put("site", "", site_id, site)
            for key in emu.keys_of(uid):
                key["revokedAt"] = now
                store.put("api_key", "", str(key["keyHash"]), key)
                revoked.append(str(key["keyId"]))
            user["deletedAt"] = now
            store.put("user", "", uid, user)
        return ok(
            {
                "uid": uid,
                "alreadyDeleted": False,
                "deletedAt": now,
                "transferredSites": owned,
                "revokedKeyIds": revoked,
                "authDisabled": True,
            }
        )

    # ------------------------------------------------------------------ cortex chat

    def auth_chat(ctx: Ctx, site_id: str, permission: str) -> Principal:
        principal = ctx.authenticate()
        site = emu.site(site_id)
        if principal.is_deleted or site is None or not emu.has_site_access(principal, site):
            raise not_found("site not found or no access")
        if not principal.has_scope("chat", site_id, permission):
            raise scope_insufficient("chat", site_id, permission)
        return principal

    def summary(doc: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conversationId": doc["conversationId"],
            "title": doc.get("title"),
            "siteId": doc["siteId"],
        }
        if doc.get("machineId"):
            out["machineId"] = doc["machineId"]
        out.update(
            {
                "ownerUid": doc.get("ownerUid"),
                "createdAt": iso(doc.get("createdAt")),
                "updatedAt": iso(doc.get("updatedAt")),
            }
        )
        if doc.get("deletedAt") is not None:
            out["deletedAt"] = iso(doc["deletedAt"])
        out["messageCount"] = len(doc.get("messages") or [])
        return out

    def normalize_title(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            return "untitled chat"
        return value.strip()[:100]

    def conversation(conversation_id: str, *, allow_deleted: bool = False) -> dict[str, Any]:
        doc = store.get("conversation", "", conversation_id)
        if doc is None or (doc.get("deletedAt") is not None and not allow_deleted):
            raise not_found(f"conversation {conversation_id} not found", title="conversation not found")
        return doc

    def check_owner(principal: Principal, doc: dict[str, Any]) -> None:
        if doc.get("ownerUid") != principal.uid and not principal.is_superadmin:
            raise not_found(f"conversation {doc['conversationId']} not found", title="conversation not found")

    async def chat_list(ctx: Ctx) -> Response:
        site_filter = ctx.query("siteId")
        if site_filter is not None and not re.match(r"^[A-Za-z0-9_-]{1,128}$", site_filter):
            raise validation("siteId is malformed", {"query.siteId": ["invalid format"]})
        try:
            principal = ctx.authenticate(style="plain")
        except ApiError:
            raise problem(401, "unauthorized", "unauthorized", "authentication required") from None
        raw_size = ctx.query("page_size") if ctx.query("page_size") is not None else ctx.query("limit")
        try:
            size = max(1, min(100, int(raw_size))) if raw_size is not None else 25
        except ValueError:
            size = 25
        token = ctx.query("page_token") or ctx.query("cursor")
        readable = {s["id"] for _, s in store.docs("site", "") if emu.has_site_access(principal, s)}
        if principal.key is not None:
            chat_scopes = [s for s in principal.scopes_for("chat") if "read" in (s.get("permissions") or [])]
            if not any(s.get("id") == "*" for s in chat_scopes):
                readable &= {str(s.get("id")) for s in chat_scopes}
        include_deleted = ctx.query("includeDeleted") == "true"
        owner = ctx.query("owner")
        all_owners = owner == "all" and principal.is_superadmin
        rows = sorted(
            store.docs("conversation", ""), key=lambda r: int(r[1].get("updatedAt") or 0), reverse=True
        )

        def include(doc: dict[str, Any]) -> bool:
            if doc.get("siteId") not in readable:
                return False
            if site_filter is not None and doc.get("siteId") != site_filter:
                return False
            if not all_owners and doc.get("ownerUid") != principal.uid:
                return False
            return include_deleted or doc.get("deletedAt") is None

        page, next_token = paginate(rows, token, size, include)
        return ok(
            {"ok": True, "data": with_pagination({"conversations": [summary(d) for d in page]}, next_token)}
        )

    async def chat_create(ctx: Ctx) -> Response:
        body = await ctx.json_lenient()
        site_id = body.get("siteId") if isinstance(body, dict) else None
        if not isinstance(site_id, str) or not site_id:
            raise validation("siteId is required", {"body.siteId": ["required"]})
        principal = auth_chat(ctx, site_id, "write")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        machine_id = body.get("machineId")
        if machine_id is not None and (not isinstance(machine_id, str) or not machine_id):
            raise validation("machineId must be a non-empty string", {"body.machineId": ["must be a string"]})
        now = now_ms()
        messages: list[dict[str, Any]] = []
        initial = body.get("initial_message")
        if initial is not None:
            if not isinstance(initial, dict) or initial.get("role") != "user":
                raise validation(
                    "initial_message.role must be user", {"body.initial_message.role": ["must be user"]}
                )
            content = initial.get("content")
            if not isinstance(content, str) or not content.strip():
                raise validation(
                    "initial_message.content must be a non-empty string",
                    {"body.initial_message.content": ["required"]},
                )
            messages.append({"role": "user", "content": content, "timestamp": iso(now)})
        conversation_id = "conv_" + secrets.token_urlsafe(18)
        doc: dict[str, Any] = {
            "conversationId": conversation_id,
            "title": normalize_title(body.get("title")),
            "siteId": site_id,
            "ownerUid": principal.uid,
            "createdAt": now,
            "updatedAt": now,
            "messages": messages,
            "deletedAt": None,
        }
        if machine_id:
            doc["machineId"] = machine_id
        store.put("conversation", "", conversation_id, doc, new_seq=True)
        return ok({"ok": True, "data": {**summary(doc), "messages": messages}}, 201)

    def reply_for(message: str) -> list[str]:
        text = f"Hoot! The emulator heard: {message.strip()[:200]}"
        words = text.split(" ")
        return [word + (" " if index < len(words) - 1 else "") for index, word in enumerate(words)]

    async def chat_send(ctx: Ctx) -> Response:
        conversation_id = ctx.param("conversationId")
        body = await ctx.json_lenient()
        if not isinstance(body, dict):
            raise validation("request body must be a JSON object")
        extra = [k for k in body if k not in ("role", "content")]
        if extra:
            raise problem(
                400,
                "validation-failed",
                "forbidden_field",
                "public Cortex send accepts only `role` and `content`",
                code="forbidden_field",
            )
        if body.get("role", "user") != "user":
            raise validation("role must be user", {"body.role": ["must be user"]})
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise validation(
                "content must be a non-empty string", {"body.content": ["required non-empty string"]}
            )
        doc = conversation(conversation_id)
        principal = auth_chat(ctx, str(doc["siteId"]), "write")
        check_owner(principal, doc)
        await ctx.idempotency(required=True)
        ctx.idem_entry = None
        site_id = str(doc["siteId"])
        machine_id = doc.get("machineId")
        if machine_id:
            machine = store.get("machine", site_id, str(machine_id))
            if machine is None:
                raise problem(
                    400,
                    "service-unavailable",
                    "cortex stream unavailable",
                    "machine id missing",
                    code="cortex_unavailable",
                )
            if machine.get("cortexEnabled") is False:
                raise problem(
                    423,
                    "service-unavailable",
                    "cortex stream unavailable",
                    f"cortex is disabled on machine {machine_id}",
                    code="cortex_unavailable",
                )
            if machine.get("online") is False:
                raise problem(
                    503,
                    "service-unavailable",
                    "cortex stream unavailable",
                    f"machine {machine_id} is offline",
                    code="cortex_unavailable",
                )
        elif not any(m.get("online") is not False for _, m in store.docs("machine", site_id)):
            raise problem(
                503,
                "service-unavailable",
                "cortex stream unavailable",
                f"no online machines in site {site_id}",
                code="cortex_unavailable",
            )
        now = now_ms()
        doc.setdefault("messages", []).append({"role": "user", "content": content, "timestamp": iso(now)})
        doc["updatedAt"] = now
        store.put("conversation", "", conversation_id, doc)
        deltas = reply_for(content)

        async def stream() -> AsyncIterator[bytes]:
            for delta in deltas:
                yield f"0:{dumps(delta)}\n".encode()
            yield b'd:{"finishReason":"stop"}\n'
            latest = store.get("conversation", "", conversation_id) or doc
            latest.setdefault("messages", []).append(
                {"role": "assistant", "content": "".join(deltas), "timestamp": iso(now_ms())}
            )
            latest["updatedAt"] = now_ms()
            store.put("conversation", "", conversation_id, latest)

        return StreamingResponse(
            stream(),
            status_code=200,
            media_type="text/plain; charset=utf-8",
            headers={"X-Vercel-AI-Data-Stream": "v1"},
        )

    async def chat_rename(ctx: Ctx) -> Response:
        conversation_id = ctx.param("conversationId")
        body = await ctx.json_lenient()
        if not isinstance(body, dict):
            raise validation("request body must be a JSON object")
        extra = [k for k in body if k != "title"]
        if extra:
            raise problem(
                400,
                "validation-failed",
                "forbidden_field",
                "only the following fields are mutable: title",
                code="forbidden_field",
            )
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise validation(
                "title must be a non-empty string", {"body.title": ["required non-empty string"]}
            )
        doc = conversation(conversation_id)
        principal = auth_chat(ctx, str(doc["siteId"]), "write")
        check_owner(principal, doc)
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        doc["title"] = normalize_title(title)
        doc["updatedAt"] = now_ms()
        store.put("conversation", "", conversation_id, doc)
        return ok({"ok": True, "data": {"conversationId": conversation_id, "title": doc["title"]}})

    async def chat_delete(ctx: Ctx) -> Response:
        conversation_id = ctx.param("conversationId")
        doc = conversation(conversation_id, allow_deleted=True)
        principal = auth_chat(ctx, str(doc["siteId"]), "write")
        check_owner(principal, doc)
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        already = doc.get("deletedAt") is not None
        if not already:
            doc["deletedAt"] = now_ms()
            store.put("conversation", "", conversation_id, doc)
        return ok({"ok": True, "data": {"conversationId": conversation_id, "alreadyDeleted": already}})

    machine_base = "/api/sites/{siteId}/machines/{machineId}"
    process_base = machine_base + "/processes/{processId}"
    deployments_base = "/api/sites/{siteId}/deployments/{deploymentId}"
    return [
        api_route(emu, "/api/sites/{siteId}/machines", {"GET": machines_list}),
        api_route(emu, machine_base, {"GET": machine_get, "DELETE": machine_delete}),
        api_route(emu, machine_base + "/deployments", {"GET": machine_deployments}),
        api_route(emu, machine_base + "/commands", {"POST": command_post}),
        api_route(emu, machine_base + "/commands/{commandId}", {"GET": command_get}),
        api_route(emu, machine_base + "/processes", {"GET": processes_list, "POST": process_create}),
        api_route(emu, process_base, {"GET": process_get, "PATCH": process_patch, "DELETE": process_delete}),
        api_route(emu, process_base + "/kill", {"POST": process_control("kill")}),
        api_route(emu, process_base + "/start", {"POST": process_control("start")}),
        api_route(emu, process_base + "/stop", {"POST": process_control("stop")}),
        api_route(emu, process_base + "/restart", {"POST": process_control("restart")}),
        api_route(emu, process_base + "/schedule", {"POST": process_schedule}),
        api_route(emu, "/api/installer", {"GET": installer_list}),
        api_route(emu, "/api/installer/latest", {"GET": installer_latest}),
        api_route(
            emu, "/api/installer/upload", {"POST": installer_upload_start, "PUT": installer_upload_finish}
        ),
        api_route(emu, "/api/installer/{version}/set-latest", {"POST": installer_set_latest}),
        api_route(emu, "/api/installer/{version}", {"DELETE": installer_delete}),
        api_route(
            emu, "/api/sites/{siteId}/deployments", {"GET": deployments_list, "POST": deployment_create}
        ),
        api_route(emu, deployments_base, {"GET": deployment_get, "DELETE": deployment_delete}),
        api_route(emu, deployments_base + "/retry", {"POST": deployment_mutation("retry")}),
        api_route(emu, deployments_base + "/cancel", {"POST": deployment_mutation("cancel")}),
        api_route(emu, deployments_base + "/uninstall", {"POST": deployment_mutation("uninstall")}),
        api_route(emu, "/api/sites/{siteId}/members", {"GET": members_list, "POST": members_add}),
        api_route(emu, "/api/sites/{siteId}/members/{uid}", {"DELETE": members_remove}),
        api_route(emu, "/api/users", {"GET": users_list}),
        api_route(emu, "/api/users/{uid}", {"GET": user_get, "DELETE": user_delete}),
        api_route(emu, "/api/users/{uid}/promote", {"POST": role_change("promote")}),
        api_route(emu, "/api/users/{uid}/demote", {"POST": role_change("demote")}),
        api_route(emu, "/api/users/{uid}/assign-sites", {"POST": site_assignment("assign")}),
        api_route(emu, "/api/users/{uid}/remove-sites", {"POST": site_assignment("remove")}),
        api_route(emu, "/api/cortex/conversations", {"GET": chat_list, "POST": chat_create}),
        api_route(
            emu,
            "/api/cortex/conversations/{conversationId}",
            {"POST": chat_send, "PATCH": chat_rename, "DELETE": chat_delete},
        ),
    ]


def _write_blob(emu: Emulator, key: str) -> None:
    path = emu.blobs.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{time.monotonic_ns()}.part")
    temp.write_bytes(_png())
    temp.replace(path)
