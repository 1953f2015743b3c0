"""`client.quotas`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Quotas"]


class Quotas(Resource):
    """`client.quotas` (filled by the resource-tree issue)."""
