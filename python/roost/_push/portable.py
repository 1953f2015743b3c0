"""Paths that cannot land on a Windows machine as they are (Owlette deploys to Windows).

The scan yields POSIX paths relative to the pushed root. A path is refused when Windows cannot
create it (a reserved character or device name, a trailing dot or space, a component longer than
NTFS allows) or when it would land on top of another path of the tree (Windows compares names
case-insensitively, so ``Readme.md`` and ``README.md`` would overwrite each other, and a file
``a/b`` and a directory ``a/B/`` could not both exist).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..chunker import _backend
from .types import UnportablePath

__all__ = ["unportable_paths"]

_RESERVED_CHARACTERS = '<>:"|?*'
_CONTROL_CHARACTERS = "".join(chr(code) for code in range(0x20))
#: NTFS limits each name to 255 UTF-16 code units.
MAX_COMPONENT_UNITS = 255
_PLAIN_DEVICES = ("con", "prn", "aux", "nul")
_NUMBERED_DEVICES = ("com", "lpt")  # followed by one of _DEVICE_DIGITS
_DEVICE_DIGITS = "123456789\u00b9\u00b2\u00b3"
_DEVICES = frozenset(
    [*_PLAIN_DEVICES, *(f"{port}{digit}" for port in _NUMBERED_DEVICES for digit in _DEVICE_DIGITS)]
)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _component_problem(name: str) -> str | None:
    if name.endswith((".", " ")):
        return f"the name {name!r} ends with a {'dot' if name.endswith('.') else 'space'}"
    # Windows maps "nul.txt" and "NUL .tar.gz" to the device too: only the part before the first
    # dot counts, trailing spaces ignored.
    if name.split(".", 1)[0].rstrip(" ").casefold() in _DEVICES:
        return f"{name!r} is a reserved device name on Windows"
    if len(name) * 2 <= MAX_COMPONENT_UNITS:  # a character is at most 2 UTF-16 units
        return None
    units = _utf16_units(name)
    if units > MAX_COMPONENT_UNITS:
        return f"a name is {units} UTF-16 code units long (at most {MAX_COMPONENT_UNITS})"
    return None


#: Any character :func:`_path_problem` refuses (one search finds the common, clean path fast).
_SUSPECT = re.compile("[" + re.escape(_CONTROL_CHARACTERS + _RESERVED_CHARACTERS + "\\") + "]")
#: What :data:`_SUSPECT` looks for but NUL (the separator of the joined paths), searched for one
#: by one in a long text (a substring search per character is some ten times faster there than
#: the character class).
_SUSPECT_CHARACTERS = tuple(_CONTROL_CHARACTERS[1:] + _RESERVED_CHARACTERS + "\\")


def _maybe_device(folded: str) -> bool:
    """Whether a name of the case-folded, NUL-joined paths may be a device name."""
    for device in _PLAIN_DEVICES + _NUMBERED_DEVICES:
        starts = [0] if folded.startswith(device) else []
        for separator in ("/", "\0"):
            at = folded.find(separator + device)
            while at != -1:
                starts.append(at + 1)
                at = folded.find(separator + device, at + 1)
        for start in starts:
            end = start + 3
            if device in _NUMBERED_DEVICES:
                if end >= len(folded) or folded[end] not in _DEVICE_DIGITS:
                    continue
                end += 1
            while end < len(folded) and folded[end] == " ":
                end += 1
            if end == len(folded) or folded[end] in "./\0":
                return True
    return False


def _path_problem(path: str, names: dict[str, str | None]) -> str | None:
    """The first problem of ``path``; ``names`` caches each name's (directories repeat)."""
    if _SUSPECT.search(path) is None:
        for name in path.split("/"):
            problem = names.get(name, "")
            if problem == "":
                problem = names[name] = _component_problem(name)
            if problem is not None:
                return problem
        return None
    if "\\" in path:
        return "contains a backslash (a directory separator on Windows)"
    control = next((c for c in path if ord(c) < 0x20), None)
    if control is not None:
        return f"contains the control character U+{ord(control):04X}"
    reserved = next((c for c in path if c in _RESERVED_CHARACTERS), None)
    if reserved is not None:
        return f"contains {reserved!r}, which Windows does not allow in names"
    for name in path.split("/"):
        problem = _component_problem(name)
        if problem is not None:
            return problem
    return None


def _all_portable(paths: list[str]) -> bool:
    """Whether no path of ``paths`` has a problem, decided on the whole list at once.

    The common answer for a tree of 20,000 files in a few milliseconds: substring searches
    over all of them joined (refused characters, names ending with a dot or a space, device
    names), and case clashes found by comparing set sizes. Any doubt is left to the exact,
    path-by-path pass.
    """
    text = "\0".join(paths)  # a NUL separates (one inside a path shows in the count)
    if text.count("\0") != len(paths) - 1 or any(c in text for c in _SUSPECT_CHARACTERS):
        return False
    folded = text.casefold()
    if folded.endswith((".", " ")) or any(end in folded for end in ("./", ".\0", " /", " \0")):
        return False  # a name ending with a dot or a space
    if _maybe_device(folded):
        return False
    longest = max(map(len, paths))  # a name is no longer than its path: most trees stop here
    if (
        longest * 2 > MAX_COMPONENT_UNITS
        and max(map(len, text.replace("\0", "/").split("/"))) * 2 > MAX_COMPONENT_UNITS
    ):
        return False  # a name that may be too long
    if len(set(folded.split("\0"))) != len(paths):
        return False
    directories: set[str] = set()
    for path in set(path.rpartition("/")[0] for path in paths):
        while path and path not in directories:
            directories.add(path)
            path = path.rpartition("/")[0]
    folded_directories = {directory.casefold() for directory in directories}
    if len(folded_directories) != len(directories):
        return False
    return folded_directories.isdisjoint(folded.split("\0"))


def _plainly_portable(paths: list[str]) -> bool:
    """Whether no path of ``paths`` has a problem, decided on the whole list: the native core's
    answer for ASCII trees (about 7 ms for 20,000 files, where :func:`_all_portable` takes
    about 35), else :func:`_all_portable`'s."""
    native = _backend.plainly_portable()
    return (native is not None and native(paths)) or _all_portable(paths)


def unportable_paths(paths: Iterable[str]) -> list[UnportablePath]:
    """Every path of ``paths`` (POSIX, relative, one per file) that Windows cannot hold as is.

    Each path is reported once, with its first problem; a clash under case folding names the
    path it clashes with (the first one met, in the order given).
    """
    paths = list(paths)
    if _plainly_portable(paths):
        return []
    found: dict[str, UnportablePath] = {}
    files: dict[str, str] = {}  # casefolded -> first spelling
    directories: dict[str, str] = {}
    names: dict[str, str | None] = {}
    parents: set[str] = set()  # directories whose every prefix is recorded (and clean)
    for path in paths:
        problem = _path_problem(path, names)
        if problem is not None:
            found.setdefault(path, UnportablePath(path, problem))
            continue
        folded = path.casefold()
        other = files.setdefault(folded, path)
        if other != path:
            found.setdefault(path, UnportablePath(path, f"differs from {other!r} only in case"))
        parent = path.rpartition("/")[0]
        if parent in parents:
            continue
        parts = path.split("/")
        clean = True
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            seen = directories.setdefault(prefix.casefold(), prefix)
            if seen != prefix:
                found.setdefault(
                    path, UnportablePath(path, f"its directory {prefix!r} differs from {seen!r} only in case")
                )
                clean = False
                break
        if clean:
            parents.add(parent)
    for folded, path in files.items():
        directory = directories.get(folded)
        if directory is not None:
            found.setdefault(path, UnportablePath(path, f"is a file where {directory!r} is a directory"))
    return list(found.values())
