"""Route handlers called one by one, without a server: each reads its state from ``ctx.emu``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from roost.testing import EmulatorOptions
from roost.testing._core import Ctx
from roost.testing._emulator import Emulator
from roost.testing._problems import ApiError
from roost.testing.routes import TABLES, account, chunks, sites

pytestmark = pytest.mark.anyio


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    state = Emulator(EmulatorOptions(), tmp_path, "unit-site")
    state.bootstrap(None)
    try:
        yield state
    finally:
        state.close()


def make_ctx(
    emu: Emulator,
    method: str,
    path: str,
    *,
    body: Any = None,
    path_params: dict[str, str] | None = None,
    token: str | None = None,
) -> Ctx:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = [
        (b"authorization", f"Bearer {token or emu.token}".encode()),
        (b"roost-version", b"2026-04-22"),
        (b"content-type", b"application/json"),
    ]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "path_params": path_params or {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return Ctx(Request(scope, receive), emu)


async def test_api_version_needs_no_state(emu: Emulator) -> None:
    response = await account.api_version(make_ctx(emu, "GET", "/api/version"))
    assert json.loads(bytes(response.body)) == {"current": "2026-04-22", "supported": ["2026-04-22"]}


async def test_site_get_reads_the_emulator_it_is_given(emu: Emulator) -> None:
    ctx = make_ctx(emu, "GET", "/api/sites/unit-site", path_params={"siteId": "unit-site"})
    response = await sites.site_get(ctx)
    assert response.status_code == 200
    assert "unit-site" in bytes(response.body).decode()
    missing = make_ctx(emu, "GET", "/api/sites/nope-site", path_params={"siteId": "nope-site"})
    with pytest.raises(ApiError):
        await sites.site_get(missing)


async def test_chunks_check_answers_from_the_chunk_store(emu: Emulator) -> None:
    stored = "a" * 64
    emu.chunks.write_bytes("unit-site", stored, b"x")
    body = {"siteId": "unit-site", "hashes": [stored, "b" * 64]}
    response = await chunks.chunks_check(make_ctx(emu, "POST", "/api/chunks/check", body=body))
    assert json.loads(bytes(response.body)) == {"missing": ["b" * 64]}
    bad = {"siteId": "unit-site", "hashes": ["NOT-A-HASH"]}
    with pytest.raises(ApiError) as caught:
        await chunks.chunks_check(make_ctx(emu, "POST", "/api/chunks/check", body=bad))
    assert caught.value.status == 400


def test_every_route_is_declared_once() -> None:
    seen = [path for table in TABLES for path, _ in table]
    assert len(seen) == len(set(seen))
    assert "/api/roosts/{roostId}/versions" in seen


def test_options_are_one_object_with_keyword_overrides() -> None:
    base = EmulatorOptions(site_id="a-site", faults="api_5xx=0.5,seed=3")  # type: ignore[arg-type]
    assert base.faults.api_5xx == 0.5
    merged = EmulatorOptions.build(base, upload_url_ttl_s=2)
    assert (merged.site_id, merged.upload_url_ttl_s) == ("a-site", 2)
    with pytest.raises(TypeError, match=r"unknown emulator option.*bogus"):
        EmulatorOptions.build(bogus=1)
    with pytest.raises(ValueError, match="upload_url_ttl_s"):
        EmulatorOptions(upload_url_ttl_s=0)
    with pytest.raises(ValueError, match="token must start") as caught:
        EmulatorOptions(token="secret-value")
    assert "secret-value" not in str(caught.value)
