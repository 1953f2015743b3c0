"""`client.roosts`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Roosts"]


class Roosts(Resource):
    """`client.roosts` (filled by the resource-tree issue)."""
