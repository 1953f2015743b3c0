"""The version's manifest: fetched through the versions resource, every field checked before use.

A manifest comes from a server, so nothing in it is trusted: each entry must be a path, a
non-negative size and chunks whose sizes add up to it (checked here), and each path must stay
inside the destination (checked in :mod:`roost._pull.paths`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._wire import MalformedResponseError
from ..chunker import CHUNK_SIZE_BYTES, ChunkDescriptor
from ..client import RoostClient
from ..resources.versions import Versions

__all__ = [
    "FILES_PAGE_SIZE",
    "RemoteFile",
    "VersionManifest",
    "body_matches_id",
    "chunk_digest",
    "fetch_manifest",
    "parse_files",
]

#: The files route's largest page (used only when the version document carries no file list).
FILES_PAGE_SIZE = 500
_HASH = re.compile(r"[0-9a-f]{64}\Z")
_HEX = 64


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file of the version: POSIX path relative to the destination, size, chunks in order."""

    path: str
    size: int
    chunks: tuple[ChunkDescriptor, ...]


def chunk_digest(chunks: Sequence[ChunkDescriptor]) -> str:
    """A file's chunk hashes, concatenated: two files' are equal exactly when their chunks are
    (64 hex characters a chunk, and a hash names its bytes, so their size too)."""
    return chunks[0].hash if len(chunks) == 1 else "".join(chunk.hash for chunk in chunks)


def _standard(entry: RemoteFile) -> bool:
    chunks = entry.chunks
    if not chunks:
        return entry.size == 0
    return chunks[-1].size == entry.size - CHUNK_SIZE_BYTES * (len(chunks) - 1) and all(
        chunk.size == CHUNK_SIZE_BYTES for chunk in chunks[:-1]
    )


@dataclass(frozen=True, slots=True)
class VersionManifest:
    """A version's files, as columns: ``paths``, ``sizes`` and ``digests`` (:func:`chunk_digest`
    of each file's chunks) are all a re-pull compares; :meth:`file` gives one file with its
    chunks, only for the files that have to be written.

    ``parsed`` holds the entries as the server listed them (any chunk sizes); without it (a
    cached manifest) the chunks are the SDK's cut, 4 MiB each, the last one shorter.
    ``verified``: the body the server sent hashes to ``version_id``, so these are the files of
    that id whoever served them (only such a manifest is cached).
    """

    version_id: str
    version_number: int
    paths: tuple[str, ...]
    sizes: tuple[int, ...]
    digests: tuple[str, ...]
    verified: bool = False
    parsed: tuple[RemoteFile, ...] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls, version_id: str, version_number: int, files: tuple[RemoteFile, ...], *, verified: bool = False
    ) -> VersionManifest:
        paths = tuple(entry.path for entry in files)
        sizes = tuple(entry.size for entry in files)
        digests = tuple(chunk_digest(entry.chunks) for entry in files)
        return cls(version_id, version_number, paths, sizes, digests, verified, files)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    @property
    def standard(self) -> bool:
        """Whether the columns alone rebuild every file (each cut the SDK's way)."""
        return self.parsed is None or all(map(_standard, self.parsed))

    def file(self, index: int) -> RemoteFile:
        if self.parsed is not None:
            return self.parsed[index]
        size, digest = self.sizes[index], self.digests[index]
        count = len(digest) // _HEX
        chunks = tuple(
            ChunkDescriptor(
                digest[_HEX * at : _HEX * at + _HEX], min(CHUNK_SIZE_BYTES, size - CHUNK_SIZE_BYTES * at)
            )
            for at in range(count)
        )
        return RemoteFile(self.paths[index], size, chunks)


def body_matches_id(body: Any, version_id: str) -> bool:
    """Whether ``body`` is the version ``version_id`` names: the server's id is the SHA-256 of the
    body's key-sorted, compact JSON. A body this encoder does not reproduce byte for byte (a
    float, keys whose UTF-16 order differs from code-point order) is only reported False."""
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest() == version_id
    except (TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        return False


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bad(at: str, path: object, detail: str) -> MalformedResponseError:
    return MalformedResponseError(at, f"{path!r}: {detail}")


def _parse_file(raw: Any, where: str, index: int) -> RemoteFile:
    # Hot on a re-pull (once per file of the version): plain type checks, one regex per chunk.
    at = f"{where}: files[{index}]"
    if type(raw) is not dict:
        raise MalformedResponseError(at, "is not an object")
    path = raw.get("path")
    size = raw.get("size")
    chunks_raw = raw.get("chunks")
    if type(path) is not str:
        raise MalformedResponseError(at, f"path is not a string: {path!r}")
    if type(size) is not int or size < 0:
        raise _bad(at, path, f"size is not a non-negative integer: {size!r}")
    if type(chunks_raw) is not list:
        raise _bad(at, path, "chunks is not a list")
    chunks: list[ChunkDescriptor] = []
    total = 0
    for position, chunk in enumerate(chunks_raw):
        digest = chunk.get("hash") if type(chunk) is dict else None
        chunk_size = chunk.get("size") if type(chunk) is dict else None
        if type(digest) is not str or not _HASH.match(digest):
            raise _bad(at, path, f"chunks[{position}].hash is not 64 lower-case hex")
        # Larger chunks would break the memory bound of the download stage; no producer makes them.
        if type(chunk_size) is not int or not 0 < chunk_size <= CHUNK_SIZE_BYTES:
            raise _bad(at, path, f"chunks[{position}].size must be 1..{CHUNK_SIZE_BYTES}, got {chunk_size!r}")
        chunks.append(ChunkDescriptor(digest, chunk_size))
        total += chunk_size
    if total != size:
        raise _bad(at, path, f"size {size} is not the sum of its chunk sizes")
    return RemoteFile(path, size, tuple(chunks))


def parse_files(rows: list[Any], where: str) -> tuple[RemoteFile, ...]:
    """Every entry checked for shape; raises :class:`MalformedResponseError` naming the first bad one."""
    return tuple(_parse_file(row, where, index) for index, row in enumerate(rows))


async def fetch_manifest(http: RoostClient, roost_id: str, site_id: str, ref: str | int) -> VersionManifest:
    """Resolve ``ref`` and read the version's files (with their chunks) through ``client.versions``.

    The version document carries the whole stored body, files and chunks included, in one call;
    the paged files route is the fallback for a document without it, pinned to the resolved id so
    that a publish in between cannot mix two versions.
    """
    versions = Versions(http)
    document = await versions.get(roost_id, ref, site_id=site_id)
    where = f"GET /api/roosts/{roost_id}/versions/{ref}"
    version_id = document.get("versionId")
    if not isinstance(version_id, str) or not version_id:
        raise MalformedResponseError(where, "field 'versionId' is missing")
    number = _count(document.get("versionNumber")) or 0
    body = document.get("version")
    rows = body.get("files") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        where = f"GET /api/roosts/{roost_id}/versions/{version_id}/files"
        rows = [
            row
            async for row in versions.files(roost_id, version_id, site_id=site_id, page_size=FILES_PAGE_SIZE)
        ]
        return VersionManifest.of(version_id, number, parse_files(rows, where))
    files = parse_files(rows, where)
    return VersionManifest.of(version_id, number, files, verified=body_matches_id(body, version_id))
