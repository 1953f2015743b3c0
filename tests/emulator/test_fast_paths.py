"""The check and publish fast paths answer exactly what the item-by-item paths answer.

Each fast path (one regex over all hashes, digit-marked number scans, prefix directory listings)
falls back to the exact path when it is not sure; these tests pin the cases where getting that
wrong would change an answer."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost.testing import EmulatorServer
from roost.testing._core import SHA256_RE, all_sha256
from roost.testing._jsonutil import (
    _canonical,
    _js_number,
    canonical_json,
    loads,
    loads_unchecked,
    only_safe_integers,
)
from roost.testing._problems import ApiError
from roost.testing._store import ChunkStore
from roost.testing.routes import versions
from roost.testing.routes.chunks import validate_hash_list
from roost.testing.routes.versions import MEDIA_TYPE, validate_version

SITE = "fast-site"
EMPTY = hashlib.sha256(b"").hexdigest()


def _hashes(count: int, prefix: str = "") -> list[str]:
    made = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(count)]
    return [prefix + h[len(prefix) :] for h in made]


# -- hash lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (_hashes(900), True),
        ([], True),
        ([*_hashes(5), "A" * 64], False),
        ([*_hashes(5), "a" * 63], False),
        ([*_hashes(5), "a" * 65], False),
        ([*_hashes(5), 7], False),
        # two hashes glued by a newline inside one item must not pass as two items
        ([_hashes(2)[0] + "\n" + _hashes(2)[1]], False),
        ([_hashes(1)[0] + "\n", "b" * 63], False),
    ],
)
def test_all_sha256_never_vouches_for_a_bad_item(values: list[Any], expected: bool) -> None:
    assert all_sha256(values) is expected
    if expected:
        assert all(isinstance(v, str) and SHA256_RE.match(v) for v in values)


def test_a_bad_hash_among_many_is_still_named() -> None:
    values: list[Any] = _hashes(899)
    values.insert(450, "NOT-A-HASH")
    with pytest.raises(ApiError) as caught:
        validate_hash_list(values, "hashes")
    assert caught.value.status == 400
    assert "NOT-A-HASH"[:16] in str(caught.value.body)
    assert validate_hash_list(_hashes(900), "hashes") == _hashes(900)


# -- manifests -------------------------------------------------------------------------


def _version(files: list[Any]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": MEDIA_TYPE, "config": {}, "files": files}


def _files(count: int) -> list[dict[str, Any]]:
    return [
        {"path": f"f{i}.bin", "size": 10, "chunks": [{"hash": h, "size": 10}]}
        for i, h in enumerate(_hashes(count))
    ]


def test_a_bad_entry_deep_in_a_large_manifest_is_named_as_before() -> None:
    files = _files(20_000)
    files[19_998]["chunks"][0]["hash"] = "F" * 64
    with pytest.raises(ApiError) as caught:
        validate_version(_version(files))
    assert "version.files[19998].chunks[0]" in str(caught.value.body)
    files = _files(3)
    files[1]["size"] = -1
    with pytest.raises(ApiError) as caught:
        validate_version(_version(files))
    assert "version.files[1].size" in str(caught.value.body)


def test_shapes_the_fast_pass_leaves_to_the_exact_one_are_still_accepted() -> None:
    files = _files(4)
    files[0]["size"] = 10.0  # a float size is a number, as JavaScript sees it
    files[1]["chunks"] = []  # an empty file has no chunks
    files[2]["chunks"][0]["size"] = 2.5
    assert validate_version(_version(files)) is files


_ODD_VALUES: list[Any] = [None, True, -1, 0, 2.5, "", "x", [], {}, "F" * 64]
_DELETED = object()
_MUTATIONS = [
    (where, key, value)
    for where, keys in (("file", ("path", "size", "chunks")), ("chunk", ("hash", "size")), ("entry", ("",)))
    for key in keys
    for value in [*_ODD_VALUES, _DELETED]
]


@pytest.mark.parametrize(("where", "key", "value"), _MUTATIONS)
def test_the_fast_manifest_pass_only_accepts_what_the_exact_pass_accepts(
    where: str, key: str, value: Any
) -> None:
    """Every single-field change of a good manifest: the fast pass either leaves it to the
    exact one (None) or returns every hash of a manifest the exact pass accepts."""
    files: list[Any] = _files(3)
    assert versions._plainly_valid(files) == _hashes(3)
    if where == "entry":
        files[1] = value
    else:
        holder = files[1] if where == "file" else files[1]["chunks"][0]
        if value is _DELETED:
            del holder[key]
        else:
            holder[key] = value
    fast = versions._plainly_valid(files)
    if fast is not None:
        versions._explain_invalid(files)  # raises for an invalid entry
        assert fast == [c["hash"] for f in files for c in f["chunks"]]


# -- JSON number scans -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 12345678901234567890}', {"a": 12345678901234567890.0}),
        ('{"a":-12345678901234567890}', {"a": -12345678901234567890.0}),
        ("[1,\n\t 99999999999999999]", [1, 1e17]),
        # 16 digits, but a double rounds it to no more than 2**53: kept exact, as before
        ('{"a": 9007199254740993}', {"a": 9007199254740993}),
        ('{"a": 123456789012345}', {"a": 123456789012345}),
        ('{"s": "12345678901234567890", "t": ":12345678901234567890"}', None),
    ],
)
def test_long_integer_literals_read_as_javascript_reads_them(text: str, expected: Any) -> None:
    value = loads(text)
    if expected is None:  # strings stay strings
        assert value == {"s": "12345678901234567890", "t": ":12345678901234567890"}
        return
    assert value == expected
    assert [type(v) for v in _leaves(value)] == [type(v) for v in _leaves(expected)]


def test_a_long_number_far_from_its_colon_is_still_seen() -> None:
    assert loads('{"a":' + " " * 100 + "12345678901234567890}") == {"a": 12345678901234567890.0}
    digits = "1" * 70  # a long digit run inside a string is not a number
    assert loads(f'{{"h": "{digits}", "n": [1, -{"9" * 20}]}}') == {"h": digits, "n": [1, -1e20]}


def test_float_literals_are_reported_to_the_caller() -> None:
    seen: list[str] = []
    assert loads('{"a": 1.50, "b": [2, 3e2], "c": "4.5"}', floats=seen) == {
        "a": 1.5,
        "b": [2, 300.0],
        "c": "4.5",
    }
    assert seen == ["1.50", "3e2"]
    none: list[str] = []
    loads('{"a": 1, "c": "4.5"}', floats=none)
    assert none == []


@pytest.mark.anyio
async def test_a_publish_with_a_float_size_gets_the_javascript_version_id(
    roost_server: EmulatorServer,
) -> None:
    data = b"float sizes"
    digest = hashlib.sha256(data).hexdigest()
    roost_server.put_chunk(data)
    version = _version([{"path": "a.bin", "size": 11.0, "chunks": [{"hash": digest, "size": 11}]}])
    text = json.dumps({"siteId": roost_server.site_id, "version": version})
    assert "11.0" in text
    async with httpx.AsyncClient(base_url=roost_server.url, headers=roost_server.headers()) as client:
        response = await client.post(
            "/api/roosts/floatsize01/versions", content=text, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 201, response.text
    out: list[str] = []
    _canonical(json.loads(text)["version"], out)
    assert '"path":"a.bin","size":11}' in "".join(out)  # JSON.stringify writes 11.0 as 11
    assert response.json()["versionId"] == hashlib.sha256("".join(out).encode()).hexdigest()


def test_a_four_thousand_digit_number_is_infinity_not_an_error() -> None:
    assert loads('{"size": ' + "9" * 4000 + "}") == {"size": float("inf")}


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@pytest.mark.parametrize(
    "value",
    [
        {"a": 2.0},
        {"a": [1, -2.0]},
        {"b": {"c": 1e21}},
        [0.5, 1.5e-07, 1e100],
        {"x": "name:1.5,", "y": 3},
        {"files": [{"path": "v1.2/a,1.bin", "size": 3}]},
        {"z": [float("inf")]},
    ],
)
def test_canonical_json_matches_the_exact_encoder(value: Any) -> None:
    out: list[str] = []
    _canonical(value, out)
    assert canonical_json(value) == "".join(out)


@pytest.mark.parametrize(
    ("value", "javascript"),
    [
        # what String(x) gives in JavaScript (node 20)
        (2.0**53, "9007199254740992"),
        (9007199254740994.0, "9007199254740994"),
        (12345678901234567890.0, "12345678901234567000"),
        (2.0**64, "18446744073709552000"),
        (1e20, "100000000000000000000"),
        (1.2345678901234568e20, "123456789012345680000"),
        (1e21, "1e+21"),
        (-(2.0**70), "-1.1805916207174113e+21"),
        (0.1, "0.1"),
        (1.5e-7, "1.5e-7"),
        (123.0, "123"),
        (-0.0, "0"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value: float, javascript: str) -> None:
    assert _js_number(value) == javascript


def test_integer_literals_javascript_rounds_are_reported_as_floats() -> None:
    seen: list[str] = []
    value = loads('{"a": 12345678901234567890, "b": 9007199254740993, "c": 7}', floats=seen)
    assert seen == ["12345678901234567890"]  # the second one is kept exact (see above)
    assert canonical_json(value, floats=bool(seen)) == '{"a":12345678901234567000,"b":9007199254740993,"c":7}'


# -- publish bodies parsed by orjson ----------------------------------------------------


_DIGEST = hashlib.sha256(b"publish body").hexdigest()
_ENTRY = f'{{"path":"a.bin","size":12,"chunks":[{{"hash":"{_DIGEST}","size":12}}]}}'


def _body(entry: str = _ENTRY, config: str = "{}", extra: str = "") -> str:
    version = f'{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE}","config":{config},"files":[{entry}]}}'
    return f'{{"siteId":"{{site}}","version":{version}{extra}}}'


# bodies the exact parser reads differently from orjson (floats, integers past 2**53) in every
# place a number can hide, and bodies both read alike
_PUBLISH_BODIES = [
    _body(),
    _body(config='{"fps":60}'),
    _body(config='{"fps":59.94}'),
    _body(config='{"big":9007199254740993}'),
    _body(config='{"big":12345678901234567890}'),
    _body(config='{"huge":123456789012345678901234567890}'),
    _body(config='{"a":[1,{"b":1e3}]}'),
    _body(entry=_ENTRY.replace('"size":12,', '"size":12.0,')),
    _body(entry=_ENTRY.replace('"size":12}', '"size":1.2e1}')),
    _body(entry=_ENTRY.replace('"a.bin",', '"a.bin","mode":0.5,')),
    _body(entry=_ENTRY.replace('"size":12}', '"size":12,"crc":1.5}')),
    _body(extra=',"description":"x","name":"n","targets":[]'),
    _body(extra=',"expectedCurrentVersionId":null,"weight":2.5'),
    _body(extra=',"n":-9007199254740993'),
    # a repeated key: the last value wins in JavaScript and in both parsers
    _body(config='{"fps":1,"fps":2.5}'),
    _body(config='{"fps":2.5,"fps":1}'),
]


@pytest.mark.parametrize("text", _PUBLISH_BODIES)
def test_orjson_values_are_trusted_only_when_they_equal_json_parse(text: str) -> None:
    exact = loads(text)
    fast = loads_unchecked(text.encode())
    assert fast is not None
    trusted = only_safe_integers(fast)
    # no float and no long integer: only the first three bodies, the one with extra fields and
    # the repeated key whose last value is an integer
    assert trusted is (text in (*_PUBLISH_BODIES[:2], _PUBLISH_BODIES[11], _PUBLISH_BODIES[15]))
    # the publish route's own decision: the same, from its pass over the files and a walk of the rest
    assert (versions._parsed_fast(text.encode()) is not None) is trusted
    if trusted:
        assert fast == exact
        assert [type(v) for v in _leaves(fast)] == [type(v) for v in _leaves(exact)]
        assert canonical_json(fast, floats=False) == canonical_json(exact)


@pytest.mark.parametrize(
    "text", ['{"a": NaN}', '{"a": "\\ud800"}', "[" * 2000, b"\xff".decode("latin-1"), ""]
)
def test_texts_orjson_refuses_are_left_to_the_exact_parser(text: str) -> None:
    assert loads_unchecked(text.encode("utf-8", "surrogateescape")) is None


@pytest.mark.anyio
@pytest.mark.parametrize("text", _PUBLISH_BODIES)
async def test_a_publish_gets_the_version_id_of_the_exact_parse(
    roost_server: EmulatorServer, text: str
) -> None:
    """Whichever parser read the body, the version id is the hash of JSON.stringify of the
    version as JavaScript parsed it."""
    roost_server.put_chunk(b"publish body")
    text = text.replace("{site}", roost_server.site_id)
    out: list[str] = []
    _canonical(loads(text)["version"], out)
    async with httpx.AsyncClient(base_url=roost_server.url, headers=roost_server.headers()) as client:
        response = await client.post(
            "/api/roosts/parsers01/versions", content=text, headers={"Content-Type": "application/json"}
        )
    assert response.status_code in (200, 201), response.text
    assert response.json()["versionId"] == hashlib.sha256("".join(out).encode()).hexdigest()


# -- chunk presence --------------------------------------------------------------------


def _store_with(tmp_path: Path, names: list[str], *, empty: tuple[str, ...] = ()) -> ChunkStore:
    store = ChunkStore(tmp_path / "chunks")
    for name in names:
        store.write_bytes(SITE, name, b"" if name in empty else b"x")
    return store


def test_missing_from_a_listing_equals_missing_from_stats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _hashes(300, prefix="ab")
    store = _store_with(tmp_path, [*stored, EMPTY], empty=(EMPTY,))
    # a temp file of an upload in flight is not an object
    absent = _hashes(400, prefix="ab")[300:]
    (store.path(SITE, absent[0]).parent / f".{absent[0][:16]}.x.part").write_bytes(b"half")
    asked = [*absent[:50], *stored, EMPTY, *absent[50:], stored[0], "cd" + "0" * 62]
    expected = [d for d in asked if not store.exists(SITE, d)]
    assert EMPTY in expected  # empty means absent, also when listed
    stats: list[str] = []
    real = ChunkStore.exists

    def counted(self: ChunkStore, site_id: str, digest: str) -> bool:
        stats.append(digest)
        return real(self, site_id, digest)

    monkeypatch.setattr(ChunkStore, "exists", counted)
    assert store.missing(SITE, asked) == expected
    # the "ab" directory was listed, not stat'ed name by name
    assert stats == [EMPTY]


def test_an_object_in_another_prefix_directory_does_not_count_as_stored(tmp_path: Path) -> None:
    """A listing answers only for its own prefix: a file named after a chunk but lying in
    another prefix's directory is not that chunk (the listings are subtracted all at once)."""
    stored = _hashes(100, prefix="ab")
    store = _store_with(tmp_path, stored)
    stray = "cd" + "1" * 62
    (store.path(SITE, stored[0]).parent / stray).write_bytes(b"not where it belongs")
    asked = [*stored, stray]
    assert store.missing(SITE, asked) == [stray]


def test_a_few_names_in_a_large_directory_are_stat_ed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _hashes(3000, prefix="ab")
    # one name in each of 70 other prefix directories makes the list long enough to list
    spread = [f"{p:02x}" + h[2:] for p, h in zip(range(0x10, 0x10 + 70), _hashes(70), strict=True)]
    store = _store_with(tmp_path, [*big, *spread[::2]])
    asked = [big[3], "ab" + "f" * 62, *spread]
    expected = [d for d in asked if not store.exists(SITE, d)]
    calls: list[str] = []
    real = ChunkStore.exists

    def counted(self: ChunkStore, site_id: str, digest: str) -> bool:
        calls.append(digest)
        return real(self, site_id, digest)

    monkeypatch.setattr(ChunkStore, "exists", counted)
    assert store.missing(SITE, asked) == expected
    # the 3,000-entry directory was not listed for two names (whether the small ones are
    # depends on how the file system sizes a directory)
    assert set(asked[:2]) <= set(calls)


def _settle(store: ChunkStore, prefix: str) -> None:
    """Date a prefix directory's last change back, as if made long before."""
    folder = store.root / SITE / prefix
    old = time.time_ns() - 10 * 10**9
    os.utime(folder, ns=(old, old))


def count_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The directories ``os.scandir`` lists from now on, in order."""
    listed: list[str] = []
    real = os.scandir

    def counted(path: str) -> Any:
        listed.append(path)
        return real(path)

    monkeypatch.setattr(os, "scandir", counted)
    return listed


def test_a_kept_listing_serves_again_until_its_directory_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _hashes(200, prefix="ef")
    store = _store_with(tmp_path, stored)
    _settle(store, "ef")
    listed = count_listings(monkeypatch)
    assert store.missing(SITE, stored) == []
    assert store.missing(SITE, stored) == []
    assert len(listed) == 1
    store.delete(SITE, stored[7])
    assert store.missing(SITE, stored) == [stored[7]]
    assert len(listed) == 2
    store.write_bytes(SITE, stored[7], b"x")
    assert store.missing(SITE, stored) == []


def test_a_directory_changed_just_now_is_listed_but_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = _hashes(200, prefix="ef")
    store = _store_with(tmp_path, stored)
    listed = count_listings(monkeypatch)
    assert store.missing(SITE, stored) == []
    assert store.missing(SITE, stored) == []
    # a change within the same clock tick would not have moved the mtime: list every time
    assert len(listed) == 2
