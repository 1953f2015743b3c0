"""`client.installer`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Installer"]


class Installer(Resource):
    """`client.installer` (filled by the resource-tree issue)."""
