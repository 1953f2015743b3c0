"""``/api/roosts/{roostId}/versions``: publish, list, read, patch, files and diff."""

from __future__ import annotations

import math
import re
from operator import itemgetter
from typing import Any, TypeGuard

from starlette.responses import Response

from .._core import SHA256_RE, Ctx, RouteTable, all_sha256, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import (
    MAX_SAFE,
    canonical_json,
    gc_paused,
    iso,
    js_len,
    loads_unchecked,
    now_ms,
    only_safe_integers,
    sha256_hex,
)
from .._problems import not_found, problem, validation
from .._refs import resolve_version, roost_parent
from .._webhooks import enqueue_event
from ._shared import version_summary
from .chunks import record_version_referrer
from .roosts import validate_targets

__all__ = [
    "ROUTES",
    "body_gone",
    "load_body",
    "validate_version",
    "validate_version_hashes",
    "version_diff",
    "version_files",
    "version_get",
    "version_patch",
    "versions_list",
    "versions_publish",
]


MEDIA_TYPE = "application/vnd.owlette.version.v1+json"


MANIFEST_HOST = "https://owlette-emulator-manifests.r2.local"


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


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_version(version: Any) -> list[dict[str, Any]]:
    """The version's file entries, once the whole version is valid (else a 400 naming the field)."""
    return validate_version_hashes(version)[0]


def validate_version_hashes(
    version: Any, plain: list[str] | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`validate_version`, and every chunk hash of the files in order (one pass for both).
    ``plain``: what :func:`_plainly_valid` answered for these files already."""
    if not isinstance(version, dict):
        raise validation(
            "field `version` is required (oci version object)",
            {"body.version": ["must be a version object"]},
        )
    if version.get("schemaVersion") != 2 or isinstance(version.get("schemaVersion"), bool):
        raise validation("version.schemaVersion must be 2", {"body.version.schemaVersion": ["expected 2"]})
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
    digests = plain if plain is not None else _plainly_valid(files)
    if digests is None:
        _explain_invalid(files)
        digests = [c["hash"] for f in files for c in f["chunks"]]
    return files, digests


def _plainly_valid(files: list[Any]) -> list[str] | None:
    """The common shape (objects with exactly a path, a size and chunks, safe integer sizes,
    chunks with exactly a hash and a size), checked in one tight pass with one regex over every
    hash; returns every chunk hash in order. ``None`` means "not sure": :func:`_explain_invalid`
    decides and names the first bad entry. A value it vouches for holds no float and no integer
    past 2**53, so an orjson parse of it is exact (:func:`_parsed_fast`)."""
    digests: list[Any] = []
    add = digests.append
    try:
        for entry in files:
            if type(entry) is not dict or len(entry) != 3:
                return None
            path, size, chunks = entry["path"], entry["size"], entry["chunks"]
            if (
                type(path) is not str
                or not path
                or type(size) is not int
                or not 0 <= size <= MAX_SAFE
                or type(chunks) is not list
            ):
                return None
            for chunk in chunks:
                if type(chunk) is not dict or len(chunk) != 2:
                    return None
                add(chunk["hash"])
                chunk_size = chunk["size"]
                if type(chunk_size) is not int or not 0 < chunk_size <= MAX_SAFE:
                    return None
    except KeyError:
        return None
    return digests if all_sha256(digests) else None


def _explain_invalid(files: list[Any]) -> None:
    """Raise the 400 for the first invalid file entry (float sizes and the like pass)."""
    hash_ok = SHA256_RE.match
    for i, entry in enumerate(files):
        # the happy path builds no strings: this loop runs 20,000 times for a large tree
        if type(entry) is not dict:
            where = f"body.version.files[{i}]"
            raise validation(f"version.files[{i}] must be an object", {where: ["required object"]})
        path = entry.get("path")
        if type(path) is not str or not path:
            where = f"body.version.files[{i}]"
            raise validation(f"version.files[{i}].path is required", {f"{where}.path": ["required string"]})
        size = entry.get("size")
        if not (type(size) is int and size >= 0) and (not _is_number(size) or size < 0):
            where = f"body.version.files[{i}]"
            raise validation(
                f"version.files[{i}].size must be non-negative number",
                {f"{where}.size": ["required non-negative number"]},
            )
        chunks = entry.get("chunks")
        if type(chunks) is not list:
            where = f"body.version.files[{i}]"
            raise validation(
                f"version.files[{i}].chunks must be an array", {f"{where}.chunks": ["required array"]}
            )
        for j, chunk in enumerate(chunks):
            if type(chunk) is dict:
                digest, chunk_size = chunk.get("hash"), chunk.get("size")
                if (
                    type(digest) is str
                    and hash_ok(digest)
                    and (
                        (type(chunk_size) is int and chunk_size > 0)
                        or (_is_number(chunk_size) and chunk_size > 0)
                    )
                ):
                    continue
            where = f"body.version.files[{i}]"
            raise validation(
                f"version.files[{i}].chunks[{j}] must have hash (64-char lowercase hex) + positive size",
                {f"{where}.chunks[{j}]": ["invalid chunk entry"]},
            )


async def versions_publish(ctx: Ctx) -> Response:
    # the parsed manifest (80,000 containers for 20,000 files) is freed when _publish returns,
    # before the collector, paused until then, would have passed over it
    with gc_paused():
        return await _publish(ctx)


async def _publish_body(ctx: Ctx) -> tuple[Any, list[str] | None]:
    """The publish body and, when already known, every chunk hash of its version's files."""
    fast = _parsed_fast(await ctx.body())
    if fast is not None:
        return fast
    # (the fast value is gone: a large body is not held twice while it is parsed again)
    return await ctx.json_lenient(), None


def _parsed_fast(raw: bytes) -> tuple[Any, list[str]] | None:
    """A publish body parsed by orjson (half the time of the exact parser on a 20,000-file
    manifest) and every chunk hash of its files, or ``None``: not sure, parse it exactly.

    orjson's value is ``JSON.parse``'s once it holds no float and no integer past 2**53: for the
    files, :func:`_plainly_valid`, which validation runs anyway, shows that; a walk shows it for
    the rest of the body."""
    value: Any = loads_unchecked(raw)
    version = value.get("version") if type(value) is dict else None
    if type(version) is dict and type(files := version.get("files")) is list and files:
        digests = _plainly_valid(files)
        rest = [v for k, v in value.items() if k != "version"]
        rest += [v for k, v in version.items() if k != "files"]
        if digests is not None and only_safe_integers(rest):
            return value, digests
    return None


async def _publish(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    body, plain = await _publish_body(ctx)
    site_id = Ctx.site_id_from_body(body)
    principal = ctx.auth_roost(site_id, roost_id, "write")
    ctx.kill_switch(site_id)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    instance = f"/api/roosts/{roost_id}/versions"
    version = body.get("version")
    files, hashes = validate_version_hashes(version, plain)
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
    description = checked_description(body.get("description"), "description must be a string when provided")
    expected_set = "expectedCurrentVersionId" in body
    expected = body.get("expectedCurrentVersionId")
    if expected_set and expected is not None and not isinstance(expected, str):
        raise validation(
            "expectedCurrentVersionId must be a string or null when provided",
            {"body.expectedCurrentVersionId": ["must be a string or null"]},
        )
    distinct = list(dict.fromkeys(hashes))
    missing = emu.chunks.missing(site_id, distinct)
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
    canonical = canonical_json(version, floats=bool(ctx.float_literals))
    version_id = sha256_hex(canonical)
    version_url = f"{MANIFEST_HOST}/project-manifests/{site_id}/{roost_id}/{version_id}.json"
    parent = roost_parent(site_id, roost_id)
    now = now_ms()
    total_size = sum(map(itemgetter("size"), files))
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
        # the canonical text is JSON of the same object: no second encoding of a large manifest
        store.put_text("version_body", parent, version_id, canonical)
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
        record_version_referrer(store, site_id, roost_id, version_id, number, principal.uid, now)
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


async def versions_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
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


def load_body(emu: Emulator, site_id: str, roost_id: str, version_id: str) -> Any:
    store = emu.store
    text = store.get_text("version_body", roost_parent(site_id, roost_id), version_id)
    if text is None:
        return None
    from .._jsonutil import loads

    return loads(text)


def body_gone(version_id: str, title: str = "version body gone") -> Exception:
    return problem(
        410,
        "not-found",
        title,
        f"version {version_id} metadata exists but the body has been reclaimed",
    )


async def version_get(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    roost_id = Ctx.resource_id(ctx.param("roostId"))
    site_id = ctx.site_id_from_query()
    ctx.auth_roost(site_id, roost_id, "read")
    ctx.kill_switch(site_id)
    doc = resolve_version(store, site_id, roost_id, ctx.param("versionRef"), instance=ctx.path)
    version = load_body(emu, site_id, roost_id, doc["versionId"])
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
    emu = ctx.emu
    store = emu.store
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
    emu = ctx.emu
    store = emu.store
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
    version = load_body(emu, site_id, roost_id, doc["versionId"])
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
    emu = ctx.emu
    store = emu.store
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
    to_body = load_body(emu, site_id, roost_id, to_doc["versionId"])
    if not isinstance(to_body, dict):
        raise body_gone(to_doc["versionId"])
    from_body = load_body(emu, site_id, roost_id, from_doc["versionId"])
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


ROUTES: RouteTable = [
    ("/api/roosts/{roostId}/versions", {"GET": versions_list, "POST": versions_publish}),
    ("/api/roosts/{roostId}/versions/{versionRef}", {"GET": version_get, "PATCH": version_patch}),
    ("/api/roosts/{roostId}/versions/{versionRef}/files", {"GET": version_files}),
    ("/api/roosts/{roostId}/versions/{versionRef}/diff", {"GET": version_diff}),
]
