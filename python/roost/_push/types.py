"""Public shapes of a push: options, result, stats, progress events and input errors.

Re-exported from ``roost.resources.roosts`` (the documented import path) and ``roost``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..chunker import DiscoverProgress, HashProgress, SkippedEntry

__all__ = [
    "DiscoverProgress",
    "HashProgress",
    "ProgressCallback",
    "PushOptions",
    "PushPlan",
    "PushProgressCheckMissing",
    "PushProgressEvent",
    "PushProgressPublish",
    "PushProgressUpload",
    "PushResult",
    "PushSourceNotADirectoryError",
    "PushSourceNotFoundError",
    "PushStats",
    "UnportablePath",
    "UnportablePathError",
]


@dataclass(frozen=True, slots=True)
class PushProgressCheckMissing:
    phase: Literal["check-missing"] = field(default="check-missing", init=False)
    total: int
    missing: int


@dataclass(frozen=True, slots=True)
class PushProgressUpload:
    """``uploaded`` of ``total`` missing chunks are stored; the byte counts drive rates and ETAs.

    Before the ``check-missing`` event, ``total`` and ``bytes_total`` count the missing chunks
    found so far (the upload overlaps the scan), and ``uploaded`` may catch up with ``total``
    for a moment; after it, ``uploaded == total`` means the upload is done, and an event saying
    so always comes.
    """

    phase: Literal["upload"] = field(default="upload", init=False)
    uploaded: int
    total: int
    bytes_uploaded: int = 0
    bytes_total: int = 0


@dataclass(frozen=True, slots=True)
class PushProgressPublish:
    phase: Literal["publish"] = field(default="publish", init=False)
    attempt: int


PushProgressEvent = (
    DiscoverProgress | HashProgress | PushProgressCheckMissing | PushProgressUpload | PushProgressPublish
)
ProgressCallback = Callable[[PushProgressEvent], Awaitable[None] | None]


@dataclass(slots=True)
class PushOptions:
    """How to push a directory.

    - ``concurrency``: chunk uploads in flight for full-size (4 MiB) chunks (at most
      ``concurrency x 4 MiB`` of chunk bytes in flight); small chunks are uploaded with up to
      ``concurrency x 8`` PUTs in flight within that same byte budget. The push uploads the very
      bytes it hashed, read once: at most ``concurrency x 8 MiB`` of them (at least 8 MiB) are
      held in memory at once (hashed and waiting for their check or upload, or in flight); the
      scan waits while they are.
    - ``ignore``: extra ignore patterns for the walk (see :func:`roost.chunker.chunk_directory`).
    - ``dry_run``: stop after the dedup check; the result's ``plan`` says what would be uploaded
      and nothing is uploaded or published (see :class:`PushResult`).
    - ``cache``: use the local hash cache, so that files unchanged since the last push of this
      directory are not read again (see :mod:`roost.chunker`), and the push ledger: the chunks
      this machine has seen stored on this API and site, recorded after each successful
      publish, are not checked again, so a re-push of an unchanged tree costs no dedup check
      (the publish's 412 ``missingChunks`` answer re-uploads any the storage lost since).
      ``False`` re-reads everything, checks every chunk and leaves the ledger alone. A chunk
      whose bytes the scan did not read (its file was a cache hit) is read again and re-hashed
      before its upload.
    - ``verify_cache``: ``"fast"`` confirms every cache hit by an xxh3-128 digest of the file's
      content before trusting it (every file is read, none SHA-256-hashed again), catching a
      rewrite that kept the stat fingerprint; ``"stat"`` (the default) trusts the fingerprint.
    - ``allow_unportable_paths``: publish paths that are invalid or ambiguous on Windows (see
      :class:`UnportablePathError`) instead of refusing the tree before anything is uploaded.
    - ``skip_unchanged``: when the tree equals the roost's current head version and the fields
      given (``name``, ``targets``, ``extract_path``, ``description``; compared as the server
      stores them, a field not given is not compared) equal the roost's, publish nothing: the
      result has ``unchanged=True`` and describes the head. With the ledger knowing the head (it
      was pushed or seen from this machine) this costs the one roost read every push makes;
      otherwise one more request reads the head version's file list.

    Every field is checked before any file is opened or any request sent (``ValueError`` naming
    the field, the rule and the value).
    """

    site_id: str
    name: str | None = None
    targets: list[str] | None = None
    extract_path: str | None = None
    description: str | None = None
    on_progress: ProgressCallback | None = None
    ignore: Sequence[str] = field(default_factory=tuple)
    concurrency: int = 8
    dry_run: bool = False
    cache: bool = True
    verify_cache: Literal["stat", "fast"] = "stat"
    # -- interface of issues 12/14/15; each helper implements its own (see their docstrings) --
    #: Read ignore patterns from this file (gitignore syntax). None: ``.roostignore`` at the root, if any.
    ignore_file: str | os.PathLike[str] | None = None
    #: ``False`` drops the built-in ignores (``.git``, ``node_modules``, ``Backup/``, ...).
    default_ignores: bool = True
    #: Cap on upload bytes per second across the whole push; None: no cap.
    bandwidth_limit: int | None = None
    #: An upload fails (and is retried) when no byte moved for this many seconds.
    stall_timeout_s: float = 60.0
    #: Publish paths that are invalid or ambiguous on Windows instead of refusing them.
    allow_unportable_paths: bool = False
    #: When files and publish fields equal the roost's current head, publish nothing.
    skip_unchanged: bool = False


@dataclass(frozen=True, slots=True)
class PushStats:
    """Counts for one push.

    ``file_count`` and ``total_bytes`` cover every file in the published tree, empty files
    included (``empty_files`` of them are zero bytes). ``total_chunks`` counts chunk references
    (duplicates included), ``unique_chunks`` distinct hashes. ``uploaded_chunks`` /
    ``uploaded_bytes`` count successful storage PUTs, including chunks uploaded again because the
    API reported them missing at publish time; both are 0 for a dry run.
    """

    file_count: int
    total_bytes: int
    total_chunks: int
    unique_chunks: int
    uploaded_chunks: int
    empty_files: int = 0
    uploaded_bytes: int = 0
    #: Entries the walk left out, counted by reason (see :class:`roost.chunker.SkippedEntry`).
    skipped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, repr=False)
class PushPlan:
    """The chunks the dedup check found missing: what a push uploads (or, dry, would upload).

    ``files`` are the paths (sorted, POSIX, relative to the pushed root) that hold at least one
    missing chunk; ``chunks`` are the missing hashes; ``bytes`` is the sum of their sizes.
    """

    files: tuple[str, ...]
    chunks: tuple[str, ...]
    bytes: int

    def __repr__(self) -> str:  # a plan may name 100,000 chunks: summarise it
        return f"PushPlan(files=<{len(self.files)}>, chunks=<{len(self.chunks)}>, bytes={self.bytes})"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did.

    After a real push ``version_id``/``version_number``/``current_version_id``/
    ``previous_version_id`` describe the published version. A dry run (``dry_run=True``) publishes
    nothing: those fields are ``""``, ``0``, ``""`` and ``None``, and ``plan`` tells what would be
    uploaded. ``plan`` is filled for real pushes too (what the dedup check found missing).
    """

    version_id: str
    version_number: int
    current_version_id: str
    previous_version_id: str | None
    stats: PushStats
    dry_run: bool = False
    plan: PushPlan | None = None
    #: The server created the roost with this publish: the roost read at the start of the push
    #: found none (the server creates unknown roosts on publish). ``False`` when the key may not
    #: read the roost, since nothing can be told then.
    created_roost: bool = False
    #: ``skip_unchanged`` found the tree equal to the current head: nothing was published and the
    #: version fields describe that head.
    unchanged: bool = False
    #: What the walk left out, by path (counts are in ``stats.skipped``).
    skipped: tuple[SkippedEntry, ...] = ()
    #: Human-readable warnings (e.g. an ignore pattern that matched nothing).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UnportablePath:
    """A path that cannot land on a Windows machine as it is, and why."""

    path: str
    reason: str


#: An :class:`UnportablePathError` message lists this many offenders; ``.paths`` has them all.
LISTED_UNPORTABLE = 20


class UnportablePathError(ValueError):
    """Paths in the tree are invalid or ambiguous on Windows; nothing was uploaded.

    ``paths`` lists every offender with its reason. ``PushOptions(allow_unportable_paths=True)``
    publishes such a tree anyway.
    """

    def __init__(self, root: str, paths: Sequence[UnportablePath]) -> None:
        self.root = root
        self.paths: tuple[UnportablePath, ...] = tuple(paths)
        lines = [f"  {p.path!r}: {p.reason}" for p in self.paths[:LISTED_UNPORTABLE]]
        if len(self.paths) > LISTED_UNPORTABLE:
            lines.append(f"  ... and {len(self.paths) - LISTED_UNPORTABLE} more (see .paths)")
        noun = "path" if len(self.paths) == 1 else "paths"
        super().__init__(
            f"push: {len(self.paths)} {noun} under {root!r} cannot be used on Windows machines "
            "(pass allow_unportable_paths=True to publish them anyway):\n" + "\n".join(lines)
        )

    def __reduce__(self) -> tuple[type[UnportablePathError], tuple[str, tuple[UnportablePath, ...]]]:
        return (type(self), (self.root, self.paths))  # the message is derived: rebuild it


class PushSourceNotFoundError(FileNotFoundError, ValueError):
    """The directory given to ``push()`` does not exist (also a ``ValueError``)."""


class PushSourceNotADirectoryError(NotADirectoryError, ValueError):
    """The path given to ``push()`` is not a directory (also a ``ValueError``)."""
