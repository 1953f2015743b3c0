"""client.chat: conversation CRUD and the streamed reply parser."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from roost import ConversationSummary, Roost, RoostApiError
from roost.resources.chat import parse_stream_line

from .conftest import Expected, MockApi

pytestmark = pytest.mark.anyio

CONV = "conv_abcdefghijklmnopqrstuvwx"
CBASE = "/api/cortex/conversations"


def stream_reply(api: MockApi, path: str, pieces: list[bytes], *, status: int = 200) -> None:
    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    response = httpx.Response(
        status,
        headers={
            "content-type": "text/plain; charset=utf-8",
            "x-vercel-ai-data-stream": "v1",
            "x-request-id": "req-s",
        },
        content=body(),
    )
    api.queue.append(Expected("POST", path, response))


async def test_new_list_rename_delete(api: MockApi, client: Roost) -> None:
    api.reply(
        "POST",
        CBASE,
        {
            "ok": True,
            "data": {
                "conversationId": CONV,
                "title": "diagnostics",
                "siteId": "site-1",
                "machineId": "machine-a7f3",
                "messages": [],
            },
        },
        status=201,
    )
    conversation = await client.chat.new(site_id="site-1", machine_id="machine-a7f3", title="diagnostics")
    assert conversation["conversationId"] == CONV
    assert api.last.body == {"siteId": "site-1", "machineId": "machine-a7f3", "title": "diagnostics"}
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-")

    api.reply(
        "GET",
        CBASE,
        {
            "ok": True,
            "data": {
                "conversations": [
                    {
                        "conversationId": CONV,
                        "title": "diagnostics",
                        "siteId": "site-1",
                        "ownerUid": "u1",
                        "messageCount": 2,
                        "createdAt": "t",
                        "updatedAt": "t",
                    }
                ],
                "next_page_token": CONV,
                "nextPageToken": CONV,
            },
        },
    )
    page = await client.chat.list(site_id="site-1", page_size=10)
    assert api.last.query == {"siteId": "site-1", "page_size": "10"}
    assert page["conversations"] == [
        ConversationSummary(
            conversation_id=CONV,
            title="diagnostics",
            site_id="site-1",
            owner_uid="u1",
            created_at="t",
            updated_at="t",
            message_count=2,
        )
    ]
    assert page["next_page_token"] == CONV

    api.reply("PATCH", f"{CBASE}/{CONV}", {"ok": True, "data": {"conversationId": CONV, "title": "renamed"}})
    assert (await client.chat.rename(CONV, "renamed"))["title"] == "renamed"
    assert api.last.body == {"title": "renamed"}

    api.reply(
        "DELETE", f"{CBASE}/{CONV}", {"ok": True, "data": {"conversationId": CONV, "alreadyDeleted": False}}
    )
    assert (await client.chat.delete(CONV))["alreadyDeleted"] is False
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-chat-delete-")


async def test_send_yields_deltas_across_chunk_boundaries(api: MockApi, client: Roost) -> None:
    stream_reply(
        api,
        f"{CBASE}/{CONV}",
        [
            b'0:"hel',
            b'lo "\n0:"w\xc3',
            b'\xa9rld"\n',
            b'\n9:{"tool":1}\n',
            b'0:42\n0:not json\nd:{"finishReason":"stop"}\n0:"after done"\n',
        ],
    )
    deltas = [d async for d in client.chat.send(CONV, "summarize machine health")]
    assert deltas == ["hello ", "wérld"]
    assert api.last.body == {"role": "user", "content": "summarize machine health"}
    assert api.last.idempotency_key is not None
    assert api.last.idempotency_key.startswith("py-sdk-chat-send-")


async def test_send_trailing_line_without_newline(api: MockApi, client: Roost) -> None:
    stream_reply(api, f"{CBASE}/{CONV}", [b'0:"a"\r\n0:"b"'])
    assert [d async for d in client.chat.send(CONV, "hi", idempotency_key="s-1")] == ["a", "b"]
    assert api.last.idempotency_key == "s-1"


async def test_send_is_lazy_and_not_awaitable(api: MockApi, client: Roost) -> None:
    iterator = client.chat.send(CONV, "hi")
    assert api.calls == []
    stream_reply(api, f"{CBASE}/{CONV}", [b'0:"x"\n'])
    assert [d async for d in iterator] == ["x"]


async def test_send_error_frame_raises_after_deltas(api: MockApi, client: Roost) -> None:
    stream_reply(api, f"{CBASE}/{CONV}", [b'0:"partial"\n3:"cortex response timed out"\n0:"never"\n'])
    got: list[str] = []

    async def consume() -> None:
        async for delta in client.chat.send(CONV, "hi"):
            got.append(delta)

    with pytest.raises(RoostApiError) as info:
        await consume()
    assert got == ["partial"]
    err = info.value
    assert err.status == 502
    assert err.code == "cortex_stream_error"
    assert str(err) == "cortex response timed out"
    assert err.request_id == "req-s"


async def test_send_http_error(api: MockApi, client: Roost) -> None:
    api.problem("POST", f"{CBASE}/{CONV}", 503, "cortex_unavailable")
    with pytest.raises(RoostApiError) as info:
        async for _ in client.chat.send(CONV, "hi"):
            pass
    assert (info.value.status, info.value.code) == (503, "cortex_unavailable")
    assert len(api.calls) == 1  # streams are never retried


async def test_send_accepts_ai_sdk_sse_frames(api: MockApi, client: Roost) -> None:
    stream_reply(
        api,
        f"{CBASE}/{CONV}",
        [
            b'data: {"type":"start","messageId":"m"}\n\n',
            b'data: {"type":"text-start","id":"t"}\n\n',
            b'data: {"type":"text-delta","id":"t","delta":"Hel"}\n\n',
            b'data: {"type":"text-delta","id":"t","delta":"lo"}\n\n',
            b'data: {"type":"finish"}\n\ndata: [DONE]\n\n',
        ],
    )
    assert [d async for d in client.chat.send(CONV, "hi")] == ["Hel", "lo"]

    stream_reply(api, f"{CBASE}/{CONV}", [b'data: {"type":"error","errorText":"model overloaded"}\n\n'])
    with pytest.raises(RoostApiError, match="model overloaded"):
        async for _ in client.chat.send(CONV, "hi"):
            pass


def test_parse_stream_line_table() -> None:
    assert parse_stream_line('0:"x"') == ("text", "x")
    assert parse_stream_line("0:{}") is None
    assert parse_stream_line('3:"boom"') == ("error", "boom")
    assert parse_stream_line("3:not json") == ("error", "not json")
    assert parse_stream_line('d:{"finishReason":"stop"}') == ("done", "")
    assert parse_stream_line("data: [DONE]") == ("done", "")
    assert parse_stream_line('data: {"type":"text-delta","textDelta":"old"}') == ("text", "old")
    assert parse_stream_line("event: ping") is None
    assert parse_stream_line("") is None


async def test_send_validates_locally(api: MockApi, client: Roost) -> None:
    with pytest.raises(ValueError, match="conversation_id"):
        client.chat.send("", "hi")
    with pytest.raises(ValueError, match="message"):
        client.chat.send(CONV, "   ")
    assert api.calls == []
