"""`client.chat`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Chat"]


class Chat(Resource):
    """`client.chat` (filled by the resource-tree issue)."""
