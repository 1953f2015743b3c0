"""The conformance tree and its independent oracle (plain ``open`` + ``hashlib``)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

MIB = 1024 * 1024
CHUNK = 4 * MIB

IGNORE = ["*.tmp", "__pycache__", "renders/cache/**", "**/*.log", "Backup*", "build/"]

# Every file the walk must list, in manifest order (sorted by the plain path string); each is
# read through the file system (following links) by the oracle.
EXPECTED = sorted(
    [
        ".dotfile",
        "B.txt",
        "a-b/x.txt",
        "a.txt",
        "a/b.txt",
        "emoji 😀 name.bin",
        "empty.txt",
        "links/chain",
        "links/dir-link/b/c/deep.txt",
        "links/file-link",
        "nested/a/b/c/deep.txt",
        "nested/build",
        "one.bin",
        "renders/final.exr",
        "sizes/big.bin",
        "sizes/exact.bin",
        "sizes/m1.bin",
        "sizes/p1.bin",
        "top.txt",
        "x/renders/cache/keep.exr",
        "ünïcødé/日本語.txt",
    ]
)

SIZES = {
    "sizes/m1.bin": CHUNK - 1,
    "sizes/exact.bin": CHUNK,
    "sizes/p1.bin": CHUNK + 1,
    "sizes/big.bin": 9 * MIB + 3,
    "one.bin": 1,
    "empty.txt": 0,
}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build_tree(base: Path) -> tuple[Path, Path]:
    """Build ``base/root`` (the tree) and ``base/outside``; returns both."""
    root = base / "root"
    outside = base / "outside"
    root.mkdir()
    outside.mkdir()
    _write(outside / "secret.txt", b"outside the root\n")
    for rel, size in SIZES.items():
        _write(root / rel, os.urandom(size))
    for rel in [
        ".dotfile",
        "B.txt",
        "a-b/x.txt",
        "a.txt",
        "a/b.txt",
        "emoji 😀 name.bin",
        "nested/a/b/c/deep.txt",
        "nested/build",
        "renders/final.exr",
        "top.txt",
        "x/renders/cache/keep.exr",
        "ünïcødé/日本語.txt",
        # ignored by a pattern
        "x.tmp",
        "nested/y.tmp",
        "__pycache__/m.pyc",
        "nested/__pycache__/n.pyc",
        "renders/cache/frame.exr",
        "renders/cache/sub/f.exr",
        "logs/run.log",
        "top.log",
        "Backup 2024/old.txt",
        "build/out.o",
        # ignored by default
        ".git/HEAD",
        "nested/.git/config",
        "node_modules/pkg/index.js",
    ]:
        _write(root / rel, f"content of {rel}\n".encode())
    links = root / "links"
    links.mkdir()
    os.symlink("../top.txt", links / "file-link")
    os.symlink("file-link", links / "chain")
    os.symlink("../nested/a", links / "dir-link")
    os.symlink(outside / "secret.txt", links / "out-file")
    os.symlink(outside, links / "out-dir")
    os.symlink("../nope", links / "broken")
    os.symlink("..", links / "loop-up")
    os.symlink("loop2", links / "loop1")
    os.symlink("loop1", links / "loop2")
    os.symlink("../top.txt", links / "tmp-link.tmp")
    os.symlink(".", root / "nested/a/b/self")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(root / "sock"))
    finally:
        sock.close()
    return root, outside


def oracle_chunks(data: bytes) -> list[tuple[str, int]]:
    return [
        (hashlib.sha256(data[i : i + CHUNK]).hexdigest(), len(data[i : i + CHUNK]))
        for i in range(0, len(data), CHUNK)
    ]


def oracle(root: Path, paths: list[str]) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """``(path, size, [(hash, size), ...])`` of each path, read with ``open`` and ``hashlib``."""
    out = []
    for rel in paths:
        data = (root / rel).read_bytes()
        out.append((rel, len(data), oracle_chunks(data)))
    return out
