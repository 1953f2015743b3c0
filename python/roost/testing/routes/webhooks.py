"""``/api/webhooks``: subscriptions, secret rotation, deliveries, retry and probe."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.responses import Response

from roost.signature import sign_body

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import Emulator
from .._jsonutil import canonical_json, iso, now_ms
from .._problems import not_found, problem, validation
from .._webhooks import (
    _DELIVERY_ID_RE,
    _WEBHOOK_ID_RE,
    EVENTS,
    GRACE_MS,
    HISTORY_MS,
    TOMBSTONE_TTL_MS,
    _canned_payload,
    _secret,
    _validate_events,
    check_url,
    serialize_subscription,
)

__all__ = [
    "ROUTES",
    "body_object",
    "create",
    "delete",
    "deliveries",
    "delivery",
    "delivery_doc",
    "delivery_row",
    "description_of",
    "get",
    "list_",
    "live_subscription",
    "patch",
    "probe",
    "retry",
    "rotate",
    "webhook_id",
]


def webhook_id(ctx: Ctx) -> str:
    value = ctx.param("webhookId")
    if not _WEBHOOK_ID_RE.match(value):
        raise validation(
            "webhookId must be 8-64 chars: letters, digits, underscore, hyphen",
            {"path.webhookId": ["invalid format"]},
        )
    return value


def live_subscription(emu: Emulator, site_id: str, wid: str) -> dict[str, Any]:
    store = emu.store
    doc = store.get("webhook", site_id, wid)
    if doc is None or doc.get("deletedAt") is not None:
        raise not_found(f"webhook {wid} not found on site {site_id}")
    return doc


async def body_object(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json_lenient()
    if not isinstance(body, dict):
        raise validation("request body must be a JSON object")
    return body


def description_of(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation(
            "description must be a string when provided", {"body.description": ["must be a string"]}
        )
    return value.strip()[:500] or None


async def create(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    strict = emu.options.strict_webhook_urls
    site_id = ctx.site_id_from_query()
    principal = ctx.auth_site(site_id, "write")
    body = await body_object(ctx)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    url = check_url(body.get("url"), strict=strict)
    events = _validate_events(body.get("events"))
    description = description_of(body.get("description"))
    wid = "wh_" + secrets.token_hex(9)
    now = now_ms()
    doc: dict[str, Any] = {
        "id": wid,
        "schemaVersion": 1,
        "url": url,
        "hostname": urlsplit(url).hostname,
        "events": events,
        "signingSecret": _secret(),
        "secretRotatedAt": None,
        "createdAt": now,
        "updatedAt": now,
        "createdBy": principal.uid,
        "paused": False,
        "deletedAt": None,
        "lastDeliveryAt": None,
        "lastDeliveryStatus": None,
        "failureCount": 0,
    }
    if description:
        doc["description"] = description
    store.put("webhook", site_id, wid, doc, new_seq=True)
    result: dict[str, Any] = {
        "id": wid,
        "siteId": site_id,
        "url": url,
        "events": events,
        "paused": False,
        "createdAt": iso(now),
        "signingSecret": doc["signingSecret"],
    }
    if description:
        result["description"] = description
    return ok(result, 201)


async def list_(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_id = ctx.site_id_from_query()
    size = ctx.page_size(20, 100)
    ctx.auth_site(site_id, "read")
    rows = store.docs("webhook", site_id)
    page, token = paginate(rows, ctx.page_token(), size, lambda d: d.get("deletedAt") is None)
    return ok(with_pagination({"webhooks": [serialize_subscription(d) for d in page]}, token))


async def get(ctx: Ctx) -> Response:
    emu = ctx.emu
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    ctx.auth_site(site_id, "read")
    return ok(serialize_subscription(live_subscription(emu, site_id, wid)))


async def patch(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    strict = emu.options.strict_webhook_urls
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    ctx.auth_site(site_id, "write")
    body = await body_object(ctx)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    changes: dict[str, Any] = {}
    remove_description = False
    if "url" in body:
        changes["url"] = check_url(body["url"], strict=strict)
        changes["hostname"] = urlsplit(changes["url"]).hostname
    if "events" in body:
        changes["events"] = _validate_events(body["events"])
    if "description" in body:
        description = description_of(body["description"])
        if description is None:
            remove_description = True
        else:
            changes["description"] = description
    if "paused" in body:
        if not isinstance(body["paused"], bool):
            raise validation("paused must be a boolean when provided", {"body.paused": ["must be a boolean"]})
        changes["paused"] = body["paused"]
    if not changes and not remove_description:
        raise validation(
            "no updatable fields provided",
            {"body": ["must include at least one of: url, events, description, paused"]},
        )
    with store.transaction():
        doc = live_subscription(emu, site_id, wid)
        doc.update(changes)
        if remove_description:
            doc.pop("description", None)
        doc["updatedAt"] = now_ms()
        store.put("webhook", site_id, wid, doc)
    return ok(serialize_subscription(doc))


async def delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    principal = ctx.auth_site(site_id, "write")
    with store.transaction():
        doc = store.get("webhook", site_id, wid)
        if doc is None:
            raise not_found(f"webhook {wid} not found on site {site_id}")
        if doc.get("deletedAt") is None:
            now = now_ms()
            doc.update(
                {
                    "deletedAt": now,
                    "deletedBy": principal.uid,
                    "tombstoneExpiresAt": now + TOMBSTONE_TTL_MS,
                    "paused": True,
                    "updatedAt": now,
                }
            )
            store.put("webhook", site_id, wid, doc)
    return ok(
        {
            "id": wid,
            "siteId": site_id,
            "softDeleted": True,
            "tombstoneExpiresAt": iso(doc["tombstoneExpiresAt"]),
        }
    )


async def rotate(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    ctx.auth_site(site_id, "write")
    await ctx.body()
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    now = now_ms()
    with store.transaction():
        doc = live_subscription(emu, site_id, wid)
        doc["previousSigningSecret"] = doc.get("signingSecret")
        doc["previousSecretValidUntil"] = now + GRACE_MS
        doc["signingSecret"] = _secret()
        doc["secretRotatedAt"] = now
        doc["updatedAt"] = now
        store.put("webhook", site_id, wid, doc)
    return ok(
        {
            "id": wid,
            "siteId": site_id,
            "signingSecret": doc["signingSecret"],
            "previousSecretValidUntil": iso(now + GRACE_MS),
            "gracePeriodHours": 24,
            "rotatedAt": iso(now),
        }
    )


def delivery_row(doc: dict[str, Any]) -> dict[str, Any]:
    state = doc.get("state") or "pending"
    return {
        "id": doc["id"],
        "event": doc.get("event"),
        "state": state,
        "attempt": doc.get("attempt") or 0,
        "lastStatus": doc.get("lastStatus"),
        "lastError": doc.get("lastError"),
        "createdAt": iso(doc.get("createdAt")),
        "completedAt": iso(doc.get("completedAt")),
        "nextAttemptAt": iso(doc.get("nextAttemptAt")) if state == "pending" else None,
    }


async def deliveries(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    size = ctx.page_size(20, 100)
    ctx.auth_site(site_id, "read")
    live_subscription(emu, site_id, wid)
    cutoff = now_ms() - HISTORY_MS
    rows = [
        (rid, doc)
        for rid, doc in store.docs("delivery", "")
        if doc.get("subscriptionId") == wid and int(doc.get("createdAt") or 0) >= cutoff
    ]
    page, token = paginate(rows, ctx.page_token(), size)
    return ok(with_pagination({"deliveries": [delivery_row(d) for d in page]}, token))


def delivery_doc(ctx: Ctx, site_id: str, wid: str) -> dict[str, Any]:
    emu = ctx.emu
    store = emu.store
    delivery_id = ctx.param("deliveryId")
    if not _DELIVERY_ID_RE.match(delivery_id):
        raise validation("deliveryId is malformed", {"path.deliveryId": ["invalid format"]})
    live_subscription(emu, site_id, wid)
    doc = store.get("delivery", "", delivery_id)
    if doc is None:
        raise not_found(f"delivery {delivery_id} not found")
    if doc.get("subscriptionId") != wid:
        raise not_found(f"delivery {delivery_id} does not belong to webhook {wid}")
    if doc.get("siteId") != site_id:
        raise not_found(f"delivery {delivery_id} does not belong to site {site_id}")
    return doc


async def delivery(ctx: Ctx) -> Response:
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    ctx.auth_site(site_id, "read")
    doc = delivery_doc(ctx, site_id, wid)
    response_info = doc.get("response") if isinstance(doc.get("lastStatus"), int) else None
    state = doc.get("state") or "pending"
    return ok(
        {
            "id": doc["id"],
            "webhookId": wid,
            "siteId": site_id,
            "event": doc.get("event"),
            "state": state,
            "request": {
                "method": "POST",
                "url": doc.get("url"),
                "headers": doc.get("requestHeaders") or {},
                "body": doc.get("canonicalBody"),
            },
            "response": response_info,
            "attempt": doc.get("attempt") or 0,
            "nextAttemptAt": iso(doc.get("nextAttemptAt")) if state == "pending" else None,
            "createdAt": iso(doc.get("createdAt")),
            "completedAt": iso(doc.get("completedAt")),
            "lastError": doc.get("lastError"),
        }
    )


async def retry(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    wid = webhook_id(ctx)
    site_id = ctx.site_id_from_query()
    principal = ctx.auth_site(site_id, "write")
    await ctx.body()
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    original = delivery_doc(ctx, site_id, wid)
    sub = live_subscription(emu, site_id, wid)
    if not sub.get("signingSecret") or not original.get("canonicalBody") or not original.get("url"):
        raise problem(500, "internal-error", "internal error", "delivery cannot be retried")
    now = now_ms()
    new_id = f"{original['id']}__retry_{secrets.token_hex(4)}"
    public_id = original.get("publicId") or str(original["id"]).split("__")[0]
    body = str(original["canonicalBody"])
    store.put(
        "delivery",
        "",
        new_id,
        {
            "id": new_id,
            "publicId": public_id,
            "subscriptionId": wid,
            "siteId": site_id,
            "event": original.get("event"),
            "url": original.get("url"),
            "canonicalBody": body,
            "state": "pending",
            "attempt": 0,
            "lastStatus": None,
            "lastError": None,
            "createdAt": now,
            "completedAt": None,
            "nextAttemptAt": now,
            "requestHeaders": {
                "Content-Type": "application/json",
                "Roost-Event": str(original.get("event")),
                "Roost-Delivery": str(public_id),
                "Roost-Signature": sign_body(body, str(sub["signingSecret"])),
            },
            "response": None,
            "retryOf": original["id"],
            "retryOfPublicId": public_id,
            "retriedBy": principal.uid,
            "retriedAt": now,
        },
        new_seq=True,
    )
    if callable(emu.webhook_kick):
        emu.webhook_kick()
    return ok(
        {
            "id": new_id,
            "webhookId": wid,
            "siteId": site_id,
            "retryOf": original["id"],
            "state": "pending",
            "nextAttemptAt": iso(now),
        },
        202,
    )


async def probe(ctx: Ctx) -> Response:
    emu = ctx.emu
    strict = emu.options.strict_webhook_urls
    site_id = ctx.site_id_from_query()
    ctx.auth_site(site_id, "write")
    body = await ctx.json_strict()
    if not isinstance(body, dict):
        raise validation("request body must be a JSON object")
    url = check_url(body.get("url"), strict=strict, title="probe url rejected")
    event = body.get("event")
    if event not in EVENTS:
        raise validation("event must be a known roost webhook event name", {"body.event": ["unknown event"]})
    payload = body.get("payload")
    if payload is None:
        payload = _canned_payload(str(event), site_id)
    elif not isinstance(payload, dict):
        raise validation(
            "payload must be a JSON object when provided", {"body.payload": ["must be an object"]}
        )
    secret = body.get("signingSecret")
    if secret is None:
        secret = _secret()
    elif not isinstance(secret, str) or len(secret) < 32:
        raise validation(
            "signingSecret must be a string of at least 32 characters",
            {"body.signingSecret": ["min length 32"]},
        )
    envelope = {
        "id": "evt_probe_" + secrets.token_hex(8),
        "event": event,
        "occurredAt": iso(now_ms()),
        "siteId": site_id,
        "data": payload,
    }
    request_body = canonical_json(envelope)
    delivery_id = str(uuid.uuid4())
    signature = sign_body(request_body, secret)
    headers = {
        "Content-Type": "application/json",
        "Roost-Event": str(event),
        "Roost-Delivery": delivery_id,
        "Roost-Signature": signature,
        "User-Agent": "roost-probe/1.0",
    }
    started = time.monotonic()
    result: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(url, content=request_body.encode("utf-8"), headers=headers)
        result["status"] = response.status_code
        text = response.text[:2048]
    except httpx.HTTPError as exc:
        result["status"] = None
        text = ""
        result["networkError"] = str(exc) or type(exc).__name__
    out: dict[str, Any] = {
        "status": result["status"],
        "durationMs": int((time.monotonic() - started) * 1000),
        "deliveryId": delivery_id,
        "event": event,
        "requestBody": request_body,
        "signature": signature,
        "signingSecret": secret,
    }
    if text:
        out["responseBody"] = text
    if "networkError" in result:
        out["networkError"] = result["networkError"]
    return ok(out)


ROUTES: RouteTable = [
    ("/api/webhooks", {"GET": list_, "POST": create}),
    ("/api/webhooks/probe", {"POST": probe}),
    ("/api/webhooks/{webhookId}", {"GET": get, "PATCH": patch, "DELETE": delete}),
    ("/api/webhooks/{webhookId}/rotate-secret", {"POST": rotate}),
    ("/api/webhooks/{webhookId}/deliveries", {"GET": deliveries}),
    ("/api/webhooks/{webhookId}/deliveries/{deliveryId}", {"GET": delivery}),
    ("/api/webhooks/{webhookId}/deliveries/{deliveryId}/retry", {"POST": retry}),
]
