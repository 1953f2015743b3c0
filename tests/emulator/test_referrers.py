"""``GET /api/chunks/{digest}/referrers`` over one record per published version.

A publish stores one referrer record per created version and the route derives each chunk's
fields from the version body; these tests pin that the answer is the one the per-chunk rows gave
(values, order, pagination, old rows, restarts) and that a publish writes O(1) rows."""

from __future__ import annotations

import gc
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.testing import EmulatorServer, start_server
from roost.testing._jsonutil import canonical_json, dumps, loads
from roost.testing.routes.chunks import Usage, _UsageCache, usage_cache

from ._helpers import MEDIA_TYPE, api_client, publish

pytestmark = pytest.mark.anyio

ITEM_KEYS = [
    "entryId",
    "source",
    "roostId",
    "fromRoostId",
    "toRoostId",
    "versionId",
    "versionNumber",
    "fileCount",
    "pathCount",
    "totalBytes",
    "referencedAt",
    "createdAt",
    "createdBy",
    "mountedAt",
    "mountedBy",
]


def _version(files: list[tuple[str, list[tuple[str, int | float]]]], tag: str) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE,
        "config": {"producer": "tests", "tag": tag},
        "files": [
            {
                "path": path,
                "size": sum(size for _, size in chunks),
                "chunks": [{"hash": h, "size": size} for h, size in chunks],
            }
            for path, chunks in files
        ],
    }


async def _referrers(client: httpx.AsyncClient, site: str, digest: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/api/chunks/{digest}/referrers", params={"siteId": site, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _all_pages(client: httpx.AsyncClient, site: str, digest: str, size: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = ""
    for _ in range(50):
        params: dict[str, Any] = {"page_size": size}
        if token:
            params["page_token"] = token
        page = await _referrers(client, site, digest, **params)
        assert page["next_page_token"] == page["nextPageToken"]
        assert page["referrers"] == page["items"]
        assert len(page["items"]) <= size
        items.extend(page["items"])
        token = page["next_page_token"]
        if not token:
            return items
        assert token == page["items"][-1]["entryId"]
    raise AssertionError("pagination did not end")


async def _mount(client: httpx.AsyncClient, site: str, digest: str, source: str, target: str) -> None:
    response = await client.post(
        f"/api/chunks/{digest}/mount", params={"siteId": site, "from": source, "to": target}
    )
    assert response.status_code == 201, response.text


async def _scenario(server: EmulatorServer) -> tuple[str, str, dict[str, str]]:
    """Two roosts, three versions and two mounts around chunk X; returns (X, Y, version ids)."""
    site = server.site_id
    x = server.put_chunk(b"chunk x bytes")
    y = server.put_chunk(b"chunk y bytes")
    ids: dict[str, str] = {}
    async with api_client(server) as client:
        # X: in three distinct paths, twice in one of them: fileCount 3, totalBytes 10+10+7+7
        one = _version([("a", [(x, 10)]), ("b", [(x, 10), (y, 5)]), ("c", [(x, 7), (x, 7)])], "one")
        made = await publish(client, site, "ref-roost-a", one)
        assert made.status_code == 201, made.text
        ids["one"] = made.json()["versionId"]
        await client.post("/api/roosts", json={"siteId": site, "name": "b", "roostId": "ref-roost-b"})
        await _mount(client, site, x, "ref-roost-a", "ref-roost-b")
        # Y only: not a referrer of X
        two = _version([("only-y", [(y, 5)])], "two")
        made = await publish(client, site, "ref-roost-a", two)
        ids["two"] = made.json()["versionId"]
        # the same path listed twice counts once; sizes still add up
        three = _version([("d", [(x, 3)]), ("d", [(x, 4)])], "three")
        made = await publish(client, site, "ref-roost-b", three)
        ids["three"] = made.json()["versionId"]
        await _mount(client, site, x, "ref-roost-b", "ref-roost-a")
        # a re-publish of version one (promote) and of the head (no-op) add no entry
        again = await publish(client, site, "ref-roost-a", one)
        assert again.status_code == 200, again.text
    return x, y, ids


async def test_values_and_order_with_versions_and_mounts(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    x, y, ids = await _scenario(roost_server)
    async with api_client(roost_server) as client:
        body = await _referrers(client, site, x)
        items = body["referrers"]
        assert body["items"] == items
        assert body["next_page_token"] == body["nextPageToken"] == ""
        assert [list(item) for item in items] == [ITEM_KEYS] * 4
        assert [i["entryId"] for i in items] == [
            "mount_ref-roost-b_ref-roost-a",
            f"version_ref-roost-b_{ids['three']}",
            "mount_ref-roost-a_ref-roost-b",
            f"version_ref-roost-a_{ids['one']}",
        ]
        three, one = items[1], items[3]
        uid = roost_server.user_id
        for item, roost, version, number, count, total in (
            (three, "ref-roost-b", ids["three"], 1, 1, 7),
            (one, "ref-roost-a", ids["one"], 1, 3, 34),
        ):
            assert item["source"] == "version"
            assert (item["roostId"], item["versionId"], item["versionNumber"]) == (roost, version, number)
            assert (item["fileCount"], item["pathCount"], item["totalBytes"]) == (count, count, total)
            assert item["createdBy"] == uid
            assert item["createdAt"] == item["mountedAt"]
            assert item["createdAt"].endswith("Z")
            assert item["fromRoostId"] is item["toRoostId"] is item["mountedBy"] is None
            assert item["referencedAt"] is None
        mount = items[0]
        assert (mount["source"], mount["fromRoostId"], mount["toRoostId"]) == (
            "mount",
            "ref-roost-b",
            "ref-roost-a",
        )
        assert mount["mountedBy"] == uid
        assert mount["roostId"] is mount["versionId"] is mount["fileCount"] is None
        # Y: versions one and two
        y_items = (await _referrers(client, site, y))["referrers"]
        assert [(i["versionId"], i["fileCount"], i["totalBytes"]) for i in y_items] == [
            (ids["two"], 1, 5),
            (ids["one"], 1, 5),
        ]
        # a chunk nobody uses
        assert (await _referrers(client, site, "0" * 64))["referrers"] == []
        # a re-mount moves its entry to the top
        await _mount(client, site, x, "ref-roost-a", "ref-roost-b")
        again = (await _referrers(client, site, x))["referrers"]
        assert again[0]["entryId"] == "mount_ref-roost-a_ref-roost-b"
        assert [i["entryId"] for i in again[1:]] == [
            items[0]["entryId"],
            items[1]["entryId"],
            items[3]["entryId"],
        ]


async def test_pagination_runs_across_the_merged_list(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    x, _, _ = await _scenario(roost_server)
    async with api_client(roost_server) as client:
        whole = (await _referrers(client, site, x))["referrers"]
        for size in (1, 2, 3):
            assert await _all_pages(client, site, x, size) == whole
        # an unknown token restarts from the top
        restarted = await _referrers(client, site, x, page_size=2, page_token="version_nope_nope")
        assert restarted["referrers"] == whole[:2]


async def test_entries_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_server(data_dir=str(data)) as first:
        x, y, _ = await _scenario(first)
        async with api_client(first) as client:
            before = {d: (await _referrers(client, first.site_id, d))["referrers"] for d in (x, y)}
    # derived again from the stored bodies, not from this process's memory
    usage_cache.clear()
    with start_server(data_dir=str(data)) as second:
        async with api_client(second) as client:
            after = {d: (await _referrers(client, second.site_id, d))["referrers"] for d in (x, y)}
    assert after == before
    assert len(after[x]) == 4


async def test_rows_written_by_older_emulators_are_still_served(roost_server: EmulatorServer) -> None:
    site = roost_server.site_id
    store = roost_server.emu.store
    x = roost_server.put_chunk(b"legacy chunk")
    # the per-chunk row the emulators before one-record-per-version wrote, in their text layout
    legacy = (
        '{"source":"version","roostId":"old-roost","versionId":"' + "1" * 64 + '","versionNumber":4,'
        '"fileCount":2,"pathCount":2,"totalBytes":99,"createdAt":1700000000000,'
        '"createdBy":"someone","mountedAt":1700000000000}'
    )
    store.put("referrer", f"{site}/{x}", f"version_old-roost_{'1' * 64}", json.loads(legacy), new_seq=True)
    async with api_client(roost_server) as client:
        made = await publish(client, site, "new-roost", _version([("p", [(x, 12)])], "new"))
        assert made.status_code == 201, made.text
        await client.post("/api/roosts", json={"siteId": site, "name": "o", "roostId": "old-roost"})
        await _mount(client, site, x, "new-roost", "old-roost")
        items = (await _referrers(client, site, x))["referrers"]
    assert [i["entryId"] for i in items] == [
        "mount_new-roost_old-roost",
        f"version_new-roost_{made.json()['versionId']}",
        f"version_old-roost_{'1' * 64}",
    ]
    old = items[2]
    assert (old["source"], old["versionNumber"], old["fileCount"], old["pathCount"], old["totalBytes"]) == (
        "version",
        4,
        2,
        2,
        99,
    )
    assert (old["createdAt"], old["mountedAt"]) == ("2023-11-14T22:13:20.000Z",) * 2
    assert old["createdBy"] == "someone"


async def _publish_count(server: EmulatorServer, roost: str, files: int, tag: str) -> int:
    """Documents a publish of a new ``files``-file version adds to the store."""
    digests = [server.put_chunk(f"{tag}-{i}".encode()) for i in range(files)]
    version = _version([(f"f{i}", [(d, 5)]) for i, d in enumerate(digests)], tag)
    store = server.emu.store
    before = store.count()
    async with api_client(server) as client:
        made = await publish(client, server.site_id, roost, version)
    assert made.status_code == 201, made.text
    return store.count() - before


async def test_a_publish_writes_rows_independent_of_its_chunk_count(roost_server: EmulatorServer) -> None:
    # the first publish also creates the roost
    await _publish_count(roost_server, "rows-roost", 1, "first")
    small = await _publish_count(roost_server, "rows-roost", 2, "small")
    large = await _publish_count(roost_server, "rows-roost", 400, "large")
    assert large == small
    assert roost_server.emu.store.count("referrer") == 0
    assert roost_server.emu.store.count("version_referrer") == 3


async def test_the_publish_leaves_no_work_behind(roost_server: EmulatorServer) -> None:
    # the emulator has no background writer any more: what the publish answered is all written
    assert not hasattr(roost_server.emu, "defer")
    site = roost_server.site_id
    x = roost_server.put_chunk(b"eager")
    async with api_client(roost_server) as client:
        made = await publish(client, site, "eager-roost", _version([("e", [(x, 6)])], "eager"))
        assert made.status_code == 201, made.text
        items = (await _referrers(client, site, x))["referrers"]
    assert [(i["versionId"], i["totalBytes"]) for i in items] == [(made.json()["versionId"], 6)]
    # the publish pauses the cyclic collector while it holds the parsed manifest, and only then
    assert gc.isenabled()


# -- the derivation against the per-chunk rows it replaces -----------------------------------


def _legacy_rows(files: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-chunk fields exactly as the emulator's per-chunk rows stored and read them back."""
    paths: dict[str, set[str]] = {}
    sizes: dict[str, float] = {}
    for entry in files:
        for chunk in entry["chunks"]:
            paths.setdefault(chunk["hash"], set()).add(entry["path"])
            sizes[chunk["hash"]] = sizes.get(chunk["hash"], 0) + chunk["size"]
    rows: dict[str, dict[str, Any]] = {}
    for digest, used_by in paths.items():
        total = sizes[digest]
        count = len(used_by)
        total_text = str(total) if type(total) is int else dumps(int(total) if total.is_integer() else total)
        rows[digest] = json.loads(f'{{"fileCount":{count},"pathCount":{count},"totalBytes":{total_text}}}')
    return rows


_DIGESTS = [hashlib.sha256(bytes([i])).hexdigest() for i in range(4)]
# below 2**53 per chunk total: above it the per-chunk rows summed Python ints exactly where the
# stored body (like JavaScript) keeps doubles
_SIZES = st.one_of(
    st.integers(1, 2**40),
    st.floats(0.25, 2.0**40, allow_nan=False, allow_infinity=False),
    st.integers(1, 2**40).map(float),
)
_FILES = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "é", "\U0001f600"]),
        st.lists(st.tuples(st.sampled_from(_DIGESTS), _SIZES), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(_FILES)
def test_derived_fields_equal_the_per_chunk_rows(spec: list[tuple[str, list[tuple[str, float]]]]) -> None:
    version = _version(spec, "prop")
    stored = loads(canonical_json(version))
    usage = Usage(stored)
    derived: dict[str, dict[str, Any]] = {}
    for digest in {c["hash"] for f in stored["files"] for c in f["chunks"]}:
        found = usage.get(digest)
        assert found is not None
        count, total = found
        derived[digest] = {"fileCount": count, "pathCount": count, "totalBytes": total}
    assert len(usage) == len(derived)
    assert usage.get("f" * 64) is None
    expected = _legacy_rows(version["files"])
    assert derived == expected
    for digest, fields in derived.items():
        # the same JSON text: 5 and 5.0 compare equal, but must print alike
        assert dumps(fields) == dumps(expected[digest]), digest
        assert not (isinstance(fields["totalBytes"], float) and math.isinf(fields["totalBytes"]))


def _usage(*digests: str) -> Usage:
    return Usage({"files": [{"path": "p", "chunks": [{"hash": d, "size": 1} for d in digests]}]})


def test_usage_cache_is_bounded_and_least_recently_used_first_out() -> None:
    cache = _UsageCache(limit=5)
    cache.put("v1", _usage("a", "b"))
    cache.put("v2", _usage("c", "d"))
    assert cache.get("v1") is not None  # v2 is now the least recently used
    cache.put("v3", _usage("e", "f"))
    assert cache.get("v2") is None
    assert cache.get("v1") is not None
    assert cache.get("v3") is not None
    # one map larger than the bound is still kept (alone)
    cache.put("big", _usage(*(str(i) for i in range(9))))
    assert [cache.get(v) is not None for v in ("v1", "v3", "big")] == [False, False, True]
