"""`client.machines`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Machines"]


class Machines(Resource):
    """`client.machines` (filled by the resource-tree issue)."""
