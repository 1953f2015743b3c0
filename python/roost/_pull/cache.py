"""Manifests of versions this machine has pulled, parsed and checked, per (API URL, site, roost, version id).

A version id is the SHA-256 of the version's body (the server's canonical JSON of it), so what a
version id names never changes: a re-pull of a version pulled before needs no manifest GET, its
JSON parse, nor its shape and path checks. An entry is stored only after every check of
:mod:`.manifest` and :mod:`.paths` passed, and only when the body the server sent hashes to its
version id (``VersionManifest.verified``): what the cache holds under an id is that version, whoever
served it, and a server that labels a body with another id never gets it cached.

Storage: one file per entry in ``pull-manifests/`` under the hash cache's directory
(``ROOST_CACHE_DIR`` wins), owner-only (0700 directory, 0600 file), written atomically with the
push ledger's helpers. A file is used only when it is a regular file (not followed through a
link) owned by this user with no group or other permission bits, at most :data:`MAX_FILE_BYTES`,
with the magic, a SHA-256 of its body that matches and the same key inside; anything else (a
corrupt, truncated, foreign or loosened file) is ignored whole, never in part, and replaced on the
next miss. At most :data:`MAX_ENTRIES` files and :data:`MAX_BYTES` bytes are kept: the least
recently used (mtime, refreshed on each hit) go first.

Beside the entries, ``.hint`` files remember which version a pointer (``current``) named at the
last pull, under the same rules; a hint is only a guess the caller confirms with the API.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import struct
import sys
import time
from array import array
from itertools import accumulate

from .._push.ledger import _private_directory, _write
from ..chunker import CHUNK_SIZE_BYTES
from ..chunker._hash_cache import cache_dir
from .manifest import VersionManifest

__all__ = [
    "MAX_BYTES",
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "cache_key",
    "cache_path",
    "load",
    "load_hint",
    "store",
    "store_hint",
]

MAGIC = b"RPULLMF2"
_HINT_MAGIC = b"RPULLHN1"
_HEADER = struct.Struct("<8sIQ32s")  # magic, key length, payload length, SHA-256 of key + payload
# The payload: version number, file count, length of the paths (UTF-8, NUL-separated), then the
# paths, each file's size (int64), and each file's chunk hashes (64 hex each, concatenated).
_COLUMNS = struct.Struct("<qQQ")
_SEP = "\x00"
_HEX = 64
_HEX_DIGITS = b"0123456789abcdef"
#: A 20,000-file manifest takes about 2.5 MB; larger ones are pulled without the cache.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 64
MAX_BYTES = 256 * 1024 * 1024
#: A temporary file (``.tmp-*``) older than this is one a killed writer left; newer ones may be
#: another pull's entry being written.
STALE_TEMP_S = 3600
_READ_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
)


def cache_key(api_url: str, site_id: str, roost_id: str, version_id: str) -> str:
    return f"{api_url.rstrip('/')}\n{site_id}\n{roost_id}\n{version_id}"


def cache_path(key: str, suffix: str = ".bin") -> str:
    """The file of one entry (``.hint`` for a hint); none of the key's values is readable from the name."""
    name = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return os.path.join(cache_dir(), "pull-manifests", name + suffix)


def _trusted(st: os.stat_result) -> bool:
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE_BYTES:
        return False
    if os.name == "posix":
        return st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0
    return True  # Windows: the per-user cache directory's ACL is the protection


def load(key: str) -> VersionManifest | None:
    """The cached manifest of ``key``, or None when there is none or it cannot be trusted (never raises)."""
    path = cache_path(key)
    data = _read_trusted(path)
    if data is None:
        return None
    try:
        manifest = _parse(data, key)
    except (ValueError, TypeError, KeyError, IndexError, struct.error):
        return None
    if manifest is not None:
        with contextlib.suppress(OSError):  # least recently used goes first
            os.utime(path)
    return manifest


def _read_trusted(path: str) -> bytes | None:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        if not _trusted(os.fstat(fd)):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def load_hint(key: str) -> str | None:
    """The version id stored by :func:`store_hint` under ``key`` (a guess for the caller to
    confirm), or None (never raises)."""
    data = _read_trusted(cache_path(key, ".hint"))
    expected = _HINT_MAGIC + key.encode("utf-8", "surrogatepass") + b"\n"
    if data is None or len(data) != len(expected) + _HEX or not data.startswith(expected):
        return None
    version_id = data[len(expected) :]
    return None if version_id.translate(None, _HEX_DIGITS) else version_id.decode("ascii")


def store_hint(key: str, version_id: str) -> bool:
    """Blocking: remember ``version_id`` under ``key``; False when it could not be written."""
    path = cache_path(key, ".hint")
    try:
        _private_directory(os.path.dirname(path))
        _write(path, _HINT_MAGIC + key.encode("utf-8", "surrogatepass") + b"\n" + version_id.encode("ascii"))
    except (OSError, ValueError):
        return False
    return True


def _parse(data: bytes, key: str) -> VersionManifest | None:
    if len(data) < _HEADER.size:
        return None
    magic, key_len, payload_len, digest = _HEADER.unpack_from(data)
    body = memoryview(data)[_HEADER.size :]
    if magic != MAGIC or len(body) != key_len + payload_len or hashlib.sha256(body).digest() != digest:
        return None
    if bytes(body[:key_len]) != key.encode("utf-8", "surrogatepass"):
        return None
    payload = body[key_len:]
    number, count, paths_len = _COLUMNS.unpack_from(payload)
    at = _COLUMNS.size
    names = bytes(payload[at : at + paths_len]).decode("utf-8", "surrogatepass")
    paths = tuple(names.split(_SEP)) if count else ()
    at += paths_len
    size_column: array[int] = array("q")
    size_column.frombytes(payload[at : at + 8 * count])
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        size_column.byteswap()
    sizes = tuple(size_column)
    hashes = bytes(payload[at + 8 * count :])
    # Written by this user and checksummed; still, a shape that could not have been written is
    # refused whole: one path and size per file, one 64-hex hash per 4 MiB of each file.
    if len(paths) != count or len(sizes) != count or min(sizes, default=0) < 0:
        return None
    if hashes.translate(None, _HEX_DIGITS):
        return None
    ends = list(accumulate(_HEX * -(-size // CHUNK_SIZE_BYTES) for size in sizes))
    if (ends[-1] if ends else 0) != len(hashes):
        return None
    text = hashes.decode("ascii")
    digests = tuple(map(text.__getitem__, map(slice, [0, *ends], ends)))
    return VersionManifest(key.rpartition("\n")[2], number, paths, sizes, digests, verified=True)


def _serialize(key: str, manifest: VersionManifest) -> bytes | None:
    """The entry's bytes; None for a manifest this format cannot hold (a NUL in a path, which
    the path checks refuse anyway)."""
    names = _SEP.join(manifest.paths)
    if names.count(_SEP) != max(len(manifest.paths) - 1, 0):
        return None
    encoded = names.encode("utf-8", "surrogatepass")
    size_column = array("q", manifest.sizes)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        size_column.byteswap()
    payload = b"".join(
        (
            _COLUMNS.pack(manifest.version_number, len(manifest.paths), len(encoded)),
            encoded,
            size_column.tobytes(),
            "".join(manifest.digests).encode("ascii"),
        )
    )
    key_bytes = key.encode("utf-8", "surrogatepass")
    body = key_bytes + payload
    return _HEADER.pack(MAGIC, len(key_bytes), len(payload), hashlib.sha256(body).digest()) + body


def store(key: str, manifest: VersionManifest) -> bool:
    """Blocking: write the entry of ``key`` and drop the least recently used beyond the bounds.

    Returns False when it could not be written (the pull does not fail for that).
    """
    if not (manifest.verified and manifest.standard):
        return False
    data = _serialize(key, manifest)
    if data is None or len(data) > MAX_FILE_BYTES:
        return False
    path = cache_path(key)
    try:
        _private_directory(os.path.dirname(path))
        _write(path, data)
    except OSError:
        return False
    _prune(os.path.dirname(path), keep=path)
    return True


def _prune(directory: str, keep: str) -> None:
    entries: list[tuple[float, int, str]] = []
    abandoned = time.time() - STALE_TEMP_S
    with contextlib.suppress(OSError), os.scandir(directory) as listing:
        for item in listing:
            with contextlib.suppress(OSError):
                st = item.stat(follow_symlinks=False)
                if not item.name.startswith("."):
                    entries.append((st.st_mtime, st.st_size, item.path))
                elif st.st_mtime < abandoned:  # a temporary file a killed pull left behind
                    os.unlink(item.path)
    entries.sort(reverse=True)  # newest first
    total = 0
    for index, (_, size, path) in enumerate(entries):
        total += size
        if path != keep and (index >= MAX_ENTRIES or total > MAX_BYTES):
            with contextlib.suppress(OSError):
                os.unlink(path)
