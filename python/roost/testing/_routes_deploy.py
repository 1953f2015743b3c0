"""The deploy plane: account, sites, chunks, roosts, versions, rollback, deploy, rollouts, quota."""

from __future__ import annotations

import math
import os
import re
from datetime import datetime, timedelta, timezone
from typing import Any, TypeGuard

from starlette.responses import Response
from starlette.routing import BaseRoute

from ._core import SHA256_RE, SUPPORTED_VERSIONS, Ctx, api_route, ok, paginate, with_pagination
from ._emulator import ALL_PERMISSIONS, ALL_RESOURCES, Emulator, new_id
from ._jsonutil import canonical_json, dumps, iso, js_len, now_ms, sha256_hex
from ._problems import conflict, forbidden, not_found, problem, validation
from ._refs import resolve_version, roost_parent
from ._webhooks import enqueue_event

__all__ = ["deploy_routes"]

MAX_HASHES = 1000
TOMBSTONE_TTL_MS = 30 * 24 * 3600 * 1000
MEDIA_TYPE = "application/vnd.owlette.version.v1+json"
MANIFEST_HOST = "https://owlette-emulator-manifests.r2.local"
TIER_LIMITS = {"free": 5 << 30, "starter": 25 << 30, "pro": 100 << 30, "enterprise": None}


def checked_description(value: object, type_detail: str) -> str | None:
    """A version description (publish and patch): a string of at most 500 characters, counted as
    JavaScript does; blank becomes ``None``. ``type_detail`` is the route's own wording."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation(type_detail, {"body.description": ["must be a string"]})
    if js_len(value) > 500:
        raise validation(
            "description must be ≤ 500 characters", {"body.description": ["must be ≤ 500 chars"]}
        )
    return value.strip() or None


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _dedupe(values: list[str], limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(value, None)
    return list(seen)[:limit]


def validate_hash_list(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise validation(
            f"field {field} must be a non-empty array of sha-256 hashes",
            {field: ["must be a non-empty array of sha-256 hex strings"]},
        )
    if len(value) > MAX_HASHES:
        raise validation(
            f"field {field} contains {len(value)} hashes; max is {MAX_HASHES} per request",
            {field: [f"max {MAX_HASHES} hashes per request"]},
        )
    bad = [h for h in value if not isinstance(h, str) or not SHA256_RE.match(h)]
    if bad:
        shown = ", ".join(_js_string(h)[:16] + "…" for h in bad[:5])
        raise validation(
            f"field {field} contains malformed hash entries (must be lowercase 64-char hex sha-256)",
            {field: [f"malformed entries: {shown}"]},
        )
    return [str(h) for h in value]


def _js_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, list):
        return ",".join(_js_string(v) for v in value)
    return dumps(value)


def version_summary(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {
        "versionId": doc.get("versionId"),
        "versionNumber": doc.get("versionNumber"),
        "description": doc.get("description"),
        "versionUrl": doc.get("versionUrl"),
        "createdAt": iso(doc.get("createdAt")),
        "createdBy": doc.get("createdBy"),
        "totalSize": doc.get("totalSize", 0),
        "totalFiles": doc.get("totalFiles", 0),
        "parentVersionId": doc.get("parentVersionId"),
    }


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


def _is_deleted(doc: dict[str, Any]) -> bool:
    return doc.get("deletedAt") is not None


def deploy_routes(emu: Emulator) -> list[BaseRoute]:
    store = emu.store

    # ------------------------------------------------------------------ account

    async def api_version(ctx: Ctx) -> Response:
        return ok({"current": SUPPORTED_VERSIONS[0], "supported": list(SUPPORTED_VERSIONS)})

    def quota_summary(site_id: str) -> dict[str, Any] | None:
        site = emu.site(site_id)
        if site is None:
            return None
        return {
            "siteId": site_id,
            "tier": site.get("quotaTier") or "free",
            "usedBytes": _used_bytes(emu, site_id),
            "pendingBytes": 0,
            "limitBytes": site.get("planLimitBytes"),
        }

    async def whoami(ctx: Ctx) -> Response:
        principal = ctx.authenticate(style="passthrough")
        key = principal.key
        primary: str | None = None
        for scope in principal.scopes_for("site"):
            if scope.get("id") not in (None, "*"):
                primary = str(scope["id"])
                break
        if primary is None:
            sites = principal.user.get("sites") or []
            primary = str(sites[0]) if sites else None
        return ok(
            {
                "userId": principal.uid,
                "email": principal.user.get("email"),
                "role": principal.user.get("role"),
                "key": None
                if key is None
                else {
                    "keyId": key.get("keyId"),
                    "name": key.get("name"),
                    "keyPrefix": key.get("keyPrefix"),
                    "scopes": key.get("scopes"),
                    "environment": key.get("environment"),
                    "expiresAt": key.get("expiresAt"),
                    "lastUsedAt": key.get("lastUsedAt"),
                    "isLegacy": False,
                },
                "rateLimit": {
                    "tier": "api",
                    "limitPerMinute": 600,
                    "note": "use RateLimit-* response headers on actual API calls for live counters",
                },
                "quota": quota_summary(primary) if primary else None,
                "primarySiteId": primary,
            }
        )

    # ------------------------------------------------------------------ keys (session only)

    def session_only(ctx: Ctx) -> Any:
        principal = ctx.authenticate(style="passthrough")
        if principal.key is not None:
            raise problem(401, "unauthorized", "unauthorized", "Unauthorized: Invalid ID token")
        return principal

    def validate_scopes(ctx: Ctx, principal: Any, scopes: Any) -> list[dict[str, Any]]:
        if not isinstance(scopes, list) or not 1 <= len(scopes) <= 50:
            raise _plain400("scopes must be an array of 1 to 50 entries")
        result: list[dict[str, Any]] = []
        for scope in scopes:
            if not isinstance(scope, dict):
                raise _plain400("each scope must be an object")
            resource, scope_id, perms = scope.get("resource"), scope.get("id"), scope.get("permissions")
            if resource not in ALL_RESOURCES:
                raise _plain400(f"unknown scope resource: {_js_string(resource)}")
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
            result.append({"resource": resource, "id": scope_id, "permissions": _dedupe(perms, 5)})
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
        principal = session_only(ctx)
        record = emu.key_by_id(ctx.param("keyId"))
        if record is None or record.get("userId") != principal.uid:
            raise not_found("api key not found")
        store.delete("api_key", "", str(record["keyHash"]))
        return ok({"success": True})

    async def keys_rotate(ctx: Ctx) -> Response:
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
        principal = ctx.auth_platform("user", "admin")
        record = emu.key_by_id(ctx.param("keyId"))
        if record is None or record.get("userId") != principal.uid:
            raise problem(404, "not-found", "not found", "API key not found", error="API key not found")
        store.delete("api_key", "", str(record["keyHash"]))
        return ok({"success": True})

    # ------------------------------------------------------------------ sites

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
        principal = ctx.authenticate(style="passthrough")
        if principal.is_deleted:
            raise forbidden("user is deleted or inactive")
        from ._problems import scope_insufficient

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
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        ctx.auth_site(site_id, "read")
        site = emu.site(site_id)
        if site is None:
            raise not_found("site not found or no access")
        return ok(site_item(site))

    async def site_patch(ctx: Ctx) -> Response:
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
                raise validation(
                    "roostEnabled must be a boolean", {"body.roostEnabled": ["must be a boolean"]}
                )
            site["roostEnabled"] = body["roostEnabled"]
            changed.append("roostEnabled")
        if not changed and not any(k in body for k in ("name", "timezone", "roostEnabled")):
            raise validation("no updatable fields provided")
        store.put("site", "", site_id, site)
        return ok({"siteId": site_id, "changed": bool(changed), "updated": changed})

    async def site_delete(ctx: Ctx) -> Response:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        ctx.auth_site_handler(site_id, "site", site_id, "admin", "SITE_MEMBER_MANAGE")
        replay = await ctx.idempotency(required=True)
        if replay is not None:
            return replay
        store.delete("site", "", site_id)
        return ok({"siteId": site_id, "deleted": True})

    # ------------------------------------------------------------------ chunks

    async def chunks_check(ctx: Ctx) -> Response:
        body = await ctx.json_strict()
        site_id = Ctx.site_id_from_body(body)
        ctx.auth_site(site_id, "write")
        ctx.kill_switch(site_id)
        hashes = validate_hash_list(body.get("hashes"), "hashes")
        missing = [h for h in hashes if not emu.chunks.exists(site_id, h)]
        return ok({"missing": missing})

    def presign_many(method: str, site_id: str, hashes: list[str], ttl: float) -> Response:
        urls: dict[str, str] = {}
        expires = 0
        for digest in hashes:
            urls[digest], expires = emu.presigner.url(method, emu.chunk_key(site_id, digest), ttl)
        return ok({"urls": urls, "expiresAt": iso(expires)})

    async def chunks_upload_urls(ctx: Ctx) -> Response:
        body = await ctx.json_strict()
        site_id = Ctx.site_id_from_body(body)
        ctx.auth_site(site_id, "write", capability=True)
        ctx.kill_switch(site_id)
        hashes = validate_hash_list(body.get("hashes"), "hashes")
        return presign_many("PUT", site_id, hashes, emu.upload_ttl_s)

    async def chunks_download_urls_get(ctx: Ctx) -> Response:
        site_id = ctx.site_id_from_query()
        ctx.auth_site(site_id, "read")
        ctx.kill_switch(site_id)
        hashes = validate_hash_list(ctx.query_all("hash") or None, "hash")
        return presign_many("GET", site_id, hashes, emu.download_ttl_s)

    async def chunks_download_urls_post(ctx: Ctx) -> Response:
        body = await ctx.json_strict()
        site_id = Ctx.site_id_from_body(body)
        ctx.auth_site(site_id, "read")
        ctx.kill_switch(site_id)
        hashes = validate_hash_list(body.get("hashes"), "hashes")
        return presign_many("GET", site_id, hashes, emu.download_ttl_s)

    async def chunk_mount(ctx: Ctx) -> Response:
        digest = ctx.param("digest")
        if not SHA256_RE.match(digest):
            raise validation(
                "digest must be a 64-char lowercase sha-256 hex", {"digest": ["must match ^[0-9a-f]{64}$"]}
            )
        fields: dict[str, Any] = {k: ctx.query(k) for k in ("siteId", "from", "to")}
        if any(v is None for v in fields.values()):
            raw = await ctx.body()
            if raw:
                body = await ctx.json_strict()
                if isinstance(body, dict):
                    for key in fields:
                        if fields[key] is None:
                            fields[key] = body.get(key)
        site_id = Ctx.site_id_from_body({"siteId": fields["siteId"]})
        source, target = fields["from"], fields["to"]
        if not isinstance(source, str) or not isinstance(target, str):
            raise validation("from and to roost ids are required (query params or body)")
        Ctx.resource_id(source, "from", "query")
        Ctx.resource_id(target, "to", "query")
        if source == target:
            raise validation("from and to must be different roost ids", {"to": ["must differ from `from`"]})
        principal = ctx.auth_site(site_id, "write", capability=True)
        ctx.kill_switch(site_id)
        if not emu.chunks.exists(site_id, digest):
            raise not_found(f"chunk {digest} is not stored for site {site_id}", title="chunk not found")
        if store.get("roost", site_id, source) is None:
            raise not_found(f"roost {source} not found on site {site_id}", title="source roost not found")
        if store.get("roost", site_id, target) is None:
            raise not_found(f"roost {target} not found on site {site_id}", title="target roost not found")
        entry_id = f"mount_{source}_{target}"
        parent = f"{site_id}/{digest}"
        now = now_ms()
        existing = store.get("referrer", parent, entry_id) or {}
        existing.update(
            {
                "digest": digest,
                "source": "mount",
                "fromRoostId": source,
                "toRoostId": target,
                "mountedAt": now,
                "referencedAt": now,
                "mountedBy": principal.uid,
            }
        )
        store.put("referrer", parent, entry_id, existing, new_seq=True)
        return ok(
            {
                "digest": digest,
                "siteId": site_id,
                "from": source,
                "to": target,
                "mounted": True,
                "zeroByte": True,
            },
            201,
        )

    async def chunk_referrers(ctx: Ctx) -> Response:
        digest = ctx.param("digest")
        if not SHA256_RE.match(digest):
            raise validation(
                "digest must be a 64-char lowercase sha-256 hex", {"digest": ["must match ^[0-9a-f]{64}$"]}
            )
        site_id = ctx.site_id_from_query()
        size = ctx.page_size(50, 200)
        ctx.auth_site(site_id, "read")
        ctx.kill_switch(site_id)
        rows = [(rid, {**doc, "_id": rid}) for rid, doc in store.docs("referrer", f"{site_id}/{digest}")]
        page, token = paginate(rows, ctx.page_token(), size)
        items = [
            {
                "entryId": entry_id,
                "source": doc.get("source"),
                "roostId": doc.get("roostId"),
                "fromRoostId": doc.get("fromRoostId"),
                "toRoostId": doc.get("toRoostId"),
                "versionId": doc.get("versionId"),
                "versionNumber": doc.get("versionNumber"),
                "fileCount": doc.get("fileCount"),
                "pathCount": doc.get("pathCount"),
                "totalBytes": doc.get("totalBytes"),
                "referencedAt": iso(doc.get("referencedAt")),
                "createdAt": iso(doc.get("createdAt")),
                "createdBy": doc.get("createdBy"),
                "mountedAt": iso(doc.get("mountedAt")),
                "mountedBy": doc.get("mountedBy"),
            }
            for entry_id, doc in ((str(d["_id"]), d) for d in page)
        ]
        return ok(
            with_pagination({"digest": digest, "siteId": site_id, "referrers": items, "items": items}, token)
        )

    # ------------------------------------------------------------------ roosts

    def validate_targets(value: Any, detail: str) -> list[str]:
        if not _string_list(value):
            raise validation(detail, {"body.targets": ["must be string[]"]})
        return _dedupe(list(value), 500)

    async def roosts_list(ctx: Ctx) -> Response:
        site_id = ctx.site_id_from_query()
        size = ctx.page_size(20, 100)
        ctx.auth_site(site_id, "read")
        ctx.kill_switch(site_id)
        include_deleted = ctx.query("includeDeleted") == "true"
        rows = [(doc_id, doc) for doc_id, doc in store.docs("roost", site_id)]
        page, token = paginate(
            rows, ctx.page_token(), size, None if include_deleted else (lambda d: not _is_deleted(d))
        )
        return ok(with_pagination({"roosts": [roost_item(d, site_id) for d in page]}, token))

    async def roosts_create(ctx: Ctx) -> Response:
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
        roost_id = (
            new_id("rst_") if raw_roost_id is None else Ctx.resource_id(raw_roost_id, "roostId", "body")
        )
        now = now_ms()
        with store.transaction():
            existing = store.get("roost", site_id, roost_id)
            if existing is not None and not _is_deleted(existing):
                raise conflict(
                    f"roost {roost_id} already exists on site {site_id}", title="roost already exists"
                )
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
            if _is_deleted(doc):
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

    # ------------------------------------------------------------------ versions

    def validate_version(version: Any) -> list[dict[str, Any]]:
        if not isinstance(version, dict):
            raise validation(
                "field `version` is required (oci version object)",
                {"body.version": ["must be a version object"]},
            )
        if version.get("schemaVersion") != 2 or isinstance(version.get("schemaVersion"), bool):
            raise validation(
                "version.schemaVersion must be 2", {"body.version.schemaVersion": ["expected 2"]}
            )
        if version.get("mediaType") != MEDIA_TYPE:
            raise validation(
                f"version.mediaType must be {MEDIA_TYPE}",
                {"body.version.mediaType": ["expected vnd.owlette.version.v1+json"]},
            )
        if not isinstance(version.get("config"), dict):
            raise validation("version.config must be an object", {"body.version.config": ["required object"]})
        files = version.get("files")
        if not isinstance(files, list) or not files:
            raise validation(
                "version.files must be a non-empty array",
                {"body.version.files": ["required non-empty array"]},
            )
        for i, entry in enumerate(files):
            where = f"body.version.files[{i}]"
            if not isinstance(entry, dict):
                raise validation(f"version.files[{i}] must be an object", {where: ["required object"]})
            if not isinstance(entry.get("path"), str) or not entry["path"]:
                raise validation(
                    f"version.files[{i}].path is required", {f"{where}.path": ["required string"]}
                )
            size = entry.get("size")
            if not _is_number(size) or size < 0:
                raise validation(
                    f"version.files[{i}].size must be non-negative number",
                    {f"{where}.size": ["required non-negative number"]},
                )
            chunks = entry.get("chunks")
            if not isinstance(chunks, list):
                raise validation(
                    f"version.files[{i}].chunks must be an array", {f"{where}.chunks": ["required array"]}
                )
            for j, chunk in enumerate(chunks):
                if (
                    not isinstance(chunk, dict)
                    or not isinstance(chunk.get("hash"), str)
                    or not SHA256_RE.match(chunk["hash"])
                    or not _is_number(chunk.get("size"))
                    or chunk["size"] <= 0
                ):
                    raise validation(
                        f"version.files[{i}].chunks[{j}] must have hash (64-char lowercase hex) + positive size",
                        {f"{where}.chunks[{j}]": ["invalid chunk entry"]},
                    )
        return files

    async def versions_publish(ctx: Ctx) -> Response:
        roost_id = Ctx.resource_id(ctx.param("roostId"))
        body = await ctx.json_lenient()
        site_id = Ctx.site_id_from_body(body)
        principal = ctx.auth_roost(site_id, roost_id, "write")
        ctx.kill_switch(site_id)
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        instance = f"/api/roosts/{roost_id}/versions"
        version = body.get("version")
        files = validate_version(version)
        provided: dict[str, Any] = {}
        if "name" in body and body["name"] is not None:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise validation(
                    "name must be a non-empty string when provided",
                    {"body.name": ["must be a non-empty string"]},
                )
            provided["name"] = body["name"].strip()[:200]
        if "targets" in body and body["targets"] is not None:
            provided["targets"] = validate_targets(
                body["targets"], "targets must be an array of non-empty machineId strings"
            )
        if "extractPath" in body and body["extractPath"] is not None:
            if not isinstance(body["extractPath"], str):
                raise validation("extractPath must be a string", {"body.extractPath": ["must be a string"]})
            extract = body["extractPath"].strip()[:500]
            if extract:
                provided["extractPath"] = extract
        description = checked_description(
            body.get("description"), "description must be a string when provided"
        )
        expected_set = "expectedCurrentVersionId" in body
        expected = body.get("expectedCurrentVersionId")
        if expected_set and expected is not None and not isinstance(expected, str):
            raise validation(
                "expectedCurrentVersionId must be a string or null when provided",
                {"body.expectedCurrentVersionId": ["must be a string or null"]},
            )
        distinct = list(dict.fromkeys(c["hash"] for f in files for c in f["chunks"]))
        missing = [h for h in distinct if not emu.chunks.exists(site_id, h)]
        if missing:
            raise problem(
                412,
                "precondition-failed",
                "chunks missing in storage",
                f"{len(missing)} referenced chunk(s) are not present in R2. upload them via "
                "/api/chunks/upload-urls before finalising.",
                code="precondition_failed",
                instance=instance,
                missingChunks=missing[:20],
            )
        canonical = canonical_json(version)
        version_id = sha256_hex(canonical)
        version_url = f"{MANIFEST_HOST}/project-manifests/{site_id}/{roost_id}/{version_id}.json"
        parent = roost_parent(site_id, roost_id)
        now = now_ms()
        total_size = sum(f["size"] for f in files)
        total_size = int(total_size) if float(total_size).is_integer() else total_size

        def stale(current: str | None) -> Exception:
            return problem(
                412,
                "precondition-failed",
                "head changed",
                f"expectedCurrentVersionId did not match the current head ({current or 'null'}). re-read + retry.",
                code="version_stale",
                instance=instance,
            )

        event: dict[str, Any] | None = None
        with store.transaction():
            store.put_text("version_body", parent, version_id, dumps(version))
            roost = store.get("roost", site_id, roost_id)
            created_roost = roost is None
            roost = roost or {"roostId": roost_id}
            current_id = roost.get("currentVersionId")
            if current_id == version_id:
                if provided:
                    if expected_set and expected != current_id:
                        raise stale(current_id)
                    roost.update(provided)
                    roost["updatedAt"] = now
                    store.put("roost", site_id, roost_id, roost)
                result = {
                    "versionId": version_id,
                    "versionNumber": roost.get("currentVersionNumber") or roost.get("versionCounter") or 0,
                    "currentVersionId": version_id,
                    "previousVersionId": roost.get("previousVersionId"),
                }
                return ok(result, 200)
            if expected_set and current_id != expected:
                raise stale(current_id)
            existing = store.get("version", parent, version_id)

            def apply_config() -> None:
                roost.update(provided)
                if "name" not in provided and not roost.get("name"):
                    roost["name"] = roost_id
                if "targets" not in provided and roost.get("targets") is None:
                    roost["targets"] = []
                if created_roost:
                    roost["createdAt"] = now
                    roost["createdBy"] = principal.uid
                    roost.setdefault("deletedAt", None)
                    roost.setdefault("tombstoneExpiresAt", None)

            if existing is not None:
                roost.update(
                    {
                        "currentVersionId": version_id,
                        "currentVersionNumber": existing.get("versionNumber"),
                        "currentVersionDescription": existing.get("description"),
                        "previousVersionId": current_id,
                        "versionUrl": existing.get("versionUrl"),
                        "totalFiles": existing.get("totalFiles"),
                        "totalSize": existing.get("totalSize"),
                        "updatedAt": now,
                    }
                )
                apply_config()
                store.put("roost", site_id, roost_id, roost, new_seq=created_roost)
                return ok(
                    {
                        "versionId": version_id,
                        "versionNumber": existing.get("versionNumber"),
                        "currentVersionId": version_id,
                        "previousVersionId": current_id,
                    },
                    200,
                )
            number = int(roost.get("versionCounter") or 0) + 1
            version_doc = {
                "versionId": version_id,
                "versionNumber": number,
                "description": description,
                "versionUrl": version_url,
                "createdAt": now,
                "createdBy": principal.uid,
                "totalSize": total_size,
                "totalFiles": len(files),
                "parentVersionId": current_id,
            }
            store.put("version", parent, version_id, version_doc, new_seq=True)
            roost.update(
                {
                    "schemaVersion": 2,
                    "versionCounter": number,
                    "currentVersionId": version_id,
                    "currentVersionNumber": number,
                    "currentVersionDescription": description,
                    "previousVersionId": current_id,
                    "versionUrl": version_url,
                    "totalFiles": len(files),
                    "totalSize": total_size,
                    "updatedAt": now,
                }
            )
            apply_config()
            store.put("roost", site_id, roost_id, roost, new_seq=created_roost)
            write_version_referrers(site_id, roost_id, version_id, number, files, principal.uid, now)
            event = {
                "roostId": roost_id,
                "versionId": version_id,
                "versionNumber": number,
                "description": description,
                "siteId": site_id,
                "totalSize": total_size,
                "totalFiles": len(files),
                "createdBy": principal.uid,
            }
        if event is not None:
            enqueue_event(emu, site_id, "version.published", event)
        return ok(
            {
                "versionId": version_id,
                "versionNumber": number,
                "currentVersionId": version_id,
                "previousVersionId": current_id,
            },
            201,
        )

    def write_version_referrers(
        site_id: str,
        roost_id: str,
        version_id: str,
        number: int,
        files: list[dict[str, Any]],
        uid: str,
        now: int,
    ) -> None:
        paths: dict[str, set[str]] = {}
        sizes: dict[str, float] = {}
        for entry in files:
            for chunk in entry["chunks"]:
                paths.setdefault(chunk["hash"], set()).add(entry["path"])
                sizes[chunk["hash"]] = sizes.get(chunk["hash"], 0) + chunk["size"]
        entry_id = f"version_{roost_id}_{version_id}"
        rows: list[tuple[str, str, dict[str, Any]]] = []
        for digest, used_by in paths.items():
            total = sizes[digest]
            entry = {
                "source": "version",
                "roostId": roost_id,
                "versionId": version_id,
                "versionNumber": number,
                "fileCount": len(used_by),
                "pathCount": len(used_by),
                "totalBytes": int(total) if float(total).is_integer() else total,
                "createdAt": now,
                "createdBy": uid,
                "mountedAt": now,
            }
            rows.append((f"{site_id}/{digest}", entry_id, entry))
        store.put_many("referrer", rows)

    async def versions_list(ctx: Ctx) -> Response:
        roost_id = Ctx.resource_id(ctx.param("roostId"))
        site_id = ctx.site_id_from_query()
        size = ctx.page_size(20, 100)
        ctx.auth_roost(site_id, roost_id, "read")
        ctx.kill_switch(site_id)
        if store.get("roost", site_id, roost_id) is None:
            raise not_found(f"roost {roost_id} not found on site {site_id}")
        rows = store.docs("version", roost_parent(site_id, roost_id))
        page, token = paginate(rows, ctx.page_token(), size)
        body = {"versions": [version_summary(d) for d in page], "nextCursor": token or None}
        return ok(with_pagination(body, token))

    def load_body(site_id: str, roost_id: str, version_id: str) -> Any:
        text = store.get_text("version_body", roost_parent(site_id, roost_id), version_id)
        if text is None:
            return None
        from ._jsonutil import loads

        return loads(text)

    def body_gone(version_id: str, title: str = "version body gone") -> Exception:
        return problem(
            410,
            "not-found",
            title,
            f"version {version_id} metadata exists but the body has been reclaimed",
        )

    async def version_get(ctx: Ctx) -> Response:
        roost_id = Ctx.resource_id(ctx.param("roostId"))
        site_id = ctx.site_id_from_query()
        ctx.auth_roost(site_id, roost_id, "read")
        ctx.kill_switch(site_id)
        doc = resolve_version(store, site_id, roost_id, ctx.param("versionRef"), instance=ctx.path)
        version = load_body(site_id, roost_id, doc["versionId"])
        if version is None:
            raise body_gone(doc["versionId"])
        return ok(
            {
                "versionId": doc["versionId"],
                "versionNumber": doc.get("versionNumber"),
                "description": doc.get("description"),
                "roostId": roost_id,
                "siteId": site_id,
                "version": version,
                "metadata": {
                    "versionUrl": doc.get("versionUrl"),
                    "createdAt": iso(doc.get("createdAt")),
                    "createdBy": doc.get("createdBy"),
                    "totalSize": doc.get("totalSize"),
                    "totalFiles": doc.get("totalFiles"),
                    "parentVersionId": doc.get("parentVersionId"),
                },
            }
        )

    async def version_patch(ctx: Ctx) -> Response:
        roost_id = Ctx.resource_id(ctx.param("roostId"))
        body = await ctx.json_lenient()
        site_id = Ctx.site_id_from_body(body)
        ctx.auth_roost(site_id, roost_id, "write")
        ctx.kill_switch(site_id)
        extra = [k for k in body if k not in ("siteId", "description")]
        if extra:
            raise problem(
                400,
                "validation-failed",
                "version content is immutable",
                "version content (files, chunks) cannot be changed after publish; only description is editable",
                code="version_content_immutable",
                errors={"body": [f"cannot patch fields: {', '.join(extra)}"]},
            )
        replay = await ctx.idempotency()
        if replay is not None:
            return replay
        if "description" not in body:
            raise validation(
                "description is required", {"body.description": ["required when patching a version"]}
            )
        description = checked_description(body["description"], "description must be a string or null")
        doc = resolve_version(store, site_id, roost_id, ctx.param("versionRef"), instance=ctx.path)
        now = now_ms()
        parent = roost_parent(site_id, roost_id)
        with store.transaction():
            doc["description"] = description
            doc["updatedAt"] = now
            store.put("version", parent, doc["versionId"], doc)
            roost = store.get("roost", site_id, roost_id)
            if roost is not None and roost.get("currentVersionId") == doc["versionId"]:
                roost["currentVersionDescription"] = description
                store.put("roost", site_id, roost_id, roost)
        return ok(
            {
                "versionId": doc["versionId"],
                "versionNumber": doc.get("versionNumber"),
                "description": description,
                "roostId": roost_id,
                "siteId": site_id,
                "versionUrl": doc.get("versionUrl"),
                "createdAt": iso(doc.get("createdAt")),
                "updatedAt": iso(now),
                "createdBy": doc.get("createdBy"),
                "totalSize": doc.get("totalSize"),
                "totalFiles": doc.get("totalFiles"),
                "parentVersionId": doc.get("parentVersionId"),
            }
        )

    async def version_files(ctx: Ctx) -> Response:
        roost_id = Ctx.resource_id(ctx.param("roostId"))
        site_id = ctx.site_id_from_query()
        size = ctx.page_size(100, 500)
        ctx.auth_roost(site_id, roost_id, "read")
        ctx.kill_switch(site_id)
        token = ctx.page_token()
        offset = 0
        if token is not None:
            if not re.fullmatch(r"0|[1-9][0-9]*", token):
                raise validation(
                    "page_token must be a non-negative integer offset",
                    {"query.page_token": ["invalid page token"]},
                )
            offset = int(token)
        doc = resolve_version(store, site_id, roost_id, ctx.param("versionRef"), instance=ctx.path)
        version = load_body(site_id, roost_id, doc["versionId"])
        if not isinstance(version, dict):
            raise body_gone(doc["versionId"])
        files = [f for f in version.get("files") or [] if isinstance(f, dict)]
        prefix = ctx.query("prefix")
        if prefix:
            files = [f for f in files if isinstance(f.get("path"), str) and f["path"].startswith(prefix)]
        page = files[offset : offset + size]
        next_token = str(offset + len(page)) if offset + len(page) < len(files) else ""
        return ok(
            with_pagination(
                {
                    "versionId": doc["versionId"],
                    "roostId": roost_id,
                    "siteId": site_id,
                    "total": len(files),
                    "files": page,
                    "items": page,
                },
                next_token,
            )
        )

    async def version_diff(ctx: Ctx) -> Response:
        roost_id = Ctx.resource_id(ctx.param("roostId"))
        site_id = ctx.site_id_from_query()
        against = ctx.query("against")
        if not against:
            raise validation(
                "query param `against` is required (versionRef to diff against)",
                {"query.against": ["required"]},
            )
        ctx.auth_roost(site_id, roost_id, "read")
        ctx.kill_switch(site_id)
        to_doc = resolve_version(store, site_id, roost_id, ctx.param("versionRef"), instance=ctx.path)
        from_doc = resolve_version(store, site_id, roost_id, against, instance=ctx.path)
        to_body = load_body(site_id, roost_id, to_doc["versionId"])
        if not isinstance(to_body, dict):
            raise body_gone(to_doc["versionId"])
        from_body = load_body(site_id, roost_id, from_doc["versionId"])
        if not isinstance(from_body, dict):
            raise body_gone(from_doc["versionId"], "against version body gone")

        def index(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for entry in body.get("files") or []:
                if (
                    isinstance(entry, dict)
                    and isinstance(entry.get("path"), str)
                    and _is_number(entry.get("size"))
                    and isinstance(entry.get("chunks"), list)
                ):
                    out[entry["path"]] = entry
            return out

        def hashes(entry: dict[str, Any]) -> list[Any]:
            return [c.get("hash") if isinstance(c, dict) else None for c in entry["chunks"]]

        old, new = index(from_body), index(to_body)
        added = [
            {"path": p, "size": new[p]["size"], "reason": "added", "chunks": len(new[p]["chunks"])}
            for p in sorted(set(new) - set(old))
        ]
        removed = [
            {"path": p, "size": old[p]["size"], "reason": "removed", "chunks": len(old[p]["chunks"])}
            for p in sorted(set(old) - set(new))
        ]
        modified = []
        unchanged = 0
        for p in sorted(set(old) & set(new)):
            a, b = old[p], new[p]
            if a["size"] == b["size"] and hashes(a) == hashes(b):
                unchanged += 1
                continue
            modified.append(
                {
                    "path": p,
                    "fromSize": a["size"],
                    "toSize": b["size"],
                    "reason": "modified",
                    "fromChunks": len(a["chunks"]),
                    "toChunks": len(b["chunks"]),
                }
            )
        delta = sum(e["size"] for e in new.values()) - sum(e["size"] for e in old.values())
        return ok(
            {
                "versionId": to_doc["versionId"],
                "fromVersion": from_doc["versionId"],
                "toVersion": to_doc["versionId"],
                "against": from_doc["versionId"],
                "roostId": roost_id,
                "siteId": site_id,
                "summary": {
                    "added": len(added),
                    "removed": len(removed),
                    "changed": len(modified),
                    "unchanged": unchanged,
                    "hasChanges": bool(added or removed or modified),
                    "netBytesDelta": int(delta) if float(delta).is_integer() else delta,
                },
                "added": added,
                "removed": removed,
                "modified": modified,
            }
        )

    # ------------------------------------------------------------------ rollback / deploy

    def queue_sync_commands(
        site_id: str, machines: list[str], command_id: str, payload: dict[str, Any]
    ) -> None:
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
            target = _js_string(target)
        instance = ctx.path
        doc = resolve_version(
            store, site_id, roost_id, target, instance=instance, title="targetVersion malformed"
        )
        now = now_ms()
        with store.transaction():
            roost = store.get("roost", site_id, roost_id)
            if roost is None or _is_deleted(roost):
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
            if not _string_list(body["machines"]):
                raise validation(
                    "machines must be an array of non-empty machineId strings",
                    {"body.machines": ["must be string[]"]},
                )
            machines_override = _dedupe(list(body["machines"]), 10_000)
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
        if _is_deleted(roost):
            raise conflict(
                f"roost {roost_id} is soft-deleted; undelete before deploying", title="roost deleted"
            )
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

    # ------------------------------------------------------------------ quota

    async def quota_get(ctx: Ctx) -> Response:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        ctx.auth_site(site_id, "read")
        site = emu.site(site_id) or {}
        tier = str(site.get("quotaTier") or "free")
        limit = site.get("planLimitBytes", TIER_LIMITS.get(tier, TIER_LIMITS["free"]))
        used = _used_bytes(emu, site_id)
        return ok(
            {
                "siteId": site_id,
                "tier": tier,
                "usedBytes": used,
                "pendingBytes": 0,
                "committedBytes": used,
                "limitBytes": limit,
                "fractionUsed": None if limit is None else min(1.0, used / limit) if limit else 1.0,
                "unlimited": limit is None,
                "lastAlarmLevel": 0,
                "lastAlarmAt": None,
                "lastReconciledAt": iso(now_ms()),
                "alarms": [],
            }
        )

    async def quota_history(ctx: Ctx) -> Response:
        site_id = Ctx.site_id_from_path(ctx.param("siteId"))
        period = ctx.query("period") or "30d"
        if period not in ("7d", "14d", "30d", "60d", "90d"):
            raise validation(
                "period must be one of 7d, 14d, 30d, 60d, 90d", {"query.period": ["invalid value"]}
            )
        ctx.auth_site(site_id, "read")
        days = int(period[:-1])
        today = datetime.now(timezone.utc).date()
        used = _used_bytes(emu, site_id)
        daily = [
            {
                "date": (today - timedelta(days=offset)).isoformat(),
                "storageBytesAvg": used if offset == 0 else None,
                "classAOps": 0,
                "classBOps": 0,
                "egressBytes": 0,
            }
            for offset in range(days - 1, -1, -1)
        ]
        return ok({"siteId": site_id, "period": period, "days": days, "daily": daily})

    return [
        api_route(emu, "/api/version", {"GET": api_version}),
        api_route(emu, "/api/whoami", {"GET": whoami}),
        api_route(emu, "/api/keys", {"GET": keys_get, "POST": keys_post}),
        api_route(emu, "/api/keys/{keyId}", {"DELETE": keys_delete}),
        api_route(emu, "/api/keys/{keyId}/rotate", {"POST": keys_rotate}),
        api_route(emu, "/api/account/api-keys", {"GET": account_keys_get, "POST": account_keys_post}),
        api_route(emu, "/api/account/api-keys/{keyId}", {"DELETE": account_keys_delete}),
        api_route(emu, "/api/sites", {"GET": sites_get, "POST": sites_post}),
        api_route(emu, "/api/sites/{siteId}", {"GET": site_get, "PATCH": site_patch, "DELETE": site_delete}),
        api_route(emu, "/api/sites/{siteId}/quota", {"GET": quota_get}),
        api_route(emu, "/api/sites/{siteId}/quota/history", {"GET": quota_history}),
        api_route(emu, "/api/chunks/check", {"POST": chunks_check}),
        api_route(emu, "/api/chunks/upload-urls", {"POST": chunks_upload_urls}),
        api_route(
            emu,
            "/api/chunks/download-urls",
            {"GET": chunks_download_urls_get, "POST": chunks_download_urls_post},
        ),
        api_route(emu, "/api/chunks/{digest}/mount", {"POST": chunk_mount}),
        api_route(emu, "/api/chunks/{digest}/referrers", {"GET": chunk_referrers}),
        api_route(emu, "/api/roosts", {"GET": roosts_list, "POST": roosts_create}),
        api_route(
            emu, "/api/roosts/{roostId}", {"GET": roost_get, "PATCH": roost_patch, "DELETE": roost_delete}
        ),
        api_route(emu, "/api/roosts/{roostId}/versions", {"GET": versions_list, "POST": versions_publish}),
        api_route(
            emu, "/api/roosts/{roostId}/versions/{versionRef}", {"GET": version_get, "PATCH": version_patch}
        ),
        api_route(emu, "/api/roosts/{roostId}/versions/{versionRef}/files", {"GET": version_files}),
        api_route(emu, "/api/roosts/{roostId}/versions/{versionRef}/diff", {"GET": version_diff}),
        api_route(emu, "/api/roosts/{roostId}/rollback", {"POST": rollback}),
        api_route(emu, "/api/roosts/{roostId}/deploy", {"POST": deploy}),
        api_route(emu, "/api/roosts/{roostId}/deployments", {"GET": deployments_list}),
        api_route(emu, "/api/roosts/{roostId}/deployments/{rolloutId}", {"GET": deployment_get}),
    ]


def _plain400(detail: str) -> Exception:
    return validation(detail)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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


def _used_bytes(emu: Emulator, site_id: str) -> int:
    root = emu.chunks.root / site_id
    total = 0
    if not root.is_dir():
        return 0
    for prefix in os.scandir(root):
        if not prefix.is_dir():
            continue
        for entry in os.scandir(prefix.path):
            if entry.is_file() and not entry.name.endswith(".part"):
                total += entry.stat().st_size
    return total
