"""Build the three benchmark datasets of performance-facts.md.

    python scripts/gen_datasets.py [DIR] [--scale 1.0] [--only NAME] [--force]

- ``media``: 8 files of 256 MiB (2.15 GB).
- ``touchdesigner``: 20,000 files of 1-64 KiB in 500 nested directories, plus 20 files of
  16-64 MiB (about 1.6 GB with this seed; 1.47 GB in performance-facts.md).
- ``many-tiny``: 100,000 files of 0-4 KiB (5 % empty) in 1,000 directories (about 0.19 GB).

``--scale`` multiplies the file counts (and, for ``media``, the file size) so that quick runs
are possible: ``--scale 0.05`` builds each in a second or two. Sizes and layout come from a seeded
generator, contents from ``os.urandom``. A dataset already built with the same parameters is kept
(a ``.NAME.complete`` marker beside it); ``--force`` rebuilds it. DIR defaults to ``./datasets`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from collections.abc import Callable

KIB = 1024
MIB = 1024 * 1024
_BLOCK = 4 * MIB


def _write(path: str, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, _BLOCK)
            f.write(os.urandom(n))
            left -= n


def _nested_dirs(root: str, count: int, rng: random.Random) -> list[str]:
    """``count`` directories, each under the root or under an earlier one (depth varies)."""
    dirs: list[str] = []
    for i in range(count):
        parent = root if not dirs or rng.random() < 0.2 else rng.choice(dirs)
        d = os.path.join(parent, f"dir{i:03d}")
        os.makedirs(d)
        dirs.append(d)
    return dirs


def build_media(root: str, scale: float, rng: random.Random) -> None:
    size = max(MIB, int(256 * MIB * scale))
    for i in range(8):
        _write(os.path.join(root, f"clip{i}.mov"), size)


def build_touchdesigner(root: str, scale: float, rng: random.Random) -> None:
    dirs = _nested_dirs(root, max(5, int(500 * scale)), rng)
    for i in range(max(10, int(20_000 * scale))):
        d = rng.choice(dirs)
        _write(os.path.join(d, f"asset{i:05d}.tox"), rng.randint(1 * KIB, 64 * KIB))
    media = os.path.join(root, "media")
    os.makedirs(media)
    for i in range(max(1, int(20 * scale))):
        _write(os.path.join(media, f"movie{i:02d}.mp4"), rng.randint(16 * MIB, 64 * MIB))


def build_many_tiny(root: str, scale: float, rng: random.Random) -> None:
    ndirs = max(10, int(1000 * scale))
    dirs = []
    for i in range(ndirs):
        d = os.path.join(root, f"g{i // 100:02d}", f"d{i:04d}")
        os.makedirs(d)
        dirs.append(d)
    nfiles = max(100, int(100_000 * scale))
    for i in range(nfiles):
        d = dirs[i % ndirs]
        size = 0 if rng.random() < 0.05 else rng.randint(1, 4 * KIB)
        _write(os.path.join(d, f"f{i:06d}.bin"), size)


BUILDERS: dict[str, Callable[[str, float, random.Random], None]] = {
    "media": build_media,
    "touchdesigner": build_touchdesigner,
    "many-tiny": build_many_tiny,
}


def build(base: str, name: str, scale: float, force: bool = False) -> str:
    """Build dataset ``name`` under ``base`` (kept when already complete); returns its path."""
    root = os.path.join(base, name)
    marker = os.path.join(base, f".{name}.complete")
    params = {"name": name, "scale": scale, "version": 1}
    if not force and os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == params:
                return root
    if os.path.exists(marker):
        os.remove(marker)
    if os.path.exists(root):
        shutil.rmtree(root)
    os.makedirs(root)
    BUILDERS[name](root, scale, random.Random(f"roost-{name}"))
    with open(marker, "w") as f:
        json.dump(params, f)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", default="datasets")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    for name in args.only or list(BUILDERS):
        root = build(args.dir, name, args.scale, args.force)
        print(f"{name}: {root}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
