"""``/api/sites/{siteId}/deployments``: installer deployments to machines.

They stay ``pending`` until cancelled or retried."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import conflict, not_found, problem, scope_insufficient, validation

__all__ = [
    "ROUTES",
    "deployment_create",
    "deployment_delete",
    "deployment_doc",
    "deployment_get",
    "deployment_item",
    "deployment_mutation",
    "deployments_auth",
    "deployments_list",
    "rollup",
]


_SHA256_ANY_CASE = re.compile(r"^[0-9a-fA-F]{64}$")


_TERMINAL_DEPLOYMENT = ("completed", "failed", "partial", "partial_failed", "cancelled", "uninstalled")


_ACTIVE_TARGET = ("pending", "closing_processes", "downloading", "installing")


_CANCELLABLE_TARGET = ("pending", "closing_processes", "downloading")


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


def deployment_doc(emu: Emulator, site_id: str, deployment_id: str) -> dict[str, Any]:
    store = emu.store
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
    emu = ctx.emu
    store = emu.store
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    size = ctx.page_size(25, 100)
    ctx.check_roost_version()
    ctx.auth_site_handler(site_id, "site", site_id, "read", "DEPLOYMENT_MANAGE")
    rows = store.docs("installer_deployment", site_id)
    page, token = paginate(rows, ctx.page_token(), size)
    return ok(with_pagination({"items": [deployment_item(d) for d in page]}, token, camel=False))


async def deployment_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id = deployments_auth(ctx, "read")
    return ok(deployment_item(deployment_doc(emu, site_id, ctx.param("deploymentId")), detail=True))


async def deployment_create(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id = deployments_auth(ctx, "write")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    body = await ctx.json_lenient()
    if not isinstance(body, dict):
        raise validation("request body must be a JSON object", code="invalid_body")
    for key, code in (("name", "invalid_name"), ("installer_name", "invalid_installer_name")):
        if not isinstance(body.get(key), str) or not body[key].strip():
            raise validation(f"{key} is required", {f"body.{key}": ["required non-empty string"]}, code=code)
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
    if not isinstance(machines, list) or not machines or not all(isinstance(m, str) and m for m in machines):
        raise validation(
            "machines must be a non-empty array of machine ids",
            {"body.machines": ["required"]},
            code="invalid_machines",
        )
    checksum = body.get("sha256_checksum")
    if checksum is not None and (not isinstance(checksum, str) or not _SHA256_ANY_CASE.match(checksum)):
        raise validation("sha256_checksum must be 64 hex characters", {"body.sha256_checksum": ["invalid"]})
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
    emu = ctx.emu
    store = emu.store
    site_id = deployments_auth(ctx, "write")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    deployment_id = ctx.param("deploymentId")
    doc = deployment_doc(emu, site_id, deployment_id)
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
        emu = ctx.emu
        store = emu.store
        site_id = deployments_auth(ctx, "write")
        if kind == "uninstall":
            principal = ctx.principal
            if principal is not None and not principal.has_scope("site", site_id, "admin"):
                raise scope_insufficient("site", site_id, "admin")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        deployment_id = ctx.param("deploymentId")
        doc = deployment_doc(emu, site_id, deployment_id)
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
            raise conflict(f"no targets eligible to {kind} on deployment {deployment_id}", code=codes[kind])
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


ROUTES: RouteTable = [
    ("/api/sites/{siteId}/deployments", {"GET": deployments_list, "POST": deployment_create}),
    ("/api/sites/{siteId}/deployments/{deploymentId}", {"GET": deployment_get, "DELETE": deployment_delete}),
    ("/api/sites/{siteId}/deployments/{deploymentId}/retry", {"POST": deployment_mutation("retry")}),
    ("/api/sites/{siteId}/deployments/{deploymentId}/cancel", {"POST": deployment_mutation("cancel")}),
    ("/api/sites/{siteId}/deployments/{deploymentId}/uninstall", {"POST": deployment_mutation("uninstall")}),
]
