"""``client.machines``: a site's machines, what they run, and remote commands."""

from __future__ import annotations

import builtins
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin

import anyio

from .._transport import StorageClient
from .._wire import api_path, as_dict, as_list, as_opt_int, as_opt_str, as_str, expect_object
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id, unwrap_data

__all__ = [
    "CommandStatus",
    "CommandType",
    "MachineDeployment",
    "MachineDetail",
    "MachineSummary",
    "Machines",
]

#: Command types the SDK documents (the server accepts a few more; any string is sent as given).
CommandType = Literal["reboot_machine", "shutdown_machine", "capture_screenshot"]
CommandStatus = Literal["pending", "in_progress", "completed", "failed"]

SCREENSHOT_POLL_INTERVAL_S = 1.5
SCREENSHOT_MAX_POLLS = 40


def _online(value: Any) -> bool:
    return value is True


@dataclass(slots=True)
class MachineSummary:
    """A machine as listed by ``machines.list()``. ``current_roosts`` are raw dicts."""

    id: str
    name: str
    online: bool = False
    last_heartbeat: str | None = None
    agent_version: str | None = None
    os: str | None = None
    current_roosts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_payload(cls, data: Any, where: str = "machine") -> MachineSummary:
        row = expect_row(data, where)
        machine_id = require_row_id(row, where, "id", "machineId")
        return cls(
            id=machine_id,
            name=as_str(row.get("name")) or machine_id,
            online=_online(row.get("online")),
            last_heartbeat=as_opt_str(row.get("lastHeartbeat")),
            agent_version=as_opt_str(row.get("agentVersion")),
            os=as_opt_str(row.get("os")),
            current_roosts=[item for item in as_list(row.get("currentRoosts")) if isinstance(item, dict)],
        )


@dataclass(slots=True)
class MachineDetail:
    """One machine (``machines.get()``). ``metrics`` and ``processes`` are raw."""

    id: str
    site_id: str
    name: str
    online: bool = False
    last_heartbeat: str | None = None
    agent_version: str | None = None
    os: str | None = None
    hostname: str | None = None
    metrics: dict[str, Any] | None = None
    processes: list[Any] = field(default_factory=list)

    @classmethod
    def from_payload(cls, data: Any, where: str = "machine", *, site_id: str = "") -> MachineDetail:
        row = expect_row(data, where)
        machine_id = require_row_id(row, where, "id", "machineId")
        return cls(
            id=machine_id,
            site_id=as_str(row.get("siteId")) or site_id,
            name=as_str(row.get("name")) or machine_id,
            online=_online(row.get("online")),
            last_heartbeat=as_opt_str(row.get("lastHeartbeat")),
            agent_version=as_opt_str(row.get("agentVersion")),
            os=as_opt_str(row.get("os")),
            hostname=as_opt_str(row.get("hostname")),
            metrics=as_dict(row.get("metrics")),
            processes=as_list(row.get("processes")),
        )


@dataclass(slots=True)
class MachineDeployment:
    """A roost targeting the machine, with what the machine last reported for it."""

    roost_id: str
    name: str
    current_version_id: str | None = None
    previous_version_id: str | None = None
    extract_path: str | None = None
    reported_version_id: str | None = None
    reported_status: str | None = None
    reported_at: str | None = None
    version_counter: int | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "machine deployment") -> MachineDeployment:
        row = expect_row(data, where)
        return cls(
            roost_id=require_row_id(row, where, "roostId"),
            name=as_str(row.get("name")),
            current_version_id=as_opt_str(row.get("currentVersionId")),
            previous_version_id=as_opt_str(row.get("previousVersionId")),
            extract_path=as_opt_str(row.get("extractPath")),
            reported_version_id=as_opt_str(row.get("reportedVersionId")),
            reported_status=as_opt_str(row.get("reportedStatus")),
            reported_at=as_opt_str(row.get("reportedAt")),
            version_counter=as_opt_int(row.get("versionCounter")),
        )


class Machines(Resource):
    """``client.machines``."""

    def _path(self, site_id: str, machine_id: str | None = None, *rest: str) -> str:
        parts = ["api", "sites", require_id(site_id, "site_id"), "machines"]
        if machine_id is not None:
            parts.append(require_id(machine_id, "machine_id"))
        return api_path(*parts, *rest)

    async def list(self, site_id: str) -> builtins.list[MachineSummary]:
        path = self._path(site_id)
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        return parse_rows(data, ("machines",), where, MachineSummary.from_payload)

    async def get(self, site_id: str, machine_id: str) -> MachineDetail:
        path = self._path(site_id, machine_id)
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        return MachineDetail.from_payload(data, where, site_id=site_id)

    async def deployments(self, site_id: str, machine_id: str) -> builtins.list[MachineDeployment]:
        """The roosts targeting this machine and what it reported for each."""
        path = self._path(site_id, machine_id, "deployments")
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        return parse_rows(data, ("deployments",), where, MachineDeployment.from_payload)

    async def dispatch_command(
        self,
        site_id: str,
        machine_id: str,
        type: CommandType | str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue a command for the machine's agent; returns ``{commandId, status}``."""
        path = self._path(site_id, machine_id, "commands")
        body: dict[str, Any] = {"type": require_id(type, "type"), "params": dict(params or {})}
        if timeout_seconds is not None:
            body["timeout_seconds"] = timeout_seconds
        response = await self._http.request(path, method="POST", body=body, idempotency_key=idempotency_key)
        return unwrap_data(response.data, f"POST {path}")

    async def get_command(self, site_id: str, machine_id: str, command_id: str) -> dict[str, Any]:
        """A command's ``status`` (and ``result`` / ``error`` once finished)."""
        path = self._path(site_id, machine_id, "commands", require_id(command_id, "command_id"))
        response = await self._http.request(path)
        return unwrap_data(response.data, f"GET {path}")

    async def capture_screenshot(
        self,
        site_id: str,
        machine_id: str,
        *,
        monitor: str | int | None = None,
        timeout_seconds: float = 60.0,
        download_to: str | os.PathLike[str] | None = None,
        idempotency_key: str | None = None,
    ) -> bytes:
        """Dispatch ``capture_screenshot``, poll until it finishes, download the image.

        Polls every 1.5 s, at most ``timeout_seconds // 1.5`` times (1..40). Raises
        ``TimeoutError`` when the command never finishes and ``RuntimeError`` when it fails. The
        image is fetched from its signed URL without the SDK's credentials.
        """
        params: dict[str, Any] = {} if monitor is None else {"monitor": monitor}
        dispatched = await self.dispatch_command(
            site_id, machine_id, "capture_screenshot", params, idempotency_key=idempotency_key
        )
        command_id = require_row_id(dispatched, "capture_screenshot dispatch", "commandId")
        polls = min(SCREENSHOT_MAX_POLLS, max(1, math.floor(timeout_seconds / SCREENSHOT_POLL_INTERVAL_S)))
        command: dict[str, Any] = {}
        for attempt in range(polls):
            if attempt:
                await self._http._sleep(SCREENSHOT_POLL_INTERVAL_S)
            command = await self.get_command(site_id, machine_id, command_id)
            if command.get("status") in ("completed", "failed"):
                break
        else:
            raise TimeoutError(
                f"screenshot command {command_id} did not finish within {timeout_seconds} s "
                f"(last status {command.get('status')!r})"
            )
        if command.get("status") == "failed":
            error = command.get("error")
            raise RuntimeError(f"screenshot command {command_id} failed: {error or '(no error detail)'}")
        result = as_dict(command.get("result")) or {}
        url = result.get("screenshot_url")
        if not isinstance(url, str) or not url:
            raise RuntimeError(f"screenshot command {command_id} completed without a screenshot_url")
        image = await self._download(urljoin(self._http.api_url + "/", url))
        if download_to is not None:
            await anyio.Path(download_to).write_bytes(image)
        return image

    async def _download(self, url: str) -> bytes:
        async with StorageClient(self._http) as storage:
            return await storage.download(url, what="screenshot download")
