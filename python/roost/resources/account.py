"""``client.account``: who am I, which API versions exist, and API-key-compatible key management."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .._wire import (
    api_path,
    as_bool,
    as_dict,
    as_opt_int,
    as_opt_str,
    as_str,
    as_str_list,
    expect_object,
)
from ..client import RoostClient
from ._base import Resource
from ._common import add_id_alias, expect_row, parse_rows, require_id, require_row_id

__all__ = [
    "Account",
    "AccountApiKeys",
    "AccountKeyContext",
    "ApiKeyRecord",
    "ApiKeyScope",
    "ApiVersionResponse",
    "Permission",
    "Resource_",
    "WhoamiResponse",
]

Permission = Literal["read", "write", "deploy", "rollback", "admin"]
Resource_ = Literal["roost", "site", "machine", "chat", "deploy", "process", "user", "installer"]
_RESOURCES = ("roost", "site", "machine", "chat", "deploy", "process", "user", "installer")
_PERMISSIONS = ("read", "write", "deploy", "rollback", "admin")


@dataclass(slots=True)
class ApiKeyScope:
    """One grant of a key: ``resource`` (``roost``, ``site``, ...), ``id`` (or ``*``), ``permissions``."""

    resource: str
    id: str
    permissions: list[str] = field(default_factory=list)

    def to_payload(self) -> dict[str, Any]:
        return {"resource": self.resource, "id": self.id, "permissions": list(self.permissions)}

    @classmethod
    def from_payload(cls, data: Any) -> ApiKeyScope:
        raw = data if isinstance(data, dict) else {}
        resource = as_str(raw.get("resource"))
        return cls(
            resource=resource if resource in _RESOURCES else "site",
            id=as_str(raw.get("id")),
            permissions=[p for p in as_str_list(raw.get("permissions")) if p in _PERMISSIONS],
        )


def _epoch_ms(value: Any) -> int | None:
    """A key timestamp as Unix ms: an ms number as is, an ISO-8601 string converted, else ``None``.

    ``/api/account/api-keys`` sends ``createdAt`` as ISO-8601 while the other key timestamps are ms.
    """
    if not isinstance(value, str):
        return as_opt_int(value)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return round(parsed.timestamp() * 1000)


def _scopes(value: Any) -> list[ApiKeyScope] | None:
    if not isinstance(value, list):
        return None
    return [ApiKeyScope.from_payload(item) for item in value]


@dataclass(slots=True)
class AccountKeyContext:
    """The API key a ``whoami`` call was made with."""

    key_id: str | None
    name: str | None
    key_prefix: str | None
    scopes: list[ApiKeyScope] | None
    environment: str | None
    expires_at: int | None
    last_used_at: int | None
    is_legacy: bool

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> AccountKeyContext:
        return cls(
            key_id=as_opt_str(data.get("keyId")),
            name=as_opt_str(data.get("name")),
            key_prefix=as_opt_str(data.get("keyPrefix")),
            scopes=_scopes(data.get("scopes")),
            environment=as_opt_str(data.get("environment")),
            expires_at=as_opt_int(data.get("expiresAt")),
            last_used_at=as_opt_int(data.get("lastUsedAt")),
            is_legacy=bool(data.get("isLegacy")),
        )


@dataclass(slots=True)
class WhoamiResponse:
    """``GET /api/whoami``: the caller, its key, rate limit, quota and primary site."""

    user_id: str | None
    email: str | None
    role: str | None
    key: AccountKeyContext | None
    rate_limit: dict[str, Any] | None
    quota: dict[str, Any] | None
    primary_site_id: str | None

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> WhoamiResponse:
        key = as_dict(data.get("key"))
        return cls(
            user_id=as_opt_str(data.get("userId")),
            email=as_opt_str(data.get("email")),
            role=as_opt_str(data.get("role")),
            key=AccountKeyContext.from_payload(key) if key is not None else None,
            rate_limit=as_dict(data.get("rateLimit")),
            quota=as_dict(data.get("quota")),
            primary_site_id=as_opt_str(data.get("primarySiteId")),
        )


@dataclass(slots=True)
class ApiVersionResponse:
    """``GET /api/version``: the current ``Roost-Version`` and the supported ones."""

    current: str
    supported: list[str] = field(default_factory=list)
    deprecated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> ApiVersionResponse:
        return cls(
            current=as_str(data.get("current")),
            supported=as_str_list(data.get("supported")),
            deprecated=as_str_list(data.get("deprecated")),
            retired=as_str_list(data.get("retired")),
        )


@dataclass(slots=True)
class ApiKeyRecord:
    """A stored API key as listed by ``keys.list()`` / ``account.api_keys.list()`` (never the secret).

    Timestamps are Unix ms.
    """

    id: str
    name: str | None = None
    key_prefix: str | None = None
    environment: str | None = None
    scopes: list[ApiKeyScope] | None = None
    expires_at: int | None = None
    created_at: int | None = None
    last_used_at: int | None = None
    last_used_ip: str | None = None
    rotated_at: int | None = None
    rotated_from_key_id: str | None = None
    retires_at: int | None = None
    revoked_at: int | None = None
    expired: bool = False
    retired: bool = False

    @classmethod
    def from_payload(cls, data: Any, where: str = "api key") -> ApiKeyRecord:
        raw = expect_row(data, where)
        environment = as_opt_str(raw.get("environment"))
        return cls(
            id=require_row_id(raw, where, "id", "keyId"),
            name=as_opt_str(raw.get("name")),
            key_prefix=as_opt_str(raw.get("keyPrefix")),
            environment=environment if environment in ("live", "test") else None,
            scopes=_scopes(raw.get("scopes")),
            expires_at=as_opt_int(raw.get("expiresAt")),
            created_at=_epoch_ms(raw.get("createdAt")),
            last_used_at=as_opt_int(raw.get("lastUsedAt")),
            last_used_ip=as_opt_str(raw.get("lastUsedIp")),
            rotated_at=as_opt_int(raw.get("rotatedAt")),
            rotated_from_key_id=as_opt_str(raw.get("rotatedFromKeyId")),
            retires_at=as_opt_int(raw.get("retiresAt")),
            revoked_at=as_opt_int(raw.get("revokedAt")),
            expired=as_bool(raw.get("expired")),
            retired=as_bool(raw.get("retired")),
        )


class AccountApiKeys(Resource):
    """``client.account.api_keys``: keys minted by an API-key caller (they inherit its scopes)."""

    async def list(self) -> builtins.list[ApiKeyRecord]:
        where = "GET /api/account/api-keys"
        data = expect_object((await self._http.request("/api/account/api-keys")).data, where)
        return parse_rows(data, ("keys",), where, ApiKeyRecord.from_payload)

    async def create(self, *, name: str | None = None) -> dict[str, Any]:
        """Mint a key inheriting the caller's scopes. Returns the raw body (``key`` shown once,
        ``keyId``), plus an ``id`` alias of ``keyId`` (see :class:`roost.resources.keys.Keys`)."""
        body: dict[str, Any] = {} if name is None else {"name": name}
        response = await self._http.request("/api/account/api-keys", method="POST", body=body)
        return add_id_alias(expect_object(response.data, "POST /api/account/api-keys"))

    async def revoke(self, key_id: str) -> None:
        path = api_path("api", "account", "api-keys", require_id(key_id, "key_id"))
        await self._http.request(path, method="DELETE")


class Account(Resource):
    """``client.account``."""

    __slots__ = ("api_keys",)

    def __init__(self, http: RoostClient) -> None:
        super().__init__(http)
        self.api_keys = AccountApiKeys(http)

    async def whoami(self) -> WhoamiResponse:
        response = await self._http.request("/api/whoami")
        return WhoamiResponse.from_payload(expect_object(response.data, "GET /api/whoami"))

    async def version(self) -> ApiVersionResponse:
        response = await self._http.request("/api/version")
        return ApiVersionResponse.from_payload(expect_object(response.data, "GET /api/version"))
