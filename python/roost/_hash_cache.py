"""The local hash cache: a re-scan does not re-read files whose stat fingerprint is unchanged.

One file per scanned root, named after a hash of the resolved root path, in
``ROOST_CACHE_DIR`` or else the platform's user cache dir plus ``owlette-sdk/hash-cache``
(``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux and other Unixes, ``%LOCALAPPDATA%`` on Windows,
``~/Library/Caches`` on macOS). Both chunker backends read and write the same format.

Fingerprint
    ``(relative path, size, mtime_ns, ctime_ns, inode, device)``, taken from the walk's own
    ``stat`` (no extra call). Any difference re-hashes the file. A file replaced by a symlink
    shows its target's inode; a rewrite with the same size and a restored mtime still changes
    ctime.

Racy entries (the "racy git" rule)
    A file whose mtime is not strictly older than the scan's start time minus
    :data:`RACY_WINDOW_NS` (2 s, the coarsest common timestamp granularity: FAT) is never
    stored: it could be modified again within the same timestamp tick after we read it, with an
    unchanged fingerprint. Any write after the scan started sets an mtime at least
    ``start - granularity``, so it can never equal a stored (older) mtime. Such files are simply
    re-hashed next time (and stored then, once they are old enough). This assumes the file
    system's clock is the local clock (within the window), as for local disks.

Keys
    The fingerprint is one ``bytes`` key per file: little-endian ``size i64, mtime_ns i64,
    ctime_ns i64, inode u64, device u64`` (40 bytes) followed by the UTF-8 path. The native walk
    builds it in Rust, the fallback with :func:`make_key`; a lookup is then one dictionary probe
    per file, run in C.

Format (version 1, little-endian)
    ``magic (8) | version u32 | chunk size u32 | entry count u64 | key bytes u64 | chunk count
    u64 | SHA-256 of the body (32)``, then the body: ``count`` uint32 key lengths, the keys,
    ``count`` uint32 chunk counts, and every chunk hash as 64 lowercase hex characters. A file
    with another magic, version or chunk size, a short or long one, or a body whose checksum
    differs is ignored (and replaced after the next successful scan).

Writing
    After a successful scan that changed anything, to a unique temporary file in the same
    directory, then renamed over the old one (atomic): concurrent scans of one root each write
    a complete file and the last rename wins. Failing to write (read-only cache dir) is not an
    error: the scan's result stands.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, compress, repeat
from operator import is_not
from typing import cast

__all__ = [
    "RACY_WINDOW_NS",
    "CacheHits",
    "Snapshot",
    "cache_dir",
    "cache_path",
    "load",
    "lookup",
    "make_key",
    "save",
]

MAGIC = b"ROOSTHC\x00"
VERSION = 1
RACY_WINDOW_NS = 2_000_000_000
_HEADER = struct.Struct("<8sIIQQQ32s")
_HEX = 64


def cache_dir() -> str:
    """Where the cache files live (``ROOST_CACHE_DIR`` wins; read on every call)."""
    override = os.environ.get("ROOST_CACHE_DIR", "").strip()
    if override:
        return os.path.abspath(os.path.expanduser(override))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
    return os.path.join(base, "owlette-sdk", "hash-cache")


def cache_path(root: str) -> str:
    """The cache file of ``root`` (absolute and resolved)."""
    key = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return os.path.join(cache_dir(), key + ".bin")


_KEY = struct.Struct("<qqqQQ")


def make_key(rel: str, size: int, mtime_ns: int, ctime_ns: int, ino: int, dev: int) -> bytes:
    """The cache key of one file (the same bytes the native walk builds)."""
    return _KEY.pack(size, mtime_ns, ctime_ns, ino, dev) + rel.encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class Snapshot:
    """A loaded cache: ``index`` maps each entry's key to its number ``i``, whose hashes are
    ``hashes[start[i]:start[i + 1]]`` (hex text, 64 characters a chunk)."""

    index: dict[bytes, int]
    start: list[int]
    hashes: str


def load(path: str, chunk_size: int) -> Snapshot | None:
    """The cache at ``path``, or None when there is none or it is unusable (never raises)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        return _parse(data, chunk_size)
    except (OSError, ValueError, UnicodeDecodeError, struct.error, OverflowError):
        return None


def _u32(data: memoryview) -> array[int]:
    out: array[int] = array("I")
    out.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        out.byteswap()
    return out


def _parse(data: bytes, chunk_size: int) -> Snapshot | None:
    if len(data) < _HEADER.size:
        return None
    magic, version, csize, count, keys_len, chunks, digest = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or csize != chunk_size:
        return None
    body = memoryview(data)[_HEADER.size :]
    if len(body) != 8 * count + keys_len + _HEX * chunks:
        return None
    if hashlib.sha256(body).digest() != digest:
        return None
    lengths = _u32(body[: 4 * count])
    at = 4 * count
    blob = bytes(body[at : at + keys_len])
    at += keys_len
    counts = _u32(body[at : at + 4 * count])
    at += 4 * count
    hashes = bytes(body[at:]).decode("ascii")
    ends = list(accumulate(lengths))
    if (ends[-1] if ends else 0) != keys_len:
        return None
    # map/slice keep these loops in C: this is on the warm path of every scan
    keys = map(blob.__getitem__, map(slice, [0, *ends], ends))
    start = [0, *accumulate(map((_HEX).__mul__, counts))]
    if start[-1] != _HEX * chunks:
        return None
    return Snapshot(dict(zip(keys, range(count), strict=True)), start, hashes)


@dataclass(slots=True)
class CacheHits:
    """Which walked files the cache answers: their indices (sorted) and, for each, the hex
    text of all its chunk hashes (64 characters a chunk)."""

    indices: list[int]
    hashes: list[str]

    def split(self) -> list[str]:
        """Every chunk hash, in order."""
        return [h[i : i + _HEX] for h in self.hashes for i in range(0, len(h), _HEX)]


def lookup(snap: Snapshot, keys: Sequence[bytes]) -> CacheHits:
    """The walked files (manifest order) whose key is in ``snap``.

    Every loop runs in C (``map``/``compress``): one dictionary probe per file. The chunk counts
    are checked by ``start_hashing`` (the key holds the size, so they can only differ in a file
    whose checksum matched: a bug, reported as ``ValueError``).
    """
    found = list(map(snap.index.get, keys))
    present = list(map(is_not, found, repeat(None)))
    hit = list(compress(range(len(found)), present))
    js = cast(list[int], list(compress(found, present)))
    start = snap.start
    ends = map(start.__getitem__, map((1).__add__, js))
    slices = map(slice, map(start.__getitem__, js), ends)
    return CacheHits(hit, list(map(snap.hashes.__getitem__, slices)))


def save(
    path: str,
    chunk_size: int,
    scan_start_ns: int,
    keys: Sequence[bytes],
    mtimes: Sequence[int],
    hashes: Sequence[Sequence[str]],
) -> bool:
    """Writes the cache of one scan atomically; False when it could not (never raises OSError).

    ``hashes[i]`` are the chunk hashes of the file of ``keys[i]``, whose mtime is ``mtimes[i]``.
    Racy files (see the module documentation) are left out.
    """
    cutoff = scan_start_ns - RACY_WINDOW_NS
    kept: list[bytes] = []
    counts: array[int] = array("I")
    text: list[str] = []
    for i, key in enumerate(keys):
        if mtimes[i] >= cutoff:
            continue
        hs = hashes[i]
        kept.append(key)
        counts.append(len(hs))
        text.extend(hs)
    lengths: array[int] = array("I", map(len, kept))
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        lengths.byteswap()
        counts.byteswap()
    blob = b"".join(kept)
    body = b"".join((lengths.tobytes(), blob, counts.tobytes(), "".join(text).encode("ascii")))
    header = _HEADER.pack(
        MAGIC, VERSION, chunk_size, len(kept), len(blob), len(text), hashlib.sha256(body).digest()
    )
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".bin", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(header)
                f.write(body)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        return False
    return True
