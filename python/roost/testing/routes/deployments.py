"""Rollback, deploy and the rollouts they start (``/api/roosts/{roostId}/deploy...``)."""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import conflict, not_found, problem, validation
from .._refs import resolve_version, roost_parent
from .._webhooks import enqueue_event
from ._shared import dedupe, is_deleted, js_string, string_list

__all__ = [
    "ROUTES",
    "deploy",
    "deployment_get",
    "deployments_list",
    "queue_sync_commands",
    "rollback",
    "rollout_row",
]


def _parse_iso(text: str) -> int | None:
    candidate = text.strip()
    if candidate.endswith(("Z", "z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def queue_sync_commands(
    emu: Emulator, site_id: str, machines: list[str], command_id: str, payload: dict[str, Any]
) -> None:
    store = emu.store
    now = now_ms()
    for machine_id in machines:
        store.put(
            "command",
            f"{site_id}/{machine_id}",
            command_id,
            {
                "commandId": command_id,
                "type": "sync_pull",
                "params": payload,
                "status": "pending",
                "createdAt": now,
                "updatedAt": now,
                "internal": True,
            },
            new_seq=True,
        )


async def rollback(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    body = await ctx.json_lenient()
    site_id = Ctx.site_id_from_body(body)
    principal = ctx.auth_roost(site_id, roost_id, "rollback")
    ctx.kill_switch(site_id)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    target = body.get("targetVersion")
    if target is None:
        target = "previous"
    elif isinstance(target, bool) or not isinstance(target, str | int | float):
        raise validation(
            "targetVersion must be a string or number when provided",
            {"body.targetVersion": ["must be a string or number"]},
        )
    elif not isinstance(target, str):
        target = js_string(target)
    instance = ctx.path
    doc = resolve_version(
        store, site_id, roost_id, target, instance=instance, title="targetVersion malformed"
    )
    now = now_ms()
    with store.transaction():
        roost = store.get("roost", site_id, roost_id)
        if roost is None or is_deleted(roost):
            raise not_found(f"roost {roost_id} not found on site {site_id}")
        current_id = roost.get("currentVersionId")
        if doc["versionId"] == current_id:
            raise problem(
                400,
                "validation-failed",
                "rollback no-op",
                "targetVersion is already the current version",
                code="rollback_no_op",
                instance=instance,
            )
        if not doc.get("versionUrl"):
            raise problem(
                409,
                "conflict",
                "version has no url",
                f"version {doc['versionId']} has no stored url",
                code="version_url_missing",
            )
        roost.update(
            {
                "currentVersionId": doc["versionId"],
                "currentVersionNumber": doc.get("versionNumber"),
                "currentVersionDescription": doc.get("description"),
                "previousVersionId": current_id,
                "versionUrl": doc.get("versionUrl"),
                "totalFiles": doc.get("totalFiles"),
                "totalSize": doc.get("totalSize"),
                "updatedAt": now,
            }
        )
        store.put("roost", site_id, roost_id, roost)
        targets = list(roost.get("targets") or [])
        nonce = os.urandom(4).hex()
        extract_root = (roost.get("extractPath") or "").strip() or "~/Documents/Owlette"
        store.put(
            "rollout",
            roost_parent(site_id, roost_id),
            doc["versionId"],
            {
                "stage": "complete",
                "versionId": doc["versionId"],
                "versionUrl": doc.get("versionUrl"),
                "extractRoot": extract_root,
                "canary": targets,
                "fleet": [],
                "startedAt": now,
                "completedAt": now,
                "pendingCommandsDispatched": True,
                "rollback": True,
                "rollbackFromVersionId": current_id,
                "rollbackBy": principal.uid,
                "rollbackNonce": nonce,
                "triggeredBy": principal.uid,
            },
            new_seq=True,
        )
        queue_sync_commands(
            emu,
            site_id,
            targets,
            f"roost_rollback_{roost_id}_{doc['versionId']}_{nonce}",
            {"roostId": roost_id, "versionId": doc["versionId"], "versionUrl": doc.get("versionUrl")},
        )
    enqueue_event(
        emu,
        site_id,
        "version.rolled_back",
        {
            "roostId": roost_id,
            "siteId": site_id,
            "versionId": doc["versionId"],
            "versionNumber": doc.get("versionNumber"),
            "fromVersionId": current_id,
            "rolledBackBy": principal.uid,
        },
    )
    return ok(
        {
            "ok": True,
            "roostId": roost_id,
            "siteId": site_id,
            "currentVersionId": doc["versionId"],
            "currentVersionNumber": doc.get("versionNumber"),
            "previousVersionId": current_id,
        }
    )


async def deploy(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    body = await ctx.json_lenient()
    site_id = Ctx.site_id_from_body(body)
    principal = ctx.auth_roost(site_id, roost_id, "deploy")
    ctx.kill_switch(site_id)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    dry_run = body.get("dryRun") is True
    version_id = body.get("versionId")
    if version_id is not None:
        if not isinstance(version_id, str):
            raise validation(
                "versionId must be a string when provided", {"body.versionId": ["must be a string"]}
            )
        Ctx.resource_id(version_id, "versionId", "body")
    machines_override: list[str] | None = None
    if body.get("machines") is not None:
        if not string_list(body["machines"]):
            raise validation(
                "machines must be an array of non-empty machineId strings",
                {"body.machines": ["must be string[]"]},
            )
        machines_override = dedupe(list(body["machines"]), 10_000)
        if not machines_override:
            raise validation(
                "machines must not be empty when provided", {"body.machines": ["must not be empty"]}
            )
    schedule_at: int | None = None
    schedule_text = body.get("scheduleAt")
    if schedule_text is not None:
        if not isinstance(schedule_text, str):
            raise validation(
                "scheduleAt must be an ISO-8601 string when provided",
                {"body.scheduleAt": ["must be a string"]},
            )
        schedule_at = _parse_iso(schedule_text)
        if schedule_at is None:
            raise validation(
                "scheduleAt could not be parsed as ISO-8601", {"body.scheduleAt": ["invalid date"]}
            )
    roost = store.get("roost", site_id, roost_id)
    if roost is None:
        raise not_found(f"roost {roost_id} not found on site {site_id}")
    if is_deleted(roost):
        raise conflict(f"roost {roost_id} is soft-deleted; undelete before deploying", title="roost deleted")
    version_id = version_id or roost.get("currentVersionId")
    if not version_id:
        raise validation(
            "versionId is required — roost has no currentVersionId to fall back on",
            {"body.versionId": ["no current version; specify versionId explicitly"]},
        )
    parent = roost_parent(site_id, roost_id)
    if version_id == roost.get("currentVersionId"):
        version_url = roost.get("versionUrl")
    else:
        version_doc = store.get("version", parent, version_id)
        if version_doc is None:
            raise problem(
                404,
                "not-found",
                "version not found",
                f"version {version_id} is not in this roost's history",
                code="version_not_found",
            )
        version_url = version_doc.get("versionUrl")
    if not version_url:
        raise conflict(f"version {version_id} has no url", title="version has no url")
    machines = machines_override if machines_override is not None else list(roost.get("targets") or [])
    if not machines:
        raise validation(
            "no target machines — roost has empty targets[] and no machines[] override provided",
            {"targets": ["empty"]},
        )
    extract_root = (roost.get("extractPath") or "").strip() or "~/Documents/Owlette"
    ordered = sorted(machines, key=lambda m: m.encode("utf-16-be", "surrogatepass"))
    canary_n = max(1, min(50, math.ceil(len(ordered) * 0.1)))
    canary, fleet = ordered[:canary_n], ordered[canary_n:]
    base = {
        "rolloutId": version_id,
        "versionId": version_id,
        "siteId": site_id,
        "roostId": roost_id,
    }
    if dry_run:
        return ok(
            {
                **base,
                "stage": "scheduled" if schedule_text is not None else "canary",
                "canary": canary,
                "fleet": fleet,
                "extractRoot": extract_root,
                "versionUrl": version_url,
                "dryRun": True,
            }
        )
    now = now_ms()
    with store.transaction():
        existing = store.get("rollout", parent, version_id)
        if existing is not None and existing.get("stage") not in ("complete", "aborted"):
            ctx.idem_entry = None
            return ok(
                {
                    **base,
                    "stage": existing.get("stage"),
                    "canary": existing.get("canary") or canary,
                    "fleet": existing.get("fleet") or fleet,
                    "extractRoot": existing.get("extractRoot") or extract_root,
                    "versionUrl": existing.get("versionUrl") or version_url,
                    "alreadyRunning": True,
                }
            )
        scheduled = schedule_at is not None and schedule_at > now + 60_000
        rollout: dict[str, Any] = {
            "stage": "scheduled" if scheduled else "canary",
            "versionId": version_id,
            "versionUrl": version_url,
            "extractRoot": extract_root,
            "canary": canary,
            "fleet": fleet,
            "startedAt": now,
            "triggeredBy": principal.uid,
        }
        if schedule_at is not None:
            rollout["scheduledAt"] = schedule_at
        if machines_override is not None:
            rollout["targetsOverride"] = machines_override
        store.put("rollout", parent, version_id, rollout, new_seq=True)
        if not scheduled:
            queue_sync_commands(
                emu,
                site_id,
                canary,
                f"roost_sync_{roost_id}_{version_id}",
                {"roostId": roost_id, "versionId": version_id, "versionUrl": version_url},
            )
    result: dict[str, Any] = {
        **base,
        "stage": rollout["stage"],
        "canary": canary,
        "fleet": fleet,
        "extractRoot": extract_root,
        "versionUrl": version_url,
    }
    if scheduled and schedule_at is not None:
        result["scheduled"] = {
            "at": iso(schedule_at),
            "warning": "scheduled rollouts are stored but will not auto-fire until the scheduler sweep ships (wave 4)",
        }
    enqueue_event(
        emu,
        site_id,
        "deployment.started",
        {
            "roostId": roost_id,
            "rolloutId": version_id,
            "versionId": version_id,
            "siteId": site_id,
            "stage": rollout["stage"],
            "canary": canary,
            "fleet": fleet,
        },
    )
    return ok(result, 202)


def rollout_row(rollout_id: str, doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "rolloutId": rollout_id,
        "versionId": doc.get("versionId"),
        "stage": doc.get("stage") or "unknown",
        "canaryCount": len(doc.get("canary") or []),
        "fleetCount": len(doc.get("fleet") or []),
        "extractRoot": doc.get("extractRoot"),
        "versionUrl": doc.get("versionUrl"),
        "triggeredBy": doc.get("triggeredBy"),
        "startedAt": iso(doc.get("startedAt")),
        "completedAt": iso(doc.get("completedAt")),
        "abortedAt": iso(doc.get("abortedAt")),
        "abortReason": doc.get("abortReason"),
        "scheduledAt": iso(doc.get("scheduledAt")),
    }


async def deployments_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    site_id = ctx.site_id_from_query()
    size = ctx.page_size(20, 100)
    stage = ctx.query("stage")
    if stage is not None and stage not in ("scheduled", "canary", "complete", "aborted"):
        raise validation(
            "stage must be one of scheduled, canary, complete, aborted",
            {"query.stage": ["invalid value"]},
        )
    ctx.auth_roost(site_id, roost_id, "read")
    ctx.kill_switch(site_id)
    rows = store.docs("rollout", roost_parent(site_id, roost_id))
    tagged = [(rid, {**doc, "_id": rid}) for rid, doc in rows]
    page, token = paginate(
        tagged, ctx.page_token(), size, None if stage is None else (lambda d: d.get("stage") == stage)
    )
    items = [rollout_row(d["_id"], d) for d in page]
    return ok(with_pagination({"rollouts": items, "items": items}, token))


async def deployment_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    rollout_id = Ctx.resource_id(ctx.param("rolloutId"), "rolloutId")
    site_id = ctx.site_id_from_query()
    ctx.auth_roost(site_id, roost_id, "read")
    ctx.kill_switch(site_id)
    parent = roost_parent(site_id, roost_id)
    doc = store.get("rollout", parent, rollout_id)
    if doc is None:
        raise not_found(f"rollout {rollout_id} not found on roost {roost_id}", title="rollout not found")

    def statuses(machines: list[str]) -> list[dict[str, Any]]:
        out = []
        for machine_id in machines:
            state = store.get("target_state", parent, machine_id) or {}
            reported = state.get("reportedVersionId")
            out.append(
                {
                    "machineId": machine_id,
                    "status": state.get("status", "pending")
                    if reported == doc.get("versionId")
                    else "pending",
                    "reportedVersionId": reported,
                    "reportedAt": iso(state.get("reportedAt")),
                }
            )
        return out

    row = rollout_row(rollout_id, doc)
    return ok(
        {
            "rolloutId": rollout_id,
            "roostId": roost_id,
            "siteId": site_id,
            "versionId": row["versionId"],
            "versionUrl": row["versionUrl"],
            "extractRoot": row["extractRoot"],
            "stage": row["stage"],
            "triggeredBy": row["triggeredBy"],
            "startedAt": row["startedAt"],
            "completedAt": row["completedAt"],
            "abortedAt": row["abortedAt"],
            "abortReason": row["abortReason"],
            "scheduledAt": row["scheduledAt"],
            "targetsOverride": doc.get("targetsOverride"),
            "canary": doc.get("canary") or [],
            "fleet": doc.get("fleet") or [],
            "canaryStatus": statuses(doc.get("canary") or []),
            "fleetStatus": statuses(doc.get("fleet") or []),
        }
    )


ROUTES: RouteTable = [
    ("/api/roosts/{roostId}/rollback", {"POST": rollback}),
    ("/api/roosts/{roostId}/deploy", {"POST": deploy}),
    ("/api/roosts/{roostId}/deployments", {"GET": deployments_list}),
    ("/api/roosts/{roostId}/deployments/{rolloutId}", {"GET": deployment_get}),
]
