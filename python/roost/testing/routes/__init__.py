"""The emulator's API routes, one module per noun (mirroring ``roost.resources``).

Each module holds module-level handlers ``async def handler(ctx: Ctx) -> Response`` that read the
emulator's state from ``ctx.emu`` (so a test can call one with a hand-made :class:`Ctx`), and a
``ROUTES`` table of ``(path, {method: handler})``. Validators and presenters that several nouns
share live in ``_shared``. Starlette matches routes in order, so a module lists literal paths
(``/api/installer/latest``) before the parameterised ones next to them.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from .._core import RouteTable, api_route
from .._emulator import Emulator
from . import (
    account,
    chat,
    chunks,
    deployments,
    installer,
    installer_deployments,
    keys,
    machines,
    members,
    processes,
    quotas,
    roosts,
    sites,
    users,
    versions,
    webhooks,
)

__all__ = ["TABLES", "api_routes"]

TABLES: tuple[RouteTable, ...] = (
    account.ROUTES,
    keys.ROUTES,
    sites.ROUTES,
    quotas.ROUTES,
    chunks.ROUTES,
    roosts.ROUTES,
    versions.ROUTES,
    deployments.ROUTES,
    webhooks.ROUTES,
    machines.ROUTES,
    processes.ROUTES,
    installer.ROUTES,
    installer_deployments.ROUTES,
    members.ROUTES,
    users.ROUTES,
    chat.ROUTES,
)


def api_routes(emu: Emulator) -> list[BaseRoute]:
    """Every ``/api/`` route, bound to ``emu`` through the shared request pipeline."""
    return [api_route(emu, path, methods) for table in TABLES for path, methods in table]
