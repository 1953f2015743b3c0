"""`client.versions`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Versions"]


class Versions(Resource):
    """`client.versions` (filled by the resource-tree issue)."""
