from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from roost import Roost

from ..chunker.conftest import BACKENDS, use_backend
from ..trees import MiB, blob, disk_tree, write_tree

pytest.importorskip("uvicorn", reason="the emulator needs the server extra")
pytest.importorskip("starlette", reason="the emulator needs the server extra")
testing = pytest.importorskip("roost.testing")

__all__ = ["MiB", "blob", "disk_tree", "temp_files", "write_tree"]


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
