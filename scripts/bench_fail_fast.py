"""Fail-fast benchmark (issue 12 item 4): how long a doomed push takes on a 1.5 GB tree.

    python scripts/bench_fail_fast.py [--size-mb 1536] [--file-mb 8] [--dir DIR] [--no-reference]

Generates DIR (default: a temporary folder on /dev/shm when there is one) with ``--size-mb`` of
random data in ``--file-mb`` files, starts the emulator in this process, and measures:

- ``bad description``: a push with a 501-character description: seconds until the
  ``ValueError``, scans started (the engine's ``chunk_directory`` is counted), API calls and
  storage requests (all three must be 0);
- ``bad token``: a push with a key the emulator does not know, on a cold tree (``cache=False``):
  seconds until the ``AuthenticationError``, files hashed before the scan stopped out of all
  files, storage requests (must be 0);
- ``reference scan``: the same tree hashed completely (``chunk_directory``, ``cache=False``),
  the time the bad-token push would take without the concurrent roost read.

Times are wall-clock seconds on whatever machine runs this; the figures to compare are the
ratios to the reference scan printed at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from roost import AuthenticationError, PushOptions, Roost, chunker
from roost._push import engine
from roost.chunker import HashProgress

ROOST_ID = "rst_bench_fail_fast"
MiB = 1024 * 1024
#: tmpfs: the tree's writes and reads do not wait for a disk.
TREE_BASE = "/dev/shm" if os.path.isdir("/dev/shm") else None


def generate(root: Path, size_mb: int, file_mb: int) -> int:
    rng = random.Random(12)
    count = max(1, size_mb // file_mb)
    for i in range(count):
        target = root / f"d{i % 8}" / f"f{i:04}.bin"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rng.randbytes(file_mb * MiB))
    return count


async def bad_description(server: Any, root: Path) -> dict[str, float]:
    scans = 0
    real = chunker.chunk_directory

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal scans
        scans += 1
        return await real(*args, **kwargs)

    setattr(engine, "chunk_directory", counting)  # noqa: B010 - the engine's scan, counted
    try:
        async with Roost(token=server.token, api_url=server.url) as client:
            started = time.perf_counter()
            try:
                await client.roosts.push(
                    root, ROOST_ID, PushOptions(site_id=server.site_id, description="x" * 501)
                )
            except ValueError:
                elapsed = time.perf_counter() - started
            else:
                raise SystemExit("bad description: the push succeeded")
    finally:
        setattr(engine, "chunk_directory", real)  # noqa: B010
    return {
        "seconds": elapsed,
        "scans": scans,
        "api_calls": server.api_calls,
        "storage_requests": len(server.storage_requests),
    }


async def bad_token(server: Any, root: Path, files: int) -> dict[str, float]:
    hashed = 0

    def count(event: object) -> None:
        nonlocal hashed
        if isinstance(event, HashProgress) and event.file:
            hashed += 1

    opts = PushOptions(site_id=server.site_id, cache=False, on_progress=count)
    async with Roost(token="owk_test_" + "0" * 40, api_url=server.url) as client:
        started = time.perf_counter()
        try:
            await client.roosts.push(root, ROOST_ID, opts)
        except AuthenticationError:
            elapsed = time.perf_counter() - started
        else:
            raise SystemExit("bad token: the push succeeded")
    return {
        "seconds": elapsed,
        "hashed": hashed,
        "files": files,
        "storage_requests": len(server.storage_requests),
    }


async def reference(root: Path) -> float:
    started = time.perf_counter()
    await chunker.chunk_directory(root, cache=False)
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1536)
    parser.add_argument("--file-mb", type=int, default=8)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    from roost import testing

    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-fail-fast-", dir=TREE_BASE))
    made = args.dir is None
    try:
        files = generate(root, args.size_mb, args.file_mb)
        print(f"tree: {files} files, {files * args.file_mb} MiB under {root} (backend {chunker.backend()})")
        async with testing.serve() as server:
            desc = await bad_description(server, root)
            print(
                f"bad description: {desc['seconds'] * 1000:.1f} ms, scans {desc['scans']}, "
                f"api calls {desc['api_calls']}, storage requests {desc['storage_requests']}"
            )
            token = await bad_token(server, root, files)
            print(
                f"bad token:       {token['seconds'] * 1000:.1f} ms, hashed {token['hashed']} of "
                f"{token['files']} files, storage requests {token['storage_requests']}"
            )
        if not args.no_reference:
            full = await reference(root)
            print(f"reference scan:  {full * 1000:.1f} ms (the whole tree, cold)")
            print(
                f"ratios to the reference scan: bad description {desc['seconds'] / full:.4f}, "
                f"bad token {token['seconds'] / full:.3f}"
            )
    finally:
        if made:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    anyio.run(main)
