"""`client.keys`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Keys"]


class Keys(Resource):
    """`client.keys` (filled by the resource-tree issue)."""
