"""The pure-Python walk: the same steps as ``rust/src/walk.rs`` (the rules are in the package
docstring), one directory at a time with ``os.scandir`` and plain strings."""

from __future__ import annotations

import contextlib
import heapq
import os
import stat
import threading

from ._errors import SourceChanged
from ._glob import IgnoreMatcher
from ._model import FileId

__all__ = ["CancelledError", "Stamp", "non_utf8_message", "stamp", "walk"]


class CancelledError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("chunker: the scan was cancelled")


def non_utf8_message(rel: str) -> str:
    return f'chunker: file name is not valid UTF-8: "{rel}" (manifest paths must be UTF-8; rename it)'


def _escape(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# ---------------------------------------------------------------------------------------------
# walk


Stamp = tuple[int, int, int, int]  # (mtime_ns, ctime_ns, inode, device)
_Chain = tuple[FileId, ...]


class _Walk:
    """One walk: real directories first, then directory links in path order (see :func:`walk`)."""

    def __init__(
        self,
        root: str,
        matcher: IgnoreMatcher,
        cancel: threading.Event | None,
        stamps: dict[str, Stamp] | None,
        skipped: list[tuple[str, str]] | None,
    ):
        self.root = root
        self.root_prefix = root.rstrip(os.sep) + os.sep
        self.matcher = matcher
        self.cancel = cancel
        self.stamps = stamps
        self.skipped = skipped
        self.found: list[tuple[str, int]] = []
        self.linked: set[str] = set()  # files listed through a link: their open follows it
        # directory links still to decide: (rel, resolved target, chain of the directory holding
        # the link); the target is walked, not the link, which may point elsewhere by then
        self.links: list[tuple[str, str, _Chain]] = []

    def skip(self, rel: str, reason: str) -> None:
        if self.skipped is not None:
            self.skipped.append((rel, reason))

    def tree(self, abs_dir: str, rel_dir: str, chain: _Chain) -> None:
        """Every real directory under ``abs_dir``; directory links are queued, not followed."""
        stack = [(abs_dir, rel_dir, chain)]
        is_ignored = self.matcher.is_ignored
        append = self.found.append
        stamps = self.stamps
        while stack:
            if self.cancel is not None and self.cancel.is_set():
                raise CancelledError
            abs_dir, rel_dir, chain = stack.pop()
            prefix = rel_dir + "/" if rel_dir else ""
            with os.scandir(abs_dir) as it:
                for entry in it:
                    name = entry.name
                    if not name.isascii():
                        try:
                            name.encode("utf-8")
                        except UnicodeEncodeError:
                            raise ValueError(non_utf8_message(_escape(prefix + name))) from None
                    rel = prefix + name
                    try:
                        if entry.is_file(follow_symlinks=False):
                            if is_ignored(name, rel, False):
                                continue
                            est = entry.stat(follow_symlinks=False)
                            if stat.S_ISREG(est.st_mode):
                                append((rel, est.st_size))
                                if stamps is not None:
                                    stamps[rel] = stamp(entry.path, est)
                            continue
                        if entry.is_dir(follow_symlinks=False):
                            if is_ignored(name, rel, True):
                                continue
                            # os.lstat, not entry.stat: on Windows the latter has no inode number
                            est = os.lstat(entry.path)
                            stack.append((entry.path, rel, (*chain, (est.st_dev, est.st_ino))))
                            continue
                        if entry.is_symlink():
                            self.link(entry.path, name, rel, chain)
                        elif not is_ignored(name, rel, False):
                            self.skip(rel, "special_file")  # FIFO, socket, device: never opened
                    except FileNotFoundError:
                        continue

    def link(self, path: str, name: str, rel: str, chain: _Chain) -> None:
        try:
            target_st = os.stat(path)
        except (OSError, ValueError):
            if not self.matcher.is_ignored(name, rel, False):
                self.skip(rel, "broken_link")  # missing target, a loop, or unreadable
            return
        is_dir = stat.S_ISDIR(target_st.st_mode)
        if self.matcher.is_ignored(name, rel, is_dir):
            return
        try:
            target = os.path.realpath(path)
        except (OSError, ValueError):
            self.skip(rel, "broken_link")
            return
        if target != self.root and not target.startswith(self.root_prefix):
            self.skip(rel, "link_outside_root")
            return
        # The target was stat'ed through the link, then resolved: the link may have been
        # flipped in between. The resolved path holds no link, so its own lstat must show the
        # same file, or the identity recorded could be one outside the root.
        try:
            resolved = os.lstat(target)
        except OSError:
            self.skip(rel, "broken_link")
            return
        if (resolved.st_dev, resolved.st_ino) != (target_st.st_dev, target_st.st_ino):
            raise SourceChanged(path, 0, "relinked while the folder was walked")
        if is_dir:
            self.links.append((rel, target, chain))
        elif not stat.S_ISREG(resolved.st_mode):
            self.skip(rel, "special_file")
        else:
            self.found.append((rel, resolved.st_size))
            self.linked.add(rel)
            if self.stamps is not None:
                self.stamps[rel] = stamp(target, resolved)

    def run(self) -> list[tuple[str, int]]:
        st = os.stat(self.root)
        self.tree(self.root, "", ((st.st_dev, st.st_ino),))
        heapq.heapify(self.links)
        expanded: set[FileId] = set()
        while self.links:
            # the smallest path first, so that which link walks a directory never depends on
            # the order the OS lists entries in
            rel, path, chain = heapq.heappop(self.links)
            try:
                tst = os.stat(path)
            except OSError:
                self.skip(rel, "broken_link")
                continue
            ident = (tst.st_dev, tst.st_ino)
            if ident in chain or ident in expanded:
                self.skip(rel, "repeated_directory")
                continue
            expanded.add(ident)
            before = len(self.links)
            self.tree(path, rel, (*chain, ident))
            if len(self.links) != before:
                heapq.heapify(self.links)
        return self.found


def walk(
    root: str,
    matcher: IgnoreMatcher,
    cancel: threading.Event | None = None,
    stamps: dict[str, Stamp] | None = None,
    skipped: list[tuple[str, str]] | None = None,
    linked: set[str] | None = None,
) -> list[tuple[str, int]]:
    """``(rel, size)`` of every regular file under ``root`` (absolute, resolved), unsorted.

    With ``stamps``, also records each file's fingerprint there, by relative path; with
    ``skipped``, appends ``(rel, reason)`` for each entry left out (unsorted); with ``linked``,
    adds the files listed through a link.
    """
    w = _Walk(root, matcher, cancel, stamps, skipped)
    found = w.run()
    if linked is not None:
        linked |= w.linked
    return found


def stamp(path: str, st: os.stat_result) -> Stamp:
    if st.st_ino == 0 and os.name == "nt":  # pragma: no cover - DirEntry.stat on Windows
        with contextlib.suppress(OSError):
            st = os.stat(path)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
