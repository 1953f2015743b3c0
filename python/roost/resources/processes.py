"""``client.processes(site_id, machine_id)``: the processes an agent supervises on one machine.

Every response is an ``{ok, data}`` envelope; the SDK returns ``data``.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._wire import api_path, as_dict, as_list, as_opt_int, as_opt_str, as_str, drop_none
from ..client import RoostClient
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id, unwrap_data

__all__ = ["ControlVerb", "ProcessRecord", "Processes", "ScheduleMode"]

ScheduleMode = Literal["off", "always", "scheduled"]
ControlVerb = Literal["kill", "start", "stop"]


@dataclass(slots=True)
class ProcessRecord:
    """One supervised process. ``schedule`` / ``schedules`` are raw."""

    process_id: str
    name: str
    exe_path: str | None = None
    cwd: str | None = None
    priority: str | None = None
    visibility: str | None = None
    launch_mode: str | None = None
    autolaunch: bool | None = None
    status: str | None = None
    pid: int | None = None
    responsive: bool | None = None
    schedule: dict[str, Any] | None = None
    schedules: list[Any] | None = None
    last_updated: Any = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "process") -> ProcessRecord:
        row = expect_row(data, where)
        autolaunch = row.get("autolaunch")
        responsive = row.get("responsive")
        schedules = row.get("schedules")
        pid = row.get("pid")
        return cls(
            process_id=require_row_id(row, where, "processId", "id"),
            name=as_str(row.get("name")),
            exe_path=as_opt_str(row.get("exe_path")),
            cwd=as_opt_str(row.get("cwd")),
            priority=as_opt_str(row.get("priority")),
            visibility=as_opt_str(row.get("visibility")),
            launch_mode=as_opt_str(row.get("launch_mode")),
            autolaunch=autolaunch if isinstance(autolaunch, bool) else None,
            status=as_opt_str(row.get("status")),
            pid=as_opt_int(pid) if isinstance(pid, int) else None,
            responsive=responsive if isinstance(responsive, bool) else None,
            schedule=as_dict(row.get("schedule")),
            schedules=as_list(schedules) if isinstance(schedules, list) else None,
            last_updated=row.get("last_updated"),
        )


class Processes(Resource):
    """A handle on one machine's processes (``client.processes(site_id, machine_id)``)."""

    __slots__ = ("_machine_id", "_site_id")

    def __init__(self, http: RoostClient, site_id: str, machine_id: str) -> None:
        super().__init__(http)
        self._site_id = require_id(site_id, "site_id")
        self._machine_id = require_id(machine_id, "machine_id")

    @property
    def site_id(self) -> str:
        return self._site_id

    @property
    def machine_id(self) -> str:
        return self._machine_id

    def __repr__(self) -> str:
        return f"Processes(site_id={self._site_id!r}, machine_id={self._machine_id!r})"

    def _path(self, *rest: str) -> str:
        return api_path("api", "sites", self._site_id, "machines", self._machine_id, "processes", *rest)

    async def list(self) -> builtins.list[ProcessRecord]:
        path = self._path()
        where = f"GET {path}"
        data = unwrap_data((await self._http.request(path)).data, where)
        return parse_rows(data, ("processes",), where, ProcessRecord.from_payload)

    async def get(self, process_id: str) -> ProcessRecord:
        path = self._path(require_id(process_id, "process_id"))
        where = f"GET {path}"
        return ProcessRecord.from_payload(unwrap_data((await self._http.request(path)).data, where), where)

    async def create(
        self,
        *,
        name: str,
        exe_path: str,
        cwd: str | None = None,
        priority: str | None = None,
        visibility: str | None = None,
        launch_mode: ScheduleMode | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Add a process; returns ``{processId}``."""
        path = self._path()
        body = drop_none(
            {
                "name": name,
                "exe_path": exe_path,
                "cwd": cwd,
                "priority": priority,
                "visibility": visibility,
                "launch_mode": launch_mode,
            }
        )
        response = await self._http.request(path, method="POST", body=body, idempotency_key=idempotency_key)
        return unwrap_data(response.data, f"POST {path}")

    async def update(
        self,
        process_id: str,
        *,
        name: str | None = None,
        exe_path: str | None = None,
        cwd: str | None = None,
        priority: str | None = None,
        visibility: str | None = None,
        launch_mode: ScheduleMode | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Change the given fields; returns ``{processId}``."""
        path = self._path(require_id(process_id, "process_id"))
        body = drop_none(
            {
                "name": name,
                "exe_path": exe_path,
                "cwd": cwd,
                "priority": priority,
                "visibility": visibility,
                "launch_mode": launch_mode,
            }
        )
        if not body:
            raise ValueError("processes.update: at least one field must be provided")
        response = await self._http.request(path, method="PATCH", body=body, idempotency_key=idempotency_key)
        return unwrap_data(response.data, f"PATCH {path}")

    async def delete(self, process_id: str) -> dict[str, Any]:
        """Remove a process; returns ``{processId, alreadyDeleted}`` (a missing one is not an error)."""
        path = self._path(require_id(process_id, "process_id"))
        response = await self._http.request(path, method="DELETE")
        return unwrap_data(response.data, f"DELETE {path}")

    async def _control(
        self, verb: ControlVerb, process_id: str, idempotency_key: str | None
    ) -> dict[str, Any]:
        path = self._path(require_id(process_id, "process_id"), verb)
        response = await self._http.request(path, method="POST", body={}, idempotency_key=idempotency_key)
        return unwrap_data(response.data, f"POST {path}")

    async def kill(self, process_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Queue a kill command; returns ``{commandId, status}``."""
        return await self._control("kill", process_id, idempotency_key)

    async def start(self, process_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Queue a start command; returns ``{commandId, status}``."""
        return await self._control("start", process_id, idempotency_key)

    async def stop(self, process_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Queue a stop command; returns ``{commandId, status}``."""
        return await self._control("stop", process_id, idempotency_key)

    async def schedule(
        self,
        process_id: str,
        *,
        mode: ScheduleMode,
        blocks: Sequence[Mapping[str, Any]] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Set the launch schedule. ``mode="scheduled"`` needs non-empty ``blocks``
        (``{days: [...], ranges: [{start, stop}], name?, colorIndex?}``)."""
        path = self._path(require_id(process_id, "process_id"), "schedule")
        if mode == "scheduled" and not blocks:
            raise ValueError("processes.schedule: mode='scheduled' requires non-empty blocks")
        body: dict[str, Any] = {"mode": mode}
        if blocks is not None:
            body["blocks"] = [dict(block) for block in blocks]
        response = await self._http.request(path, method="POST", body=body, idempotency_key=idempotency_key)
        return unwrap_data(response.data, f"POST {path}")
