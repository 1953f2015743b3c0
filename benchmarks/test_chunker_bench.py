"""pytest-benchmark: the chunker on the three datasets, native and fallback.

    pytest benchmarks/ --benchmark-columns=min,mean,rounds
    ROOST_BENCH_SCALE=1 ROOST_BENCH_DIR=datasets pytest benchmarks/   # full size

For ratios from one run against the naive baseline and the read + hash ceiling, use
``scripts/bench_chunker.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from roost import chunker

DATASETS = ["media", "touchdesigner", "many-tiny"]


@pytest.fixture(params=["native", "python"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    name: str = request.param
    monkeypatch.setenv("ROOST_NATIVE", "1" if name == "native" else "0")
    if chunker.backend() != name:
        pytest.skip(f"the {name} backend is not available")
    return name


@pytest.mark.parametrize("dataset", DATASETS)
def test_scan_directory(
    benchmark: BenchmarkFixture, datasets: Callable[[str], str], dataset: str, backend: str
) -> None:
    root = datasets(dataset)
    chunker.scan_directory(root, cache=False)  # warm the page cache
    entries = benchmark(chunker.scan_directory, root, cache=False)  # a cold scan: no hash cache
    assert entries
