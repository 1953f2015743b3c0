"""Public shapes of a pull: options, result, stats, progress events and errors.

Re-exported from ``roost.resources.roosts`` and ``roost``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "ChunkDownloadError",
    "PullOptions",
    "PullProgressCallback",
    "PullProgressDiscover",
    "PullProgressDownload",
    "PullProgressEvent",
    "PullProgressPlan",
    "PullResult",
    "PullStats",
    "UnsafeManifestPathError",
]


@dataclass(frozen=True, slots=True)
class PullProgressDiscover:
    """The version's manifest is read and the destination scanned."""

    phase: Literal["discover"] = field(default="discover", init=False)
    file_count: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class PullProgressPlan:
    """What the pull will do: files to write, chunks to download and to copy locally."""

    phase: Literal["plan"] = field(default="plan", init=False)
    files_to_write: int
    chunks_to_download: int
    bytes_to_download: int
    chunks_to_copy: int


@dataclass(frozen=True, slots=True)
class PullProgressDownload:
    """``downloaded`` of ``total`` chunks are verified and written; bytes drive rates and ETAs."""

    phase: Literal["download"] = field(default="download", init=False)
    downloaded: int
    total: int
    bytes_downloaded: int = 0
    bytes_total: int = 0


PullProgressEvent = PullProgressDiscover | PullProgressPlan | PullProgressDownload
PullProgressCallback = Callable[[PullProgressEvent], Awaitable[None] | None]


@dataclass(slots=True)
class PullOptions:
    """How to pull a version into a directory.

    - ``ref``: any version reference the versions routes accept (``"current"``, ``3``, ``"v3"``,
      ``"#3"``, a ``vrs_...`` id).
    - ``delete``: remove files under the destination that are not in the version.
    - ``check``: compare only; nothing is downloaded or written (see :class:`PullResult`).
    - ``concurrency``: chunk downloads in flight (same byte budget as the push).
    - ``cache``: use the local caches: the hash cache for the destination's files, and the
      manifest cache, which keeps the checked file list of each version pulled (a version id
      names one content forever), so that a re-pull reads no manifest: ``"current"`` and
      ``"previous"`` then cost the roost read, a version number one row of its file list, a
      version id no call at all. ``False`` neither reads nor writes either.
    - ``fsync``: flush each file to disk before it is renamed into place, so that a crash (of
      the machine, not only of the process) never leaves a final path with partial content;
      ``False`` is faster on slow disks and still never exposes a partial file to readers.
    """

    site_id: str
    ref: str | int = "current"
    delete: bool = False
    check: bool = False
    concurrency: int = 8
    cache: bool = True
    fsync: bool = True
    on_progress: PullProgressCallback | None = None


@dataclass(frozen=True, slots=True)
class PullStats:
    """Counts for one pull (all 0 transfers for ``check``)."""

    file_count: int
    total_bytes: int
    unchanged_files: int
    written_files: int
    deleted_files: int
    downloaded_chunks: int
    downloaded_bytes: int
    copied_chunks: int
    copied_bytes: int = 0


@dataclass(frozen=True, slots=True)
class PullResult:
    """What a pull did (or, with ``check``, would do).

    ``added`` are version paths missing from the destination, ``changed`` those whose content
    differs, ``removed`` destination files not in the version (deleted only with ``delete``).
    ``in_sync`` is True when all three are empty after the pull (for ``check``: before).
    """

    version_id: str
    version_number: int
    stats: PullStats
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    in_sync: bool
    check: bool = False


class UnsafeManifestPathError(ValueError):
    """A manifest path would land outside the destination (or is not portable); nothing was written."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"unsafe path in version manifest: {path!r} ({reason}); nothing was written")
        self.path = path
        self.reason = reason


class ChunkDownloadError(RuntimeError):
    """Storage did not give a chunk's verified bytes after the retries; the pull was undone.

    Files completed before the failure stay in place (each is whole and verified); a re-run
    downloads only what is still missing.
    """

    def __init__(self, chunk_hash: str, detail: str) -> None:
        super().__init__(f"chunk {chunk_hash}: download failed: {detail}")
        self.chunk_hash = chunk_hash
        self.detail = detail
