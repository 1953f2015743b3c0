"""Trees of files for tests: seeded bytes, written under a root, and read back."""

from __future__ import annotations

import os
import random
from pathlib import Path

MiB = 1024 * 1024


def blob(seed: int, size: int) -> bytes:
    """``size`` reproducible pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def write_tree(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    """Writes ``files`` (POSIX relative path -> bytes) under ``root``; returns ``files``."""
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return files


def disk_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (links not followed) with its bytes."""
    out: dict[str, bytes] = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root).replace(os.sep, "/")] = Path(full).read_bytes()
    return out
