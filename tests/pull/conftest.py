from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from roost import PullOptions, PullResult, PushOptions, Roost

from ..chunker.conftest import BACKENDS, use_backend
from ..trees import MiB, blob, disk_tree, write_tree

pytest.importorskip("uvicorn", reason="the emulator needs the server extra")
pytest.importorskip("starlette", reason="the emulator needs the server extra")
testing = pytest.importorskip("roost.testing")

__all__ = ["ROOST", "MiB", "blob", "disk_tree", "publish", "pull", "temp_files", "write_tree"]

ROOST = "rst_pull"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=BACKENDS)
def chunker_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test on the native chunker and on the pure-Python fallback."""
    name: str = request.param
    use_backend(monkeypatch, name)
    return name


@pytest.fixture
async def server() -> AsyncIterator[Any]:
    async with testing.serve() as running:
        yield running


@pytest.fixture
async def client(server: Any) -> AsyncIterator[Roost]:
    async with Roost(token=server.token, api_url=server.url) as roost:
        yield roost


def temp_files(root: Path) -> list[str]:
    return [str(path) for path in root.rglob(".roost-tmp-*")]


async def publish(client: Roost, site_id: str, root: Path, files: dict[str, bytes]) -> str:
    """Writes ``files`` under ``root`` and pushes them as a new version of :data:`ROOST`."""
    write_tree(root, files)
    result = await client.roosts.push(root, ROOST, PushOptions(site_id=site_id, cache=False))
    return result.version_id


async def pull(client: Roost, site_id: str, dest: Path, **options: Any) -> PullResult:
    return await client.roosts.pull(ROOST, dest, PullOptions(site_id=site_id, **options))
