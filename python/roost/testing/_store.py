"""Durable state: SQLite documents (metadata) and content-addressed chunk files on disk.

Documents live in one table keyed by ``(collection, parent, id)``, the way the real server keeps
Firestore documents under their parents. Every mutation runs in a SQLite transaction; chunk
files are written to a temporary file, fsynced and renamed into place, so a crash never leaves a
half-written chunk under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["ChunkStore", "Store"]

# A chunk name is a hash; anything else (a path, "..") must never reach unlink().
_SAFE_NAME = re.compile(r"^[0-9a-f]{64}$")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# ChunkStore.missing lists prefix directories for a list this long (shorter ones: a stat each)
_LIST_FROM = 64
# a listing is kept only for a directory unchanged for longer than a clock tick or two
_SETTLE_NS = 100_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    coll TEXT NOT NULL,
    parent TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (coll, parent, id)
);
CREATE INDEX IF NOT EXISTS docs_by_parent ON docs (coll, parent, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Store:
    """A small document store on SQLite. Thread-safe; ``transaction()`` nests."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The database holds the working token and the presign secret: owner-only, created so
        # before SQLite opens it (its -wal and -shm files copy the main file's mode).
        os.close(os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{path}{suffix}", 0o600)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # 64 MiB of page cache (default 2 MiB): version bodies are megabytes, and a store that
        # older emulators filled with 20,000 referrer rows per publish is read at random places
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0
        row = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM docs").fetchone()
        self._seq = int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    # -- documents -----------------------------------------------------------------

    def get(self, coll: str, parent: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM docs WHERE coll = ? AND parent = ? AND id = ?", (coll, parent, doc_id)
            ).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return value if isinstance(value, dict) else None

    def put(
        self, coll: str, parent: str, doc_id: str, data: dict[str, Any], *, new_seq: bool = False
    ) -> None:
        """Create or replace a document. Its list position is kept unless ``new_seq``."""
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        with self._lock:
            seq = self.next_seq()
            if new_seq:
                self._conn.execute(
                    "INSERT INTO docs (coll, parent, id, seq, data) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (coll, parent, id) DO UPDATE SET data = excluded.data, seq = excluded.seq",
                    (coll, parent, doc_id, seq, text),
                )
            else:
                self._conn.execute(
                    "INSERT INTO docs (coll, parent, id, seq, data) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (coll, parent, id) DO UPDATE SET data = excluded.data",
                    (coll, parent, doc_id, seq, text),
                )

    def delete(self, coll: str, parent: str, doc_id: str) -> bool:
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM docs WHERE coll = ? AND parent = ? AND id = ?", (coll, parent, doc_id)
            )
            return cursor.rowcount > 0

    def docs(
        self, coll: str, parent: str | None = None, *, newest_first: bool = True
    ) -> list[tuple[str, dict[str, Any]]]:
        """Documents of a collection (under one parent, or all), ordered by list position."""
        order = "DESC" if newest_first else "ASC"
        with self._lock:
            if parent is None:
                rows = self._conn.execute(
                    f"SELECT id, data FROM docs WHERE coll = ? ORDER BY seq {order}", (coll,)
                ).fetchall()
            else:
                rows = self._conn.execute(
                    f"SELECT id, data FROM docs WHERE coll = ? AND parent = ? ORDER BY seq {order}",
                    (coll, parent),
                ).fetchall()
        return [(str(doc_id), json.loads(data)) for doc_id, data in rows]

    def docs_with_seq(self, coll: str, parent: str) -> list[tuple[str, int, dict[str, Any]]]:
        """:meth:`docs` under one parent, newest first, with each document's list position (to
        merge lists kept in different collections in one order)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, seq, data FROM docs WHERE coll = ? AND parent = ? ORDER BY seq DESC",
                (coll, parent),
            ).fetchall()
        return [(str(doc_id), int(seq), json.loads(data)) for doc_id, seq, data in rows]

    def count(self, coll: str | None = None) -> int:
        """How many documents are stored (in one collection, or in all)."""
        with self._lock:
            if coll is None:
                row = self._conn.execute("SELECT COUNT(*) FROM docs").fetchone()
            else:
                row = self._conn.execute("SELECT COUNT(*) FROM docs WHERE coll = ?", (coll,)).fetchone()
        return int(row[0])

    def docs_with_parent(self, coll: str) -> list[tuple[str, str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT parent, id, data FROM docs WHERE coll = ? ORDER BY seq DESC", (coll,)
            ).fetchall()
        return [(str(parent), str(doc_id), json.loads(data)) for parent, doc_id, data in rows]

    # -- raw text blobs (version bodies) --------------------------------------------

    def put_text(self, coll: str, parent: str, doc_id: str, text: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO docs (coll, parent, id, seq, data) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (coll, parent, id) DO UPDATE SET data = excluded.data",
                (coll, parent, doc_id, self.next_seq(), text),
            )

    def get_text(self, coll: str, parent: str, doc_id: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM docs WHERE coll = ? AND parent = ? AND id = ?", (coll, parent, doc_id)
            ).fetchone()
        return None if row is None else str(row[0])

    # -- meta ------------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


class ChunkStore:
    """Chunk objects at ``<root>/<site>/<hash[:2]>/<hash>``, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_text = str(root)
        # (site, prefix) -> ((inode, mtime_ns) of the directory, its object names)
        self._listings: dict[tuple[str, str], tuple[tuple[int, int], frozenset[str]]] = {}
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.removed_temp_files = self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> int:
        """Delete ``.part`` files a crash left behind (writes go to temp + rename, so a temp file
        that exists at start-up belongs to no one). Returns how many were removed."""
        removed = 0
        for directory, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(".part"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(directory, name))
                        removed += 1
        return removed

    def path(self, site_id: str, digest: str) -> Path:
        return self.root / site_id / digest[:2] / digest

    def exists(self, site_id: str, digest: str) -> bool:
        """Present means stored with a non-zero length (the server HEADs the object)."""
        # a plain string and os.stat: pathlib cost 30 us a call, 0.6 s for a 20,000-file publish
        try:
            return os.stat(f"{self._root_text}/{site_id}/{digest[:2]}/{digest}").st_size > 0
        except (OSError, ValueError):
            return False

    def missing(self, site_id: str, digests: list[str]) -> list[str]:
        """The digests (in order) that :meth:`exists` calls absent.

        A long list is answered from listings of its prefix directories instead of a stat per
        chunk (20,000 stats were a quarter of a 20,000-file publish and most of a check). A
        listing is kept while its directory's inode and mtime stay the same, which every
        create, rename and delete changes, and only once that mtime is older than a clock tick
        (a change within the tick of the listing would not move it). A listing cannot see a
        chunk file emptied in place by something other than the emulator; storage loses
        objects whole, by deletion, which it does see.
        """
        if len(digests) < _LIST_FROM:
            return [d for d in digests if not self.exists(site_id, d)]
        prefixes = {d[:2] for d in digests}
        per_prefix = len(digests) // len(prefixes) + 1
        listings = {prefix: self._listing(site_id, prefix, per_prefix) for prefix in prefixes}
        if None not in listings.values():
            # a listing holds only names of its own prefix: one set difference, in C
            absent = set(digests).difference(*listings.values())  # type: ignore[arg-type]
            return [d for d in digests if d in absent] if absent else []
        out: list[str] = []
        for digest in digests:
            names = listings[digest[:2]]
            if (digest not in names) if names is not None else (not self.exists(site_id, digest)):
                out.append(digest)
        return out

    def _listing(self, site_id: str, prefix: str, wanted: int) -> frozenset[str] | None:
        """The object names in one prefix directory, or ``None`` when stat'ing the ``wanted``
        names costs less than listing a large directory that has no listing kept."""
        folder = f"{self._root_text}/{site_id}/{prefix}"
        try:
            info = os.stat(folder)
        except (OSError, ValueError):
            return frozenset()
        key = (site_id, prefix)
        stamp = (info.st_ino, info.st_mtime_ns)
        kept = self._listings.get(key)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        # A directory's size grows with its entries (tmpfs: 20 bytes each; ext4 more, so there
        # this over-counts and prefers the stats: slower, never wrong). Listing an entry costs
        # about a tenth of a stat, and a kept listing serves the next calls too.
        if wanted * 40 < info.st_size // 20:
            return None
        try:
            with os.scandir(folder) as entries:
                # only names of this prefix (``missing`` subtracts the listings of all at once)
                names = frozenset(e.name for e in entries if e.name.startswith(prefix) and e.is_file())
        except OSError:
            return None
        # an object is renamed into place only once its bytes hash to its name, so the one name
        # an empty file can have is the hash of nothing (and empty means absent)
        if _EMPTY_SHA256 in names and not self.exists(site_id, _EMPTY_SHA256):
            names = names - {_EMPTY_SHA256}
        if time.time_ns() - info.st_mtime_ns >= _SETTLE_NS:
            self._listings[key] = (stamp, names)
        return names

    def size(self, site_id: str, digest: str) -> int | None:
        try:
            return self.path(site_id, digest).stat().st_size
        except OSError:
            return None

    def hashes(self, site_id: str) -> list[str]:
        """Every stored object name under ``site_id`` (temporary files excluded), sorted."""
        site_root = self.root / site_id
        if not site_root.is_dir():
            return []
        found: list[str] = []
        for prefix in os.scandir(site_root):
            if prefix.is_dir():
                found.extend(
                    e.name for e in os.scandir(prefix.path) if e.is_file() and not e.name.startswith(".")
                )
        return sorted(found)

    def delete(self, site_id: str, digest: str) -> bool:
        if not _SAFE_NAME.match(digest):
            return False
        try:
            self.path(site_id, digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def open_temp(self, site_id: str, digest: str) -> tuple[int, str]:
        directory = self.path(site_id, digest).parent
        directory.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{digest[:16]}.", suffix=".part", dir=str(directory))

    @staticmethod
    def commit_temp(fd: int, temp_path: str, final: Path) -> None:
        """fsync the temp file, rename it over ``final`` and fsync the directory."""
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp_path, final)
        with contextlib.suppress(OSError):
            dir_fd = os.open(str(final.parent), os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @staticmethod
    def discard_temp(fd: int | None, temp_path: str) -> None:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp_path)

    def write_bytes(self, site_id: str, digest: str, data: bytes) -> None:
        """Store ``data`` (used by helpers and tests); the caller vouches for the digest."""
        fd, temp_path = self.open_temp(site_id, digest)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            self.discard_temp(fd, temp_path)
            raise
        self.commit_temp(fd, temp_path, self.path(site_id, digest))

    @staticmethod
    def digest_of(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()
