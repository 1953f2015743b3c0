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


def _entry_kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "link"
    return "dir" if entry.is_dir(follow_symlinks=False) else "file"  # a FIFO, socket...: "file"


def _list_directories(prefix: str, parents: set[str]) -> tuple[set[str], dict[str, str]]:
    """Blocking: list the directories the manifest's files go into (``parents`` and every
    directory above them), each once, parents first.

    Returns the directories whose whole chain up to ``dest`` is real directories (listed), and the
    kind of each entry in them that is not a regular file ("link", "dir", "file" for a special
    file): one ``readdir`` per directory instead of an ``lstat`` per file, and the type comes
    with each entry (``d_type``; where the file system has none, Python lstats it).
    """
    needed: set[str] = set()
    for parent in parents:
        while parent and parent not in needed:
            needed.add(parent)
            parent = parent.rpartition("/")[0]
    real: set[str] = set()
    odd: dict[str, str] = {}
    for rel in ["", *sorted(needed, key=lambda d: d.count("/"))]:
        if rel and (rel.rpartition("/")[0] not in real or odd.get(rel) != "dir"):
            continue  # missing, a file, a link, or under one: those paths take the lstat walk
        lead = rel + "/" if rel else ""
        try:
            with os.scandir(prefix + rel.replace("/", os.sep) if rel else prefix) as listing:
                for entry in listing:
                    if not entry.is_file(follow_symlinks=False):
                        odd[lead + entry.name] = _entry_kind(entry)
        except OSError:  # unreadable (or gone): its files take the lstat walk
            continue
        real.add(rel)
    return real, odd


def inspect_destination(dest: str, paths: Iterable[str], *, delete: bool) -> DestLayout:
    """Blocking: what is at each manifest path's parents and at the path itself under ``dest`` (resolved).

    A parent that is a symbolic link raises :class:`UnsafeManifestPathError` (the write would
    follow it, possibly out of ``dest``). An obstacle raises ``FileExistsError`` naming it unless
    ``delete`` (then it is listed, to be removed before writing). Paths in directories that
    exist as real directories are answered from one listing per directory; the others (a parent
    missing, a file or a link) by ``lstat``-ing their parents in turn.
    """
    ordered = list(paths)
    layout = DestLayout()
    obstacles: set[str] = set()
    prefix = dest.rstrip(os.sep) + os.sep
    parents = {path.rpartition("/")[0] for path in ordered}
    listed, odd = _list_directories(prefix, parents)
    for path in odd.keys() & set(ordered):
        if odd[path] == "link":
            layout.links.add(path)
        elif odd[path] == "dir":
            obstacles.add(path)
    unlisted = parents - listed
    if unlisted:
        kinds: dict[str, str] = {}
        real_dirs: set[str] = set()  # parents whose whole chain is known to be real directories

        def kind(rel: str) -> str:
            found = kinds.get(rel)
            if found is None:
                found = kinds[rel] = _kind(prefix + rel.replace("/", os.sep))
            return found

        for path in ordered:
            parent = path.rpartition("/")[0]
            if parent not in unlisted:
                continue
            if parent not in real_dirs:
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
