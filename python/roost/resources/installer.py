"""``client.installer``: the agent installer catalogue (superadmin; keys need ``installer=*``)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from .._paging import read_token
from .._transport import StorageClient
from .._wire import api_path, as_opt_int, as_opt_str, expect_object
from ..client import new_idempotency_key
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id

__all__ = ["Installer", "InstallerVersion"]

UPLOAD_KEY_PREFIX = "py-sdk-installer-upload-"
DELETE_KEY_PREFIX = "py-sdk-installer-delete-"


@dataclass(slots=True)
class InstallerVersion:
    """One installer build. Timestamps ``uploaded_at`` / ``deleted_at`` / ``promoted_at`` are ms epochs."""

    version: str
    download_url: str | None = None
    checksum_sha256: str | None = None
    release_notes: str | None = None
    file_size: int | None = None
    uploaded_at: int | None = None
    uploaded_by: str | None = None
    deleted_at: int | None = None
    release_date: str | None = None
    promoted_at: int | None = None
    promoted_by: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "installer version") -> InstallerVersion:
        row = expect_row(data, where)
        return cls(
            version=require_row_id(row, where, "version"),
            download_url=as_opt_str(row.get("download_url")),
            checksum_sha256=as_opt_str(row.get("checksum_sha256")),
            release_notes=as_opt_str(row.get("release_notes")),
            file_size=as_opt_int(row.get("file_size")),
            uploaded_at=as_opt_int(row.get("uploaded_at")),
            uploaded_by=as_opt_str(row.get("uploaded_by")),
            deleted_at=as_opt_int(row.get("deletedAt")),
            release_date=as_opt_str(row.get("release_date")),
            promoted_at=as_opt_int(row.get("promoted_at")),
            promoted_by=as_opt_str(row.get("promoted_by")),
        )


def _sha256_of(path: str) -> str:
    """Blocking: the file's SHA-256, read in 1 MiB pieces (an installer may be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(1024 * 1024):
            digest.update(piece)
    return digest.hexdigest()


class Installer(Resource):
    """``client.installer``."""

    async def list(
        self, *, include_deleted: bool = False, page_size: int | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """One page: ``{"versions": list[InstallerVersion], "next_page_token": str}`` (newest first)."""
        where = "GET /api/installer"
        response = await self._http.request(
            "/api/installer",
            query={
                "includeDeleted": True if include_deleted else None,
                "page_size": page_size,
                "page_token": page_token or None,
            },
        )
        data = expect_object(response.data, where)
        return {
            "versions": parse_rows(data, ("versions",), where, InstallerVersion.from_payload),
            "next_page_token": read_token(data),
        }

    async def latest(self) -> InstallerVersion:
        """The version agents install by default (404 ``latest_installer_not_found`` when none)."""
        where = "GET /api/installer/latest"
        data = expect_object((await self._http.request("/api/installer/latest")).data, where)
        return InstallerVersion.from_payload(data, where)

    async def upload(
        self,
        file_path: str | os.PathLike[str],
        *,
        version: str,
        release_notes: str | None = None,
        set_as_latest: bool = True,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Upload an installer binary: start, PUT the bytes to the signed URL, finalize.

        The start and finalize calls share one Idempotency-Key. The binary is streamed from disk
        to storage through the SDK's credential-free storage client (one attempt;
        ``RoostConnectionError`` when storage cannot be reached, ``RuntimeError`` on an error
        status). Returns the raw finalize body (``version``, ``download_url``,
        ``checksum_sha256``, ``file_size``).
        """
        require_id(version, "version")
        path = anyio.Path(file_path)
        checksum = await anyio.to_thread.run_sync(_sha256_of, os.fspath(file_path))
        key = idempotency_key or new_idempotency_key(UPLOAD_KEY_PREFIX)
        start_body: dict[str, Any] = {"version": version, "fileName": path.name, "setAsLatest": set_as_latest}
        if release_notes is not None:
            start_body["releaseNotes"] = release_notes
        started = expect_object(
            (
                await self._http.request(
                    "/api/installer/upload", method="POST", body=start_body, idempotency_key=key
                )
            ).data,
            "POST /api/installer/upload",
        )
        upload_url = require_row_id(started, "POST /api/installer/upload", "uploadUrl")
        upload_id = require_row_id(started, "POST /api/installer/upload", "uploadId")
        target = str(httpx.URL(self._http.api_url + "/").join(upload_url))
        async with StorageClient(self._http) as storage:
            await storage.upload_file(target, file_path, what="installer upload to storage")
        finalized = await self._http.request(
            "/api/installer/upload",
            method="PUT",
            body={"uploadId": upload_id, "checksum_sha256": checksum},
            idempotency_key=key,
        )
        return expect_object(finalized.data, "PUT /api/installer/upload")

    async def set_latest(self, version: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Promote ``version`` to latest. Returns ``{version, latest}`` raw."""
        path = api_path("api", "installer", require_id(version, "version"), "set-latest")
        response = await self._http.request(path, method="POST", body={}, idempotency_key=idempotency_key)
        return expect_object(response.data, f"POST {path}")

    async def delete(self, version: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Soft-delete ``version`` (the latest and the last two active ones are protected)."""
        path = api_path("api", "installer", require_id(version, "version"))
        response = await self._http.request(
            path, method="DELETE", idempotency_key=idempotency_key, key_prefix=DELETE_KEY_PREFIX
        )
        return expect_object(response.data, f"DELETE {path}")
