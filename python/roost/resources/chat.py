"""``client.chat``: Cortex conversations (canonical ``/api/cortex/conversations`` routes).

``send`` streams the assistant's reply as text deltas. The documented wire is the AI-SDK data
stream v1 line protocol (``0:"text"`` deltas, ``d:{...}`` done, ``3:"message"`` error); the
AI-SDK UI-message SSE frames some servers emit instead (``data: {"type":"text-delta",...}``,
``data: {"type":"error","errorText":...}``, ``data: [DONE]``) are understood too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from .._errors import RoostApiError
from .._paging import read_token
from .._wire import api_path, as_int, as_opt_str, as_str
from ._base import Resource
from ._common import expect_row, parse_rows, require_id, require_row_id, unwrap_data

__all__ = ["Chat", "ConversationSummary", "CortexStreamError"]

SEND_KEY_PREFIX = "py-sdk-chat-send-"
DELETE_KEY_PREFIX = "py-sdk-chat-delete-"
STREAM_ERROR_STATUS = 502
STREAM_ERROR_CODE = "cortex_stream_error"


@dataclass(slots=True)
class ConversationSummary:
    """A conversation as listed by ``chat.list()`` (messages not included)."""

    conversation_id: str
    title: str
    site_id: str
    machine_id: str | None = None
    owner_uid: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    deleted_at: str | None = None
    message_count: int = 0

    @classmethod
    def from_payload(cls, data: Any, where: str = "conversation") -> ConversationSummary:
        row = expect_row(data, where)
        return cls(
            conversation_id=require_row_id(row, where, "conversationId"),
            title=as_str(row.get("title")),
            site_id=as_str(row.get("siteId")),
            machine_id=as_opt_str(row.get("machineId")),
            owner_uid=as_opt_str(row.get("ownerUid")),
            created_at=as_opt_str(row.get("createdAt")),
            updated_at=as_opt_str(row.get("updatedAt")),
            deleted_at=as_opt_str(row.get("deletedAt")),
            message_count=as_int(row.get("messageCount")),
        )


class CortexStreamError(RoostApiError, RuntimeError):
    """An error frame inside a Cortex reply stream (status 502, code ``cortex_stream_error``).

    Also a ``RuntimeError`` because the reference SDK raises its plain ``Error`` there, and code
    written for it catches ``RuntimeError``; ``except RoostApiError`` catches it as well.
    """


# One parsed stream line: ("text", delta) | ("error", message) | ("done", "") | None (ignored).
_Event = tuple[str, str] | None


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_stream_line(line: str) -> _Event:
    """Classify one line of a Cortex reply stream."""
    line = line.rstrip("\r")
    if not line:
        return None
    if line.startswith("0:"):
        value = _json_or_none(line[2:])
        return ("text", value) if isinstance(value, str) else None
    if line.startswith("3:"):
        raw = line[2:]
        value = _json_or_none(raw)
        return ("error", value if isinstance(value, str) else raw.strip())
    if line.startswith("d:"):
        return ("done", "")
    if line.startswith("data:"):
        payload = line[5:].strip()
        if payload == "[DONE]":
            return ("done", "")
        frame = _json_or_none(payload)
        if not isinstance(frame, dict):
            return None
        kind = frame.get("type")
        if kind == "text-delta":
            delta = frame.get("delta", frame.get("textDelta"))
            return ("text", delta) if isinstance(delta, str) else None
        if kind == "error":
            text = frame.get("errorText", frame.get("error"))
            return ("error", text if isinstance(text, str) else json.dumps(frame))
    return None


class Chat(Resource):
    """``client.chat``."""

    def _path(self, conversation_id: str | None = None) -> str:
        if conversation_id is None:
            return "/api/cortex/conversations"
        return api_path("api", "cortex", "conversations", require_id(conversation_id, "conversation_id"))

    async def new(
        self,
        *,
        site_id: str,
        machine_id: str | None = None,
        title: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Start a conversation; returns the ``data`` object (``conversationId``, ``title``, ...)."""
        body: dict[str, Any] = {"siteId": require_id(site_id, "site_id")}
        if machine_id is not None:
            body["machineId"] = require_id(machine_id, "machine_id")
        if title is not None:
            body["title"] = title
        response = await self._http.request(
            self._path(), method="POST", body=body, idempotency_key=idempotency_key
        )
        return unwrap_data(response.data, "POST /api/cortex/conversations")

    async def list(
        self, *, site_id: str, page_size: int | None = None, page_token: str | None = None
    ) -> dict[str, Any]:
        """One page: ``{"conversations": list[ConversationSummary], "next_page_token": str}``."""
        where = "GET /api/cortex/conversations"
        response = await self._http.request(
            self._path(),
            query={
                "siteId": require_id(site_id, "site_id"),
                "page_size": page_size,
                "page_token": page_token or None,
            },
        )
        data = unwrap_data(response.data, where)
        return {
            "conversations": parse_rows(data, ("conversations",), where, ConversationSummary.from_payload),
            "next_page_token": read_token(data),
        }

    def send(
        self,
        conversation_id: str,
        message: str,
        *,
        role: str = "user",
        idempotency_key: str | None = None,
    ) -> AsyncIterator[str]:
        """Send a message and iterate over the reply's text deltas (``async for delta in ...``).

        This is a plain method (do not ``await`` it); the request starts on the first iteration
        and is never retried. An HTTP error raises :class:`roost.RoostApiError`; an error frame in
        the stream raises :class:`CortexStreamError` (a ``RoostApiError`` and a ``RuntimeError``) with status 502 and code ``cortex_stream_error`` after
        the deltas before it were delivered.
        """
        path = self._path(conversation_id)
        if not isinstance(message, str) or not message.strip():
            raise ValueError("chat.send: message must be a non-empty string")
        return self._stream(path, {"role": role, "content": message}, idempotency_key)

    async def _stream(
        self, path: str, body: dict[str, Any], idempotency_key: str | None
    ) -> AsyncIterator[str]:
        async with self._http.stream(
            path, method="POST", body=body, idempotency_key=idempotency_key, key_prefix=SEND_KEY_PREFIX
        ) as response:
            request_id = response.headers.get("x-request-id")
            async for line in response.aiter_lines():
                event = parse_stream_line(line)
                if event is None:
                    continue
                kind, text = event
                if kind == "text":
                    yield text
                elif kind == "error":
                    raise CortexStreamError(
                        STREAM_ERROR_STATUS,
                        {
                            "title": "cortex stream error",
                            "status": STREAM_ERROR_STATUS,
                            "code": STREAM_ERROR_CODE,
                            "detail": text or "cortex stream error",
                        },
                        request_id=request_id,
                    )
                else:
                    return

    async def rename(
        self, conversation_id: str, title: str, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Retitle a conversation; returns ``{conversationId, title}``."""
        path = self._path(conversation_id)
        response = await self._http.request(
            path, method="PATCH", body={"title": require_id(title, "title")}, idempotency_key=idempotency_key
        )
        return unwrap_data(response.data, f"PATCH {path}")

    async def delete(self, conversation_id: str, *, idempotency_key: str | None = None) -> dict[str, Any]:
        """Soft-delete a conversation; returns ``{conversationId, alreadyDeleted}``."""
        path = self._path(conversation_id)
        response = await self._http.request(
            path, method="DELETE", idempotency_key=idempotency_key, key_prefix=DELETE_KEY_PREFIX
        )
        return unwrap_data(response.data, f"DELETE {path}")
