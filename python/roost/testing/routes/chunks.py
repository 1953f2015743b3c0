"""``/api/chunks``: the dedup check, presigned upload and download URLs, mount and referrers."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from starlette.responses import Response

from .._core import SHA256_RE, Ctx, RouteTable, all_sha256, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import gc_paused, iso, loads, now_ms
from .._problems import not_found, validation
from .._refs import roost_parent
from .._store import Store
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
    "record_version_referrer",
    "referrer_rows",
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


# -- referrer entries -------------------------------------------------------------------------
#
# The server writes ``chunk_referrers/{digest}/entries/version_{roostId}_{versionId}`` for every
# chunk of a version it creates: 20,000 rows for a 20,000-file version, which cost the emulator
# more CPU than the whole publish. A publish here stores ONE record per created version instead
# (its head fields and where its body is), and the referrers route derives a chunk's per-version
# fields from that body, which is immutable: content-addressed and never deleted. Mount entries,
# and the per-chunk rows of emulators before this one, stay in "referrer" under the chunk.

VERSION_REFERRERS = "version_referrer"
# a usage map holds ~225 bytes a distinct chunk (hash and path strings included): ~56 MB at
# most, a dozen versions of 20,000 files
_USAGE_CACHE_CHUNKS = 250_000


def record_version_referrer(
    store: Store, site_id: str, roost_id: str, version_id: str, number: int, uid: str, now: int
) -> None:
    """The referrer entries of a version the publish created, as one record (in its transaction)."""
    store.put(
        VERSION_REFERRERS,
        site_id,
        f"version_{roost_id}_{version_id}",
        {
            "source": "version",
            "roostId": roost_id,
            "versionId": version_id,
            "versionNumber": number,
            "createdAt": now,
            "createdBy": uid,
            "mountedAt": now,
            "bodyParent": roost_parent(site_id, roost_id),
        },
        new_seq=True,
    )


class Usage:
    """Per chunk of a stored (so validated) version body, the fields of its referrer entry: the
    distinct paths using it and the sum of its sizes over every occurrence."""

    __slots__ = ("_paths", "_sizes")

    def __init__(self, body: Any) -> None:
        # a path, or the set of them once a second one uses the chunk: one set per chunk made
        # the map of a 20,000-file version cost twice as much
        paths: dict[str, str | set[str]] = {}
        sizes: dict[str, int | float] = {}
        for entry in body["files"]:
            path = entry["path"]
            for chunk in entry["chunks"]:
                digest = chunk["hash"]
                held = paths.get(digest)
                if held is None:
                    paths[digest] = path
                    sizes[digest] = chunk["size"]
                    continue
                if isinstance(held, str):
                    if held != path:
                        paths[digest] = {held, path}
                else:
                    held.add(path)
                sizes[digest] += chunk["size"]
        self._paths = paths
        self._sizes = sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def get(self, digest: str) -> tuple[int, int | float] | None:
        """``(fileCount, totalBytes)`` of ``digest``, or ``None`` when the version does not use it."""
        held = self._paths.get(digest)
        if held is None:
            return None
        total = self._sizes[digest]
        # as the per-chunk rows stored it: an integral float total is written as an integer
        if type(total) is float and total.is_integer():
            total = int(total)
        return (1 if isinstance(held, str) else len(held), total)


class _UsageCache:
    """Usage maps by version id, least recently used first out, bounded by their total size. A
    version id is the SHA-256 of the body's text, so one map serves every site and emulator."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._held = 0
        self._maps: OrderedDict[str, Usage] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version_id: str) -> Usage | None:
        with self._lock:
            usage = self._maps.get(version_id)
            if usage is not None:
                self._maps.move_to_end(version_id)
            return usage

    def put(self, version_id: str, usage: Usage) -> None:
        with self._lock:
            if version_id in self._maps:
                return
            self._maps[version_id] = usage
            self._held += len(usage)
            while self._held > self._limit and len(self._maps) > 1:
                _, dropped = self._maps.popitem(last=False)
                self._held -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._maps.clear()
            self._held = 0


usage_cache = _UsageCache(_USAGE_CACHE_CHUNKS)


def _chunk_usage(store: Store, record: dict[str, Any], digest: str) -> tuple[int, int | float] | None:
    version_id = str(record.get("versionId"))
    usage = usage_cache.get(version_id)
    if usage is None:
        text = store.get_text("version_body", str(record.get("bodyParent")), version_id)
        # a body that does not name the chunk is not parsed (a text search is ~1 ms, a parse ~50)
        if text is None or digest not in text:
            return None
        with gc_paused():
            usage = Usage(loads(text))
        usage_cache.put(version_id, usage)
    return usage.get(digest)


def referrer_rows(store: Store, site_id: str, digest: str) -> list[tuple[str, dict[str, Any]]]:
    """Every referrer entry of a chunk as ``(entryId, doc)``, newest first: mount entries and old
    per-chunk rows, merged by list position with the version records whose body uses the chunk."""
    merged: dict[str, tuple[int, dict[str, Any]]] = {}
    for entry_id, seq, doc in store.docs_with_seq("referrer", f"{site_id}/{digest}"):
        merged[entry_id] = (seq, doc)
    for entry_id, seq, record in store.docs_with_seq(VERSION_REFERRERS, site_id):
        kept = merged.get(entry_id)
        if kept is not None and kept[0] > seq:
            continue
        used = _chunk_usage(store, record, digest)
        if used is None:
            continue
        count, total = used
        fields = {k: record.get(k) for k in ("source", "roostId", "versionId", "versionNumber")}
        derived = {"fileCount": count, "pathCount": count, "totalBytes": total}
        times = {k: record.get(k) for k in ("createdAt", "createdBy", "mountedAt")}
        merged[entry_id] = (seq, {**fields, **derived, **times})
    ordered = sorted(merged.items(), key=lambda item: item[1][0], reverse=True)
    return [(entry_id, doc) for entry_id, (_, doc) in ordered]


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
    rows = [(rid, {**doc, "_id": rid}) for rid, doc in referrer_rows(store, site_id, digest)]
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
