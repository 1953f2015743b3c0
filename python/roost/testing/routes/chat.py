"""``/api/cortex/conversations``: chat with a deterministic assistant."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from .._core import Ctx, RouteTable, ok, paginate, with_pagination
from .._emulator import Emulator, Principal
from .._jsonutil import dumps, iso, now_ms
from .._problems import ApiError, not_found, problem, scope_insufficient, validation

__all__ = [
    "ROUTES",
    "auth_chat",
    "chat_create",
    "chat_delete",
    "chat_list",
    "chat_rename",
    "chat_send",
    "check_owner",
    "conversation",
    "normalize_title",
    "reply_for",
    "summary",
]


def auth_chat(ctx: Ctx, site_id: str, permission: str) -> Principal:
    emu = ctx.emu
    principal = ctx.authenticate()
    site = emu.site(site_id)
    if principal.is_deleted or site is None or not emu.has_site_access(principal, site):
        raise not_found("site not found or no access")
    if not principal.has_scope("chat", site_id, permission):
        raise scope_insufficient("chat", site_id, permission)
    return principal


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "conversationId": doc["conversationId"],
        "title": doc.get("title"),
        "siteId": doc["siteId"],
    }
    if doc.get("machineId"):
        out["machineId"] = doc["machineId"]
    out.update(
        {
            "ownerUid": doc.get("ownerUid"),
            "createdAt": iso(doc.get("createdAt")),
            "updatedAt": iso(doc.get("updatedAt")),
        }
    )
    if doc.get("deletedAt") is not None:
        out["deletedAt"] = iso(doc["deletedAt"])
    out["messageCount"] = len(doc.get("messages") or [])
    return out


def normalize_title(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return "untitled chat"
    return value.strip()[:100]


def conversation(emu: Emulator, conversation_id: str, *, allow_deleted: bool = False) -> dict[str, Any]:
    store = emu.store
    doc = store.get("conversation", "", conversation_id)
    if doc is None or (doc.get("deletedAt") is not None and not allow_deleted):
        raise not_found(f"conversation {conversation_id} not found", title="conversation not found")
    return doc


def check_owner(principal: Principal, doc: dict[str, Any]) -> None:
    if doc.get("ownerUid") != principal.uid and not principal.is_superadmin:
        raise not_found(f"conversation {doc['conversationId']} not found", title="conversation not found")


async def chat_list(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    site_filter = ctx.query("siteId")
    if site_filter is not None and not re.match(r"^[A-Za-z0-9_-]{1,128}$", site_filter):
        raise validation("siteId is malformed", {"query.siteId": ["invalid format"]})
    try:
        principal = ctx.authenticate(style="plain")
    except ApiError:
        raise problem(401, "unauthorized", "unauthorized", "authentication required") from None
    raw_size = ctx.query("page_size") if ctx.query("page_size") is not None else ctx.query("limit")
    try:
        size = max(1, min(100, int(raw_size))) if raw_size is not None else 25
    except ValueError:
        size = 25
    token = ctx.query("page_token") or ctx.query("cursor")
    readable = {s["id"] for _, s in store.docs("site", "") if emu.has_site_access(principal, s)}
    if principal.key is not None:
        chat_scopes = [s for s in principal.scopes_for("chat") if "read" in (s.get("permissions") or [])]
        if not any(s.get("id") == "*" for s in chat_scopes):
            readable &= {str(s.get("id")) for s in chat_scopes}
    include_deleted = ctx.query("includeDeleted") == "true"
    owner = ctx.query("owner")
    all_owners = owner == "all" and principal.is_superadmin
    rows = sorted(store.docs("conversation", ""), key=lambda r: int(r[1].get("updatedAt") or 0), reverse=True)

    def include(doc: dict[str, Any]) -> bool:
        if doc.get("siteId") not in readable:
            return False
        if site_filter is not None and doc.get("siteId") != site_filter:
            return False
        if not all_owners and doc.get("ownerUid") != principal.uid:
            return False
        return include_deleted or doc.get("deletedAt") is None

    page, next_token = paginate(rows, token, size, include)
    return ok(
        {"ok": True, "data": with_pagination({"conversations": [summary(d) for d in page]}, next_token)}
    )


async def chat_create(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    body = await ctx.json_lenient()
    site_id = body.get("siteId") if isinstance(body, dict) else None
    if not isinstance(site_id, str) or not site_id:
        raise validation("siteId is required", {"body.siteId": ["required"]})
    principal = auth_chat(ctx, site_id, "write")
    replay = await ctx.idempotency(required=True)
    if replay is not None:
        return replay
    machine_id = body.get("machineId")
    if machine_id is not None and (not isinstance(machine_id, str) or not machine_id):
        raise validation("machineId must be a non-empty string", {"body.machineId": ["must be a string"]})
    now = now_ms()
    messages: list[dict[str, Any]] = []
    initial = body.get("initial_message")
    if initial is not None:
        if not isinstance(initial, dict) or initial.get("role") != "user":
            raise validation(
                "initial_message.role must be user", {"body.initial_message.role": ["must be user"]}
            )
        content = initial.get("content")
        if not isinstance(content, str) or not content.strip():
            raise validation(
                "initial_message.content must be a non-empty string",
                {"body.initial_message.content": ["required"]},
            )
        messages.append({"role": "user", "content": content, "timestamp": iso(now)})
    conversation_id = "conv_" + secrets.token_urlsafe(18)
    doc: dict[str, Any] = {
        "conversationId": conversation_id,
        "title": normalize_title(body.get("title")),
        "siteId": site_id,
        "ownerUid": principal.uid,
        "createdAt": now,
        "updatedAt": now,
        "messages": messages,
        "deletedAt": None,
    }
    if machine_id:
        doc["machineId"] = machine_id
    store.put("conversation", "", conversation_id, doc, new_seq=True)
    return ok({"ok": True, "data": {**summary(doc), "messages": messages}}, 201)


def reply_for(message: str) -> list[str]:
    text = f"Hoot! The emulator heard: {message.strip()[:200]}"
    words = text.split(" ")
    return [word + (" " if index < len(words) - 1 else "") for index, word in enumerate(words)]


async def chat_send(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    conversation_id = ctx.param("conversationId")
    body = await ctx.json_lenient()
    if not isinstance(body, dict):
        raise validation("request body must be a JSON object")
    extra = [k for k in body if k not in ("role", "content")]
    if extra:
        raise problem(
            400,
            "validation-failed",
            "forbidden_field",
            "public Cortex send accepts only `role` and `content`",
            code="forbidden_field",
        )
    if body.get("role", "user") != "user":
        raise validation("role must be user", {"body.role": ["must be user"]})
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise validation(
            "content must be a non-empty string", {"body.content": ["required non-empty string"]}
        )
    doc = conversation(emu, conversation_id)
    principal = auth_chat(ctx, str(doc["siteId"]), "write")
    check_owner(principal, doc)
    await ctx.idempotency(required=True)
    ctx.idem_entry = None
    site_id = str(doc["siteId"])
    machine_id = doc.get("machineId")
    if machine_id:
        machine = store.get("machine", site_id, str(machine_id))
        if machine is None:
            raise problem(
                400,
                "service-unavailable",
                "cortex stream unavailable",
                "machine id missing",
                code="cortex_unavailable",
            )
        if machine.get("cortexEnabled") is False:
            raise problem(
                423,
                "service-unavailable",
                "cortex stream unavailable",
                f"cortex is disabled on machine {machine_id}",
                code="cortex_unavailable",
            )
        if machine.get("online") is False:
            raise problem(
                503,
                "service-unavailable",
                "cortex stream unavailable",
                f"machine {machine_id} is offline",
                code="cortex_unavailable",
            )
    elif not any(m.get("online") is not False for _, m in store.docs("machine", site_id)):
        raise problem(
            503,
            "service-unavailable",
            "cortex stream unavailable",
            f"no online machines in site {site_id}",
            code="cortex_unavailable",
        )
    now = now_ms()
    doc.setdefault("messages", []).append({"role": "user", "content": content, "timestamp": iso(now)})
    doc["updatedAt"] = now
    store.put("conversation", "", conversation_id, doc)
    deltas = reply_for(content)

    async def stream() -> AsyncIterator[bytes]:
        for delta in deltas:
            yield f"0:{dumps(delta)}\n".encode()
        yield b'd:{"finishReason":"stop"}\n'
        latest = store.get("conversation", "", conversation_id) or doc
        latest.setdefault("messages", []).append(
            {"role": "assistant", "content": "".join(deltas), "timestamp": iso(now_ms())}
        )
        latest["updatedAt"] = now_ms()
        store.put("conversation", "", conversation_id, latest)

    return StreamingResponse(
        stream(),
        status_code=200,
        media_type="text/plain; charset=utf-8",
        headers={"X-Vercel-AI-Data-Stream": "v1"},
    )


async def chat_rename(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    conversation_id = ctx.param("conversationId")
    body = await ctx.json_lenient()
    if not isinstance(body, dict):
        raise validation("request body must be a JSON object")
    extra = [k for k in body if k != "title"]
    if extra:
        raise problem(
            400,
            "validation-failed",
            "forbidden_field",
            "only the following fields are mutable: title",
            code="forbidden_field",
        )
    title = body.get("title")
    if not isinstance(title, str) or not title.strip():
        raise validation("title must be a non-empty string", {"body.title": ["required non-empty string"]})
    doc = conversation(emu, conversation_id)
    principal = auth_chat(ctx, str(doc["siteId"]), "write")
    check_owner(principal, doc)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    doc["title"] = normalize_title(title)
    doc["updatedAt"] = now_ms()
    store.put("conversation", "", conversation_id, doc)
    return ok({"ok": True, "data": {"conversationId": conversation_id, "title": doc["title"]}})


async def chat_delete(ctx: Ctx) -> Response:
    emu = ctx.emu
    store = emu.store
    conversation_id = ctx.param("conversationId")
    doc = conversation(emu, conversation_id, allow_deleted=True)
    principal = auth_chat(ctx, str(doc["siteId"]), "write")
    check_owner(principal, doc)
    replay = await ctx.idempotency()
    if replay is not None:
        return replay
    already = doc.get("deletedAt") is not None
    if not already:
        doc["deletedAt"] = now_ms()
        store.put("conversation", "", conversation_id, doc)
    return ok({"ok": True, "data": {"conversationId": conversation_id, "alreadyDeleted": already}})


ROUTES: RouteTable = [
    ("/api/cortex/conversations", {"GET": chat_list, "POST": chat_create}),
    (
        "/api/cortex/conversations/{conversationId}",
        {"POST": chat_send, "PATCH": chat_rename, "DELETE": chat_delete},
    ),
]
