"""The push ledger: chunks this machine has seen stored, per (API URL, site).

A re-push of a mostly unchanged tree would otherwise ask the API about every chunk again (23
check calls for a 20,000-file tree). After a successful publish, the server has confirmed that
every chunk of the version is stored, so the engine records them here; the next push to the same
API and site only checks chunks the ledger does not know.

The ledger is a hint, never a promise: storage may lose a chunk the ledger lists (or the site may
be a fresh one at the same URL). The publish answers 412 with ``missingChunks`` then, and the
engine's repair uploads them (see ``push_directory``), so a version is never published with a
missing chunk.

It also remembers, per roost, the head this machine last published or saw, with a digest of its
file list, so that ``PushOptions(skip_unchanged=True)`` can tell "nothing changed" from the roost
read alone.

Storage: one file per (API URL, site) in ``push-ledger/`` under the hash cache's directory
(``ROOST_CACHE_DIR`` wins), owner-only (0700 directory, 0600 file), written atomically (temporary
file and rename) after merging with what another push wrote meanwhile, under an advisory lock
where the platform has one. A file that does not parse or whose checksum differs is ignored. At
most :data:`MAX_CHUNKS` chunks and :data:`MAX_HEADS` roosts are kept, the most recently used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat

from ..chunker._hash_cache import cache_dir

__all__ = ["MAX_CHUNKS", "MAX_HEADS", "KnownHead", "Ledger", "files_digest", "ledger_path"]

MAGIC = b"RLEDGER1"
_HEADER = struct.Struct("<8sII32s")  # magic, chunk count, heads JSON length, SHA-256 of the body
_DIGEST = 32
#: 8 MiB of digests: more than ten 20,000-file trees.
MAX_CHUNKS = 250_000
MAX_HEADS = 256


def ledger_path(api_url: str, site_id: str) -> str:
    """The ledger file of one (API URL, site); neither value is readable from the name."""
    key = hashlib.sha256(f"{api_url.rstrip('/')}\n{site_id}".encode()).hexdigest()[:32]
    return os.path.join(cache_dir(), "push-ledger", key + ".bin")


def files_digest(files_json: str) -> str:
    """One digest of a version's file list, from its text as the version body lists it
    (``roost.chunker._model.entries_json``: every path, size and chunk, in path order). The
    ``v3`` prefix keeps digests of older forms from ever matching: a ledger written before just
    reads its head once more."""
    return "v3:" + hashlib.sha256(files_json.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class KnownHead:
    """A version of a roost whose file list this machine knows (by digest)."""

    version_id: str
    files: str


@dataclass(slots=True)
class Ledger:
    """The loaded ledger of one (API URL, site); :meth:`record` writes it back."""

    path: str
    chunks: dict[bytes, None] = field(default_factory=dict)
    heads: dict[str, KnownHead] = field(default_factory=dict)
    #: The file as loaded (size, mtime, inode): unchanged at :meth:`record`, it needs no re-read.
    loaded_as: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, path: str) -> Ledger:
        """The ledger at ``path``; empty when there is none or it cannot be trusted."""
        ledger = cls(path)
        with contextlib.suppress(OSError), open(path, "rb") as handle:
            ledger.loaded_as = _identity(os.fstat(handle.fileno()))
            ledger._parse(handle.read())
        return ledger

    def known(self, hashes: Iterable[str]) -> set[str]:
        """The hashes of ``hashes`` the ledger lists as stored."""
        chunks = self.chunks
        listed = hashes if isinstance(hashes, list) else list(hashes)
        if not chunks or not listed:
            return set()
        return {h for h, raw in zip(listed, _raw_digests(listed), strict=True) if raw in chunks}

    def head(self, roost_id: str) -> KnownHead | None:
        return self.heads.get(roost_id)

    def record(
        self, hashes: Iterable[str], roost_id: str | None = None, head: KnownHead | None = None
    ) -> bool:
        """Add stored ``hashes`` (and the roost's head), merged with the file on disk.

        Returns False when the file could not be written (the push does not fail for that).
        """
        listed = hashes if isinstance(hashes, list) else list(hashes)
        fresh = [raw for raw in _raw_digests(listed) if raw]
        try:
            with _locked(self.path):
                on_disk = self if self._unchanged_on_disk() else Ledger.load(self.path)
                chunks = dict(on_disk.chunks)
                if on_disk is not self:
                    chunks.update(dict.fromkeys(c for c in self.chunks if c not in chunks))
                # most recently used last: the oldest are dropped first (loops in C: 20,000 chunks)
                deque(map(chunks.pop, fresh, repeat(None)), maxlen=0)
                chunks.update(dict.fromkeys(fresh))
                heads = on_disk.heads
                if roost_id is not None and head is not None:
                    heads.pop(roost_id, None)
                    heads[roost_id] = head
                self.chunks = (
                    chunks if len(chunks) <= MAX_CHUNKS else dict.fromkeys(list(chunks)[-MAX_CHUNKS:])
                )
                self.heads = dict(list(heads.items())[-MAX_HEADS:])
                self.loaded_as = _write(self.path, self._serialize())
        except OSError:
            return False
        return True

    def _unchanged_on_disk(self) -> bool:
        """Whether the file is still the one loaded (or written) last: no other push wrote since."""
        if self.loaded_as is None:
            return False
        try:
            return _identity(os.stat(self.path)) == self.loaded_as
        except OSError:
            return False

    def _serialize(self) -> bytes:
        heads = json.dumps({k: [v.version_id, v.files] for k, v in self.heads.items()}).encode()
        body = b"".join(self.chunks) + heads
        return _HEADER.pack(MAGIC, len(self.chunks), len(heads), hashlib.sha256(body).digest()) + body

    def _parse(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            return
        magic, count, heads_len, checksum = _HEADER.unpack_from(data)
        body = data[_HEADER.size :]
        if magic != MAGIC or len(body) != count * _DIGEST + heads_len:
            return
        if hashlib.sha256(body).digest() != checksum:
            return
        try:
            raw = json.loads(body[count * _DIGEST :])
            heads = {
                str(k): KnownHead(str(v[0]), str(v[1]))
                for k, v in raw.items()
                if isinstance(v, list) and len(v) == 2
            }
        except (ValueError, AttributeError, TypeError):
            return
        ends = range(_DIGEST, count * _DIGEST + 1, _DIGEST)
        self.chunks = dict.fromkeys(
            map(body.__getitem__, map(slice, range(0, count * _DIGEST, _DIGEST), ends))
        )
        self.heads = heads


def _raw_digests(hashes: list[str]) -> list[bytes]:
    """Each hex digest as its 32 bytes (b"" for one that is not a hex SHA-256)."""
    if set(map(len, hashes)) == {2 * _DIGEST}:
        # one conversion for the lot: 20,000 bytes.fromhex calls cost a re-push ~15 ms
        with contextlib.suppress(ValueError):
            raw = bytes.fromhex("".join(hashes))
            if len(raw) == _DIGEST * len(hashes):
                return [raw[i : i + _DIGEST] for i in range(0, len(raw), _DIGEST)]
    out: list[bytes] = []
    for chunk_hash in hashes:
        try:
            digest = bytes.fromhex(chunk_hash)
        except ValueError:
            digest = b""
        out.append(digest if len(digest) == _DIGEST else b"")
    return out


def _private_directory(directory: str) -> None:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.name == "posix" and os.stat(directory).st_mode & 0o077:
        os.chmod(directory, 0o700)  # created before, or under a umask that kept group bits


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """Serialises the read-merge-write of concurrent pushes (advisory; POSIX only).

    Without a lock (Windows) two writers can only lose each other's additions: the file is
    replaced atomically, so it is never torn, and a missing entry costs one more check.
    """
    _private_directory(os.path.dirname(path))
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ino


def _write(path: str, data: bytes) -> tuple[int, int, int]:
    """Writes ``path`` atomically (owner-only); returns the new file's :func:`_identity`."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".bin", dir=os.path.dirname(path))  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()  # a small file sits in the buffer: its size and mtime come at the flush
            written = _identity(os.fstat(handle.fileno()))
        os.replace(tmp, path)
        return written
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
