from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from roost import Roost

from ..chunker.conftest import BACKENDS, use_backend

pytest.importorskip("uvicorn", reason="the emulator needs the server extra")
pytest.importorskip("starlette", reason="the emulator needs the server extra")
testing = pytest.importorskip("roost.testing")

MiB = 1024 * 1024


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


def blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def write_tree(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


def disk_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links not followed) with its bytes."""
    out: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = Path(full).read_bytes()
    return out


def temp_files(root: Path) -> list[str]:
    return [str(path) for path in root.rglob(".roost-tmp-*")]
