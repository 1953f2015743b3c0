"""``/api/users``: platform users, roles and site assignments (superadmin)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import conflict, not_found, validation
from ._shared import UID_RE

__all__ = [
    "ROUTES",
    "active_superadmins",
    "role_change",
    "site_assignment",
    "user_delete",
    "user_get",
    "user_item",
    "user_param",
    "users_list",
]


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
    emu = ctx.emu
    uid = ctx.param("uid")
    if not UID_RE.match(uid):
        raise validation("uid is malformed", {"path.uid": ["invalid format"]})
    user = emu.user(uid)
    if user is None:
        raise not_found(f"user {uid} not found")
    return user


def active_superadmins(emu: Emulator) -> int:
    store = emu.store
    return sum(
        1 for _, u in store.docs("user", "") if u.get("role") == "superadmin" and u.get("deletedAt") is None
    )


async def users_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
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
        emu = ctx.emu
        store = emu.store
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
        if previous == "superadmin" and role != "superadmin" and active_superadmins(emu) <= 1:
            raise conflict(
                "at least one superadmin must remain",
                code="last_superadmin",
                minSuperadmins=1,
                currentActiveCount=active_superadmins(emu),
            )
        user["role"] = role
        store.put("user", "", str(user["uid"]), user)
        return ok({"uid": user["uid"], "role": role, "previousRole": previous, "changed": previous != role})

    return handler


def site_assignment(kind: str) -> Any:
    async def handler(ctx: Ctx) -> Response:
        emu = ctx.emu
        store = emu.store
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
    emu = ctx.emu
    store = emu.store
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
    if uid == principal.uid and active_superadmins(emu) <= 1 and user.get("role") == "superadmin":
        raise conflict(
            "at least one superadmin must remain",
            code="last_superadmin",
            minSuperadmins=1,
            currentActiveCount=active_superadmins(emu),
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


ROUTES: RouteTable = [
    ("/api/users", {"GET": users_list}),
    ("/api/users/{uid}", {"GET": user_get, "DELETE": user_delete}),
    ("/api/users/{uid}/promote", {"POST": role_change("promote")}),
    ("/api/users/{uid}/demote", {"POST": role_change("demote")}),
    ("/api/users/{uid}/assign-sites", {"POST": site_assignment("assign")}),
    ("/api/users/{uid}/remove-sites", {"POST": site_assignment("remove")}),
]
