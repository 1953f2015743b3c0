"""`client.installer_deployments`."""

from __future__ import annotations

from ._base import Resource

__all__ = ["InstallerDeployments"]


class InstallerDeployments(Resource):
    """`client.installer_deployments` (filled by the resource-tree issue)."""
