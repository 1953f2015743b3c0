"""The version's manifest: fetched through the versions resource, every field checked before use.

A manifest comes from a server, so nothing in it is trusted: each entry must be a path, a
non-negative size and chunks whose sizes add up to it (checked here), and each path must stay
inside the destination (checked in :mod:`roost._pull.paths`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
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
    "fetch_manifest",
    "parse_files",
]

#: The files route's largest page (used only when the version document carries no file list).
FILES_PAGE_SIZE = 500
_HASH = re.compile(r"[0-9a-f]{64}\Z")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """One file of the version: POSIX path relative to the destination, size, chunks in order."""

    path: str
    size: int
    chunks: tuple[ChunkDescriptor, ...]


@dataclass(frozen=True, slots=True)
class VersionManifest:
    """A version's files. ``verified``: the body the server sent hashes to ``version_id``, so
    these are the files of that id whoever served them (only such a manifest is cached)."""

    version_id: str
    version_number: int
    files: tuple[RemoteFile, ...]
    verified: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)


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
        return VersionManifest(version_id, number, parse_files(rows, where))
    files = parse_files(rows, where)
    return VersionManifest(version_id, number, files, verified=body_matches_id(body, version_id))
