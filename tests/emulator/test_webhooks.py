"""Webhooks: subscriptions, real signed deliveries, retries, delivery history, retry route and probe."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from roost.signature import verify_signature
from roost.testing import EmulatorServer

from ._helpers import api_client, assert_problem, push, webhook_receiver

pytestmark = pytest.mark.anyio


async def test_subscription_lifecycle(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    params = {"siteId": site}
    async with api_client(roost_server) as client:
        created = await client.post(
            "/api/webhooks",
            params=params,
            json={"url": "https://hooks.example.com", "events": ["version.published", "version.published"]},
        )
        assert created.status_code == 201
        body = created.json()
        assert re.fullmatch(r"wh_[0-9a-f]{18}", body["id"])
        assert re.fullmatch(r"whsec_[0-9a-f]{64}", body["signingSecret"])
        assert body["url"] == "https://hooks.example.com/"
        assert body["events"] == ["version.published"]
        listed = await client.get("/api/webhooks", params=params)
        assert "signingSecret" not in json.dumps(listed.json())
        assert listed.json()["webhooks"][0]["id"] == body["id"]
        for bad_body, code in (
            ({"url": "http://hooks.example.com", "events": ["version.published"]}, "bad_scheme"),
            ({"url": "https://hooks.example.com:9000", "events": ["version.published"]}, "bad_port"),
            ({"url": "https://10.0.0.5", "events": ["version.published"]}, "private_ip"),
            ({"url": "https://hooks.example.com", "events": ["nope"]}, "validation_failed"),
            ({"url": "https://hooks.example.com", "events": []}, "validation_failed"),
        ):
            assert_problem(await client.post("/api/webhooks", params=params, json=bad_body), 400, code)
        patched = await client.patch(f"/api/webhooks/{body['id']}", params=params, json={"paused": True})
        assert patched.json()["paused"] is True
        empty = await client.patch(f"/api/webhooks/{body['id']}", params=params, json={})
        assert_problem(empty, 400, "validation_failed")
        rotated = await client.post(f"/api/webhooks/{body['id']}/rotate-secret", params=params, json={})
        assert rotated.json()["gracePeriodHours"] == 24
        assert rotated.json()["signingSecret"] != body["signingSecret"]
        removed = await client.delete(f"/api/webhooks/{body['id']}", params=params)
        again = await client.delete(f"/api/webhooks/{body['id']}", params=params)
        assert removed.json() == again.json()
        gone = await client.get(f"/api/webhooks/{body['id']}", params=params)
        assert_problem(gone, 404, "not_found")


async def test_publish_delivers_a_signed_event(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    params = {"siteId": site}
    with webhook_receiver() as receiver:
        async with api_client(roost_server) as client:
            created = await client.post(
                "/api/webhooks", params=params, json={"url": receiver.url, "events": ["version.published"]}
            )
            secret = created.json()["signingSecret"]
            published = await push(client, site, "hooked-roost", {"a": b"hooked"})
            received = receiver.wait_for(1)
            assert len(received) == 1
            request = received[0]
            assert request.headers["roost-event"] == "version.published"
            assert re.fullmatch(r"[0-9a-f]{32}", request.headers["roost-delivery"])
            assert verify_signature(request.headers["roost-signature"], request.body, secret).ok
            envelope = json.loads(request.body)
            assert list(envelope) == ["data", "event", "occurredAt", "siteId"]
            assert envelope["data"]["versionId"] == published["versionId"]
            assert envelope["siteId"] == site
            history = await client.get(f"/api/webhooks/{created.json()['id']}/deliveries", params=params)
            rows = history.json()["deliveries"]
            assert rows[0]["state"] == "succeeded"
            assert rows[0]["attempt"] == 1
            assert rows[0]["nextAttemptAt"] is None
            detail = await client.get(
                f"/api/webhooks/{created.json()['id']}/deliveries/{rows[0]['id']}", params=params
            )
            assert detail.json()["response"]["status"] == 200
            assert detail.json()["request"]["body"] == request.body.decode()
            retried = await client.post(
                f"/api/webhooks/{created.json()['id']}/deliveries/{rows[0]['id']}/retry",
                params=params,
                json={},
            )
            assert retried.status_code == 202
            assert re.fullmatch(re.escape(rows[0]["id"]) + r"__retry_[0-9a-f]{8}", retried.json()["id"])
            again = receiver.wait_for(2)
            assert len(again) == 2
            assert again[1].body == request.body
            assert again[1].headers["roost-delivery"] == request.headers["roost-delivery"]
            assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", again[1].headers["roost-signature"])


@pytest.mark.roost_server(webhook_retry_base_s=0.05)
async def test_failed_deliveries_are_retried(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    params = {"siteId": site}
    with webhook_receiver(statuses=[503, 500]) as receiver:
        async with api_client(roost_server) as client:
            created = await client.post(
                "/api/webhooks", params=params, json={"url": receiver.url, "events": ["version.published"]}
            )
            await push(client, site, "retry-roost", {"a": b"retry"})
            received = receiver.wait_for(3)
            assert len(received) == 3
            assert len({r.headers["roost-delivery"] for r in received}) == 1
            history = await client.get(f"/api/webhooks/{created.json()['id']}/deliveries", params=params)
            for _ in range(50):
                row = history.json()["deliveries"][0]
                if row["state"] == "succeeded":
                    break
                history = await client.get(f"/api/webhooks/{created.json()['id']}/deliveries", params=params)
            assert row["state"] == "succeeded"
            assert row["attempt"] == 3


async def test_probe_posts_a_signed_canned_event(roost_server: EmulatorServer) -> None:
    params = {"siteId": roost_server.site_id}
    with webhook_receiver() as receiver:
        async with api_client(roost_server) as client:
            response = await client.post(
                "/api/webhooks/probe",
                params=params,
                json={"url": receiver.url, "event": "deployment.completed"},
            )
            assert response.status_code == 200
            body = response.json()
            assert body["status"] == 200
            assert body["event"] == "deployment.completed"
            assert re.fullmatch(r"whsec_[0-9a-f]{64}", body["signingSecret"])
            sent = receiver.requests[0]
            assert sent.body.decode() == body["requestBody"]
            assert sent.headers["user-agent"] == "roost-probe/1.0"
            assert verify_signature(sent.headers["roost-signature"], sent.body, body["signingSecret"]).ok
            envelope = json.loads(body["requestBody"])
            assert list(envelope) == ["data", "event", "id", "occurredAt", "siteId"]
            assert envelope["id"].startswith("evt_probe_")
            short = await client.post(
                "/api/webhooks/probe",
                params=params,
                json={"url": receiver.url, "event": "deployment.completed", "signingSecret": "short"},
            )
            assert_problem(short, 400, "validation_failed")
    async with httpx.AsyncClient(base_url=roost_server.url, headers=roost_server.headers()) as client:
        unreachable = await client.post(
            "/api/webhooks/probe",
            params=params,
            json={"url": "http://127.0.0.1:9/nothing", "event": "version.published"},
        )
        assert unreachable.json()["status"] is None
        assert unreachable.json()["networkError"]
