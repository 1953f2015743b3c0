"""Manifest + destination scan -> what to keep, copy locally, download and delete."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..chunker import ChunkedFileEntry
from .local import is_temp_path, new_temp_path
from .manifest import VersionManifest, chunk_digest
from .paths import DestLayout

__all__ = ["LocalChunk", "PullPlan", "Target", "build_plan", "under"]


@dataclass(eq=False, slots=True)
class Target:
    """A file to (re)write: built in ``temp``, renamed to ``final`` once every chunk is in.

    ``pending`` counts the chunk writes not finished yet; ``done`` is set after the rename.
    """

    path: str
    final: str
    temp: str
    size: int
    pending: int
    done: bool = False


@dataclass(frozen=True, slots=True)
class LocalChunk:
    """Where the destination already holds a chunk (absolute path, offset, size)."""

    path: str
    offset: int
    size: int


#: (target, offset in it) for each place a chunk's bytes go.
Places = list[tuple[Target, int]]


@dataclass(slots=True)
class PullPlan:
    targets: list[Target]
    added: list[str]
    changed: list[str]
    unchanged: list[str]
    removed: list[str]
    stale_temps: list[str]
    places: dict[str, Places]
    sizes: dict[str, int]
    copies: dict[str, LocalChunk] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)

    @property
    def download_bytes(self) -> int:
        return sum(self.sizes[chunk_hash] for chunk_hash in self.downloads)


def under(rel: str, prefixes: Sequence[str]) -> bool:
    """Whether ``rel`` is one of ``prefixes`` or inside one of them."""
    return any(rel == prefix or rel.startswith(prefix + "/") for prefix in prefixes)


def build_plan(
    dest: str, manifest: VersionManifest, local: Sequence[ChunkedFileEntry], layout: DestLayout
) -> PullPlan:
    """Compare the version with the destination.

    A file is unchanged when the destination has a regular file there with the same chunk list.
    Every chunk the written files need comes from a local copy when any destination file holds
    it (first in path order), else is downloaded, each distinct chunk once. Entries inside an
    obstacle are not used as sources: obstacles are removed before anything is copied.
    """
    # Hot on a re-pull (once per file of the version and of the destination): set operations and
    # one comparison of the chunk digests per file.
    wanted = set(manifest.paths)
    local_by_path = {entry.path: entry for entry in local}
    stale_temps: list[str] = []
    removed: list[str] = []
    for path in sorted(local_by_path.keys() - wanted):  # the scan's (path) order
        if is_temp_path(path):
            stale_temps.append(path)
            del local_by_path[path]
        else:
            removed.append(path)

    plan = PullPlan([], [], [], [], removed, stale_temps, {}, {})
    links = layout.links
    unchanged = plan.unchanged
    mine_of = map(local_by_path.get, manifest.paths)
    rows = zip(manifest.paths, manifest.sizes, manifest.digests, mine_of, strict=True)
    for index, (path, size, digest, mine) in enumerate(rows):
        if mine is not None and mine.size == size and path not in links:
            chunks = mine.chunks
            if (chunks[0].hash if len(chunks) == 1 else chunk_digest(chunks)) == digest:
                unchanged.append(path)
                continue
        (plan.added if mine is None else plan.changed).append(path)
        remote = manifest.file(index)
        final = os.path.join(dest, *remote.path.split("/"))
        target = Target(remote.path, final, new_temp_path(final), remote.size, len(remote.chunks))
        plan.targets.append(target)
        offset = 0
        for chunk in remote.chunks:
            plan.places.setdefault(chunk.hash, []).append((target, offset))
            plan.sizes[chunk.hash] = chunk.size
            offset += chunk.size
    if plan.places:
        _find_sources(dest, plan, local, layout.obstacles)
    plan.downloads = [chunk_hash for chunk_hash in plan.places if chunk_hash not in plan.copies]
    return plan


def _find_sources(
    dest: str, plan: PullPlan, local: Sequence[ChunkedFileEntry], obstacles: Sequence[str]
) -> None:
    """The first destination file (in path order) holding each chunk the plan needs."""
    for entry in local:
        if obstacles and under(entry.path, obstacles):
            continue
        offset = 0
        for chunk in entry.chunks:
            if chunk.hash in plan.places and chunk.hash not in plan.copies:
                full = os.path.join(dest, *entry.path.split("/"))
                plan.copies[chunk.hash] = LocalChunk(full, offset, chunk.size)
            offset += chunk.size
