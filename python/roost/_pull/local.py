"""The destination side: scanning it, naming temporary files, removing what the version lacks.

:func:`scan_destination` is the pull's one use of the chunker, so that it can be re-pointed.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat

from ..chunker import ChunkedFileEntry, chunk_directory

__all__ = [
    "TEMP_PREFIX",
    "is_temp_path",
    "new_temp_path",
    "remove_empty_parents",
    "remove_local",
    "scan_destination",
]

#: Files being written are ``<dir>/.roost-tmp-<16 hex>`` until renamed into place.
TEMP_PREFIX = ".roost-tmp-"
_TEMP_NAME = re.compile(r"^\.roost-tmp-[0-9a-f]{16}$")


def is_temp_path(rel: str) -> bool:
    """Whether ``rel`` names a pull's temporary file (one a killed pull may have left)."""
    return bool(_TEMP_NAME.match(rel.rpartition("/")[2]))


def new_temp_path(final: str) -> str:
    """A fresh temporary path beside ``final`` (same directory, so the rename is atomic)."""
    return os.path.join(os.path.dirname(final), TEMP_PREFIX + secrets.token_hex(8))


async def scan_destination(dest: str, *, cache: bool) -> list[ChunkedFileEntry]:
    """Every file under ``dest`` with its chunks; unchanged files cost a stat with a warm cache."""
    return await chunk_directory(dest, cache=cache)


def _full(dest: str, rel: str) -> str:
    return os.path.join(dest, *rel.split("/"))


def _first_link(dest: str, rel: str) -> str | None:
    """The shortest parent of ``rel`` that is a symbolic link (the walk listed files through it)."""
    parts = rel.split("/")
    for end in range(1, len(parts)):
        prefix = "/".join(parts[:end])
        try:
            if stat.S_ISLNK(os.lstat(_full(dest, prefix)).st_mode):
                return prefix
        except FileNotFoundError:
            return None
    return None


def remove_local(dest: str, rel: str) -> str | None:
    """Blocking: remove ``rel`` under ``dest`` without following links; returns the path removed.

    A file listed through a linked directory is removed by unlinking that link (never the file
    it points at, which may be a file of the version); a directory is removed with its content.
    """
    link = _first_link(dest, rel)
    target = rel if link is None else link
    full = _full(dest, target)
    try:
        mode = os.lstat(full).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(mode):
        shutil.rmtree(full)
    else:
        os.unlink(full)
    return target


def remove_empty_parents(dest: str, removed: list[str]) -> None:
    """Blocking: remove the directories that deleting ``removed`` left empty, up to ``dest``."""
    candidates = {rel.rpartition("/")[0] for rel in removed}
    for rel in sorted(candidates, key=lambda p: -p.count("/")):
        current = rel
        while current:
            try:
                os.rmdir(_full(dest, current))
            except OSError:  # not empty (or already gone): stop climbing
                break
            current = current.rpartition("/")[0]
