"""Webhook subscriptions, signed deliveries (with retries), delivery history, retry and probe."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from ..signature import sign_body
from ._emulator import Emulator
from ._jsonutil import canonical_json, iso, now_ms, sha256_hex
from ._problems import problem, validation

__all__ = ["EVENTS", "Dispatcher", "enqueue_event"]

logger = logging.getLogger("roost.testing")

EVENTS = (
    "version.published",
    "version.rolled_back",
    "deployment.started",
    "deployment.completed",
    "deployment.failed",
    "machine.online",
    "machine.offline",
    "chunk.garbage_collected",
    "chunk.verify_failed",
    "quota.warning",
    "quota.exceeded",
    "api_key.used",
    "api_key.expired",
)
TOMBSTONE_TTL_MS = 30 * 24 * 3600 * 1000
HISTORY_MS = 30 * 24 * 3600 * 1000
GRACE_MS = 24 * 3600 * 1000
_WEBHOOK_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_DELIVERY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_ALLOWED_PORTS = {None, 80, 443, 8080, 8443}
_BLOCKED_NETWORKS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "100.64.0.0/10",
        "::/128",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
        "ff00::/8",
    )
]


def _secret() -> str:
    return "whsec_" + secrets.token_hex(32)


def _is_loopback_host(host: str) -> bool:
    if host in ("localhost",) or host.endswith(".localhost"):
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def _blocked_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return True
    return any(address in network for network in _BLOCKED_NETWORKS)


def check_url(value: Any, *, strict: bool, title: str = "webhook url rejected") -> str:
    """The SSRF guard; returns the WHATWG-normalised URL.

    Unless ``strict``, loopback hosts (``localhost``, 127/8, ::1) are accepted over http or https
    on any port, so a receiver on the developer's machine can subscribe.
    """
    if not isinstance(value, str) or not value:
        raise validation("url must be a non-empty string", {"body.url": ["invalid_url"]})
    if len(value) > 2048:
        raise validation("url must be at most 2048 characters", {"body.url": ["url_too_long"]})
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise validation("url could not be parsed", {"body.url": ["invalid_url"]}) from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        if scheme in ("http", "https"):
            raise validation("url could not be parsed", {"body.url": ["invalid_url"]})
        detail = f"url scheme must be https (got {scheme or 'none'})"
        raise problem(
            400, "validation-failed", title, detail, code="bad_scheme", errors={"body.url": [detail]}
        )
    local = not strict and _is_loopback_host(host)
    if not local:
        if scheme != "https":
            detail = "url scheme must be https"
            raise problem(
                400, "validation-failed", title, detail, code="bad_scheme", errors={"body.url": [detail]}
            )
        if port not in _ALLOWED_PORTS:
            detail = f"url port {port} is not allowed (use 443, 80, 8080 or 8443)"
            raise problem(
                400, "validation-failed", title, detail, code="bad_port", errors={"body.url": [detail]}
            )
        if _blocked_ip(host.strip("[]")) or host == "localhost":
            detail = f"url host {host} resolves to a private or reserved address"
            raise problem(
                400, "validation-failed", title, detail, code="private_ip", errors={"body.url": [detail]}
            )
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo}@{hostport.lower()}"
    else:
        netloc = netloc.lower()
    default_port = {"http": 80, "https": 443}[scheme]
    if port == default_port:
        netloc = netloc.rsplit(":", 1)[0]
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, parts.fragment))


def _validate_events(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise validation("events must be a non-empty array", {"body.events": ["required non-empty array"]})
    unknown = [str(e) for e in value if e not in EVENTS]
    if unknown:
        raise validation(
            f"unknown event(s): {', '.join(unknown)}", {"body.events": [f"unknown: {', '.join(unknown)}"]}
        )
    return list(dict.fromkeys(str(e) for e in value))


def serialize_subscription(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"id": doc["id"], "url": doc["url"], "events": doc["events"]}
    if doc.get("description"):
        out["description"] = doc["description"]
    out.update(
        {
            "createdAt": iso(doc.get("createdAt")),
            "updatedAt": iso(doc.get("updatedAt")),
            "paused": bool(doc.get("paused")),
            "lastDeliveryAt": iso(doc.get("lastDeliveryAt")),
            "lastDeliveryStatus": doc.get("lastDeliveryStatus"),
            "failureCount": doc.get("failureCount") or 0,
        }
    )
    return out


def enqueue_event(emu: Emulator, site_id: str, event: str, data: dict[str, Any]) -> list[str]:
    """Queue a signed delivery of ``event`` to every live subscription of ``site_id`` that wants it."""
    subscriptions = [
        doc
        for _, doc in emu.store.docs("webhook", site_id)
        if doc.get("deletedAt") is None and not doc.get("paused") and event in (doc.get("events") or [])
    ]
    if not subscriptions:
        return []
    now = now_ms()
    envelope = {"event": event, "siteId": site_id, "occurredAt": iso(now), "data": data}
    body = canonical_json(envelope)
    public_id = sha256_hex(f"{event}|{site_id}|{body}")[:32]
    created: list[str] = []
    with emu.store.transaction():
        for sub in subscriptions:
            record_id = f"{public_id}__{sub['id']}"
            emu.store.put(
                "delivery",
                "",
                record_id,
                {
                    "id": record_id,
                    "publicId": public_id,
                    "subscriptionId": sub["id"],
                    "siteId": site_id,
                    "event": event,
                    "url": sub["url"],
                    "canonicalBody": body,
                    "state": "pending",
                    "attempt": 0,
                    "lastStatus": None,
                    "lastError": None,
                    "createdAt": now,
                    "completedAt": None,
                    "nextAttemptAt": now,
                    "requestHeaders": None,
                    "response": None,
                },
                new_seq=True,
            )
            created.append(record_id)
    kick = emu.webhook_kick
    if callable(kick):
        kick()
    return created


class Dispatcher:
    """Delivers pending webhook records from the server's event loop."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._inflight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        emu.webhook_kick = self.kick

    def kick(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as client:
            try:
                while True:
                    self._wake.clear()
                    now = now_ms()
                    next_due: int | None = None
                    for record_id, doc in self.emu.store.docs("delivery", "", newest_first=False):
                        if doc.get("state") != "pending" or record_id in self._inflight:
                            continue
                        due = int(doc.get("nextAttemptAt") or 0)
                        if due <= now:
                            self._inflight.add(record_id)
                            task = asyncio.create_task(self._attempt(client, record_id))
                            self._tasks.add(task)
                            task.add_done_callback(self._tasks.discard)
                        elif next_due is None or due < next_due:
                            next_due = due
                    timeout = 5.0 if next_due is None else max(0.01, (next_due - now) / 1000.0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 5.0))
            finally:
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _attempt(self, client: httpx.AsyncClient, record_id: str) -> None:
        store = self.emu.store
        try:
            doc = store.get("delivery", "", record_id)
            if doc is None or doc.get("state") != "pending":
                return
            sub = store.get("webhook", str(doc["siteId"]), str(doc["subscriptionId"]))
            secret = sub.get("signingSecret") if sub else None
            body = str(doc["canonicalBody"])
            headers = {
                "Content-Type": "application/json",
                "Roost-Event": str(doc["event"]),
                "Roost-Delivery": str(doc.get("publicId") or record_id.split("__")[0]),
            }
            if isinstance(secret, str) and secret:
                headers["Roost-Signature"] = sign_body(body, secret)
            started = time.monotonic()
            status: int | None = None
            error: str | None = None
            response_info: dict[str, Any] | None = None
            try:
                response = await client.post(str(doc["url"]), content=body.encode("utf-8"), headers=headers)
                status = response.status_code
                response_info = {
                    "status": status,
                    "headers": dict(response.headers),
                    "body": response.text[:4096],
                    "durationMs": int((time.monotonic() - started) * 1000),
                }
            except httpx.HTTPError as exc:
                error = f"network_error: {type(exc).__name__}: {exc}"
            now = now_ms()
            with store.transaction():
                doc = store.get("delivery", "", record_id) or doc
                doc["attempt"] = int(doc.get("attempt") or 0) + 1
                doc["requestHeaders"] = headers
                doc["lastStatus"] = status
                doc["response"] = response_info
                doc["lastAttemptAt"] = now
                if status is not None and 200 <= status < 300:
                    doc.update(
                        {"state": "succeeded", "completedAt": now, "lastError": None, "nextAttemptAt": None}
                    )
                else:
                    reason = error or f"http_{status}"
                    retryable = status is None or status in (408, 425, 429) or status >= 500
                    max_attempts = self.emu.options.webhook_max_attempts
                    if retryable and doc["attempt"] < max_attempts:
                        base = self.emu.options.webhook_retry_base_s * 1000.0
                        delay = min(base * 3 ** (doc["attempt"] - 1), 3_600_000.0)
                        delay *= 1 + random.uniform(-0.2, 0.2)
                        doc.update({"lastError": reason, "nextAttemptAt": now + round(delay)})
                    else:
                        doc.update(
                            {
                                "state": "failed",
                                "completedAt": now,
                                "nextAttemptAt": None,
                                "lastError": f"retry_exhausted: {reason}" if retryable else reason,
                            }
                        )
                store.put("delivery", "", record_id, doc)
                if sub is not None:
                    sub["lastDeliveryAt"] = now
                    sub["lastDeliveryStatus"] = status
                    sub["failureCount"] = (
                        0 if doc["state"] == "succeeded" else int(sub.get("failureCount") or 0) + 1
                    )
                    store.put("webhook", str(doc["siteId"]), str(sub["id"]), sub)
        except Exception:
            logger.exception("webhook delivery %s failed", record_id)
        finally:
            self._inflight.discard(record_id)
            self._wake.set()


def _canned_payload(event: str, site_id: str) -> dict[str, Any]:
    canned: dict[str, dict[str, Any]] = {
        "version.published": {
            "roostId": "rst_synthetic_01",
            "versionId": "vrs_synthetic_01",
            "versionNumber": 1,
            "description": None,
            "siteId": site_id,
            "totalSize": 123456,
            "totalFiles": 3,
            "createdBy": "roost-probe",
        },
        "version.rolled_back": {
            "roostId": "rst_synthetic_01",
            "versionId": "vrs_synthetic_01",
            "fromVersionId": "vrs_synthetic_02",
            "siteId": site_id,
        },
        "deployment.started": {
            "roostId": "rst_synthetic_01",
            "rolloutId": "rollout_synthetic_01",
            "siteId": site_id,
            "stage": "canary",
        },
        "deployment.completed": {
            "roostId": "rst_synthetic_01",
            "rolloutId": "rollout_synthetic_01",
            "siteId": site_id,
            "stage": "complete",
            "succeeded": 10,
            "failed": 0,
        },
        "deployment.failed": {
            "roostId": "rst_synthetic_01",
            "rolloutId": "rollout_synthetic_01",
            "siteId": site_id,
            "stage": "aborted",
            "succeeded": 7,
            "failed": 3,
        },
        "machine.online": {"machineId": "machine_synthetic_01", "siteId": site_id},
        "machine.offline": {"machineId": "machine_synthetic_01", "siteId": site_id},
        "chunk.garbage_collected": {"siteId": site_id, "hashes": [], "bytesReclaimed": 0},
        "chunk.verify_failed": {
            "siteId": site_id,
            "objectPath": "project-content/x",
            "reason": "hash_mismatch",
        },
        "quota.warning": {"siteId": site_id, "threshold": 0.8, "usedBytes": 0},
        "quota.exceeded": {"siteId": site_id, "threshold": 1.0, "usedBytes": 0},
        "api_key.used": {"keyId": "key_synthetic_01", "siteId": site_id},
        "api_key.expired": {"keyId": "key_synthetic_01", "siteId": site_id},
    }
    return canned[event]
