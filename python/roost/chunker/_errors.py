"""The chunker's exceptions, and the one place where each backend's errors become them."""

from __future__ import annotations

__all__ = ["ChunkSourceChangedError", "PatternError", "SourceChanged"]


class ChunkSourceChangedError(RuntimeError):
    """A source file changed between hashing and upload; the push stopped before publishing.

    Also raised when a file opened for hashing or re-reading is not the file the walk saw (a link
    or file swapped since): nothing outside the scanned folder is ever read under a hash.
    """

    def __init__(self, path: str, chunk_hash: str, offset: int, reason: str):
        self.path = path
        self.chunk_hash = chunk_hash
        self.offset = offset
        self.reason = reason
        where = (
            f" at offset {offset}, chunk {chunk_hash}"
            if chunk_hash
            else f" at offset {offset}"
            if offset
            else ""
        )
        super().__init__(
            f"{path} changed during the push ({reason}{where}); nothing was published, push again"
        )


class PatternError(ValueError):
    """An ignore pattern that cannot be parsed (from either backend)."""

    def __init__(self, pattern: str, reason: str):
        self.pattern = pattern
        self.reason = reason
        super().__init__(f'invalid ignore pattern "{pattern}": {reason}')


class SourceChanged(Exception):  # noqa: N818 - internal signal, mapped to ChunkSourceChangedError
    """The fallback's signal: a file got shorter, or is not the walked one: (path, offset, reason)."""

    def __init__(self, path: str, offset: int, reason: str):
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(path, offset, reason)
