"""Manifest paths against the destination: nothing may land outside it or write through a link.

Every rule is checked for every path before the first byte is written, so a bad manifest leaves
the destination exactly as it was.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from .types import UnsafeManifestPathError

__all__ = ["DestLayout", "check_manifest_paths", "inspect_destination"]

_DRIVE = re.compile(r"^[A-Za-z]:")


def _syntax_problem(path: str) -> str | None:
    if not path:
        return "empty path"
    if "\x00" in path:
        return "contains a NUL character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "absolute path"
    if _DRIVE.match(path):
        return "has a drive letter"
    for segment in path.split("/"):
        if segment == "":
            return "has an empty segment"
        if segment in (".", ".."):
            return f"has a {segment!r} segment"
        if os.name == "nt" and ":" in segment:
            return "has a ':' (an NTFS stream name on Windows)"
    return None


#: Matches every path :func:`_syntax_problem` objects to (and a few it accepts, which it then
#: clears): one regex scan is the fast path for thousands of clean paths.
_SUSPECT = re.compile(r"^$|^/|/$|//|\\|\x00|:|(?:^|/)\.\.?(?:/|$)")


def check_manifest_paths(paths: Iterable[str]) -> None:
    """Each path is a plain relative POSIX path, and no two collide (equal, or file vs directory)."""
    ordered = list(paths)
    seen: set[str] = set()
    for path in ordered:
        if _SUSPECT.search(path):
            problem = _syntax_problem(path)
            if problem is not None:
                raise UnsafeManifestPathError(path, problem)
        if path in seen:
            raise UnsafeManifestPathError(path, "listed twice")
        seen.add(path)
    directories: set[str] = set()
    for path in ordered:
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            if parent in directories:  # it and everything above it were checked already
                break
            if parent in seen:
                raise UnsafeManifestPathError(parent, "is both a file and a directory in the manifest")
            directories.add(parent)
            cut = path.rfind("/", 0, cut)


@dataclass(slots=True)
class DestLayout:
    """What is at the manifest's paths in the destination now.

    ``links``: final paths that are symbolic links (they are replaced by real files, never written
    through). ``obstacles``: destination entries in the way of a manifest path (a file where a
    directory is needed, a directory where a file is), relative paths, sorted.
    """

    links: set[str] = field(default_factory=set)
    obstacles: list[str] = field(default_factory=list)


def _kind(full: str) -> str:
    try:
        mode = os.lstat(full).st_mode
    except FileNotFoundError:
        return "missing"
    except NotADirectoryError:
        return "missing"
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file"


def inspect_destination(dest: str, paths: Iterable[str], *, delete: bool) -> DestLayout:
    """Blocking: lstat each manifest path's parents and the path itself under ``dest`` (resolved).

    A parent that is a symbolic link raises :class:`UnsafeManifestPathError` (the write would
    follow it, possibly out of ``dest``). An obstacle raises ``FileExistsError`` naming it unless
    ``delete`` (then it is listed, to be removed before writing).
    """
    layout = DestLayout()
    kinds: dict[str, str] = {}
    obstacles: set[str] = set()
    real_dirs: set[str] = set()  # parents whose whole chain is known to be real directories
    prefix = dest.rstrip(os.sep) + os.sep

    def kind(rel: str) -> str:
        found = kinds.get(rel)
        if found is None:
            found = kinds[rel] = _kind(prefix + rel.replace("/", os.sep))
        return found

    for path in paths:
        cut = path.rfind("/")
        parent = path[:cut] if cut > 0 else ""
        if parent and parent not in real_dirs:
            parts = path.split("/")
            blocked = False
            for end in range(1, len(parts)):
                step = "/".join(parts[:end])
                step_kind = kind(step)
                if step_kind == "link":
                    raise UnsafeManifestPathError(path, f"{step!r} in the destination is a symbolic link")
                if step_kind != "dir":
                    if step_kind == "file":
                        obstacles.add(step)
                    blocked = True
                    break
            if blocked:
                continue
            real_dirs.add(parent)
        final_kind = _kind(prefix + path.replace("/", os.sep))
        if final_kind == "link":
            layout.links.add(path)
        elif final_kind == "dir":
            obstacles.add(path)
    if obstacles and not delete:
        first = min(obstacles)
        raise FileExistsError(
            errno.EEXIST,
            f"pull: {first!r} in the destination is in the way of the version's files "
            "(a file where a directory is needed, or a directory where a file is); "
            "remove it or pull with delete=True; nothing was written",
            os.path.join(dest, *first.split("/")),
        )
    layout.obstacles = sorted(obstacles)
    return layout
