"""API keys: ``/api/keys`` (session only; create, list, revoke, rotate) and ``/api/account/api-keys``."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok
from .._emulator import ALL_PERMISSIONS, ALL_RESOURCES
from .._jsonutil import iso, now_ms
from .._problems import conflict, not_found, problem, validation
from ._shared import dedupe, js_string

__all__ = [
    "ROUTES",
    "account_keys_delete",
    "account_keys_get",
    "account_keys_post",
    "firestore_ts",
    "key_created",
    "keys_delete",
    "keys_get",
    "keys_post",
    "keys_rotate",
    "session_only",
    "ttl_days",
    "validate_scopes",
]


def _plain400(detail: str) -> Exception:
    return validation(detail)


def session_only(ctx: Ctx) -> Any:
    principal = ctx.authenticate(style="passthrough")
    if principal.key is not None:
        raise problem(401, "unauthorized", "unauthorized", "Unauthorized: Invalid ID token")
    return principal


def validate_scopes(ctx: Ctx, principal: Any, scopes: Any) -> list[dict[str, Any]]:
    emu = ctx.emu
    if not isinstance(scopes, list) or not 1 <= len(scopes) <= 50:
        raise _plain400("scopes must be an array of 1 to 50 entries")
    result: list[dict[str, Any]] = []
    for scope in scopes:
        if not isinstance(scope, dict):
            raise _plain400("each scope must be an object")
        resource, scope_id, perms = scope.get("resource"), scope.get("id"), scope.get("permissions")
        if resource not in ALL_RESOURCES:
            raise _plain400(f"unknown scope resource: {js_string(resource)}")
        if not isinstance(scope_id, str) or not 1 <= len(scope_id) <= 128:
            raise _plain400("scope id must be 1-128 characters")
        if not isinstance(perms, list) or not perms or any(p not in ALL_PERMISSIONS for p in perms):
            raise _plain400("scope permissions must be a non-empty array of valid permissions")
        if resource in ("user", "installer"):
            if scope_id != "*":
                raise _plain400(f'{resource} scopes must use id "*"')
            if not principal.is_superadmin:
                raise problem(
                    403,
                    "forbidden",
                    "forbidden",
                    "superadmin access required to create user or installer scopes",
                )
        if resource in ("site", "chat", "deploy") and scope_id != "*":
            site = emu.site(scope_id)
            if site is None or not emu.has_site_access(principal, site):
                raise problem(403, "forbidden", "forbidden", f"no access to site {scope_id}")
        result.append({"resource": resource, "id": scope_id, "permissions": dedupe(perms, 5)})
    return result


def key_created(raw: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "success": True,
        "key": raw,
        "keyId": record["keyId"],
        "name": record["name"],
        "environment": record["environment"],
        "scopes": record["scopes"],
        "expiresAt": record["expiresAt"],
        "keyPrefix": record["keyPrefix"],
    }


def ttl_days(value: Any) -> int:
    if value is None:
        return 90
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 365:
        raise _plain400("ttlDays must be an integer between 1 and 365")
    return value


async def keys_post(ctx: Ctx) -> Response:
    emu = ctx.emu
    principal = session_only(ctx)
    body = await ctx.json_lenient()
    if not isinstance(body, dict):
        raise _plain400("request body must be an object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _plain400("name is required")
    scopes = validate_scopes(ctx, principal, body.get("scopes"))
    environment = body.get("environment", "live")
    if environment not in ("live", "test"):
        raise _plain400("environment must be 'live' or 'test'")
    raw, record = emu.create_key_record(
        user_id=principal.uid,
        name=name.strip()[:100],
        scopes=scopes,
        environment=str(environment),
        ttl_days=ttl_days(body.get("ttlDays")),
    )
    return ok(key_created(raw, record))


def firestore_ts(ms: Any) -> Any:
    if not isinstance(ms, int):
        return ms
    return {"_seconds": ms // 1000, "_nanoseconds": (ms % 1000) * 1_000_000}


async def keys_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    principal = session_only(ctx)
    keys = [
        {
            "id": k["keyId"],
            "name": k.get("name"),
            "keyPrefix": k.get("keyPrefix"),
            "environment": k.get("environment"),
            "scopes": k.get("scopes"),
            "expiresAt": k.get("expiresAt"),
            "createdAt": firestore_ts(k.get("createdAt")),
            "lastUsedAt": k.get("lastUsedAt"),
            "rotatedAt": k.get("rotatedAt"),
            "rotatedFromKeyId": k.get("rotatedFromKeyId"),
            "retiresAt": k.get("retiresAt"),
            "revokedAt": k.get("revokedAt"),
        }
        for k in emu.keys_of(principal.uid)
    ]
    return ok({"success": True, "keys": keys})


async def keys_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    principal = session_only(ctx)
    record = emu.key_by_id(ctx.param("keyId"))
    if record is None or record.get("userId") != principal.uid:
        raise not_found("api key not found")
    store.delete("api_key", "", str(record["keyHash"]))
    return ok({"success": True})


async def keys_rotate(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    principal = session_only(ctx)
    body = await ctx.json_lenient()
    record = emu.key_by_id(ctx.param("keyId"))
    if record is None or record.get("userId") != principal.uid:
        raise not_found("api key not found")
    if record.get("revokedAt") is not None:
        raise conflict("key revoked")
    if record.get("rotatedAt") is not None or record.get("retiresAt") is not None:
        raise conflict("key already rotated")
    days = ttl_days(body.get("ttlDays") if isinstance(body, dict) else None)
    now = now_ms()
    with store.transaction():
        raw, new_record = emu.create_key_record(
            user_id=principal.uid,
            name=str(record.get("name")),
            scopes=list(record.get("scopes") or []),
            environment=str(record.get("environment")),
            ttl_days=days,
            extra={"rotatedFromKeyId": record["keyId"]},
        )
        record["rotatedAt"] = now
        record["retiresAt"] = now + 24 * 3600 * 1000
        store.put("api_key", "", str(record["keyHash"]), record)
    created = key_created(raw, new_record)
    created["rotatedFromKeyId"] = record["keyId"]
    created["previousKey"] = {"keyId": record["keyId"], "retiresAt": record["retiresAt"]}
    return ok(created)


async def account_keys_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    principal = ctx.auth_platform("user", "admin")
    keys = [
        {
            "id": k["keyId"],
            "name": k.get("name"),
            "keyPrefix": k.get("keyPrefix"),
            "environment": k.get("environment"),
            "scopes": k.get("scopes"),
            "expiresAt": k.get("expiresAt"),
            "createdAt": iso(k.get("createdAt")),
            "lastUsedAt": k.get("lastUsedAt"),
        }
        for k in emu.keys_of(principal.uid)
        if k.get("revokedAt") is None
    ]
    return ok({"success": True, "keys": keys})


async def account_keys_post(ctx: Ctx) -> Response:
    emu = ctx.emu
    principal = ctx.auth_platform("user", "admin")
    body = await ctx.json_lenient()
    name = body.get("name") if isinstance(body, dict) else None
    scopes = list(principal.key.get("scopes") or []) if principal.key else []
    if not scopes:
        scopes = [{"resource": r, "id": "*", "permissions": list(ALL_PERMISSIONS)} for r in ALL_RESOURCES]
    raw, record = emu.create_key_record(
        user_id=principal.uid,
        name=name.strip()[:100] if isinstance(name, str) and name.strip() else "API Key",
        scopes=scopes,
        environment="live",
        ttl_days=90,
    )
    return ok(key_created(raw, record))


async def account_keys_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    principal = ctx.auth_platform("user", "admin")
    record = emu.key_by_id(ctx.param("keyId"))
    if record is None or record.get("userId") != principal.uid:
        raise problem(404, "not-found", "not found", "API key not found", error="API key not found")
    store.delete("api_key", "", str(record["keyHash"]))
    return ok({"success": True})


ROUTES: RouteTable = [
    ("/api/keys", {"GET": keys_get, "POST": keys_post}),
    ("/api/keys/{keyId}", {"DELETE": keys_delete}),
    ("/api/keys/{keyId}/rotate", {"POST": keys_rotate}),
    ("/api/account/api-keys", {"GET": account_keys_get, "POST": account_keys_post}),
    ("/api/account/api-keys/{keyId}", {"DELETE": account_keys_delete}),
]
