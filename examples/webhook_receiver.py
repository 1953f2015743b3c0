"""A Starlette endpoint that receives Owlette webhooks and verifies their signatures.

The signature covers the *raw* request body, so it is verified on ``await request.body()`` before
anything parses it. Deliveries are de-duplicated on the ``Roost-Delivery`` header (a retried
delivery keeps its id).

    pip install "owlette-sdk[server]"          # starlette + uvicorn
    export WEBHOOK_SECRET=whsec_...             # from webhooks.subscribe() / rotate_secret();
                                                # comma-separate two secrets during a rotation
    python examples/webhook_receiver.py --port 8000

Then point a subscription (or a probe) at ``https://<your host>/hooks/roost``. Set
``WEBHOOK_EVENTS_FILE`` to also append every accepted event to a JSON-lines file.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from roost import VerifySignatureResult, verify_signature

_seen_deliveries: set[str] = set()


def _secrets() -> list[str]:
    return [s.strip() for s in os.environ.get("WEBHOOK_SECRET", "").split(",") if s.strip()]


def _verify(header: str | None, raw: bytes, secrets: list[str]) -> VerifySignatureResult:
    result = VerifySignatureResult(ok=False, reason="bad_signature")
    for secret in secrets:
        result = verify_signature(header, raw, secret=secret)
        if result.ok or result.reason != "bad_signature":
            return result
    return result


async def handle_event(event: dict[str, Any]) -> None:
    """Your business logic. Keep it fast: the sender waits for the response."""
    data = event.get("data") or {}
    if event.get("event") == "version.published":
        print(f"roost {data.get('roostId')} published v{data.get('versionNumber')} ({data.get('versionId')})")
    else:
        print(f"received {event.get('event')} ({event.get('id')})")
    events_file = os.environ.get("WEBHOOK_EVENTS_FILE")
    if events_file:
        async with await anyio.open_file(events_file, "a", encoding="utf-8") as handle:
            await handle.write(json.dumps(event) + "\n")


async def roost_webhook(request: Request) -> JSONResponse:
    secrets = _secrets()
    if not secrets:
        return JSONResponse({"error": "WEBHOOK_SECRET is not configured"}, status_code=500)
    raw = await request.body()  # MUST be the raw bytes, not re-serialised JSON
    result = _verify(request.headers.get("roost-signature"), raw, secrets)
    if not result.ok:
        return JSONResponse({"error": result.reason}, status_code=401)
    try:
        event = json.loads(raw)
    except ValueError:
        return JSONResponse({"error": "body is not JSON"}, status_code=400)
    if not isinstance(event, dict):
        return JSONResponse({"error": "body is not a JSON object"}, status_code=400)
    delivery_id = request.headers.get("roost-delivery")
    if delivery_id and delivery_id in _seen_deliveries:
        return JSONResponse({"ok": True, "duplicate": True})
    await handle_event(event)
    if delivery_id:
        _seen_deliveries.add(delivery_id)
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/hooks/roost", roost_webhook, methods=["POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="receive and verify Owlette webhooks")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
