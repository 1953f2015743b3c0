"""``client.roosts``: list, inspect, create, edit, delete, publish, roll back and deploy roosts."""

from __future__ import annotations

import builtins
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._paging import follow_pages, read_token, start_token
from .._pull.types import (
    PullOptions,
    PullProgressDiscover,
    PullProgressDownload,
    PullProgressEvent,
    PullProgressPlan,
    PullResult,
    PullStats,
    UnsafeManifestPathError,
)
from .._push.types import (
    DiscoverProgress,
    HashProgress,
    PushOptions,
    PushPlan,
    PushProgressCheckMissing,
    PushProgressEvent,
    PushProgressPublish,
    PushProgressUpload,
    PushResult,
    PushStats,
)
from .._wire import (
    api_path,
    as_bool,
    as_dict,
    as_int,
    as_opt_int,
    as_opt_str,
    as_str,
    as_str_list,
    drop_none,
    expect_object,
)
from ._base import Resource
from ._common import (
    VersionRef,
    expect_row,
    parse_rows,
    require_id,
    require_row_id,
    str_list_arg,
    target_version_payload,
)

__all__ = [
    "DeployOptions",
    "DeployResult",
    "DiscoverProgress",
    "HashProgress",
    "PullOptions",
    "PullProgressDiscover",
    "PullProgressDownload",
    "PullProgressEvent",
    "PullProgressPlan",
    "PullResult",
    "PullStats",
    "PushOptions",
    "PushPlan",
    "PushProgressCheckMissing",
    "PushProgressEvent",
    "PushProgressPublish",
    "PushProgressUpload",
    "PushResult",
    "PushStats",
    "RollbackOptions",
    "RollbackResult",
    "RoostDetail",
    "RoostSummary",
    "Roosts",
    "UnsafeManifestPathError",
    "VersionSummary",
]


@dataclass(slots=True)
class RoostSummary:
    """A roost as listed by ``roosts.list()`` (and returned by ``roosts.create()``)."""

    roost_id: str
    site_id: str
    name: str
    targets: list[str] = field(default_factory=list)
    current_version_id: str | None = None
    previous_version_id: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: str | None = None
    extract_path: str | None = None
    version_counter: int | None = None
    tombstone_expires_at: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "roost") -> RoostSummary:
        row = expect_row(data, where)
        return cls(
            roost_id=require_row_id(row, where, "roostId"),
            site_id=as_str(row.get("siteId")),
            name=as_str(row.get("name")),
            targets=as_str_list(row.get("targets")),
            current_version_id=as_opt_str(row.get("currentVersionId")),
            previous_version_id=as_opt_str(row.get("previousVersionId")),
            created_at=as_opt_str(row.get("createdAt")),
            updated_at=as_opt_str(row.get("updatedAt")),
            deleted_at=as_opt_str(row.get("deletedAt")),
            extract_path=as_opt_str(row.get("extractPath")),
            version_counter=as_opt_int(row.get("versionCounter")),
            tombstone_expires_at=as_opt_str(row.get("tombstoneExpiresAt")),
        )


@dataclass(slots=True)
class VersionSummary:
    """A published version as embedded in :class:`RoostDetail` (``current_version`` / ``previous_version``)."""

    version_id: str
    version_number: int = 0
    description: str | None = None
    version_url: str | None = None
    created_at: str | None = None
    created_by: str | None = None
    total_size: int = 0
    total_files: int = 0
    parent_version_id: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "version") -> VersionSummary:
        row = expect_row(data, where)
        return cls(
            version_id=require_row_id(row, where, "versionId"),
            version_number=as_int(row.get("versionNumber")),
            description=as_opt_str(row.get("description")),
            version_url=as_opt_str(row.get("versionUrl")),
            created_at=as_opt_str(row.get("createdAt")),
            created_by=as_opt_str(row.get("createdBy")),
            total_size=as_int(row.get("totalSize")),
            total_files=as_int(row.get("totalFiles")),
            parent_version_id=as_opt_str(row.get("parentVersionId")),
        )


def _opt_version(value: Any, where: str) -> VersionSummary | None:
    return None if value is None else VersionSummary.from_payload(value, where)


@dataclass(slots=True)
class RoostDetail:
    """One roost with its current and previous versions as objects (``roosts.get()``)."""

    roost_id: str
    site_id: str
    name: str
    targets: list[str] = field(default_factory=list)
    extract_path: str | None = None
    schema_version: int = 2
    version_counter: int = 0
    current_version_id: str | None = None
    previous_version_id: str | None = None
    version_url: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: str | None = None
    current_version: VersionSummary | None = None
    previous_version: VersionSummary | None = None
    created_by: str | None = None
    tombstone_expires_at: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "roost") -> RoostDetail:
        row = expect_row(data, where)
        return cls(
            roost_id=require_row_id(row, where, "roostId"),
            site_id=as_str(row.get("siteId")),
            name=as_str(row.get("name")),
            targets=as_str_list(row.get("targets")),
            extract_path=as_opt_str(row.get("extractPath")),
            schema_version=as_int(row.get("schemaVersion")) or 2,
            version_counter=as_int(row.get("versionCounter")),
            current_version_id=as_opt_str(row.get("currentVersionId")),
            previous_version_id=as_opt_str(row.get("previousVersionId")),
            version_url=as_opt_str(row.get("versionUrl")),
            created_at=as_opt_str(row.get("createdAt")),
            updated_at=as_opt_str(row.get("updatedAt")),
            deleted_at=as_opt_str(row.get("deletedAt")),
            current_version=_opt_version(row.get("currentVersion"), f"{where} (currentVersion)"),
            previous_version=_opt_version(row.get("previousVersion"), f"{where} (previousVersion)"),
            created_by=as_opt_str(row.get("createdBy")),
            tombstone_expires_at=as_opt_str(row.get("tombstoneExpiresAt")),
        )


@dataclass(slots=True)
class RollbackOptions:
    """Options of :meth:`Roosts.rollback`.

    ``target_version`` accepts ``3`` / ``"#3"`` / ``"v3"`` (the third publish), a version id, or
    ``"current"`` / ``"previous"`` / ``"first"``; ``None`` reverts one step (server default
    ``"previous"``). Ints are sent as JSON numbers, strings as given (trimmed).
    """

    site_id: str
    target_version: VersionRef | None = None
    idempotency_key: str | None = None


@dataclass(slots=True)
class RollbackResult:
    """The roost's head after a rollback."""

    current_version_id: str
    previous_version_id: str | None = None
    current_version_number: int | None = None
    roost_id: str | None = None
    site_id: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "rollback") -> RollbackResult:
        row = expect_row(data, where)
        return cls(
            current_version_id=require_row_id(row, where, "currentVersionId"),
            previous_version_id=as_opt_str(row.get("previousVersionId")),
            current_version_number=as_opt_int(row.get("currentVersionNumber")),
            roost_id=as_opt_str(row.get("roostId")),
            site_id=as_opt_str(row.get("siteId")),
        )


@dataclass(slots=True)
class DeployOptions:
    """Options of :meth:`Roosts.deploy`.

    ``version_id`` defaults server-side to the roost's current version; ``machines`` to its
    targets (``None``); ``schedule_at`` is an ISO-8601 UTC string or an aware ``datetime``;
    ``dry_run=True`` plans the rollout without writing anything.
    """

    site_id: str
    version_id: str | None = None
    machines: list[str] | None = None
    schedule_at: str | datetime | None = None
    dry_run: bool = False
    idempotency_key: str | None = None


@dataclass(slots=True)
class DeployResult:
    """The rollout a deploy created (or found already running, or planned in a dry run)."""

    rollout_id: str
    version_id: str
    site_id: str
    roost_id: str
    stage: str
    canary: list[str] = field(default_factory=list)
    fleet: list[str] = field(default_factory=list)
    extract_root: str = ""
    version_url: str = ""
    dry_run: bool = False
    already_running: bool = False
    scheduled: dict[str, Any] | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "deploy") -> DeployResult:
        row = expect_row(data, where)
        return cls(
            rollout_id=require_row_id(row, where, "rolloutId"),
            version_id=as_str(row.get("versionId")),
            site_id=as_str(row.get("siteId")),
            roost_id=as_str(row.get("roostId")),
            stage=as_str(row.get("stage")),
            canary=as_str_list(row.get("canary")),
            fleet=as_str_list(row.get("fleet")),
            extract_root=as_str(row.get("extractRoot")),
            version_url=as_str(row.get("versionUrl")),
            dry_run=as_bool(row.get("dryRun")),
            already_running=as_bool(row.get("alreadyRunning")),
            scheduled=as_dict(row.get("scheduled")),
        )


def _schedule_text(value: str | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                "DeployOptions.schedule_at must be timezone-aware (e.g. datetime.now(timezone.utc))"
            )
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"DeployOptions.schedule_at must be an ISO-8601 string or a datetime, got {value!r}")
    return value


class Roosts(Resource):
    """``client.roosts``."""

    async def list_page(
        self,
        *,
        site_id: str,
        page_size: int | None = None,
        page_token: str | None = None,
        cursor: str | None = None,
        include_deleted: bool = False,
    ) -> tuple[builtins.list[RoostSummary], str]:
        """One page of roosts and the cursor of the next (``""`` on the last page).

        ``cursor`` is an alias of ``page_token`` (``page_token`` wins when both are given).
        """
        require_id(site_id, "site_id")
        where = "GET /api/roosts"
        response = await self._http.request(
            "/api/roosts",
            query={
                "siteId": site_id,
                "page_size": page_size,
                "page_token": start_token(page_token, cursor),
                "includeDeleted": True if include_deleted else None,
            },
        )
        data = expect_object(response.data, where)
        return parse_rows(data, ("roosts",), where, RoostSummary.from_payload), read_token(data)

    async def list(
        self, *, site_id: str, include_deleted: bool = False, page_size: int = 50
    ) -> AsyncIterator[RoostSummary]:
        """Every roost of the site (newest first), following page tokens transparently."""
        require_id(site_id, "site_id")

        async def fetch(token: str | None) -> tuple[builtins.list[RoostSummary], str]:
            return await self.list_page(
                site_id=site_id, page_size=page_size, page_token=token, include_deleted=include_deleted
            )

        async for row in follow_pages(fetch):
            yield row

    async def get(self, roost_id: str, *, site_id: str) -> RoostDetail:
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"))
        response = await self._http.request(path, query={"siteId": require_id(site_id, "site_id")})
        return RoostDetail.from_payload(expect_object(response.data, f"GET {path}"), f"GET {path}")

    async def create(
        self,
        *,
        site_id: str,
        name: str,
        targets: Sequence[str] | None = None,
        extract_path: str | None = None,
        roost_id: str | None = None,
    ) -> RoostSummary:
        """Create a roost (the server generates ``rst_<hex>`` when ``roost_id`` is omitted)."""
        body = drop_none(
            {
                "siteId": require_id(site_id, "site_id"),
                "name": name,
                "targets": None if targets is None else str_list_arg(targets, "targets"),
                "extractPath": extract_path,
                "roostId": None if roost_id is None else require_id(roost_id, "roost_id"),
            }
        )
        response = await self._http.request("/api/roosts", method="POST", body=body)
        return RoostSummary.from_payload(expect_object(response.data, "POST /api/roosts"), "POST /api/roosts")

    async def patch(
        self,
        roost_id: str,
        *,
        site_id: str,
        name: str | None = None,
        targets: Sequence[str] | None = None,
        extract_path: str | None = None,
    ) -> dict[str, Any]:
        """Rename / retarget a roost. Returns the raw ``{roostId, siteId, updated}`` body."""
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"))
        if name is None and targets is None and extract_path is None:
            raise ValueError("roosts.patch: give at least one of name, targets, extract_path")
        body = drop_none(
            {
                "siteId": require_id(site_id, "site_id"),
                "name": name,
                "targets": None if targets is None else str_list_arg(targets, "targets"),
                "extractPath": extract_path,
            }
        )
        response = await self._http.request(path, method="PATCH", body=body)
        return expect_object(response.data, f"PATCH {path}")

    async def remove(self, roost_id: str, *, site_id: str) -> dict[str, Any]:
        """Soft-delete (re-create with the same id within 30 days to undo). Returns the raw body."""
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"))
        response = await self._http.request(
            path, method="DELETE", query={"siteId": require_id(site_id, "site_id")}
        )
        return expect_object(response.data, f"DELETE {path}")

    async def push(self, dir_path: str | os.PathLike[str], roost_id: str, opts: PushOptions) -> PushResult:
        """Publish a directory as a new version: chunk, dedup-check, upload what is missing, publish."""
        from .._push.engine import push_directory  # lazy: keeps ``import roost`` light

        return await push_directory(self._http, dir_path, roost_id, opts)

    async def pull(self, roost_id: str, dest: str | os.PathLike[str], opts: PullOptions) -> PullResult:
        """Rebuild a version under ``dest``: verified, atomic per file, transferring only what differs."""
        raise NotImplementedError("pull: being built (issue 13)")

    async def rollback(self, roost_id: str, opts: RollbackOptions) -> RollbackResult:
        """Point the roost back at an earlier version (no new version is created)."""
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"), "rollback")
        body: dict[str, Any] = {"siteId": require_id(opts.site_id, "RollbackOptions.site_id")}
        if opts.target_version is not None:
            body["targetVersion"] = target_version_payload(
                opts.target_version, "RollbackOptions.target_version"
            )
        response = await self._http.request(
            path, method="POST", body=body, idempotency_key=opts.idempotency_key
        )
        where = f"POST {path}"
        return RollbackResult.from_payload(expect_object(response.data, where), where)

    async def deploy(self, roost_id: str, opts: DeployOptions) -> DeployResult:
        """Start (or schedule, or dry-run) a canary-then-fleet rollout of a version."""
        path = api_path("api", "roosts", require_id(roost_id, "roost_id"), "deploy")
        body: dict[str, Any] = {"siteId": require_id(opts.site_id, "DeployOptions.site_id")}
        if opts.version_id is not None:
            body["versionId"] = require_id(opts.version_id, "DeployOptions.version_id")
        if opts.machines is not None:
            machines = str_list_arg(opts.machines, "DeployOptions.machines")
            if not machines:
                raise ValueError(
                    "DeployOptions.machines must not be empty (use None for the roost's targets)"
                )
            body["machines"] = machines
        if opts.schedule_at is not None:
            body["scheduleAt"] = _schedule_text(opts.schedule_at)
        if opts.dry_run:
            body["dryRun"] = True
        response = await self._http.request(
            path, method="POST", body=body, idempotency_key=opts.idempotency_key
        )
        where = f"POST {path}"
        return DeployResult.from_payload(expect_object(response.data, where), where)
