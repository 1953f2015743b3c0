"""`client.users`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Users"]


class Users(Resource):
    """`client.users` (filled by the resource-tree issue)."""
