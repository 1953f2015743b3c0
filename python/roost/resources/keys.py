"""``client.keys``: legacy scoped-key administration (needs a user session or Firebase ID token).

API-key callers should use ``client.account.api_keys`` instead.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from .._wire import api_path, expect_object
from ..client import Environment
from ._base import Resource as _ResourceBase
from ._common import add_id_alias, parse_rows, require_id
from .account import ApiKeyRecord, ApiKeyScope, Permission, Resource_

__all__ = ["Keys", "Permission", "Resource"]

#: The scope grammar of a key under the names the reference SDK's ``keys`` module exports:
#: ``Resource`` is what a scope is on, ``Permission`` what it grants (exact, no implication).
Resource = Resource_


def _scope_payload(scope: ApiKeyScope | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(scope, ApiKeyScope):
        return scope.to_payload()
    if isinstance(scope, Mapping):
        return {
            "resource": scope.get("resource"),
            "id": scope.get("id"),
            "permissions": scope.get("permissions"),
        }
    raise ValueError(f"scopes must contain ApiKeyScope values (or dicts), got {scope!r}")


class Keys(_ResourceBase):
    """``client.keys``.

    ``create`` and ``rotate`` return the raw wire body, which names the key ``keyId``. The SDK adds
    an ``id`` alias holding the same value (only when the body has no ``id`` of its own) so the
    documented ``created["id"]`` works alongside ``created["keyId"]``. The raw secret ``key`` is
    returned once; store it.
    """

    async def create(
        self,
        *,
        name: str,
        scopes: Sequence[ApiKeyScope | Mapping[str, Any]],
        ttl_days: int = 90,
        environment: Environment = "live",
    ) -> dict[str, Any]:
        if isinstance(scopes, (str, bytes)) or not scopes:
            raise ValueError("keys.create: scopes must be a non-empty list of ApiKeyScope")
        body = {
            "name": name,
            "scopes": [_scope_payload(scope) for scope in scopes],
            "ttlDays": ttl_days,
            "environment": environment,
        }
        response = await self._http.request("/api/keys", method="POST", body=body)
        return add_id_alias(expect_object(response.data, "POST /api/keys"))

    async def list(self) -> builtins.list[ApiKeyRecord]:
        where = "GET /api/keys"
        data = expect_object((await self._http.request("/api/keys")).data, where)
        return parse_rows(data, ("keys",), where, ApiKeyRecord.from_payload)

    async def rotate(self, key_id: str, *, ttl_days: int = 90) -> dict[str, Any]:
        """Mint a replacement; the old key keeps working for a 24 h grace period."""
        path = api_path("api", "keys", require_id(key_id, "key_id"), "rotate")
        response = await self._http.request(path, method="POST", body={"ttlDays": ttl_days})
        return add_id_alias(expect_object(response.data, f"POST {path}"))

    async def revoke(self, key_id: str) -> None:
        path = api_path("api", "keys", require_id(key_id, "key_id"))
        await self._http.request(path, method="DELETE")
