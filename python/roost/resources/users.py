"""``client.users``: platform user administration (superadmin; keys need ``user=*``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .._paging import read_token
from .._wire import api_path, as_opt_int, as_opt_str, as_str, as_str_list, expect_object
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id, str_list_arg

__all__ = ["PlatformUser", "PromoteRole", "Users"]

PromoteRole = Literal["admin", "superadmin"]
DELETE_KEY_PREFIX = "py-sdk-users-delete-"


@dataclass(slots=True)
class PlatformUser:
    """A platform user. ``created_at`` is ISO, ``deleted_at`` an ms epoch (``None`` when active)."""

    uid: str
    email: str | None
    role: str = "member"
    sites: list[str] = field(default_factory=list)
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    created_at: str | None = None
    deleted_at: int | None = None

    @classmethod
    def from_payload(cls, data: Any, where: str = "user") -> PlatformUser:
        row = expect_row(data, where)
        return cls(
            uid=require_row_id(row, where, "uid"),
            email=as_opt_str(row.get("email")),
            role=as_str(row.get("role"), "member") or "member",
            sites=as_str_list(row.get("sites")),
            display_name=as_opt_str(row.get("displayName")),
            first_name=as_opt_str(row.get("firstName")),
            last_name=as_opt_str(row.get("lastName")),
            created_at=as_opt_str(row.get("createdAt")),
            deleted_at=as_opt_int(row.get("deletedAt")),
        )


class Users(Resource):
    """``client.users``."""

    def _path(self, uid: str, *rest: str) -> str:
        return api_path("api", "users", require_id(uid, "uid"), *rest)

    async def list(
        self,
        *,
        role: str | None = None,
        site: str | None = None,
        include_deleted: bool = False,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"users": list[PlatformUser], "next_page_token": str}``."""
        where = "GET /api/users"
        response = await self._http.request(
            "/api/users",
            query={
                "role": role,
                "site": site,
                "includeDeleted": True if include_deleted else None,
                "page_size": page_size,
                "page_token": page_token or None,
            },
        )
        data = expect_object(response.data, where)
        return {
            "users": parse_rows(data, ("users",), where, PlatformUser.from_payload),
            "next_page_token": read_token(data),
        }

    async def get(self, uid: str) -> PlatformUser:
        path = self._path(uid)
        where = f"GET {path}"
        return PlatformUser.from_payload(expect_object((await self._http.request(path)).data, where), where)

    async def _post(self, path: str, body: dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
        response = await self._http.request(path, method="POST", body=body, idempotency_key=idempotency_key)
        return expect_object(response.data, f"POST {path}")

    async def promote(
        self, uid: str, *, role: PromoteRole, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Raise a user to ``admin`` or ``superadmin``; returns ``{uid, role, previousRole, changed}``."""
        return await self._post(self._path(uid, "promote"), {"role": role}, idempotency_key)

    async def demote(self, uid: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Lower a user to ``member`` (409 ``last_superadmin`` keeps one superadmin)."""
        return await self._post(self._path(uid, "demote"), {}, idempotency_key)

    async def assign_sites(
        self, uid: str, site_ids: Iterable[str], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        ids = str_list_arg(site_ids, "site_ids")
        if not ids:
            raise ValueError("users.assign_sites: site_ids must not be empty")
        return await self._post(self._path(uid, "assign-sites"), {"siteIds": ids}, idempotency_key)

    async def remove_sites(
        self, uid: str, site_ids: Iterable[str], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        ids = str_list_arg(site_ids, "site_ids")
        if not ids:
            raise ValueError("users.remove_sites: site_ids must not be empty")
        return await self._post(self._path(uid, "remove-sites"), {"siteIds": ids}, idempotency_key)

    async def delete(
        self, uid: str, *, successor_uid: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Soft-delete a user; sites they own move to ``successor_uid`` (required for owners)."""
        path = self._path(uid)
        response = await self._http.request(
            path,
            method="DELETE",
            query={"successorUid": successor_uid},
            idempotency_key=idempotency_key,
            key_prefix=DELETE_KEY_PREFIX,
        )
        return expect_object(response.data, f"DELETE {path}")
