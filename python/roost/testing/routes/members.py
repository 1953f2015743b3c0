"""``/api/sites/{siteId}/members``: who may use a site."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok
from .._problems import conflict, not_found, scope_insufficient, validation
from ._shared import UID_RE

__all__ = ["ROUTES", "member_item", "members_add", "members_auth", "members_list", "members_remove"]


def members_auth(ctx: Ctx, permission: str) -> tuple[str, dict[str, Any]]:
    site_id = Ctx.site_id_from_path(ctx.param("siteId"))
    ctx.check_roost_version()
    principal, site = ctx.auth_site_handler(site_id, "site", site_id, permission, "SITE_MEMBER_MANAGE")
    if not principal.has_scope("site", site_id, "admin"):
        raise scope_insufficient("site", site_id, "admin")
    return site_id, site


async def members_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
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
    emu = ctx.emu
    store = emu.store
    site_id, _ = members_auth(ctx, "write")
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    body = await ctx.json_lenient()
    uid = body.get("uid") if isinstance(body, dict) else None
    role = body.get("role", "member") if isinstance(body, dict) else None
    if not isinstance(uid, str) or not UID_RE.match(uid):
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
    emu = ctx.emu
    store = emu.store
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


ROUTES: RouteTable = [
    ("/api/sites/{siteId}/members", {"GET": members_list, "POST": members_add}),
    ("/api/sites/{siteId}/members/{uid}", {"DELETE": members_remove}),
]
