"""`client.members`."""

from __future__ import annotations

from ..client import RoostClient
from ._base import Resource

__all__ = ["Members"]


class Members(Resource):
    """`client.members` (filled by the resource-tree issue)."""

    __slots__ = ("site_id",)

    def __init__(self, http: RoostClient, site_id: str) -> None:
        super().__init__(http)
        self.site_id = site_id
