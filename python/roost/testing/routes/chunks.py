"""``/api/chunks``: the dedup check, presigned upload and download URLs, mount and referrers."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._core import SHA256_RE, Ctx, RouteTable, all_sha256, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import not_found, validation
from ._shared import js_string

__all__ = [
    "ROUTES",
    "chunk_mount",
    "chunk_referrers",
    "chunks_check",
    "chunks_download_urls_get",
    "chunks_download_urls_post",
    "chunks_upload_urls",
    "presign_many",
]


MAX_HASHES = 1000


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
    if all_sha256(value):
        return value
    bad = [h for h in value if not isinstance(h, str) or not SHA256_RE.match(h)]
    if bad:
        shown = ", ".join(js_string(h)[:16] + "…" for h in bad[:5])
        raise validation(
            f"field {field} contains malformed hash entries (must be lowercase 64-char hex sha-256)",
            {field: [f"malformed entries: {shown}"]},
        )
    return [str(h) for h in value]


async def chunks_check(ctx: Ctx) -> Response:
    emu = ctx.emu
    body = await ctx.json_strict()
    site_id = Ctx.site_id_from_body(body)
    ctx.auth_site(site_id, "write")
    ctx.kill_switch(site_id)
    hashes = validate_hash_list(body.get("hashes"), "hashes")
    missing = emu.chunks.missing(site_id, hashes)
    return ok({"missing": missing})


def presign_many(emu: Emulator, method: str, site_id: str, hashes: list[str], ttl: float) -> Response:
    urls: dict[str, str] = {}
    expires = 0
    for digest in hashes:
        urls[digest], expires = emu.presigner.url(method, emu.chunk_key(site_id, digest), ttl)
    return ok({"urls": urls, "expiresAt": iso(expires)})


async def chunks_upload_urls(ctx: Ctx) -> Response:
    emu = ctx.emu
    body = await ctx.json_strict()
    site_id = Ctx.site_id_from_body(body)
    ctx.auth_site(site_id, "write", capability=True)
    ctx.kill_switch(site_id)
    hashes = validate_hash_list(body.get("hashes"), "hashes")
    return presign_many(emu, "PUT", site_id, hashes, emu.upload_ttl_s)


async def chunks_download_urls_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    site_id = ctx.site_id_from_query()
    ctx.auth_site(site_id, "read")
    ctx.kill_switch(site_id)
    hashes = validate_hash_list(ctx.query_all("hash") or None, "hash")
    return presign_many(emu, "GET", site_id, hashes, emu.download_ttl_s)


async def chunks_download_urls_post(ctx: Ctx) -> Response:
    emu = ctx.emu
    body = await ctx.json_strict()
    site_id = Ctx.site_id_from_body(body)
    ctx.auth_site(site_id, "read")
    ctx.kill_switch(site_id)
    hashes = validate_hash_list(body.get("hashes"), "hashes")
    return presign_many(emu, "GET", site_id, hashes, emu.download_ttl_s)


async def chunk_mount(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
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
    await emu.settle()
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
    emu = ctx.emu
    store = emu.store
    digest = ctx.param("digest")
    if not SHA256_RE.match(digest):
        raise validation(
            "digest must be a 64-char lowercase sha-256 hex", {"digest": ["must match ^[0-9a-f]{64}$"]}
        )
    site_id = ctx.site_id_from_query()
    size = ctx.page_size(50, 200)
    ctx.auth_site(site_id, "read")
    ctx.kill_switch(site_id)
    await emu.settle()
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


ROUTES: RouteTable = [
    ("/api/chunks/check", {"POST": chunks_check}),
    ("/api/chunks/upload-urls", {"POST": chunks_upload_urls}),
    ("/api/chunks/download-urls", {"GET": chunks_download_urls_get, "POST": chunks_download_urls_post}),
    ("/api/chunks/{digest}/mount", {"POST": chunk_mount}),
    ("/api/chunks/{digest}/referrers", {"GET": chunk_referrers}),
]
