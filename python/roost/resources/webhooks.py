"""`client.webhooks`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Webhooks"]


class Webhooks(Resource):
    """`client.webhooks` (filled by the resource-tree issue)."""
