"""``/api/sites``: list, create, read, rename and delete sites."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok
from .._jsonutil import iso
from .._problems import conflict, forbidden, not_found, scope_insufficient, validation

__all__ = ["ROUTES", "site_delete", "site_get", "site_item", "site_patch", "sites_get", "sites_post"]


def site_item(site: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": site["id"],
        "name": site.get("name") or site["id"],
        "plan": site.get("plan"),
        "tier": site.get("tier") if site.get("tier") in ("core", "pro") else None,
        "timezone": site.get("timezone"),
        "owner": site.get("owner"),
        "createdAt": iso(site.get("createdAt")),
    }


async def sites_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    principal = ctx.authenticate(style="passthrough")
    candidates = [s for _, s in store.docs("site", "") if emu.has_site_access(principal, s)]
    if principal.key is not None:
        site_scopes = principal.scopes_for("site")
        if any(s.get("id") == "*" for s in site_scopes):
            pass
        else:
            allowed = {s.get("id") for s in site_scopes}
            candidates = [s for s in candidates if s["id"] in allowed]
    candidates.sort(key=lambda s: str(s.get("name") or s["id"]).lower())
    return ok({"sites": [site_item(s) for s in candidates]})


async def sites_post(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    principal = ctx.authenticate(style="passthrough")
    if principal.is_deleted:
        raise forbidden("user is deleted or inactive")
    if not principal.has_scope("site", "*", "admin"):
        raise scope_insufficient("site", "*", "admin")
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    body = await ctx.json_lenient()
    site_id = Ctx.site_id_from_body(body)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise validation("name is required", {"body.name": ["required non-empty string"]})
    timezone_name = body.get("timezone")
    if timezone_name is not None and not isinstance(timezone_name, str):
        raise validation("timezone must be a string", {"body.timezone": ["must be a string"]})
    if emu.site(site_id) is not None:
        raise conflict(f"site {site_id} already exists", code="site_already_exists")
    with store.transaction():
        emu.add_site(site_id, name=name.strip()[:200], owner=principal.uid, machines=())
        site = emu.site(site_id) or {}
        site["timezone"] = timezone_name or "UTC"
        store.put("site", "", site_id, site)
        user = emu.user(principal.uid) or {}
        if site_id not in (user.get("sites") or []):
            user["sites"] = [*(user.get("sites") or []), site_id]
            store.put("user", "", principal.uid, user)
    return ok(
        {
            "siteId": site_id,
            "name": site["name"],
            "timezone": site["timezone"],
            "owner": principal.uid,
            "tier": None,
            "createdAt": iso(site["createdAt"]),
        },
        201,
    )


async def site_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    ctx.auth_site(site_id, "read")
    site = emu.site(site_id)
    if site is None:
        raise not_found("site not found or no access")
    return ok(site_item(site))


async def site_patch(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    ctx.auth_site_handler(site_id, "site", site_id, "admin", "SITE_MEMBER_MANAGE")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    body = await ctx.json_lenient()
    if not isinstance(body, dict):
        raise validation("request body must be an object")
    site = emu.site(site_id) or {}
    changed: list[str] = []
    for field in ("name", "timezone"):
        if field in body:
            value = body[field]
            if not isinstance(value, str) or not value.strip():
                raise validation(
                    f"{field} must be a non-empty string", {f"body.{field}": ["must be a string"]}
                )
            if site.get(field) != value.strip():
                site[field] = value.strip()
                changed.append(field)
    if "roostEnabled" in body:
        if not isinstance(body["roostEnabled"], bool):
            raise validation("roostEnabled must be a boolean", {"body.roostEnabled": ["must be a boolean"]})
        site["roostEnabled"] = body["roostEnabled"]
        changed.append("roostEnabled")
    if not changed and not any(k in body for k in ("name", "timezone", "roostEnabled")):
        raise validation("no updatable fields provided")
    store.put("site", "", site_id, site)
    return ok({"siteId": site_id, "changed": bool(changed), "updated": changed})


async def site_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    ctx.auth_site_handler(site_id, "site", site_id, "admin", "SITE_MEMBER_MANAGE")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    store.delete("site", "", site_id)
    return ok({"siteId": site_id, "deleted": True})


ROUTES: RouteTable = [
    ("/api/sites", {"GET": sites_get, "POST": sites_post}),
    ("/api/sites/{siteId}", {"GET": site_get, "PATCH": site_patch, "DELETE": site_delete}),
]
