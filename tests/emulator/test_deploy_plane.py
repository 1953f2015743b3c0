"""The deploy plane driven with plain httpx: auth, chunks, storage, publish, refs, rollback, deploy."""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from roost.testing import EmulatorServer

from ._helpers import (
    api_client,
    assert_problem,
    make_version,
    publish,
    push,
    sha,
    storage_client,
    upload_chunks,
)

pytestmark = pytest.mark.anyio


async def test_whoami_reports_the_key_and_site(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        response = await client.get("/api/whoami")
    assert response.status_code == 200
    body = response.json()
    assert body["userId"] == roost_server.user_id
    assert body["key"]["keyPrefix"] == roost_server.token[:15]
    assert body["key"]["environment"] == "test"
    assert body["key"]["isLegacy"] is False
    assert body["primarySiteId"] == roost_server.site_id
    assert body["rateLimit"]["limitPerMinute"] == 600
    assert roost_server.token.startswith("owk_test_")
    assert response.headers["x-security-version"] == "2"
    assert "x-request-id" not in response.headers


async def test_version_route_needs_no_auth(roost_server: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=roost_server.url) as client:
        response = await client.get("/api/version")
    assert response.json() == {"current": "2026-04-22", "supported": ["2026-04-22"]}


async def test_check_upload_put_publish_flow(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    version, chunks = make_version({"a.txt": b"alpha" * 100, "dir/b.bin": b"\x00\x01" * 5000})
    async with api_client(roost_server) as client:
        missing = await upload_chunks(client, site, chunks)
        assert sorted(missing) == sorted(chunks)
        again = await client.post("/api/chunks/check", json={"siteId": site, "hashes": list(chunks)})
        assert again.json() == {"missing": []}
        response = await publish(client, site, "roost-main-01", version, name="Main", targets=["machine-01"])
        assert response.status_code == 201, response.text
        result = response.json()
        assert set(result) == {"versionId", "versionNumber", "currentVersionId", "previousVersionId"}
        assert re.fullmatch(r"[0-9a-f]{64}", result["versionId"])
        assert result["versionNumber"] == 1
        assert result["previousVersionId"] is None
        detail = await client.get("/api/roosts/roost-main-01", params={"siteId": site})
        assert detail.status_code == 200
        roost = detail.json()
        assert roost["name"] == "Main"
        assert roost["targets"] == ["machine-01"]
        assert roost["currentVersion"]["totalSize"] == 500 + 10000
        fetched = await client.get(
            f"/api/roosts/roost-main-01/versions/{result['versionId']}", params={"siteId": site}
        )
        assert fetched.json()["version"] == version
    for digest, data in chunks.items():
        assert roost_server.chunk_path(digest).read_bytes() == data
        assert roost_server.chunk_path(digest).parent.name == digest[:2]
    # storage saw exactly the PUTs, and no API credential reached it
    records = roost_server.storage_requests
    assert [r.method for r in records] == ["PUT"] * len(chunks)
    assert all("authorization" not in r.headers and "roost-version" not in r.headers for r in records)


async def test_version_id_is_sha256_of_canonical_json(roost_server: EmulatorServer) -> None:
    version, chunks = make_version({"x": b"x" * 10})
    version["config"] = {"z": 1, "a": {"y": 4.0, "b": "é"}}
    async with api_client(roost_server) as client:
        await upload_chunks(client, roost_server.site_id, chunks)
        response = await publish(client, roost_server.site_id, "canonical-01", version)
    canonical = (
        '{"config":{"a":{"b":"é","y":4},"z":1},"files":[{"chunks":[{"hash":"'
        + version["files"][0]["chunks"][0]["hash"]
        + '","size":10}],"path":"x","size":10}],"mediaType":"application/vnd.owlette.version.v1+json",'
        '"schemaVersion":2}'
    )
    assert response.json()["versionId"] == sha(canonical.encode())


async def test_publish_outcomes_noop_promote_and_numbering(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        first = await push(client, site, "numbered-01", {"f": b"one"}, tag="1")
        second = await push(client, site, "numbered-01", {"f": b"two"}, tag="2")
        assert (first["versionNumber"], second["versionNumber"]) == (1, 2)
        assert second["previousVersionId"] == first["versionId"]
        version_two, _ = make_version({"f": b"two"}, tag="2")
        noop = await publish(client, site, "numbered-01", version_two, expectedCurrentVersionId="stale")
        assert noop.status_code == 200
        assert noop.json()["versionNumber"] == 2
        version_one, _ = make_version({"f": b"one"}, tag="1")
        promote = await publish(client, site, "numbered-01", version_one)
        assert promote.status_code == 200
        assert promote.json() == {
            "versionId": first["versionId"],
            "versionNumber": 1,
            "currentVersionId": first["versionId"],
            "previousVersionId": second["versionId"],
        }
        third = await push(client, site, "numbered-01", {"f": b"three"}, tag="3")
        assert third["versionNumber"] == 3


async def test_concurrent_publishes_one_wins_the_other_is_stale(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        base = await push(client, site, "contended-01", {"f": b"base"})
        version_a, chunks_a = make_version({"f": b"from A"})
        version_b, chunks_b = make_version({"f": b"from B"})
        await upload_chunks(client, site, {**chunks_a, **chunks_b})
        head = base["versionId"]
        first, second = await asyncio.gather(
            publish(client, site, "contended-01", version_a, expectedCurrentVersionId=head),
            publish(client, site, "contended-01", version_b, expectedCurrentVersionId=head),
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [201, 412]
        winner, loser = (first, second) if first.status_code == 201 else (second, first)
        problem = assert_problem(loser, 412, "version_stale")
        new_head = winner.json()["versionId"]
        assert problem["title"] == "head changed"
        assert problem["detail"] == (
            f"expectedCurrentVersionId did not match the current head ({new_head}). re-read + retry."
        )
        assert problem["instance"] == "/api/roosts/contended-01/versions"
        # retrying with the head the server named succeeds
        loser_version = version_b if winner is first else version_a
        retry = await publish(client, site, "contended-01", loser_version, expectedCurrentVersionId=new_head)
        assert retry.status_code == 201
        assert retry.json()["versionNumber"] == 3


async def test_expected_head_null_only_on_an_empty_roost(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        version, chunks = make_version({"f": b"null guard"})
        await upload_chunks(client, site, chunks)
        created = await publish(client, site, "null-guard-1", version, expectedCurrentVersionId=None)
        assert created.status_code == 201
        other, more = make_version({"f": b"second"})
        await upload_chunks(client, site, more)
        stale = await publish(client, site, "null-guard-1", other, expectedCurrentVersionId=None)
        body = assert_problem(stale, 412, "version_stale")
        assert f"({created.json()['versionId']})" in body["detail"]
        empty = await publish(client, site, "null-guard-2", other, expectedCurrentVersionId="abc")
        assert "(null)" in assert_problem(empty, 412, "version_stale")["detail"]
        bad = await publish(client, site, "null-guard-2", other, expectedCurrentVersionId=123)
        assert_problem(bad, 400, "validation_failed")


async def test_publish_with_a_missing_chunk_names_it(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    version, chunks = make_version({"a": b"present", "b": b"absent"})
    present = sha(b"present")
    async with api_client(roost_server) as client:
        await upload_chunks(client, site, {present: chunks[present]})
        response = await publish(client, site, "missing-01", version)
        body = assert_problem(response, 412, "precondition_failed")
        assert body["missingChunks"] == [sha(b"absent")]
        assert body["title"] == "chunks missing in storage"
        assert body["detail"] == (
            "1 referenced chunk(s) are not present in R2. upload them via /api/chunks/upload-urls before finalising."
        )
        # storage loss after upload is detected the same way
        assert roost_server.delete_chunk(present)
        lost = await publish(client, site, "missing-01", version)
        assert sorted(assert_problem(lost, 412, "precondition_failed")["missingChunks"]) == sorted(chunks)


async def test_publish_validation_messages(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    version, chunks = make_version({"a": b"valid"})
    async with api_client(roost_server) as client:
        await upload_chunks(client, site, chunks)
        cases = [
            ({"siteId": site}, "field `version` is required (oci version object)", "body.version"),
            (
                {"siteId": site, "version": {**version, "schemaVersion": 1}},
                "version.schemaVersion must be 2",
                None,
            ),
            (
                {"siteId": site, "version": {**version, "files": []}},
                "version.files must be a non-empty array",
                None,
            ),
            (
                {
                    "siteId": site,
                    "version": {
                        **version,
                        "files": [{"path": "a", "size": 1, "chunks": [{"hash": "A" * 64, "size": 1}]}],
                    },
                },
                "version.files[0].chunks[0] must have hash (64-char lowercase hex) + positive size",
                "body.version.files[0].chunks[0]",
            ),
            (
                {"siteId": site, "version": version, "description": "x" * 501},
                "description must be ≤ 500 characters",
                None,
            ),
        ]
        for body, detail, error_key in cases:
            response = await client.post("/api/roosts/validate-01/versions", json=body)
            problem = assert_problem(response, 400, "validation_failed")
            assert problem["detail"] == detail
            if error_key:
                assert error_key in problem["errors"]
        ok = await publish(client, site, "validate-01", version, description="x" * 500)
        assert ok.status_code == 201
        short = await client.post("/api/roosts/short/versions", json={"siteId": site, "version": version})
        assert_problem(short, 400, "validation_failed")


async def test_idempotent_replay_and_mismatch(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    version, chunks = make_version({"a": b"idempotent"})
    async with api_client(roost_server) as client:
        await upload_chunks(client, site, chunks)
        headers = {"Idempotency-Key": "py-sdk-replay-test"}
        body = {"siteId": site, "version": version}
        first = await client.post("/api/roosts/idem-roost-1/versions", json=body, headers=headers)
        assert first.status_code == 201
        assert "idempotent-replayed" not in first.headers
        replay = await client.post("/api/roosts/idem-roost-1/versions", json=body, headers=headers)
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.content == first.content
        listing = await client.get("/api/roosts/idem-roost-1/versions", params={"siteId": site})
        assert len(listing.json()["versions"]) == 1
        mismatch = await client.post(
            "/api/roosts/idem-roost-1/versions", json={**body, "description": "changed"}, headers=headers
        )
        problem = assert_problem(mismatch, 422, "idempotency_key_mismatch")
        assert problem["title"] == "idempotency key mismatch"
        assert "py-sdk-replay-test" in problem["detail"]
        # a different path is an independent entry
        other = await client.post("/api/roosts/idem-roost-2/versions", json=body, headers=headers)
        assert other.status_code == 201
        assert "idempotent-replayed" not in other.headers
        # errors are not cached: the same key runs again
        bad_headers = {"Idempotency-Key": "py-sdk-error"}
        bad = await client.post(
            "/api/roosts/idem-roost-3/versions", json={"siteId": site}, headers=bad_headers
        )
        assert bad.status_code == 400
        good = await client.post(
            "/api/roosts/idem-roost-3/versions", json={"siteId": site}, headers=bad_headers
        )
        assert good.status_code == 400
        assert "idempotent-replayed" not in good.headers
        too_long = await client.post(
            "/api/roosts/idem-roost-3/versions", json=body, headers={"Idempotency-Key": "k" * 256}
        )
        assert_problem(too_long, 400, "idempotency_key_invalid")


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


@pytest.mark.roost_server(upload_url_ttl_s=0.3, download_url_ttl_s=0.3)
async def test_expired_and_tampered_urls_are_refused(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    data = b"short-lived"
    digest = sha(data)
    async with api_client(roost_server) as client, storage_client() as storage:
        response = await client.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": [digest]})
        url = response.json()["urls"][digest]
        tampered_sig = _with_query(url, **{"X-Roost-Signature": "0" * 64})
        assert (await storage.put(tampered_sig, content=data)).status_code == 403
        later = _with_query(url, **{"X-Roost-Expires": str(int(time.time() * 1000) + 3_600_000)})
        assert (await storage.put(later, content=data)).status_code == 403
        other_object = url.replace(digest, sha(b"other"))
        assert (await storage.put(other_object, content=b"other")).status_code == 403
        assert (await storage.get(url)).status_code == 403  # signed for PUT, not GET
        await asyncio.sleep(0.4)
        expired = await storage.put(url, content=data)
        assert expired.status_code == 403
        assert "expired" in expired.text
        assert not roost_server.has_chunk(digest)
        fresh = await client.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": [digest]})
        assert (await storage.put(fresh.json()["urls"][digest], content=data)).status_code == 200
        download = await client.post("/api/chunks/download-urls", json={"siteId": site, "hashes": [digest]})
        get_url = download.json()["urls"][digest]
        got = await storage.get(get_url)
        assert got.status_code == 200
        assert got.content == data
        await asyncio.sleep(0.4)
        assert (await storage.get(get_url)).status_code == 403
    outcomes = [r.outcome for r in roost_server.storage_requests]
    assert outcomes.count("bad_signature") == 4
    assert outcomes.count("expired") == 2


async def test_corrupt_put_is_rejected_and_not_stored(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    data = b"the real bytes"
    digest = sha(data)
    async with api_client(roost_server) as client, storage_client() as storage:
        response = await client.post("/api/chunks/upload-urls", json={"siteId": site, "hashes": [digest]})
        url = response.json()["urls"][digest]
        corrupt = await storage.put(url, content=b"the real bytez")
        assert corrupt.status_code == 400
        assert "BadDigest" in corrupt.text
        assert not roost_server.has_chunk(digest)
        check = await client.post("/api/chunks/check", json={"siteId": site, "hashes": [digest]})
        assert check.json()["missing"] == [digest]
        assert (await storage.put(url, content=data)).status_code == 200
        assert roost_server.has_chunk(digest)
    leftovers = [p for p in roost_server.chunk_path(digest).parent.iterdir() if p.name.endswith(".part")]
    assert leftovers == []


async def test_hash_list_validation(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        exactly = [f"{i:064x}" for i in range(1000)]
        assert (
            await client.post("/api/chunks/check", json={"siteId": site, "hashes": exactly})
        ).status_code == 200
        too_many = await client.post(
            "/api/chunks/check", json={"siteId": site, "hashes": [*exactly, "f" * 64]}
        )
        body = assert_problem(too_many, 400, "validation_failed")
        assert body["detail"] == "field hashes contains 1001 hashes; max is 1000 per request"
        upper = await client.post("/api/chunks/check", json={"siteId": site, "hashes": ["A" * 64]})
        assert assert_problem(upper, 400, "validation_failed")["errors"] == {
            "hashes": ["malformed entries: AAAAAAAAAAAAAAAA…"]
        }
        empty = await client.post("/api/chunks/check", json={"siteId": site, "hashes": []})
        assert_problem(empty, 400, "validation_failed")
        not_json = await client.post(
            "/api/chunks/check", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert (
            assert_problem(not_json, 400, "validation_failed")["detail"] == "request body is not valid json"
        )


async def test_pagination_over_250_roosts(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        for index in range(250):
            response = await client.post(
                "/api/roosts",
                json={"siteId": site, "name": f"roost {index}", "roostId": f"page-roost-{index:03d}"},
            )
            assert response.status_code == 201
        deleted = await client.delete("/api/roosts/page-roost-100", params={"siteId": site})
        assert deleted.status_code == 200
        seen: list[str] = []
        token = ""
        pages = 0
        use_canonical = True
        while True:
            params = {"siteId": site, "page_size": "40"}
            if token:
                params["page_token" if use_canonical else "cursor"] = token
            response = await client.get("/api/roosts", params=params)
            assert response.status_code == 200
            body = response.json()
            assert body["next_page_token"] == body["nextPageToken"]
            seen.extend(r["roostId"] for r in body["roosts"])
            pages += 1
            token = body["next_page_token"]
            use_canonical = not use_canonical
            if not token:
                break
        assert pages == 7
        assert len(seen) == 249 == len(set(seen))
        assert seen[0] == "page-roost-249"  # newest first
        assert "page-roost-100" not in seen
        with_deleted = await client.get(
            "/api/roosts", params={"siteId": site, "page_size": "100", "includeDeleted": "true"}
        )
        assert len(with_deleted.json()["roosts"]) == 100
        bad = await client.get("/api/roosts", params={"siteId": site, "page_size": "101"})
        assert assert_problem(bad, 400, "validation_failed")["errors"] == {
            "query.page_size": ["must be a positive integer <= 100"]
        }
        unknown = await client.get(
            "/api/roosts", params={"siteId": site, "page_size": "5", "page_token": "nope"}
        )
        assert unknown.json()["roosts"][0]["roostId"] == "page-roost-249"


async def test_auth_errors(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    params = {"siteId": site}
    async with httpx.AsyncClient(base_url=roost_server.url) as client:
        missing = await client.get("/api/roosts", params=params)
        assert assert_problem(missing, 401, "unauthorized")["detail"] == "authentication required"
        bogus = await client.get(
            "/api/roosts", params=params, headers={"Authorization": "Bearer owk_test_nope"}
        )
        assert_problem(bogus, 401, "unauthorized")
        expired_key = roost_server.mint_key(expires_at_ms=int(time.time() * 1000) - 1000)
        expired = await client.get(
            "/api/roosts", params=params, headers={"Authorization": f"Bearer {expired_key}"}
        )
        body = assert_problem(expired, 401, "token_expired")
        assert body["type"] == "https://owlette.app/problems/token-expired"
        assert isinstance(body["expiredAt"], int)
        read_only = roost_server.mint_key(scopes=[{"resource": "site", "id": site, "permissions": ["read"]}])
        headers = {"Authorization": f"Bearer {read_only}"}
        listed = await client.get("/api/roosts", params=params, headers=headers)
        assert listed.status_code == 200
        denied = await client.post(
            "/api/chunks/check", json={"siteId": site, "hashes": ["a" * 64]}, headers=headers
        )
        body = assert_problem(denied, 403, "scope_insufficient")
        assert body["required"] == {"resource": "site", "id": site, "permission": "write"}
        roost_denied = await client.get("/api/roosts/some-roost-1", params=params, headers=headers)
        assert_problem(roost_denied, 403, "scope_insufficient")  # a site scope never satisfies a roost route
        via_header = await client.get("/api/roosts", params=params, headers={"x-api-key": roost_server.token})
        assert via_header.status_code == 200
        via_query = await client.get("/api/roosts", params={**params, "api_key": roost_server.token})
        assert via_query.status_code == 200
        other_site = await client.get(
            "/api/roosts", params={"siteId": "not-my-site"}, headers={"x-api-key": roost_server.token}
        )
        assert assert_problem(other_site, 404, "not_found")["detail"] == "site not found or no access"


async def test_roost_version_header(roost_server: EmulatorServer) -> None:
    async with httpx.AsyncClient(base_url=roost_server.url) as client:
        auth = {"Authorization": f"Bearer {roost_server.token}"}
        params = {"siteId": roost_server.site_id}
        missing = await client.get("/api/roosts", params=params, headers=auth)
        assert missing.status_code == 200
        assert missing.headers["x-roost-version-missing"] == "true"
        bad = await client.get("/api/roosts", params=params, headers={**auth, "Roost-Version": "2020-01-01"})
        body = assert_problem(bad, 400, "unsupported_version")
        assert body["sent"] == "2020-01-01"
        assert body["supported"] == ["2026-04-22"]
        assert body["title"] == "unsupported version"
        # the version check runs before auth
        unauth = await client.get("/api/roosts", params=params, headers={"Roost-Version": "nope"})
        assert_problem(unauth, 400, "unsupported_version")


async def test_kill_switch(roost_server: EmulatorServer) -> None:
    roost_server.set_roost_enabled(False)
    async with api_client(roost_server) as client:
        response = await client.get("/api/roosts", params={"siteId": roost_server.site_id})
        body = assert_problem(response, 503, "service_unavailable")
        assert body["title"] == "roost disabled"
    roost_server.set_roost_enabled(True)


async def test_roost_crud(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        created = await client.post(
            "/api/roosts", json={"siteId": site, "name": "  Lobby  ", "targets": ["m1", "m1", "m2"]}
        )
        assert created.status_code == 201
        roost_id = created.json()["roostId"]
        assert re.fullmatch(r"rst_[0-9a-f]{18}", roost_id)
        assert created.json() == {
            "roostId": roost_id,
            "siteId": site,
            "name": "Lobby",
            "targets": ["m1", "m2"],
        }
        duplicate = await client.post("/api/roosts", json={"siteId": site, "name": "x", "roostId": roost_id})
        assert_problem(duplicate, 409, "conflict")
        blank = await client.post("/api/roosts", json={"siteId": site, "name": "  "})
        assert_problem(blank, 400, "roost_name_required")
        patched = await client.patch(f"/api/roosts/{roost_id}", json={"siteId": site, "name": "Lobby 2"})
        assert patched.json()["updated"] == ["name", "updatedAt"]
        nothing = await client.patch(f"/api/roosts/{roost_id}", json={"siteId": site})
        assert_problem(nothing, 400, "validation_failed")
        removed = await client.delete(f"/api/roosts/{roost_id}", params={"siteId": site})
        assert removed.json()["softDeleted"] is True
        tombstoned = await client.patch(f"/api/roosts/{roost_id}", json={"siteId": site, "name": "again"})
        assert_problem(tombstoned, 409, "conflict")
        still_readable = await client.get(f"/api/roosts/{roost_id}", params={"siteId": site})
        assert still_readable.json()["deletedAt"] is not None
        undelete = await client.post(
            "/api/roosts", json={"siteId": site, "name": "Back", "roostId": roost_id}
        )
        assert undelete.status_code == 201
        absent = await client.get("/api/roosts/absent-roost", params={"siteId": site})
        assert_problem(absent, 404, "not_found")


async def test_refs_files_diff_patch(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    params = {"siteId": site}
    async with api_client(roost_server) as client:
        one = await push(client, site, "refs-roost-1", {"a": b"1", "b": b"2", "c": b"3"}, tag="1")
        two = await push(client, site, "refs-roost-1", {"a": b"1", "b": b"22", "d": b"4444"}, tag="2")
        for ref, expected in (
            ("current", two),
            ("previous", one),
            ("first", one),
            ("1", one),
            ("%231", one),
            ("v2", two),
            ("V2", two),
            (two["versionId"], two),
            ("vrs_" + two["versionId"], two),
        ):
            response = await client.get(f"/api/roosts/refs-roost-1/versions/{ref}", params=params)
            assert response.status_code == 200, (ref, response.text)
            assert response.json()["versionId"] == expected["versionId"]
        for bad in ("03", "0", "v0", "3.0", "+3", "latest"):
            response = await client.get(f"/api/roosts/refs-roost-1/versions/{bad}", params=params)
            assert_problem(response, 400, "version_ref_malformed")
        missing = await client.get("/api/roosts/refs-roost-1/versions/9", params=params)
        assert_problem(missing, 404, "version_not_found")
        diff = await client.get(
            "/api/roosts/refs-roost-1/versions/current/diff", params={**params, "against": "1"}
        )
        body = diff.json()
        assert body["summary"] == {
            "added": 1,
            "removed": 1,
            "changed": 1,
            "unchanged": 1,
            "hasChanges": True,
            "netBytesDelta": 7 - 3,
        }
        assert [e["path"] for e in body["added"]] == ["d"]
        assert body["modified"][0] == {
            "path": "b",
            "fromSize": 1,
            "toSize": 2,
            "reason": "modified",
            "fromChunks": 1,
            "toChunks": 1,
        }
        no_against = await client.get("/api/roosts/refs-roost-1/versions/current/diff", params=params)
        assert_problem(no_against, 400, "validation_failed")
        page = await client.get(
            "/api/roosts/refs-roost-1/versions/1/files", params={**params, "page_size": "2"}
        )
        assert [f["path"] for f in page.json()["files"]] == ["a", "b"]
        assert page.json()["next_page_token"] == "2"
        rest = await client.get(
            "/api/roosts/refs-roost-1/versions/1/files",
            params={**params, "page_size": "2", "page_token": "2"},
        )
        assert [f["path"] for f in rest.json()["items"]] == ["c"]
        assert rest.json()["next_page_token"] == ""
        bad_token = await client.get(
            "/api/roosts/refs-roost-1/versions/1/files", params={**params, "page_token": "01"}
        )
        assert_problem(bad_token, 400, "validation_failed")
        patched = await client.patch(
            "/api/roosts/refs-roost-1/versions/current", json={"siteId": site, "description": "  shiny  "}
        )
        assert patched.json()["description"] == "shiny"
        immutable = await client.patch(
            "/api/roosts/refs-roost-1/versions/current",
            json={"siteId": site, "description": "x", "files": []},
        )
        assert_problem(immutable, 400, "version_content_immutable")


async def test_rollback_and_deploy(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        one = await push(
            client, site, "ship-roost-1", {"a": b"1"}, tag="1", targets=["machine-02", "machine-01"]
        )
        two = await push(client, site, "ship-roost-1", {"a": b"2"}, tag="2")
        back = await client.post("/api/roosts/ship-roost-1/rollback", json={"siteId": site})
        assert back.json() == {
            "ok": True,
            "roostId": "ship-roost-1",
            "siteId": site,
            "currentVersionId": one["versionId"],
            "currentVersionNumber": 1,
            "previousVersionId": two["versionId"],
        }
        noop = await client.post(
            "/api/roosts/ship-roost-1/rollback", json={"siteId": site, "targetVersion": 1}
        )
        assert_problem(noop, 400, "rollback_no_op")
        forward = await client.post(
            "/api/roosts/ship-roost-1/rollback", json={"siteId": site, "targetVersion": "previous"}
        )
        assert forward.json()["currentVersionId"] == two["versionId"]
        dry = await client.post("/api/roosts/ship-roost-1/deploy", json={"siteId": site, "dryRun": True})
        assert dry.status_code == 200
        assert dry.json()["dryRun"] is True
        assert dry.json()["canary"] == ["machine-01"]
        deployed = await client.post("/api/roosts/ship-roost-1/deploy", json={"siteId": site})
        assert deployed.status_code == 202
        assert deployed.json()["rolloutId"] == two["versionId"]
        assert deployed.json()["fleet"] == ["machine-02"]
        again = await client.post("/api/roosts/ship-roost-1/deploy", json={"siteId": site})
        assert again.status_code == 200
        assert again.json()["alreadyRunning"] is True
        short_ref = await client.post(
            "/api/roosts/ship-roost-1/deploy", json={"siteId": site, "versionId": "current"}
        )
        assert_problem(short_ref, 400, "validation_failed")
        rollouts = await client.get("/api/roosts/ship-roost-1/deployments", params={"siteId": site})
        rows = rollouts.json()["rollouts"]
        assert rows[0]["rolloutId"] == two["versionId"]
        assert rows[0]["stage"] == "canary"
        detail = await client.get(
            f"/api/roosts/ship-roost-1/deployments/{two['versionId']}", params={"siteId": site}
        )
        assert detail.json()["canaryStatus"][0]["status"] == "pending"
        read_only = roost_server.mint_key(scopes=[{"resource": "roost", "id": "*", "permissions": ["read"]}])
        denied = await client.post(
            "/api/roosts/ship-roost-1/rollback",
            json={"siteId": site},
            headers={"Authorization": f"Bearer {read_only}"},
        )
        assert_problem(denied, 403, "scope_insufficient")


async def test_mount_and_referrers(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    async with api_client(roost_server) as client:
        await push(client, site, "mount-src-1", {"a": b"shared bytes"})
        await client.post("/api/roosts", json={"siteId": site, "name": "target", "roostId": "mount-dst-1"})
        digest = sha(b"shared bytes")
        mounted = await client.post(
            f"/api/chunks/{digest}/mount", params={"siteId": site, "from": "mount-src-1", "to": "mount-dst-1"}
        )
        assert mounted.status_code == 201
        assert mounted.json()["mounted"] is True
        referrers = await client.get(f"/api/chunks/{digest}/referrers", params={"siteId": site})
        sources = [r["source"] for r in referrers.json()["referrers"]]
        assert sources == ["mount", "version"]
        absent = await client.post(
            f"/api/chunks/{'e' * 64}/mount",
            params={"siteId": site, "from": "mount-src-1", "to": "mount-dst-1"},
        )
        assert_problem(absent, 404, "not_found")


async def test_quota_and_sites(roost_server: EmulatorServer) -> None:
    async with api_client(roost_server) as client:
        await push(client, roost_server.site_id, "quota-roost", {"a": b"q" * 1000})
        quota = await client.get(f"/api/sites/{roost_server.site_id}/quota")
        assert quota.json()["usedBytes"] == 1000
        assert quota.json()["limitBytes"] == 5 << 30
        history = await client.get(
            f"/api/sites/{roost_server.site_id}/quota/history", params={"period": "7d"}
        )
        assert len(history.json()["daily"]) == 7
        bad = await client.get(f"/api/sites/{roost_server.site_id}/quota/history", params={"period": "8d"})
        assert_problem(bad, 400, "validation_failed")
        sites = await client.get("/api/sites")
        assert [s["id"] for s in sites.json()["sites"]] == [roost_server.site_id]
