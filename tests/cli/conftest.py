from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from roost.cli import main
from roost.testing import serve, start_server


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


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Runner = Callable[..., Ran]


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """One emulator for a module's in-process CLI runs (each test uses its own roost ids)."""
    with start_server() as running:
        yield running


@pytest.fixture
def roost_main(emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Runner:
    """Runs ``main(argv)`` in this process (no interpreter start): exit code, stdout, stderr."""
    for name in [k for k in os.environ if k.startswith("OWLETTE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("OWLETTE_TOKEN", emulator.token)
    monkeypatch.setenv("OWLETTE_API_URL", emulator.url)
    monkeypatch.setenv("OWLETTE_SITE", emulator.site_id)

    def run(*argv: str) -> Ran:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run
