from __future__ import annotations

import os
from pathlib import Path

import pytest

from roost import chunker
from roost.chunker import _backend as _chunker_native

BACKENDS = ("native", "python")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def real_tmp(tmp_path: Path) -> Path:
    """``tmp_path`` with symlinks resolved (the chunker reports resolved absolute paths)."""
    return Path(os.path.realpath(tmp_path))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test once on the native core and once on the pure-Python fallback."""
    name: str = request.param
    if name == "python":
        monkeypatch.setenv("ROOST_NATIVE", "0")
    else:
        monkeypatch.delenv("ROOST_NATIVE", raising=False)
        if _chunker_native.loaded() is None:
            pytest.fail("the native extension roost._native did not import: build it (pip install -e .)")
    assert chunker.backend() == name
    return name


def use_backend(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    if name == "python":
        monkeypatch.setenv("ROOST_NATIVE", "0")
    else:
        monkeypatch.delenv("ROOST_NATIVE", raising=False)
    assert chunker.backend() == name
