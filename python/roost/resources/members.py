"""``client.members(site_id)``: who belongs to one site."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Literal

from .._wire import api_path, as_opt_str, as_str, as_str_list, expect_object
from ..client import RoostClient
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id

__all__ = ["AddRole", "Member", "Members", "PerSiteRole"]

AddRole = Literal["member", "admin"]
PerSiteRole = Literal["owner", "superadmin", "admin", "member"]
_PER_SITE_ROLES = ("owner", "superadmin", "admin", "member")
REMOVE_KEY_PREFIX = "py-sdk-members-remove-"


@dataclass(slots=True)
class Member:
    """A site member. ``role`` is the per-site role (an unknown value reads as ``member``)."""

    uid: str
    email: str | None
    role: str = "member"
    display_name: str | None = None
    global_role: str | None = None
    sites: list[str] = field(default_factory=list)

    @classmethod
    def from_payload(cls, data: Any, where: str = "member") -> Member:
        row = expect_row(data, where)
        role = as_str(row.get("role"))
        return cls(
            uid=require_row_id(row, where, "uid"),
            email=as_opt_str(row.get("email")),
            role=role if role in _PER_SITE_ROLES else "member",
            display_name=as_opt_str(row.get("displayName")),
            global_role=as_opt_str(row.get("globalRole")),
            sites=as_str_list(row.get("sites")),
        )


class Members(Resource):
    """A handle on one site's members (``client.members(site_id)``)."""

    __slots__ = ("_site_id",)

    def __init__(self, http: RoostClient, site_id: str) -> None:
        super().__init__(http)
        self._site_id = require_id(site_id, "site_id")

    @property
    def site_id(self) -> str:
        return self._site_id

    def __repr__(self) -> str:
        return f"Members(site_id={self._site_id!r})"

    def _path(self, *rest: str) -> str:
        return api_path("api", "sites", self._site_id, "members", *rest)

    async def list(self) -> builtins.list[Member]:
        path = self._path()
        where = f"GET {path}"
        data = expect_object((await self._http.request(path)).data, where)
        return parse_rows(data, ("members",), where, Member.from_payload)

    async def add(
        self, uid: str, *, role: AddRole = "member", idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Add a user to the site. ``roleHonored`` in the raw result says whether ``admin`` stuck
        (the user's global role is never changed)."""
        path = self._path()
        response = await self._http.request(
            path,
            method="POST",
            body={"uid": require_id(uid, "uid"), "role": role},
            idempotency_key=idempotency_key,
        )
        return expect_object(response.data, f"POST {path}")

    async def remove(self, uid: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Remove a user from the site (the owner cannot be removed)."""
        path = self._path(require_id(uid, "uid"))
        response = await self._http.request(
            path, method="DELETE", idempotency_key=idempotency_key, key_prefix=REMOVE_KEY_PREFIX
        )
        return expect_object(response.data, f"DELETE {path}")
