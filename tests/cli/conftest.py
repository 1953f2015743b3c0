from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost.testing import serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server() -> AsyncIterator[object]:
    async with serve() as running:
        yield running


def cli_env(server: object, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWLETTE_")}
    env.update(
        OWLETTE_TOKEN=server.token,  # type: ignore[attr-defined]
        OWLETTE_API_URL=server.url,  # type: ignore[attr-defined]
        OWLETTE_SITE=server.site_id,  # type: ignore[attr-defined]
        PYTHONUNBUFFERED="1",
        COLUMNS="120",
    )
    env.update(extra)
    return env


ROOST_CMD = [sys.executable, "-m", "roost.cli"]


@pytest.fixture
def small_build(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "media").mkdir(parents=True)
    (root / "media" / "clip.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    for index in range(30):
        folder = root / "components" / f"g{index % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"c{index}.tox").write_bytes(os.urandom(1000 + index))
    (root / "empty.marker").write_bytes(b"")
    return root
