"""Datasets for the pytest-benchmark suite, built once per session by scripts/gen_datasets.py.

``ROOST_BENCH_SCALE`` (default 0.02) scales them: 1.0 gives the full datasets of
performance-facts.md. ``ROOST_BENCH_DIR`` keeps them between runs (default: a temporary folder).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gen_datasets.py"


def _builder() -> Callable[[str, str, float], str]:
    spec = importlib.util.spec_from_file_location("gen_datasets", _SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cast(Callable[[str, str, float], str], module.build)


@pytest.fixture(scope="session")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    scale = float(os.environ.get("ROOST_BENCH_SCALE", "0.02"))
    base = os.environ.get("ROOST_BENCH_DIR") or str(tmp_path_factory.mktemp("datasets"))
    build = _builder()
    built: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = os.path.realpath(build(base, name, scale))
        return built[name]

    return get
