"""The emulator's state: store, chunks, keys, users, sites, faults and storage records."""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._faults import Dice, Throttle
from ._jsonutil import now_ms, sha256_hex
from ._options import EmulatorOptions
from ._presign import Presigner
from ._store import ChunkStore, Store

__all__ = [
    "ALL_PERMISSIONS",
    "ALL_RESOURCES",
    "FULL_SCOPES",
    "AuthError",
    "Emulator",
    "Principal",
    "StorageRecord",
]

ALL_RESOURCES = ("roost", "site", "machine", "chat", "deploy", "process", "user", "installer")
ALL_PERMISSIONS = ("read", "write", "deploy", "rollback", "admin")
FULL_SCOPES: list[dict[str, Any]] = [
    {"resource": resource, "id": "*", "permissions": list(ALL_PERMISSIONS)} for resource in ALL_RESOURCES
]
DEFAULT_TTL_MS = 90 * 24 * 3600 * 1000
MAX_TTL_MS = 365 * 24 * 3600 * 1000
DEFAULT_USER_ID = "emulator-user"
DEFAULT_SITE_ID = "dev-site"

# capabilities per global role (site-scoped for admins)
_ADMIN_CAPS = frozenset(
    {
        "USER_SELF_PREFS",
        "USER_SELF_DELETE",
        "MACHINE_VIEW",
        "MACHINE_EXEC_COMMAND",
        "MACHINE_CONFIG_WRITE",
        "MACHINE_REMOVE",
        "DEPLOYMENT_MANAGE",
        "DISTRIBUTION_MANAGE",
        "UNINSTALL_TRIGGER",
        "PRESET_MANAGE",
        "WEBHOOK_MANAGE",
        "SITE_LOGS_MANAGE",
        "SITE_MEMBER_MANAGE",
    }
)
_MEMBER_CAPS = frozenset({"USER_SELF_PREFS", "USER_SELF_DELETE", "MACHINE_VIEW"})


@dataclass(slots=True)
class StorageRecord:
    """One request that reached the storage endpoint (what a test may assert on)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None
    outcome: str = ""
    bytes_received: int = 0
    at: float = field(default_factory=time.time)


@dataclass(slots=True)
class Principal:
    user: dict[str, Any]
    key: dict[str, Any] | None
    environment: str

    @property
    def uid(self) -> str:
        return str(self.user["uid"])

    @property
    def role(self) -> str:
        role = self.user.get("role")
        return role if isinstance(role, str) else "member"

    @property
    def is_session(self) -> bool:
        return self.key is None

    @property
    def is_superadmin(self) -> bool:
        return self.role == "superadmin"

    @property
    def is_deleted(self) -> bool:
        return isinstance(self.user.get("deletedAt"), int | float) and not isinstance(
            self.user.get("deletedAt"), bool
        )

    def has_scope(self, resource: str, resource_id: str, permission: str) -> bool:
        if self.key is None:
            return True
        for scope in self.key.get("scopes") or []:
            if not isinstance(scope, dict):
                continue
            if scope.get("resource") != resource:
                continue
            if scope.get("id") not in ("*", resource_id):
                continue
            if permission in (scope.get("permissions") or []):
                return True
        return False

    def scopes_for(self, resource: str) -> list[dict[str, Any]]:
        if self.key is None:
            return []
        return [
            s for s in self.key.get("scopes") or [] if isinstance(s, dict) and s.get("resource") == resource
        ]

    def has_capability(self, site: dict[str, Any] | None, capability: str) -> bool:
        if self.is_superadmin:
            return True
        site_id = site.get("id") if site else None
        if self.role == "admin" and site_id in (self.user.get("sites") or []):
            return capability in _ADMIN_CAPS
        return capability in _MEMBER_CAPS


class AuthError(Exception):
    """Why a credential did not resolve. ``kind``: invalid, expired, missing, id_token."""

    def __init__(self, kind: str, message: str, expired_at: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.expired_at = expired_at


def _raw_key(environment: str) -> str:
    return f"owk_{environment}_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


class Emulator:
    """Everything the routes share. Methods are thread-safe (the store serialises)."""

    def __init__(
        self,
        options: EmulatorOptions,
        data_dir: Path,
        site_id: str,
        base_url: str = "http://127.0.0.1",
    ) -> None:
        self.options = options
        self.data_dir = data_dir
        self.faults = options.faults
        self.store = Store(data_dir / "meta.sqlite3")
        self.chunks = ChunkStore(data_dir / "chunks")
        self.blobs = ChunkStore(data_dir / "blobs")
        secret_text = self.store.meta_get("presign_secret")
        if secret_text is None:
            secret_text = secrets.token_hex(32)
            self.store.meta_set("presign_secret", secret_text)
        self.presigner = Presigner(bytes.fromhex(secret_text), base_url)
        self.api_dice = Dice(self.faults.seed, 1)
        self.storage_dice = Dice(self.faults.seed, 2)
        self.throttle = Throttle(self.faults.storage_bandwidth_mbps)
        self.storage_records: list[StorageRecord] = []
        self._records_lock = threading.Lock()
        self.api_calls = 0
        self.site_id = site_id
        self.user_id = DEFAULT_USER_ID
        self.token = ""
        self.id_token = ""
        self.webhook_kick: Any = None  # set by the dispatcher: callable() waking it up

    # -- TTLs ------------------------------------------------------------------------------

    @property
    def upload_ttl_s(self) -> float:
        override = self.faults.upload_url_ttl_s
        return float(override) if override is not None else self.options.upload_url_ttl_s

    @property
    def download_ttl_s(self) -> float:
        override = self.faults.download_url_ttl_s
        return float(override) if override is not None else self.options.download_url_ttl_s

    def set_base_url(self, base_url: str) -> None:
        self.presigner.base_url = base_url.rstrip("/")

    # -- bootstrap -------------------------------------------------------------------------

    def bootstrap(self, token: str | None) -> None:
        """Create the default user, site, machines and key (idempotent across restarts)."""
        with self.store.transaction():
            if self.store.get("user", "", self.user_id) is None:
                self.store.put(
                    "user",
                    "",
                    self.user_id,
                    {
                        "uid": self.user_id,
                        "email": "dev@roost.test",
                        "role": "superadmin",
                        "sites": [self.site_id],
                        "displayName": "Roost Emulator",
                        "firstName": "Roost",
                        "lastName": "Emulator",
                        "createdAt": now_ms(),
                        "deletedAt": None,
                    },
                )
            else:
                user = self.store.get("user", "", self.user_id) or {}
                if self.site_id not in (user.get("sites") or []):
                    user["sites"] = [*(user.get("sites") or []), self.site_id]
                    self.store.put("user", "", self.user_id, user)
            if self.store.get("site", "", self.site_id) is None:
                self.add_site(self.site_id, name="Emulator site", owner=self.user_id)
            stored = self.store.meta_get("default_token")
            if token is not None:
                if not token.startswith(("owk_test_", "owk_live_")):
                    raise ValueError("token must start with owk_test_ or owk_live_")
                record = self.lookup_key(token)
                if record is None or not self._usable(record):
                    self._store_key(
                        token, name="emulator default", scopes=FULL_SCOPES, expires_at=self._max_expiry()
                    )
                self.token = token
            elif stored is not None and self._usable(self.lookup_key(stored)):
                self.token = stored
            else:
                self.token = self.mint_key(name="emulator default", expires_at_ms=self._max_expiry())
            self.store.meta_set("default_token", self.token)
            id_token = self.store.meta_get("default_id_token")
            if id_token is None:
                id_token = self.mint_id_token(self.user_id)
                self.store.meta_set("default_id_token", id_token)
            self.id_token = id_token

    @staticmethod
    def _max_expiry() -> int:
        return now_ms() + MAX_TTL_MS

    @staticmethod
    def _usable(record: dict[str, Any] | None) -> bool:
        if record is None or record.get("revokedAt") is not None:
            return False
        expires = record.get("expiresAt")
        return not isinstance(expires, int | float) or expires - now_ms() > 24 * 3600 * 1000

    def add_site(
        self,
        site_id: str,
        *,
        name: str | None = None,
        owner: str | None = None,
        machines: Iterable[str] = ("machine-01", "machine-02", "machine-03"),
        tier: str = "free",
    ) -> None:
        with self.store.transaction():
            self.store.put(
                "site",
                "",
                site_id,
                {
                    "id": site_id,
                    "name": name or site_id,
                    "plan": tier,
                    "tier": None,
                    "quotaTier": tier,
                    "timezone": "UTC",
                    "owner": owner or self.user_id,
                    "createdAt": now_ms(),
                    "roostEnabled": True,
                },
            )
            for index, machine_id in enumerate(machines):
                self.add_machine(site_id, machine_id, online=True, os_name="Windows 11", index=index)

    def add_machine(
        self,
        site_id: str,
        machine_id: str,
        *,
        online: bool = True,
        name: str | None = None,
        os_name: str = "Windows 11",
        index: int = 0,
    ) -> None:
        with self.store.transaction():
            self.store.put(
                "machine",
                site_id,
                machine_id,
                {
                    "id": machine_id,
                    "name": name or machine_id,
                    "online": online,
                    "lastHeartbeat": now_ms(),
                    "agentVersion": "2.9.0",
                    "os": os_name,
                    "hostname": f"{machine_id}.local",
                    "metrics": {"cpu": 12.5 + index, "memory": 41.0, "disk": 63.0},
                    "cortexEnabled": True,
                    "hasConfig": True,
                },
            )

    def add_user(
        self,
        uid: str,
        *,
        role: str = "member",
        sites: Iterable[str] = (),
        email: str | None = None,
        deleted: bool = False,
    ) -> None:
        self.store.put(
            "user",
            "",
            uid,
            {
                "uid": uid,
                "email": email or f"{uid}@roost.test",
                "role": role,
                "sites": list(sites),
                "displayName": uid,
                "firstName": None,
                "lastName": None,
                "createdAt": now_ms(),
                "deletedAt": now_ms() if deleted else None,
            },
        )

    # -- keys ------------------------------------------------------------------------------

    def _store_key(
        self,
        raw: str,
        *,
        name: str,
        scopes: list[dict[str, Any]],
        expires_at: int | None,
        user_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        environment = "test" if raw.startswith("owk_test_") else "live"
        record: dict[str, Any] = {
            "keyId": str(uuid.uuid4()),
            "userId": user_id or self.user_id,
            "name": name,
            "keyHash": sha256_hex(raw),
            "keyPrefix": raw[:15],
            "environment": environment,
            "scopes": scopes,
            "expiresAt": expires_at,
            "createdAt": now_ms(),
            "lastUsedAt": None,
            "rotatedAt": None,
            "rotatedFromKeyId": None,
            "retiresAt": None,
            "revokedAt": None,
        }
        if extra:
            record.update(extra)
        self.store.put("api_key", "", record["keyHash"], record)
        return record

    def mint_key(
        self,
        *,
        scopes: list[dict[str, Any]] | None = None,
        environment: str = "test",
        expires_in_s: float | None = 90 * 24 * 3600,
        expires_at_ms: int | None = None,
        user_id: str | None = None,
        name: str = "emulator key",
    ) -> str:
        """A new raw ``owk_<env>_`` key for ``user_id`` (default: the emulator's superadmin)."""
        raw = _raw_key(environment)
        if expires_at_ms is None and expires_in_s is not None:
            expires_at_ms = now_ms() + int(expires_in_s * 1000)
        self._store_key(
            raw,
            name=name,
            scopes=list(FULL_SCOPES if scopes is None else scopes),
            expires_at=expires_at_ms,
            user_id=user_id,
        )
        return raw

    def create_key_record(
        self,
        *,
        user_id: str,
        name: str,
        scopes: list[dict[str, Any]],
        environment: str,
        ttl_days: int,
        extra: Mapping[str, Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        raw = _raw_key(environment)
        record = self._store_key(
            raw,
            name=name,
            scopes=scopes,
            expires_at=now_ms() + ttl_days * 24 * 3600 * 1000,
            user_id=user_id,
            extra=extra,
        )
        return raw, record

    def lookup_key(self, raw: str) -> dict[str, Any] | None:
        return self.store.get("api_key", "", sha256_hex(raw))

    def keys_of(self, user_id: str) -> list[dict[str, Any]]:
        return [doc for _, doc in self.store.docs("api_key", "") if doc.get("userId") == user_id]

    def key_by_id(self, key_id: str) -> dict[str, Any] | None:
        for _, doc in self.store.docs("api_key", ""):
            if doc.get("keyId") == key_id:
                return doc
        return None

    def mint_id_token(self, uid: str) -> str:
        """A bearer that the emulator treats as a Firebase ID token (session-like, no scopes)."""
        token = "emu_idtoken_" + secrets.token_urlsafe(24)
        self.store.put("id_token", "", sha256_hex(token), {"uid": uid})
        return token

    def resolve(
        self, *, api_key_query: str | None, x_api_key: str | None, authorization: str | None
    ) -> Principal:
        raw: str | None = None
        if api_key_query is not None:
            if api_key_query.startswith("owk_"):
                raw = api_key_query
        elif x_api_key is not None and x_api_key.startswith("owk_"):
            raw = x_api_key
        bearer: str | None = None
        if raw is None and authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                bearer = value.strip()
                if bearer.startswith("owk_"):
                    raw = bearer
        if raw is not None:
            return self._resolve_key(raw)
        if bearer is not None:
            entry = self.store.get("id_token", "", sha256_hex(bearer))
            user = self.store.get("user", "", str(entry["uid"])) if entry else None
            if user is None:
                raise AuthError("id_token", "Unauthorized: Invalid ID token")
            return Principal(user=user, key=None, environment="unknown")
        raise AuthError("missing", "Unauthorized: No valid session")

    def _resolve_key(self, raw: str) -> Principal:
        record = self.lookup_key(raw)
        now = now_ms()
        if record is None or record.get("revokedAt") is not None:
            raise AuthError("invalid", "Unauthorized: Invalid API key")
        retires = record.get("retiresAt")
        if isinstance(retires, int | float) and now >= retires:
            raise AuthError("invalid", "Unauthorized: Invalid API key")
        expires = record.get("expiresAt")
        if isinstance(expires, int | float) and now >= expires:
            raise AuthError("expired", "Unauthorized: API key expired", int(expires))
        if not record.get("scopes"):
            raise AuthError("invalid", "Unauthorized: Invalid API key")
        user = self.store.get("user", "", str(record.get("userId")))
        if user is None:
            raise AuthError("invalid", "Unauthorized: Invalid API key")
        last_used = record.get("lastUsedAt")
        if not isinstance(last_used, int | float) or now - last_used > 60_000:
            record["lastUsedAt"] = now
            self.store.put("api_key", "", str(record["keyHash"]), record)
        return Principal(user=user, key=record, environment=str(record.get("environment") or "live"))

    # -- sites -----------------------------------------------------------------------------

    def site(self, site_id: str) -> dict[str, Any] | None:
        return self.store.get("site", "", site_id)

    def user(self, uid: str) -> dict[str, Any] | None:
        return self.store.get("user", "", uid)

    def has_site_access(self, principal: Principal, site: dict[str, Any]) -> bool:
        if principal.is_superadmin:
            return True
        return site.get("owner") == principal.uid or site.get("id") in (principal.user.get("sites") or [])

    # -- storage ---------------------------------------------------------------------------

    def record_storage(self, record: StorageRecord) -> None:
        with self._records_lock:
            self.storage_records.append(record)

    def chunk_key(self, site_id: str, digest: str) -> str:
        return f"project-content/{site_id}/{digest[:2]}/{digest}"

    def close(self) -> None:
        self.store.close()


def new_id(prefix: str, nbytes: int = 9) -> str:
    return prefix + secrets.token_hex(nbytes)
