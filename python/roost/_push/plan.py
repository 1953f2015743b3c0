"""Scan results turned into data the later stages need: chunk sources, the plan, the version body."""

from __future__ import annotations

import json
import os
import platform
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from operator import is_
from typing import Any

from .._version import SDK_VERSION
from ..chunker import ChunkedFileEntry
from ..chunker._model import entries_json, entry_dicts
from .ledger import files_digest
from .types import PushPlan, PushStats

__all__ = [
    "MEDIA_TYPE",
    "PRODUCER",
    "ChunkSource",
    "Manifest",
    "build_manifest",
    "local_path",
    "missing_plan",
    "version_body",
    "version_json",
]

MEDIA_TYPE = "application/vnd.owlette.version.v1+json"
PRODUCER = "owlette-sdk python-sdk"


@dataclass(frozen=True, slots=True)
class ChunkSource:
    """Where a chunk's bytes live: the first file (walk order) and offset holding that hash."""

    path: str
    rel_path: str
    offset: int
    size: int
    file_id: tuple[int, int] | None = None  # the walk's identity: a swapped file is refused


class Manifest:
    """The scanned tree: entries sorted by path, unique hashes in first-seen order (walk order),
    and, built on first use (a re-push of an unchanged tree never needs them), their sources."""

    __slots__ = ("_digest", "_json", "_sources", "_walked", "files", "root", "unique")

    def __init__(
        self,
        root: str,
        files: tuple[ChunkedFileEntry, ...],
        unique: tuple[str, ...],
        walked: Sequence[ChunkedFileEntry] | None = None,
        files_json: str | None = None,
    ) -> None:
        self.root = root
        self.files = files
        self.unique = unique
        self._walked = files if walked is None else walked
        self._sources: dict[str, ChunkSource] | None = None
        self._json = files_json
        self._digest: str | None = None

    @property
    def sources(self) -> Mapping[str, ChunkSource]:
        """Each unique hash's first file (walk order) and offset."""
        if self._sources is None:
            self._sources = _sources(self.root, self._walked)
        return self._sources

    def stats(
        self, *, uploaded_chunks: int = 0, uploaded_bytes: int = 0, skipped: Mapping[str, int] | None = None
    ) -> PushStats:
        total_bytes = total_chunks = empty_files = 0
        for entry in self.files:  # one pass: 20,000 files
            total_bytes += entry.size
            total_chunks += len(entry.chunks)
            empty_files += entry.size == 0
        return PushStats(
            file_count=len(self.files),
            total_bytes=total_bytes,
            total_chunks=total_chunks,
            unique_chunks=len(self.unique),
            uploaded_chunks=uploaded_chunks,
            empty_files=empty_files,
            uploaded_bytes=uploaded_bytes,
            skipped=dict(skipped or {}),
        )

    def files_json(self) -> str:
        """The file list as the version body lists it (``entries_json`` of :attr:`files`): the
        scan's own text when it wrote one, else formatted once here."""
        if self._json is None:
            self._json = entries_json(self.files)
        return self._json

    def files_digest(self) -> str:
        """The digest of the file list (see :func:`roost._push.ledger.files_digest`), computed once:
        ``skip_unchanged`` compares it and the ledger records it."""
        if self._digest is None:
            self._digest = files_digest(self.files_json())
        return self._digest


def local_path(root: str, rel: str) -> str:
    """The path on this machine of ``rel`` (a POSIX path relative to ``root``)."""
    return os.path.join(root, *rel.split("/"))


def _sources(root: str, files: Iterable[ChunkedFileEntry]) -> dict[str, ChunkSource]:
    sources: dict[str, ChunkSource] = {}
    for entry in files:
        abs_path = local_path(root, entry.path)
        offset = 0
        for chunk in entry.chunks:
            if chunk.hash not in sources:
                sources[chunk.hash] = ChunkSource(abs_path, entry.path, offset, chunk.size, entry.file_id)
            offset += chunk.size
    return sources


def build_manifest(root: str, entries: Iterable[ChunkedFileEntry], files_json: str | None = None) -> Manifest:
    """Index the chunker's entries (walk order) by hash; the first occurrence of a hash wins.

    ``files_json`` is the scan's ``entries_json`` of ``entries``: the version's file list as it
    is when the walk order is the path order (the native walk's), dropped otherwise."""
    walked = list(entries)
    unique = tuple(dict.fromkeys(chunk.hash for entry in walked for chunk in entry.chunks))
    files = tuple(sorted(walked, key=lambda entry: entry.path))
    if files_json is not None and not all(map(is_, files, walked)):
        files_json = None
    return Manifest(root, files, unique, walked, files_json)


def missing_plan(manifest: Manifest, missing: Sequence[str]) -> PushPlan:
    """The files holding at least one missing chunk, the missing hashes and their bytes."""
    if not missing:
        return PushPlan(files=(), chunks=(), bytes=0)
    wanted = set(missing)
    files = tuple(
        entry.path for entry in manifest.files if any(chunk.hash in wanted for chunk in entry.chunks)
    )
    size = sum(manifest.sources[chunk_hash].size for chunk_hash in missing)
    return PushPlan(files=files, chunks=tuple(missing), bytes=size)


def _created_at(now: datetime | None) -> str:
    moment = now if now is not None else datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _config(now: datetime | None) -> dict[str, Any]:
    return {
        "producer": PRODUCER,
        "cliVersion": SDK_VERSION,
        "createdAt": _created_at(now),
        "hostname": socket.gethostname(),
        "platform": platform.system().lower(),
    }


def version_body(manifest: Manifest, *, now: datetime | None = None) -> dict[str, Any]:
    """The version manifest posted at publish: built once, identical on every attempt.

    Every file is listed, empty ones as ``{"size": 0, "chunks": []}``, so the deployed tree is
    exactly the pushed tree.
    """
    return {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE,
        "config": _config(now),
        "files": entry_dicts(manifest.files),
    }


def version_json(manifest: Manifest, *, now: datetime | None = None) -> str:
    """:func:`version_body` as compact JSON (``ensure_ascii=False``): its head encoded, then the
    file list spliced in as :meth:`Manifest.files_json` has it (20,020 files: the native scan's
    text, or ~20 ms to format them here, where building the dicts and ``json.dumps`` took 90)."""
    head = _compact({"schemaVersion": 2, "mediaType": MEDIA_TYPE, "config": _config(now)})
    return head[:-1] + ',"files":' + manifest.files_json() + "}"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
