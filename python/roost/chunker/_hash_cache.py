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

Content digests (``verify="fast"``)
    Each entry may carry a digest of the file's whole content, written by a scan with
    ``verify="fast"`` (empty otherwise): one algorithm tag byte, then the digest. Tag 1 is
    xxh3-128 (16 bytes, big-endian: the native core, or the ``xxhash`` package in the fallback
    when it is installed), tag 2 SHA-256 (32 bytes: the fallback without ``xxhash``; slower, still
    correct). A fast scan confirms each stat hit by recomputing the digest with its own algorithm;
    a stored digest of the other algorithm, or none, never matches (the file is re-hashed).

Format (version 2, little-endian)
    ``magic (8) | version u32 | chunk size u32 | entry count u64 | key bytes u64 | chunk count
    u64 | digest bytes u64 | SHA-256 of the body (32)``, then the body: ``count`` uint32 key
    lengths, the keys, ``count`` uint32 chunk counts, every chunk hash as 64 lowercase hex
    characters, ``count`` uint8 content digest lengths (0: none), and the content digests. A file
    with another magic, version (version 1 had no digests) or chunk size, a short or long one, or
    a body whose checksum differs is ignored (and replaced after the next successful scan).

Writing
    After a successful scan that changed anything, to a unique temporary file in the same
    directory, then renamed over the old one (atomic): concurrent scans of one root each write
    a complete file and the last rename wins. Failing to write (read-only cache dir) is not an
    error: the scan's result stands.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import importlib
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, compress, repeat
from operator import is_not
from typing import Any, cast

from ._model import CHUNK_SIZE

__all__ = [
    "RACY_WINDOW_NS",
    "CacheHits",
    "RawHits",
    "Snapshot",
    "cache_dir",
    "cache_path",
    "content_digests",
    "forget_file",
    "load",
    "lookup",
    "make_key",
    "make_private_dirs",
    "save",
]

MAGIC = b"ROOSTHC\x00"
VERSION = 2
RACY_WINDOW_NS = 2_000_000_000
_HEADER = struct.Struct("<8sIIQQQQ32s")
TAG_XXH3 = 1
TAG_SHA256 = 2
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
KEY_PREFIX = _KEY.size  # the key's bytes before the UTF-8 path


def make_key(rel: str, size: int, mtime_ns: int, ctime_ns: int, ino: int, dev: int) -> bytes:
    """The cache key of one file (the same bytes the native walk builds)."""
    return _KEY.pack(size, mtime_ns, ctime_ns, ino, dev) + rel.encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class Snapshot:
    """A loaded cache, kept as the sections of its checked body: ``key_lengths`` (uint32 per
    entry), the concatenated ``keys``, ``counts`` (uint32 per entry: its chunks) and ``hex``
    (every chunk hash, 64 ASCII hex characters each). Entry ``i``'s hashes are
    ``hashes[start[i]:start[i + 1]]``; ``index`` maps each key to its entry number (the last
    one for a repeated key). Those three are built on first use: a native lookup works on the
    sections themselves. :meth:`digests` gives the stored content digests."""

    key_lengths: bytes
    keys: bytes
    counts: bytes
    hex: bytes
    digest_lengths: bytes = b""
    digest_blob: bytes = b""
    _index: dict[bytes, int] | None = field(default=None, init=False, repr=False, compare=False)
    _start: list[int] | None = field(default=None, init=False, repr=False, compare=False)
    _hashes: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def index(self) -> dict[bytes, int]:
        if self._index is None:
            ends = list(accumulate(_u32(self.key_lengths)))
            # map/slice keep these loops in C
            keys = map(self.keys.__getitem__, map(slice, [0, *ends], ends))
            self._index = dict(zip(keys, range(len(ends)), strict=True))
        return self._index

    @property
    def start(self) -> list[int]:
        """Where each entry's hashes start in :attr:`hashes` (and, last, its length)."""
        if self._start is None:
            self._start = [0, *accumulate(map((_HEX).__mul__, _u32(self.counts)))]
        return self._start

    @property
    def hashes(self) -> str:
        if self._hashes is None:
            self._hashes = self.hex.decode("ascii")
        return self._hashes

    def digests(self, entries: Iterable[int]) -> list[bytes]:
        """The content digests (tag byte and digest; empty when none) of ``entries``."""
        if not self.digest_blob:
            return [b"" for _ in entries]
        ends = list(accumulate(self.digest_lengths))
        starts = [0, *ends]
        js = list(entries)
        slices = map(slice, map(starts.__getitem__, js), map(ends.__getitem__, js))
        return list(map(self.digest_blob.__getitem__, slices))


def load(path: str, chunk_size: int) -> Snapshot | None:
    """The cache at ``path``, or None when there is none or it is unusable (never raises)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        return _parse(data, chunk_size)
    except (OSError, ValueError, UnicodeDecodeError, struct.error, OverflowError):
        return None


def _u32(data: bytes | memoryview) -> array[int]:
    out: array[int] = array("I")
    out.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        out.byteswap()
    return out


def _parse(data: bytes, chunk_size: int) -> Snapshot | None:
    if len(data) < _HEADER.size:
        return None
    magic, version, csize, count, keys_len, chunks, dig_len, digest = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION or csize != chunk_size:
        return None
    body = memoryview(data)[_HEADER.size :]
    if len(body) != 9 * count + keys_len + _HEX * chunks + dig_len:
        return None
    if hashlib.sha256(body).digest() != digest:
        return None
    sections: list[bytes] = []
    at = 0
    for size in (4 * count, keys_len, 4 * count, _HEX * chunks, count, dig_len):
        sections.append(bytes(body[at : at + size]))
        at += size
    key_lengths, keys, counts, hex_text, dig_lengths, dig_blob = sections
    if sum(dig_lengths) != dig_len or sum(_u32(key_lengths)) != keys_len or sum(_u32(counts)) != chunks:
        return None
    return Snapshot(key_lengths, keys, counts, hex_text, dig_lengths, dig_blob)


@dataclass(slots=True)
class CacheHits:
    """Which walked files the cache answers: their indices (sorted), the raw 32-byte digests of
    all their chunks (in order), their entry numbers in ``snap`` (whose stored content digests
    :meth:`content_digests` gives) and how many distinct keys the cache held."""

    indices: list[int]
    digests: bytes
    entries: list[int] = field(default_factory=list)
    stored: int = 0
    snap: Snapshot | None = None

    def content_digests(self) -> list[bytes]:
        """The stored content digest of each hit (tag byte and digest; empty when none)."""
        if self.snap is None:
            return [b"" for _ in self.indices]
        return self.snap.digests(self.entries)


#: What a lookup returns across the backend boundary: ``(indices, entries, digests, stored)``.
RawHits = tuple[list[int], list[int], bytes, int]


def lookup(snap: Snapshot, keys: Sequence[bytes]) -> RawHits | None:
    """The walked files (their cache keys, manifest order) whose key is in ``snap``: the
    fallback's answer to ``ScanJob.cache_hits`` (``rust/src/cache.rs``), which it matches: None
    when a hit's hashes are not hex.

    Every loop runs in C (``map``/``compress``): one dictionary probe per file. The chunk counts
    are checked by ``start_hashing`` (the key holds the size, so they can only differ in a file
    whose checksum matched: a bug, reported as False there).
    """
    index = snap.index
    found = list(map(index.get, keys))
    present = list(map(is_not, found, repeat(None)))
    hit = list(compress(range(len(found)), present))
    js = cast(list[int], list(compress(found, present)))
    start = snap.start
    slices = map(slice, map(start.__getitem__, js), map(start.__getitem__, map((1).__add__, js)))
    hex_text = b"".join(map(snap.hex.__getitem__, slices))
    try:
        raw = binascii.unhexlify(hex_text)
    except binascii.Error:
        return None
    return hit, js, raw, len(index)


def save(
    path: str,
    chunk_size: int,
    scan_start_ns: int,
    keys: Sequence[bytes],
    mtimes: Sequence[int],
    hashes: Sequence[Sequence[str]],
    digests: Sequence[bytes] | None = None,
) -> bool:
    """Writes the cache of one scan atomically; False when it could not (never raises OSError).

    ``hashes[i]`` are the chunk hashes of the file of ``keys[i]``, whose mtime is ``mtimes[i]``
    and whose content digest (tag byte and digest, or empty) is ``digests[i]`` (none stored
    without ``digests``). Racy files (see the module documentation) are left out.
    """
    cutoff = scan_start_ns - RACY_WINDOW_NS
    kept: list[bytes] = []
    counts: array[int] = array("I")
    text: list[str] = []
    digs: list[bytes] = []
    for i, key in enumerate(keys):
        if mtimes[i] >= cutoff:
            continue
        hs = hashes[i]
        kept.append(key)
        counts.append(len(hs))
        text.extend(hs)
        digs.append(digests[i] if digests is not None else b"")
    lengths: array[int] = array("I", map(len, kept))
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        lengths.byteswap()
        counts.byteswap()
    blob = b"".join(kept)
    dig_blob = b"".join(digs)
    body = b"".join(
        (
            lengths.tobytes(),
            blob,
            counts.tobytes(),
            "".join(text).encode("ascii"),
            bytes(map(len, digs)),
            dig_blob,
        )
    )
    header = _HEADER.pack(
        MAGIC,
        VERSION,
        chunk_size,
        len(kept),
        len(blob),
        len(text),
        len(dig_blob),
        hashlib.sha256(body).digest(),
    )
    directory = os.path.dirname(path)
    try:
        make_private_dirs(directory)
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


def make_private_dirs(path: str) -> None:
    """Creates ``path`` and its missing parents owner-only (0700), and makes ``path`` itself so
    if it exists: cache entries name the user's files, which other local users need not see."""
    missing: list[str] = []
    at = os.path.abspath(path)
    while not os.path.isdir(at):
        missing.append(at)
        parent = os.path.dirname(at)
        if parent == at:
            break
        at = parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, 0o700)
    if os.name != "nt":
        with contextlib.suppress(OSError):  # not ours: left as it is
            os.chmod(path, 0o700)


def forget(path: str, rel: str) -> bool:
    """Drops every entry of ``rel`` from the cache file at ``path``; whether one was dropped."""
    snap = load(path, CHUNK_SIZE)
    if snap is None:
        return False
    name = rel.encode("utf-8", "surrogateescape")
    keep = [(key, i) for key, i in snap.index.items() if key[KEY_PREFIX:] != name]
    if len(keep) == len(snap.index):
        return False
    keys = [key for key, _ in keep]
    mtimes = [_KEY.unpack_from(key)[1] for key in keys]
    start, text = snap.start, snap.hashes
    hashes = [[text[j : j + _HEX] for j in range(start[i], start[i + 1], _HEX)] for _, i in keep]
    digests = snap.digests([i for _, i in keep])
    # the entries were not racy when stored: a start time past them all keeps every one
    return save(path, CHUNK_SIZE, 2**63 - 1, keys, mtimes, hashes, digests)


def forget_file(abs_path: str) -> None:
    """Drops ``abs_path`` from the cache of every scanned root above it (never raises OSError).

    Called when the file raised ``ChunkSourceChangedError``: its cached hashes may be what is
    stale (a rewrite that kept the fingerprint), and keeping them would fail every retry alike.
    """
    parts: list[str] = []
    at = os.path.abspath(abs_path)
    while True:
        parent, name = os.path.split(at)
        if not name or parent == at:
            return
        parts.append(name)
        at = parent
        cache = cache_path(at)
        if os.path.exists(cache):
            forget(cache, "/".join(reversed(parts)))


def _xxh3_128() -> Callable[[], Any] | None:
    try:
        module = importlib.import_module("xxhash")
    except ImportError:
        return None
    return cast("Callable[[], Any]", module.xxh3_128)


def _digest_file(path: str, new: Callable[[], Any]) -> bytes:
    h = new()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return cast(bytes, h.digest())


def content_digests(paths: Sequence[str], native: Callable[[list[str]], list[bytes]] | None) -> list[bytes]:
    """The content digest of each file of ``paths`` (absolute), tag byte first.

    ``native`` is the native core's ``xxh3_files`` (all cores, GIL released); without it,
    ``xxhash.xxh3_128`` when the ``xxhash`` package is installed, else SHA-256 (slower), in a
    pool of one thread per core. Raises ``OSError`` (with the path) when a file cannot be read.
    """
    if not paths:
        return []
    if native is not None:
        tag = bytes((TAG_XXH3,))
        return [tag + d for d in native(list(paths))]
    xxh = _xxh3_128()
    new: Callable[[], Any] = xxh if xxh is not None else hashlib.sha256
    tag = bytes((TAG_XXH3 if xxh is not None else TAG_SHA256,))
    with ThreadPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1)) as pool:
        return [tag + d for d in pool.map(_digest_file, paths, repeat(new))]
