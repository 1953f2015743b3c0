"""Fixtures for the blocking client: a real emulator started synchronously, and small trees."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.testing import EmulatorServer, start_server


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with start_server() as running:
        yield running


def make_tree(root: Path, files: int, size: int) -> Path:
    """``files`` files of ``size`` random bytes each (one chunk apiece below 4 MiB)."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        (root / f"f{index:02d}.bin").write_bytes(os.urandom(size))
    return root
