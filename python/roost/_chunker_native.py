"""Loading the native core (``roost._native``), with the types the chunker relies on.

The extension is optional: when it cannot be imported (no wheel for the platform, a failed
build), the chunker uses the pure-Python fallback. ``ROOST_NATIVE=0`` forces the fallback.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol, cast

__all__ = ["NativeJob", "NativeModule", "load", "loaded"]

RawBatch = tuple[list[str], list[int], list[str]]


class NativeJob(Protocol):
    """A running scan: ``wait_walk`` -> ``start_hashing`` -> ``next_batch`` until it returns None."""

    def wait_walk(self, timeout: float) -> tuple[int, int] | None: ...

    def start_hashing(self, skip: list[int] | None = None, digests: bytes | None = None) -> None: ...

    def file_keys(self) -> tuple[list[bytes], list[int], list[int]] | None: ...

    @property
    def files_read(self) -> int: ...

    def next_batch(self, timeout: float) -> RawBatch | None: ...

    def cancel(self) -> None: ...


class _ScanJobType(Protocol):
    def __call__(
        self, root: str, patterns: list[str], *, threads: int = 0, mmap: bool = False, piece_kib: int = 0
    ) -> NativeJob: ...

    def for_file(
        self, path: str, *, threads: int = 0, mmap: bool = False, piece_kib: int = 0
    ) -> NativeJob: ...


class _MatcherType(Protocol):
    def is_ignored(self, name: str, rel: str, is_dir: bool) -> bool: ...


class _MatcherClass(Protocol):
    def __call__(self, patterns: list[str], *, defaults: bool = True) -> _MatcherType: ...


class NativeModule(Protocol):
    ScanJob: _ScanJobType
    IgnoreMatcher: _MatcherClass
    SourceChangedError: type[Exception]
    CHUNK_SIZE: int

    def compile_pattern(self, pattern: str) -> tuple[bool, bool, str]: ...

    def read_chunk(
        self, path: str, offset: int, size: int, want_hash: bool = True
    ) -> tuple[bytes, str | None]: ...

    def verify_chunk(self, path: str, offset: int, size: int, expected_hash: str) -> bool: ...

    def hash_chunks(
        self, chunks: list[tuple[str, int, int]], *, threads: int = 0, mmap: bool = False, piece_kib: int = 0
    ) -> list[str]: ...

    def cpu_features(self) -> list[tuple[str, bool]]: ...

    def xxh3_files(self, paths: list[str]) -> list[bytes]: ...


def _import() -> NativeModule | None:
    try:
        module = importlib.import_module("roost._native")
    except ImportError:
        return None
    return cast(NativeModule, module)


_MODULE = _import()


def loaded() -> NativeModule | None:
    """The extension, whatever ``ROOST_NATIVE`` says (None when it failed to import)."""
    return _MODULE


def load() -> NativeModule | None:
    """The extension, or None when it is unavailable or ``ROOST_NATIVE=0`` (read on every call)."""
    if os.environ.get("ROOST_NATIVE", "").strip() == "0":
        return None
    return _MODULE
