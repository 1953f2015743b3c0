"""`client.chunks`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Chunks"]


class Chunks(Resource):
    """`client.chunks` (filled by the resource-tree issue)."""
