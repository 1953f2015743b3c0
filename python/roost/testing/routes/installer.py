"""``/api/installer``: agent installer versions, upload, latest and delete."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from starlette.responses import Response

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import iso, now_ms
from .._problems import conflict, not_found, problem, validation

__all__ = [
    "ROUTES",
    "installer_delete",
    "installer_item",
    "installer_latest",
    "installer_list",
    "installer_set_latest",
    "installer_upload_finish",
    "installer_upload_start",
    "installer_version_param",
    "latest_version",
]


_INSTALLER_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")


def installer_item(emu: Emulator, doc: dict[str, Any]) -> dict[str, Any]:
    url, _ = emu.presigner.url("GET", str(doc["storageKey"]), 7 * 24 * 3600)
    item: dict[str, Any] = {
        "version": doc["version"],
        "download_url": url,
        "checksum_sha256": doc.get("checksum_sha256"),
        "release_notes": doc.get("release_notes"),
        "file_size": doc.get("file_size"),
        "uploaded_at": doc.get("uploaded_at"),
        "uploaded_by": doc.get("uploaded_by"),
        "release_date": iso(doc.get("uploaded_at")),
        "deletedAt": doc.get("deletedAt"),
    }
    if doc.get("promoted_at") is not None:
        item["promoted_at"] = doc["promoted_at"]
        item["promoted_by"] = doc.get("promoted_by")
    return item


def latest_version(emu: Emulator) -> str | None:
    store = emu.store
    value = store.meta_get("installer_latest")
    return value or None


def installer_version_param(ctx: Ctx) -> str:
    version = ctx.param("version")
    if not _INSTALLER_VERSION_RE.match(version):
        raise validation("version must be X.Y.Z", {"path.version": ["invalid format"]})
    return version


async def installer_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    size = ctx.page_size(20, 100)
    ctx.auth_platform("installer", "read")
    include_deleted = ctx.query("includeDeleted") == "true"
    rows = sorted(
        store.docs("installer_version", ""), key=lambda r: int(r[1].get("uploaded_at") or 0), reverse=True
    )
    page, token = paginate(
        rows, ctx.page_token(), size, None if include_deleted else (lambda d: d.get("deletedAt") is None)
    )
    return ok(with_pagination({"versions": [installer_item(emu, d) for d in page]}, token))


async def installer_latest(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    ctx.auth_platform("installer", "read")
    latest = latest_version(emu)
    doc = store.get("installer_version", "", latest) if latest else None
    if doc is None:
        raise not_found(
            "no installer version is marked latest",
            title="latest installer not found",
            code="latest_installer_not_found",
        )
    return ok(installer_item(emu, doc))


async def installer_upload_start(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    body = await ctx.json_lenient()
    principal = ctx.auth_platform("installer", "write")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    if not isinstance(body, dict):
        raise validation("request body must be a JSON object")
    version = body.get("version")
    if not isinstance(version, str) or not _INSTALLER_VERSION_RE.match(version):
        raise validation("version must be X.Y.Z", {"body.version": ["invalid format"]})
    file_name = body.get("fileName")
    if not isinstance(file_name, str) or not file_name.lower().endswith(".exe"):
        raise validation(
            "fileName must end with .exe", {"body.fileName": ["must be *.exe"]}, code="invalid_file_name"
        )
    existing = store.get("installer_version", "", version)
    if existing is not None and existing.get("deletedAt") is not None:
        raise conflict(f"installer version {version} is deleted", code="version_deleted")
    upload_id = str(uuid.uuid4())
    storage_key = f"agent-installers/versions/{version}/Owlette-Installer-v{version}.exe"
    url, expires = emu.presigner.url("PUT", storage_key, 15 * 60)
    store.put(
        "installer_upload",
        "",
        upload_id,
        {
            "uploadId": upload_id,
            "version": version,
            "status": "pending",
            "storageKey": storage_key,
            "expiresAt": expires,
            "releaseNotes": body.get("releaseNotes") if isinstance(body.get("releaseNotes"), str) else None,
            "setAsLatest": body.get("setAsLatest", True) is not False,
            "uploadedBy": principal.uid,
        },
    )
    return ok(
        {"uploadUrl": url, "uploadId": upload_id, "storagePath": storage_key, "expiresAt": iso(expires)}
    )


async def installer_upload_finish(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    body = await ctx.json_lenient()
    ctx.auth_platform("installer", "write")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    upload_id = body.get("uploadId") if isinstance(body, dict) else None
    if not isinstance(upload_id, str) or not upload_id:
        raise validation("uploadId is required", {"body.uploadId": ["required"]})
    upload = store.get("installer_upload", "", upload_id)
    if upload is None:
        raise not_found("upload record not found")
    if upload.get("status") != "pending":
        raise conflict("upload is not pending", code="upload_not_pending")
    if now_ms() > int(upload["expiresAt"]):
        raise problem(
            410, "not-found", "upload expired", "the upload window has expired", code="upload_expired"
        )
    path = emu.blobs.root / str(upload["storageKey"])
    try:
        data = path.read_bytes()
    except OSError:
        raise not_found("the installer binary was not uploaded", code="binary_missing") from None
    checksum = hashlib.sha256(data).hexdigest()
    expected = body.get("checksum_sha256")
    if isinstance(expected, str) and expected and expected.lower() != checksum:
        raise problem(
            412,
            "precondition-failed",
            "checksum mismatch",
            f"checksum_sha256 {expected} does not match the uploaded binary ({checksum})",
            code="checksum_mismatch",
        )
    now = now_ms()
    version = str(upload["version"])
    with store.transaction():
        doc = {
            "version": version,
            "storageKey": upload["storageKey"],
            "checksum_sha256": checksum,
            "release_notes": upload.get("releaseNotes"),
            "file_size": len(data),
            "uploaded_at": now,
            "uploaded_by": upload.get("uploadedBy"),
            "deletedAt": None,
        }
        if upload.get("setAsLatest"):
            doc["promoted_at"] = now
            doc["promoted_by"] = upload.get("uploadedBy")
            store.meta_set("installer_latest", version)
        store.put("installer_version", "", version, doc)
        upload["status"] = "completed"
        store.put("installer_upload", "", upload_id, upload)
    item = installer_item(emu, doc)
    return ok(
        {
            "version": version,
            "download_url": item["download_url"],
            "checksum_sha256": checksum,
            "file_size": len(data),
        }
    )


async def installer_set_latest(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    version = installer_version_param(ctx)
    principal = ctx.auth_platform("installer", "admin")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    doc = store.get("installer_version", "", version)
    if doc is None:
        raise not_found(f"installer version {version} not found")
    if doc.get("deletedAt") is not None:
        raise conflict(f"installer version {version} is deleted", code="version_deleted")
    doc["promoted_at"] = now_ms()
    doc["promoted_by"] = principal.uid
    with store.transaction():
        store.put("installer_version", "", version, doc)
        store.meta_set("installer_latest", version)
    return ok({"version": version, "latest": installer_item(emu, doc)})


async def installer_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    version = installer_version_param(ctx)
    ctx.auth_platform("installer", "admin")
    doc = store.get("installer_version", "", version)
    if doc is None:
        raise not_found(f"installer version {version} not found")
    if doc.get("deletedAt") is not None:
        return ok({"version": version, "deletedAt": doc["deletedAt"], "alreadyDeleted": True})
    if latest_version(emu) == version:
        raise conflict(
            f"installer version {version} is the latest; promote another first",
            code="latest_version_protected",
        )
    active = [d for _, d in store.docs("installer_version", "") if d.get("deletedAt") is None]
    if len(active) <= 2:
        raise conflict(
            "deleting this version would leave fewer than 2 active versions",
            code="min_versions_violated",
            minActiveVersions=2,
            currentActiveCount=len(active),
        )
    doc["deletedAt"] = now_ms()
    store.put("installer_version", "", version, doc)
    return ok({"version": version, "deletedAt": doc["deletedAt"], "alreadyDeleted": False})


ROUTES: RouteTable = [
    ("/api/installer", {"GET": installer_list}),
    ("/api/installer/latest", {"GET": installer_latest}),
    ("/api/installer/upload", {"POST": installer_upload_start, "PUT": installer_upload_finish}),
    ("/api/installer/{version}/set-latest", {"POST": installer_set_latest}),
    ("/api/installer/{version}", {"DELETE": installer_delete}),
]
