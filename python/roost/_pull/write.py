"""Blocking file work of a pull (run in worker threads): chunk writes, renames, clean-up.

Every file is built in its own temporary file beside its final path (``.roost-tmp-<hex>``),
opened without following links, and renamed into place only when all its chunks are in, so a
final path never holds a partial file. The rename replaces a symbolic link at the final path
instead of writing through it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from .._errors import ChunkSourceChangedError
from ..chunker import read_chunk
from .plan import LocalChunk, Places, Target

__all__ = ["finalize", "make_parents", "read_local", "remove_temps", "write_places"]

_FLAGS = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_FLAGS |= getattr(os, "O_CLOEXEC", 0)


def _open(path: str) -> int:
    return os.open(path, _FLAGS, 0o666)


def _write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    os.lseek(fd, offset, os.SEEK_SET)
    while view:
        view = view[os.write(fd, view) :]


def _finish(target: Target, fsync: bool) -> None:
    fd = _open(target.temp)
    try:
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(target.temp, target.final)
    target.done = True


def write_places(data: bytes, places: Places, finish: Iterable[Target], fsync: bool) -> None:
    """Write one chunk's bytes at each place, then rename the ``finish`` targets into place.

    ``finish`` must be targets for which these are the last outstanding writes.
    """
    for target, offset in places:
        fd = _open(target.temp)
        try:
            _write_at(fd, data, offset)
        finally:
            os.close(fd)
    for target in finish:
        _finish(target, fsync)


def finalize(targets: Iterable[Target], fsync: bool) -> None:
    """Rename complete targets (all chunks written, or none to write: empty files) into place."""
    for target in targets:
        _finish(target, fsync)


def read_local(source: LocalChunk, chunk_hash: str) -> bytes | None:
    """A chunk's bytes from a destination file, verified; ``None`` if it no longer holds them."""
    try:
        return read_chunk(source.path, source.offset, source.size, expected_hash=chunk_hash)
    except (ChunkSourceChangedError, OSError):
        return None


def make_parents(targets: Iterable[Target]) -> None:
    """Create the directories the targets need (their parents were checked not to be links)."""
    for directory in sorted({os.path.dirname(target.final) for target in targets}):
        os.makedirs(directory, exist_ok=True)


def remove_temps(paths: Iterable[str]) -> None:
    """Remove temporary files, ignoring those already gone."""
    for path in paths:
        # Gone already is fine; any other failure must not mask the error being cleaned up after.
        with contextlib.suppress(OSError):
            os.unlink(path)
