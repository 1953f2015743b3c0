"""Fault injection: parsing, seeded API 5xx/429, storage 5xx/drops, latency, bandwidth, short TTLs."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from roost.testing import FAULT_KNOBS, EmulatorServer, Faults, FaultSpecError

from ._helpers import api_client, sha, storage_client

pytestmark = pytest.mark.anyio


def test_parse_every_knob() -> None:
    faults = Faults.parse(
        "api_5xx=0.1,api_429=0.05,storage_5xx=0.2,storage_drop=0.05,api_latency_ms=5,"
        "storage_latency_ms=7,storage_bandwidth_mbps=12.5,upload_url_ttl_s=2,download_url_ttl_s=3,seed=7"
    )
    assert faults == Faults(
        api_5xx=0.1,
        api_429=0.05,
        storage_5xx=0.2,
        storage_drop=0.05,
        api_latency_ms=5,
        storage_latency_ms=7,
        storage_bandwidth_mbps=12.5,
        upload_url_ttl_s=2,
        download_url_ttl_s=3,
        seed=7,
    )
    assert Faults.parse(faults.spec()) == faults
    assert Faults.parse("") == Faults()
    assert FAULT_KNOBS == (
        "api_5xx",
        "api_429",
        "storage_5xx",
        "storage_drop",
        "api_latency_ms",
        "storage_latency_ms",
        "storage_bandwidth_mbps",
        "upload_url_ttl_s",
        "download_url_ttl_s",
        "seed",
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope=1", "unknown fault knob 'nope'; known knobs: api_5xx, api_429"),
        ("api_5xx=2", "must be a fraction"),
        ("api_5xx=abc", "non-numeric"),
        ("seed=1.5", "non-numeric"),
        ("api_5xx", "needs a value"),
        ("upload_url_ttl_s=0", "must be > 0"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        Faults.parse(spec)


async def _statuses(server: EmulatorServer, count: int) -> list[int]:
    async with api_client(server) as client:
        return [(await client.get("/api/whoami")).status_code for _ in range(count)]


@pytest.mark.roost_server(faults="api_5xx=0.3,api_429=0.2,seed=7")
async def test_api_faults_are_seeded_and_replayable(roost_server: EmulatorServer) -> None:
    first = await _statuses(roost_server, 60)
    assert {500, 503} & set(first)
    assert 429 in first
    assert 200 in first
    roost_server.set_faults("api_5xx=0.3,api_429=0.2,seed=7")
    assert await _statuses(roost_server, 60) == first
    async with api_client(roost_server) as client:
        while True:
            response = await client.get("/api/whoami")
            if response.status_code == 429:
                break
    body = response.json()
    assert body["code"] == "rate_limited"
    assert body["retryAfter"] == 1
    assert response.headers["retry-after"] == "1"
    roost_server.set_faults(None)
    assert set(await _statuses(roost_server, 10)) == {200}


async def _put_many(server: EmulatorServer, count: int) -> list[str]:
    site = server.site_id
    blobs = [f"chunk {i}".encode() for i in range(count)]
    hashes = [sha(b) for b in blobs]
    outcomes: list[str] = []
    async with api_client(server) as client, storage_client() as storage:
        urls = (await client.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": hashes})).json()[
            "urls"
        ]
        for digest, blob in zip(hashes, blobs, strict=True):
            try:
                response = await storage.put(urls[digest], content=blob)
                outcomes.append(str(response.status_code))
            except httpx.TransportError:
                outcomes.append("dropped")
    return outcomes


@pytest.mark.roost_server(faults="storage_5xx=0.3,storage_drop=0.3,seed=3")
async def test_storage_faults(roost_server: EmulatorServer) -> None:
    outcomes = await _put_many(roost_server, 40)
    assert "200" in outcomes
    assert "dropped" in outcomes
    assert {"500", "503"} & set(outcomes)
    stored = [r for r in roost_server.storage_requests if r.outcome == "stored"]
    assert len(stored) == outcomes.count("200")
    for record in roost_server.storage_requests:
        digest = record.path.rsplit("/", 1)[-1]
        assert roost_server.has_chunk(digest) == (record.outcome == "stored")


@pytest.mark.roost_server(faults="api_latency_ms=150,storage_latency_ms=150")
async def test_latency(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        started = time.monotonic()
        await client.get("/api/whoami")
        assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    await _put_many(roost_server, 1)
    assert time.monotonic() - started >= 0.3


@pytest.mark.roost_server(faults="storage_bandwidth_mbps=2")
async def test_bandwidth_cap_is_shared(roost_server: EmulatorServer) -> None:
    data = b"b" * 1_000_000
    digest = sha(data)
    async with api_client(roost_server) as client, storage_client() as storage:
        urls = await client.post(
            "/api/chunks/upload-urls", json={"siteId": roost_server.site_id, "hashes": [digest]}
        )
        started = time.monotonic()
        assert (await storage.put(urls.json()["urls"][digest], content=data)).status_code == 200
        assert time.monotonic() - started >= 0.4


@pytest.mark.roost_server(faults="upload_url_ttl_s=0.2")
async def test_short_ttl_knob(roost_server: EmulatorServer) -> None:
    data = b"ttl"
    digest = sha(data)
    async with api_client(roost_server) as client, storage_client() as storage:
        urls = await client.post(
            "/api/chunks/upload-urls", json={"siteId": roost_server.site_id, "hashes": [digest]}
        )
        await asyncio.sleep(0.3)
        assert (await storage.put(urls.json()["urls"][digest], content=data)).status_code == 403


def test_partial_temp_files_never_count_as_chunks(roost_server: EmulatorServer) -> None:
    digest = sha(b"half written")
    directory = roost_server.chunk_path(digest).parent
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f".{digest[:16]}.abc.part").write_bytes(b"half")
    assert not roost_server.has_chunk(digest)
    with httpx.Client(base_url=roost_server.url, headers=roost_server.headers()) as client:
        check = client.post("/api/chunks/check", json={"siteId": roost_server.site_id, "hashes": [digest]})
    assert check.json() == {"missing": [digest]}
