"""The test hook that makes storage lose chunk objects (``EmulatorServer.forget_chunks``)."""

from __future__ import annotations

import pytest

from roost.testing import EmulatorServer

from ._helpers import api_client, assert_problem, make_version, publish, sha, upload_chunks

pytestmark = pytest.mark.anyio


async def test_forgotten_chunks_are_missing_and_block_a_publish(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    version, chunks = make_version({"a": b"alpha", "b": b"beta", "c": b"gamma"})
    async with api_client(roost_server) as client:
        await upload_chunks(client, site, chunks)
        first = await publish(client, site, "ledger-01", version)
        assert first.status_code == 201, first.text
        assert roost_server.stored_chunks() == sorted(chunks)

        lost = [sha(b"alpha"), sha(b"gamma")]
        assert roost_server.forget_chunks([*lost, "0" * 64]) == sorted(lost)
        assert roost_server.stored_chunks() == [sha(b"beta")]

        check = await client.post("/api/chunks/check", json={"siteId": site, "hashes": list(chunks)})
        assert sorted(check.json()["missing"]) == sorted(lost)
        # a client that trusts its ledger and publishes without checking gets the hashes back
        again, _ = make_version({"a": b"alpha", "b": b"beta", "c": b"gamma"}, tag="second")
        refused = await publish(client, site, "ledger-01", again)
        assert sorted(assert_problem(refused, 412, "precondition_failed")["missingChunks"]) == sorted(lost)


async def test_forget_everything_and_unsafe_names(roost_server: EmulatorServer) -> None:
    digests = [roost_server.put_chunk(bytes([i]) * 10) for i in range(3)]
    assert roost_server.forget_chunks(["../../meta.sqlite3", "x"]) == []
    assert roost_server.forget_chunks() == sorted(digests)
    assert roost_server.stored_chunks() == []
    assert (roost_server.data_dir / "meta.sqlite3").exists()
