"""The package's seams: one exception class, one job interface, one definition of each constant."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import roost
from roost import _errors, chunker
from roost.chunker import _backend, _model
from roost.chunker import _errors as chunker_errors


def test_chunk_source_changed_error_is_one_class() -> None:
    assert roost.ChunkSourceChangedError is chunker.ChunkSourceChangedError
    assert _errors.ChunkSourceChangedError is chunker_errors.ChunkSourceChangedError
    assert issubclass(chunker.PatternError, ValueError)


def test_the_native_core_agrees_with_the_python_constants() -> None:
    native = _backend.loaded()
    assert native is not None
    assert native.CHUNK_SIZE == _model.CHUNK_SIZE == chunker.CHUNK_SIZE_BYTES
    assert tuple(native.DEFAULT_IGNORES) == _model.DEFAULT_IGNORES == chunker.DEFAULT_IGNORES


def _walked(root: Path) -> _backend.Job:
    job = _backend.tree_job(os.path.realpath(root), [])
    while job.wait_walk(0.25) is None:
        pass
    return job


def test_start_hashing_says_false_on_a_cache_mismatch(backend: str, tmp_path: Path) -> None:
    """Both backends answer a mismatch the same way (no exception to misread), then start."""
    (tmp_path / "f").write_bytes(b"x" * 10)
    job = _walked(tmp_path)
    try:
        assert job.start_hashing([0], b"") is False  # one chunk expected, none given
        assert job.start_hashing([5], b"\0" * 32) is False  # no such file
        assert job.start_hashing([0], b"\7" * 32) is True
        batch = job.next_batch(5.0)
        while batch is not None and not batch[0]:
            batch = job.next_batch(5.0)
        assert batch is not None
        assert batch[2] == ["07" * 32]
        assert job.files_read == 0
    finally:
        job.cancel()


def test_a_bad_pattern_is_a_pattern_error_before_any_work(backend: str, tmp_path: Path) -> None:
    with pytest.raises(chunker.PatternError) as info:
        _backend.tree_job(str(tmp_path), ["a[", "b"])
    assert info.value.pattern == "a["
    assert info.value.reason == "unclosed character class"


def test_the_scan_report_counts_reads_and_cache_hits(backend: str, tmp_path: Path) -> None:
    for name in ("a", "b", "empty"):
        (tmp_path / name).write_bytes(name.encode() if name != "empty" else b"")
        os.utime(tmp_path / name, ns=(1_600_000_000_000_000_000,) * 2)
    _, cold = chunker._scan_tree(tmp_path)
    assert (cold.files_read, cold.cache_hits) == (2, 0)  # an empty file is never opened
    _, warm = chunker._scan_tree(tmp_path)
    assert (warm.files_read, warm.cache_hits) == (0, 3)
