"""``/api/roosts``: list, create, read, patch and delete (tombstone) roosts."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import new_id
from .._jsonutil import iso, now_ms
from .._problems import conflict, not_found, validation
from .._refs import roost_parent
from ._shared import dedupe, is_deleted, string_list, version_summary

__all__ = [
    "ROUTES",
    "roost_delete",
    "roost_get",
    "roost_patch",
    "roosts_create",
    "roosts_list",
    "validate_targets",
]


TOMBSTONE_TTL_MS = 30 * 24 * 3600 * 1000


def roost_item(doc: dict[str, Any], site_id: str) -> dict[str, Any]:
    return {
        "roostId": doc["roostId"],
        "siteId": site_id,
        "name": doc.get("name") or doc["roostId"],
        "targets": doc.get("targets") or [],
        "extractPath": doc.get("extractPath"),
        "currentVersionId": doc.get("currentVersionId"),
        "previousVersionId": doc.get("previousVersionId"),
        "versionCounter": doc.get("versionCounter") or 0,
        "createdAt": iso(doc.get("createdAt")),
        "updatedAt": iso(doc.get("updatedAt")),
        "deletedAt": iso(doc.get("deletedAt")),
        "tombstoneExpiresAt": doc.get("tombstoneExpiresAt"),
    }


def validate_targets(value: Any, detail: str) -> list[str]:
    if not string_list(value):
        raise validation(detail, {"body.targets": ["must be string[]"]})
    return dedupe(list(value), 500)


async def roosts_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id = ctx.site_id_from_query()
    size = ctx.page_size(20, 100)
    ctx.auth_site(site_id, "read")
    ctx.kill_switch(site_id)
    include_deleted = ctx.query("includeDeleted") == "true"
    rows = [(doc_id, doc) for doc_id, doc in store.docs("roost", site_id)]
    page, token = paginate(
        rows, ctx.page_token(), size, None if include_deleted else (lambda d: not is_deleted(d))
    )
    return ok(with_pagination({"roosts": [roost_item(d, site_id) for d in page]}, token))


async def roosts_create(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    body = await ctx.json_strict()
    site_id = Ctx.site_id_from_body(body)
    principal = ctx.auth_site(site_id, "write", capability=True)
    ctx.kill_switch(site_id)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise validation(
            "roost `name` is required and cannot be empty or whitespace-only",
            {"body.name": ["required non-empty string"]},
            code="roost_name_required",
        )
    name = name.strip()[:200]
    targets = (
        validate_targets(body["targets"], "targets must be an array of machineId strings")
        if body.get("targets") is not None
        else []
    )
    extract_path: str | None = None
    if body.get("extractPath") is not None:
        if not isinstance(body["extractPath"], str):
            raise validation(
                "extractPath must be a string when provided", {"body.extractPath": ["must be a string"]}
            )
        extract_path = body["extractPath"].strip()[:500] or None
    raw_roost_id = body.get("roostId")
    roost_id = new_id("rst_") if raw_roost_id is None else Ctx.resource_id(raw_roost_id, "roostId", "body")
    now = now_ms()
    with store.transaction():
        existing = store.get("roost", site_id, roost_id)
        if existing is not None and not is_deleted(existing):
            raise conflict(f"roost {roost_id} already exists on site {site_id}", title="roost already exists")
        doc = dict(existing or {})
        doc.update(
            {
                "roostId": roost_id,
                "schemaVersion": 2,
                "name": name,
                "targets": targets,
                "createdAt": now,
                "updatedAt": now,
                "createdBy": principal.uid,
                "deletedAt": None,
                "tombstoneExpiresAt": None,
            }
        )
        if extract_path is not None:
            doc["extractPath"] = extract_path
        store.put("roost", site_id, roost_id, doc, new_seq=True)
    result: dict[str, Any] = {"roostId": roost_id, "siteId": site_id, "name": name, "targets": targets}
    if extract_path is not None:
        result["extractPath"] = extract_path
    return ok(result, 201)


async def roost_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    site_id = ctx.site_id_from_query()
    ctx.auth_roost(site_id, roost_id, "read")
    ctx.kill_switch(site_id)
    doc = store.get("roost", site_id, roost_id)
    if doc is None:
        raise not_found(f"roost {roost_id} not found on site {site_id}")
    parent = roost_parent(site_id, roost_id)
    current = store.get("version", parent, str(doc.get("currentVersionId") or ""))
    previous = store.get("version", parent, str(doc.get("previousVersionId") or ""))
    return ok(
        {
            "roostId": roost_id,
            "siteId": site_id,
            "name": doc.get("name") or roost_id,
            "targets": doc.get("targets") or [],
            "extractPath": doc.get("extractPath"),
            "schemaVersion": doc.get("schemaVersion") or 2,
            "currentVersionId": doc.get("currentVersionId"),
            "previousVersionId": doc.get("previousVersionId"),
            "versionCounter": doc.get("versionCounter") or 0,
            "versionUrl": doc.get("versionUrl"),
            "createdAt": iso(doc.get("createdAt")),
            "updatedAt": iso(doc.get("updatedAt")),
            "createdBy": doc.get("createdBy"),
            "deletedAt": iso(doc.get("deletedAt")),
            "tombstoneExpiresAt": doc.get("tombstoneExpiresAt"),
            "currentVersion": version_summary(current),
            "previousVersion": version_summary(previous),
        }
    )


async def roost_patch(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    body = await ctx.json_strict()
    site_id = Ctx.site_id_from_body(body)
    ctx.auth_roost(site_id, roost_id, "write")
    ctx.kill_switch(site_id)
    changes: dict[str, Any] = {}
    remove_extract = False
    if body.get("name") is not None:
        name = body["name"]
        if not isinstance(name, str) or not name.strip():
            raise validation(
                "name must be a non-empty string when provided",
                {"body.name": ["must be a non-empty string"]},
            )
        changes["name"] = name.strip()[:200]
    if body.get("targets") is not None:
        changes["targets"] = validate_targets(
            body["targets"], "targets must be an array of machineId strings"
        )
    if body.get("extractPath") is not None:
        if not isinstance(body["extractPath"], str):
            raise validation(
                "extractPath must be a string when provided", {"body.extractPath": ["must be a string"]}
            )
        value = body["extractPath"].strip()[:500]
        if value:
            changes["extractPath"] = value
        else:
            remove_extract = True
    if not changes and not remove_extract:
        raise validation("at least one of name, targets, or extractPath is required")
    with store.transaction():
        doc = store.get("roost", site_id, roost_id)
        if doc is None:
            raise not_found(f"roost {roost_id} not found on site {site_id}")
        if is_deleted(doc):
            raise conflict(
                f"roost {roost_id} is soft-deleted; undelete before patching", title="roost deleted"
            )
        doc.update(changes)
        updated = list(changes)
        if remove_extract:
            doc.pop("extractPath", None)
            updated.append("extractPath")
        doc["updatedAt"] = now_ms()
        store.put("roost", site_id, roost_id, doc)
    return ok({"roostId": roost_id, "siteId": site_id, "updated": [*updated, "updatedAt"]})


async def roost_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    site_id = ctx.query("siteId")
    if not site_id:
        raise validation("siteId query param required", {"query.siteId": ["required"]})
    site_id = ctx.site_id_from_query()
    principal = ctx.auth_roost(site_id, roost_id, "write")
    ctx.kill_switch(site_id)
    now = now_ms()
    with store.transaction():
        doc = store.get("roost", site_id, roost_id)
        if doc is None:
            raise not_found(f"roost {roost_id} not found on site {site_id}")
        doc.update(
            {
                "deletedAt": now,
                "deletedBy": principal.uid,
                "tombstoneExpiresAt": now + TOMBSTONE_TTL_MS,
                "updatedAt": now,
            }
        )
        store.put("roost", site_id, roost_id, doc)
    return ok(
        {
            "roostId": roost_id,
            "siteId": site_id,
            "softDeleted": True,
            "tombstoneExpiresAt": iso(now + TOMBSTONE_TTL_MS),
        }
    )


ROUTES: RouteTable = [
    ("/api/roosts", {"GET": roosts_list, "POST": roosts_create}),
    ("/api/roosts/{roostId}", {"GET": roost_get, "PATCH": roost_patch, "DELETE": roost_delete}),
]
