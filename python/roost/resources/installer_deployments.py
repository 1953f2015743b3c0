"""``client.installer_deployments``: classic installer fan-out to a site's machines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._paging import read_token
from .._wire import api_path, as_bool, as_list, as_opt_str, as_str, expect_object
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id, str_list_arg

__all__ = [
    "InstallerDeploymentDetail",
    "InstallerDeploymentSummary",
    "InstallerDeploymentTarget",
    "InstallerDeployments",
]


@dataclass(slots=True)
class InstallerDeploymentTarget:
    """One machine of an installer deployment and how far it got."""

    machine_id: str
    status: str
    error: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "target") -> InstallerDeploymentTarget:
        row = expect_row(data, where)
        return cls(
            machine_id=require_row_id(row, where, "machineId"),
            status=as_str(row.get("status"), "pending"),
            error=as_opt_str(row.get("error")),
        )


def _targets(value: Any, where: str) -> list[InstallerDeploymentTarget]:
    return [
        InstallerDeploymentTarget.from_payload(item, f"{where} (targets[{index}])")
        for index, item in enumerate(as_list(value))
    ]


@dataclass(slots=True)
class InstallerDeploymentSummary:
    """An installer deployment as listed by ``installer_deployments.list()``."""

    id: str
    name: str
    installer_name: str
    installer_url: str
    silent_flags: str
    verify_path: str | None
    sha256_checksum: str | None
    parallel_install: bool
    targets: list[InstallerDeploymentTarget] = field(default_factory=list)
    status: str = "pending"
    created_at: str | None = None
    completed_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "installer deployment") -> InstallerDeploymentSummary:
        row = expect_row(data, where)
        return cls(
            id=require_row_id(row, where, "id", "deploymentId"),
            name=as_str(row.get("name")),
            installer_name=as_str(row.get("installer_name")),
            installer_url=as_str(row.get("installer_url")),
            silent_flags=as_str(row.get("silent_flags")),
            verify_path=as_opt_str(row.get("verify_path")),
            sha256_checksum=as_opt_str(row.get("sha256_checksum")),
            parallel_install=as_bool(row.get("parallel_install")),
            targets=_targets(row.get("targets"), where),
            status=as_str(row.get("status"), "pending"),
            created_at=as_opt_str(row.get("createdAt")),
            completed_at=as_opt_str(row.get("completedAt")),
            updated_at=as_opt_str(row.get("updatedAt")),
        )


@dataclass(slots=True)
class InstallerDeploymentDetail:
    """One installer deployment (``installer_deployments.get()``)."""

    id: str
    site_id: str
    name: str
    installer_name: str
    installer_url: str
    silent_flags: str
    verify_path: str | None
    sha256_checksum: str | None
    parallel_install: bool
    targets: list[InstallerDeploymentTarget] = field(default_factory=list)
    status: str = "pending"
    created_at: str | None = None
    completed_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_payload(
        cls, data: Any, where: str = "installer deployment", *, site_id: str = ""
    ) -> InstallerDeploymentDetail:
        summary = InstallerDeploymentSummary.from_payload(data, where)
        return cls(
            id=summary.id,
            site_id=as_str(expect_row(data, where).get("siteId")) or site_id,
            name=summary.name,
            installer_name=summary.installer_name,
            installer_url=summary.installer_url,
            silent_flags=summary.silent_flags,
            verify_path=summary.verify_path,
            sha256_checksum=summary.sha256_checksum,
            parallel_install=summary.parallel_install,
            targets=summary.targets,
            status=summary.status,
            created_at=summary.created_at,
            completed_at=summary.completed_at,
            updated_at=summary.updated_at,
        )


class InstallerDeployments(Resource):
    """``client.installer_deployments``. Every mutation carries an Idempotency-Key (required)."""

    def _path(self, site_id: str, *rest: str) -> str:
        return api_path("api", "sites", require_id(site_id, "site_id"), "deployments", *rest)

    async def list(
        self, site_id: str, *, page_size: int | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """One page: ``{"items": list[InstallerDeploymentSummary], "next_page_token": str}``."""
        path = self._path(site_id)
        where = f"GET {path}"
        response = await self._http.request(
            path, query={"page_size": page_size, "page_token": page_token or None}
        )
        data = expect_object(response.data, where)
        return {
            "items": parse_rows(data, ("items",), where, InstallerDeploymentSummary.from_payload),
            "next_page_token": read_token(data, ("next_page_token", "nextPageToken")),
        }

    async def get(self, site_id: str, deployment_id: str) -> InstallerDeploymentDetail:
        path = self._path(site_id, require_id(deployment_id, "deployment_id"))
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        return InstallerDeploymentDetail.from_payload(data, where, site_id=site_id)

    async def create(
        self,
        site_id: str,
        *,
        name: str,
        installer_name: str,
        installer_url: str,
        silent_flags: str,
        machines: Sequence[str],
        verify_path: str | None = None,
        sha256_checksum: str | None = None,
        close_processes: Any = None,
        suppress_projects: Any = None,
        parallel_install: bool = False,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start installing ``installer_url`` (https) on ``machines``.

        ``close_processes`` / ``suppress_projects`` are sent verbatim when not ``None``.
        Returns the raw ``{deploymentId, siteId, status, targets}`` body.
        """
        path = self._path(site_id)
        body: dict[str, Any] = {
            "name": name,
            "installer_name": installer_name,
            "installer_url": installer_url,
            "silent_flags": silent_flags,
            "machines": str_list_arg(machines, "machines"),
        }
        optional = {
            "verify_path": verify_path,
            "sha256_checksum": sha256_checksum,
            "close_processes": close_processes,
            "suppress_projects": suppress_projects,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if parallel_install:
            body["parallel_install"] = True
        response = await self._http.request(path, method="POST", body=body, idempotency_key=idempotency_key)
        return expect_object(response.data, f"POST {path}")

    async def _action(
        self, method: str, site_id: str, deployment_id: str, verb: str | None, idempotency_key: str | None
    ) -> dict[str, Any]:
        rest = [require_id(deployment_id, "deployment_id")] + ([verb] if verb else [])
        path = self._path(site_id, *rest)
        response = await self._http.request(path, method=method, body={}, idempotency_key=idempotency_key)
        return expect_object(response.data, f"{method} {path}")

    async def retry(
        self, site_id: str, deployment_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Re-run the failed targets."""
        return await self._action("POST", site_id, deployment_id, "retry", idempotency_key)

    async def cancel(
        self, site_id: str, deployment_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Cancel the targets that have not started installing."""
        return await self._action("POST", site_id, deployment_id, "cancel", idempotency_key)

    async def uninstall(
        self, site_id: str, deployment_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Queue an uninstall on every target (needs site admin)."""
        return await self._action("POST", site_id, deployment_id, "uninstall", idempotency_key)

    async def delete(
        self, site_id: str, deployment_id: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Delete a finished deployment record (409 ``deployment_in_flight`` otherwise)."""
        return await self._action("DELETE", site_id, deployment_id, None, idempotency_key)
