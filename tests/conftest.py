"""Shared by every test: the hash cache goes to a per-test directory, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_hash_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("hash-cache")
    monkeypatch.setenv("ROOST_CACHE_DIR", str(path))
    return path
