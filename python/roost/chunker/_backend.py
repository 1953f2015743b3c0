"""The backend seam: which core runs a scan, the one job interface, and error translation.

The native core (``roost._native``, typed by ``roost/_native.pyi``) is optional: when it cannot
be imported (no wheel for the platform, a failed build), the pure-Python fallback runs.
``ROOST_NATIVE=0`` forces the fallback (read on every call). Both produce :class:`Job` objects
and raise their own internal errors; :func:`guard` is the one place that turns those into the
public ones, so the facade never branches on the backend.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol, TypeVar

from . import _fallback
from ._errors import ChunkSourceChangedError, PatternError, SourceChanged
from ._hash_cache import RawHits
from ._model import CHUNK_SIZE, DEFAULT_IGNORES, FileId, RawBatch

try:
    from .. import _native
except ImportError:  # no wheel for this platform, or a failed build: the fallback runs
    _AVAILABLE = False
else:
    _AVAILABLE = True
    # One definition of each constant lives in Python; the core must agree with it.
    if _native.CHUNK_SIZE != CHUNK_SIZE or tuple(_native.DEFAULT_IGNORES) != DEFAULT_IGNORES:
        raise ImportError(
            "roost._native disagrees with roost.chunker on CHUNK_SIZE or DEFAULT_IGNORES: rebuild it"
        )

__all__ = [
    "Job",
    "file_job",
    "guard",
    "is_native",
    "loaded",
    "plainly_portable",
    "read_range",
    "tree_job",
    "verify_range",
    "xxh3_files",
]


class Job(Protocol):
    """A running scan (native ``ScanJob`` or ``_fallback.FallbackJob``).

    ``wait_walk`` until it returns the totals, then ``skipped``/``unmatched``/``file_keys``
    describe the walk and ``cache_hits`` finds its files in a loaded hash cache's sections
    (see :func:`roost.chunker._hash_cache.lookup`); ``start_hashing`` (False, and nothing started, when the cached digests do
    not match the walk) lets the hashing begin; ``next_batch`` until it returns None. With
    ``hold=True`` a backend may hand out the bytes it hashed: each read then waits for budget
    from ``grant`` (bytes granted to the next reads, in order), and the batches carry the bytes
    (see :data:`RawBatch`); a backend that holds none returns an empty list there.
    """

    def wait_walk(self, timeout: float) -> tuple[int, int] | None: ...

    def skipped(self) -> list[tuple[str, str]]: ...

    def unmatched(self) -> list[str]: ...

    def file_keys(self) -> tuple[list[bytes], list[int], list[int]] | None: ...

    def cache_hits(self, key_lengths: bytes, keys: bytes, counts: bytes, hashes: bytes) -> RawHits | None: ...

    def start_hashing(
        self, skip: list[int] | None = None, digests: bytes | None = None, hold: bool = False
    ) -> bool: ...

    def grant(self, budget: int) -> int: ...

    @property
    def files_read(self) -> int: ...

    def next_batch(self, timeout: float) -> RawBatch | None: ...

    def entries_json(self) -> str | None: ...

    def cancel(self) -> None: ...


def loaded() -> ModuleType | None:
    """The extension, whatever ``ROOST_NATIVE`` says (None when it failed to import)."""
    return _native if _AVAILABLE else None


def is_native() -> bool:
    """Whether the native core runs the next call (``ROOST_NATIVE=0`` forces the fallback)."""
    return _AVAILABLE and os.environ.get("ROOST_NATIVE", "").strip() != "0"


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, SourceChanged):
        return ChunkSourceChangedError(exc.path, "", exc.offset, exc.reason)
    if _AVAILABLE:
        if isinstance(exc, _native.SourceChangedError):
            path, offset, reason = exc.args
            return ChunkSourceChangedError(os.fspath(path), "", int(offset), str(reason))
        if isinstance(exc, _native.PatternError):
            return PatternError(exc.pattern, exc.reason)
    return exc


T = TypeVar("T")


def guard(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with each backend's internal errors raised as the public ones."""
    try:
        return fn(*args)
    except Exception as e:
        new = _translate(e)
        if new is e:
            raise
        raise new from None


def tree_job(root: str, patterns: list[str], defaults: bool = True) -> Job:
    if is_native():
        return guard(_native.ScanJob, root, patterns, defaults)
    return guard(_fallback.FallbackJob.for_tree, root, patterns, defaults)


def file_job(path: str) -> Job:
    if is_native():
        return _native.ScanJob.for_file(path)
    return _fallback.FallbackJob.for_file(path)


def read_range(
    path: str, offset: int, size: int, want_hash: bool, file_id: FileId | None
) -> tuple[bytes, str | None]:
    """Up to ``size`` bytes at ``offset`` (shorter when the file is) and, if asked, their SHA-256."""
    if is_native():
        return guard(_native.read_chunk, path, offset, size, want_hash, file_id)
    return guard(_fallback.read_and_hash, path, offset, size, want_hash, file_id)


def verify_range(path: str, offset: int, size: int, expected_hash: str, file_id: FileId | None) -> bool:
    """Whether the bytes hash to ``expected_hash`` (False when the file is too short)."""
    if is_native():
        return guard(_native.verify_chunk, path, offset, size, expected_hash, file_id)
    return guard(_fallback.verify_range, path, offset, size, expected_hash, file_id)


def plainly_portable() -> Callable[[list[str]], bool] | None:
    """The native fast check that a tree's paths all land on Windows (``roost._push.portable``
    decides without it)."""
    return _native.plainly_portable if is_native() else None


def xxh3_files() -> Callable[[list[str]], list[bytes]] | None:
    """The native content-digest function, or None for the fallback's own."""
    return _native.xxh3_files if is_native() else None
