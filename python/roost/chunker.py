"""Public chunker API: walk a tree, split files into 4 MiB SHA-256 chunks.

PLACEHOLDER IMPLEMENTATION (plain sequential Python) until the native core lands; the names and
types below are the stable public API.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ._errors import ChunkSourceChangedError

__all__ = [
    "CHUNK_SIZE_BYTES",
    "ChunkDescriptor",
    "ChunkProgressEvent",
    "ChunkedFileEntry",
    "DiscoverProgress",
    "HashProgress",
    "backend",
    "chunk_directory",
    "chunk_one_file",
    "read_chunk",
    "scan_directory",
    "unique_hashes",
]

CHUNK_SIZE_BYTES = 4 * 1024 * 1024
DEFAULT_IGNORES = (".git", "node_modules")


@dataclass(frozen=True, slots=True)
class ChunkDescriptor:
    """One chunk: lowercase hex SHA-256 of its bytes, and its size."""

    hash: str
    size: int


@dataclass(frozen=True, slots=True)
class ChunkedFileEntry:
    """One file: POSIX path relative to the root, size, and its chunks in order (none when empty)."""

    path: str
    size: int
    chunks: tuple[ChunkDescriptor, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class DiscoverProgress:
    file_count: int
    total_bytes: int
    phase: Literal["discover"] = "discover"


@dataclass(frozen=True, slots=True)
class HashProgress:
    file: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    phase: Literal["hash"] = "hash"


ChunkProgressEvent = DiscoverProgress | HashProgress
ProgressCallback = Callable[[ChunkProgressEvent], Awaitable[None] | None]


def backend() -> Literal["native", "python"]:
    return "python"


def _hash_file(abs_path: str, rel_path: str, size: int) -> ChunkedFileEntry:
    chunks: list[ChunkDescriptor] = []
    with open(abs_path, "rb") as handle:
        while True:
            data = handle.read(CHUNK_SIZE_BYTES)
            if not data:
                break
            chunks.append(ChunkDescriptor(hashlib.sha256(data).hexdigest(), len(data)))
    return ChunkedFileEntry(rel_path, size, tuple(chunks))


def _walk(root: str, ignore: Sequence[str]) -> list[tuple[str, str, int]]:
    skip = set(DEFAULT_IGNORES) | set(ignore)
    found: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            if name in skip:
                continue
            abs_path = os.path.join(dirpath, name)
            if not os.path.isfile(abs_path):
                continue
            rel = os.path.relpath(abs_path, root).replace(os.sep, "/")
            found.append((abs_path, rel, os.path.getsize(abs_path)))
    found.sort(key=lambda item: item[1])
    return found


def scan_directory(root: str | os.PathLike[str], *, ignore: Sequence[str] = ()) -> list[ChunkedFileEntry]:
    root_str = os.path.realpath(os.fspath(root))
    return [_hash_file(a, r, s) for a, r, s in _walk(root_str, ignore)]


async def chunk_directory(
    root: str | os.PathLike[str], *, ignore: Sequence[str] = (), on_progress: ProgressCallback | None = None
) -> list[ChunkedFileEntry]:
    root_str = os.path.realpath(os.fspath(root))  # noqa: ASYNC240 - placeholder
    files = _walk(root_str, ignore)
    total = sum(s for _, _, s in files)

    async def emit(event: ChunkProgressEvent) -> None:
        if on_progress is not None:
            result = on_progress(event)
            if result is not None:
                await result

    await emit(DiscoverProgress(len(files), total))
    out: list[ChunkedFileEntry] = []
    done_bytes = 0
    for index, (abs_path, rel, size) in enumerate(files):
        await emit(HashProgress(rel, index, len(files), done_bytes, total))
        out.append(_hash_file(abs_path, rel, size))
        done_bytes += size
    await emit(HashProgress("", len(files), len(files), total, total))
    return out


async def chunk_one_file(abs_path: str | os.PathLike[str], rel_path: str) -> ChunkedFileEntry:
    path = os.fspath(abs_path)
    return _hash_file(path, rel_path, os.path.getsize(path))  # noqa: ASYNC240 - placeholder


def unique_hashes(entries: Iterable[ChunkedFileEntry]) -> list[str]:
    seen: dict[str, None] = {}
    for entry in entries:
        for chunk in entry.chunks:
            seen.setdefault(chunk.hash, None)
    return list(seen)


def read_chunk(path: str, offset: int, size: int, *, expected_hash: str | None = None) -> bytes:
    """Read ``size`` bytes at ``offset``; with ``expected_hash``, verify them (blocking: run in a thread).

    Raises :class:`roost.ChunkSourceChangedError` when the bytes are short or hash differently.
    """
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise ChunkSourceChangedError(
            path, expected_hash or "", offset, f"short read ({len(data)} of {size} bytes)"
        )
    if expected_hash is not None and hashlib.sha256(data).hexdigest() != expected_hash:
        raise ChunkSourceChangedError(path, expected_hash, offset, "content hash differs")
    return data
