"""`client.deployments`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["Deployments"]


class Deployments(Resource):
    """`client.deployments` (filled by the resource-tree issue)."""
