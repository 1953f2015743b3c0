"""`client.processes`."""

from __future__ import annotations

from ..client import RoostClient
from ._base import Resource

__all__ = ["Processes"]


class Processes(Resource):
    """`client.processes` (filled by the resource-tree issue)."""

    __slots__ = ("machine_id", "site_id")

    def __init__(self, http: RoostClient, site_id: str, machine_id: str) -> None:
        super().__init__(http)
        self.site_id = site_id
        self.machine_id = machine_id
