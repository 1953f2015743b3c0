"""No storage request carries the API's credentials: push PUTs, the installer PUT, the screenshot GET.

Each path runs against the emulator, which records every storage request's headers, once with
the default transport (the lean one for chunk PUTs) and once with a custom transport given to the
client (shared with storage, so a leak through it would show). The API client's cookie jar holds
a cookie for the very host storage lives on: the storage client must not send it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from roost import PushOptions, Roost

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from roost.testing import EmulatorServer, start_server

pytestmark = pytest.mark.anyio

FORBIDDEN = ("authorization", "roost-version", "cookie", "idempotency-key")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    running = start_server()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=["default-transport", "custom-transport"])
async def client(request: pytest.FixtureRequest, server: EmulatorServer) -> AsyncIterator[Roost]:
    transport = httpx.AsyncHTTPTransport() if request.param == "custom-transport" else None
    async with Roost(token=server.token, api_url=server.url, transport=transport) as session:
        host = httpx.URL(server.url).host
        session.http._http.cookies.set("session", "api-session-cookie", domain=host, path="/")
        yield session
    if transport is not None:
        await transport.aclose()


async def test_no_storage_request_carries_api_credentials(
    server: EmulatorServer, client: Roost, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    unique = request.node.name.encode()  # new chunks for each transport: every PUT really happens
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_bytes(unique + b"alpha " * 1000)
    (tree / "b.bin").write_bytes(unique + bytes(range(256)) * 600)
    version = "3.0.1" if b"custom" in unique else "3.0.0"
    installer = tmp_path / f"Owlette-Installer-{version}.exe"
    installer.write_bytes(b"MZ" + b"installer" * 5000)
    server.clear_storage_requests()

    await client.roosts.push(tree, "rst_credentials", PushOptions(site_id=server.site_id, cache=False))
    await client.installer.upload(installer, version=version, set_as_latest=False)
    image = await client.machines.capture_screenshot(server.site_id, "machine-03", timeout_seconds=30)
    assert image.startswith(b"\x89PNG")

    records = server.storage_requests
    kinds = {(r.method, r.path.split("/")[2]) for r in records}
    assert kinds == {("PUT", "project-content"), ("PUT", "agent-installers"), ("GET", "screenshots")}
    for record in records:
        leaked = [name for name in FORBIDDEN if name in record.headers]
        assert leaked == [], f"{record.method} {record.path} carried {leaked}"
        assert "owlette-sdk" not in record.headers.get("user-agent", "")
        assert server.token not in " ".join(record.headers.values())
    chunk_puts = [r for r in records if r.path.startswith("/storage/project-content/")]
    assert len(chunk_puts) == 2
    assert all(r.outcome == "stored" for r in chunk_puts)
