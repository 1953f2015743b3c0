"""Pull benchmark: the pull engine against a naive sequential downloader, end to end on the emulator.

    python scripts/bench_pull.py [DIR] [--scale 1.0] [--latency-ms 20] [--repeat N] [--no-fsync]

DIR (default ``./datasets``) holds the ``touchdesigner`` dataset of ``scripts/gen_datasets.py``
(built on demand at ``--scale``). It is pushed once to an emulator (``python -m roost.testing``,
its own process, real loopback sockets) with a data directory that outlives it; every pull then
runs against a fresh emulator process on that data with ``storage_latency_ms`` (default 20 ms
per storage request), into a fresh directory:

- ``engine cold``: ``client.roosts.pull`` into an empty directory;
- ``naive cold``: what a new user writes over ``versions.get`` and ``chunks.download_urls``:
  mint every URL up front, then GET each chunk in turn and append it to its file (sequential,
  no verification, no resume);
- ``warm scan``: ``chunker.scan_directory`` of the pulled tree with a warm hash cache (a stat
  per file), the floor of any "is it up to date" answer;
- ``engine re-pull``: ``client.roosts.pull`` of the same version into that unchanged tree, with
  ``ref="current"`` (and, for comparison, by its version id); the manifest comes from the
  manifest cache, filled by one untimed re-pull (also reported) against the timed emulator.

Targets (issue 13): naive cold / engine cold >= 3; engine re-pull / warm scan <= 2. With
``--repeat N`` each timing is the best of N rounds (cold pulls alternate which goes first).
Times are wall-clock seconds; MB = 10**6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_server import EMULATOR_DIR, Emulator, dataset_bytes, emulator

from roost import PullOptions, PushOptions, Roost, RoostClient

DATASET = "touchdesigner"
ROOST_ID = "rst_bench_pull"
HERE = Path(__file__).resolve().parent
#: The hash cache's "racy" window: a file written less than this before a scan is re-hashed.
RACY_WINDOW_S = 2.0


async def push(server: Emulator, root: str) -> None:
    async with Roost(token=server.token, api_url=server.url, timeout=120) as client:
        await client.roosts.push(root, ROOST_ID, PushOptions(site_id=server.site_id, cache=False))


async def engine_pull(
    server: Emulator, dest: str, fsync: bool, ref: str = "current"
) -> tuple[float, int, str]:
    """Seconds, bytes downloaded and the version id of one ``client.roosts.pull``."""
    async with Roost(token=server.token, api_url=server.url, timeout=120) as client:
        started = time.perf_counter()
        options = PullOptions(site_id=server.site_id, ref=ref, fsync=fsync)
        result = await client.roosts.pull(ROOST_ID, dest, options)
        return time.perf_counter() - started, result.stats.downloaded_bytes, result.version_id


async def naive_pull(server: Emulator, dest: str) -> tuple[float, int]:
    started = time.perf_counter()
    moved = 0
    async with RoostClient(token=server.token, api_url=server.url, timeout=120) as http:
        detail = await http.request(
            f"/api/roosts/{ROOST_ID}/versions/current", query={"siteId": server.site_id}
        )
        files = detail.data["version"]["files"]
        hashes = list(dict.fromkeys(chunk["hash"] for entry in files for chunk in entry["chunks"]))
        urls: dict[str, str] = {}
        for i in range(0, len(hashes), 900):
            response = await http.request(
                "/api/chunks/download-urls",
                method="POST",
                body={"siteId": server.site_id, "hashes": hashes[i : i + 900]},
            )
            urls.update(response.data["urls"])
        async with httpx.AsyncClient(timeout=120) as storage:
            for entry in files:
                path = os.path.join(dest, *entry["path"].split("/"))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:  # noqa: ASYNC230 (blocking, like a first script)
                    for chunk in entry["chunks"]:
                        got = await storage.get(urls[chunk["hash"]])
                        got.raise_for_status()
                        handle.write(got.content)
                        moved += len(got.content)
    return time.perf_counter() - started, moved


def best(values: list[float]) -> float:
    return min(values)


def same_tree(left: str, right: str) -> bool:
    for dirpath, _, names in os.walk(left):
        for name in names:
            a = os.path.join(dirpath, name)
            b = os.path.join(right, os.path.relpath(a, left))
            with open(a, "rb") as one, open(b, "rb") as other:
                if one.read() != other.read():
                    return False
    return dataset_bytes(left) == dataset_bytes(right)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", default="datasets")
    parser.add_argument("--scale", type=float, default=1.0, help="dataset scale (gen_datasets.py --scale)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="storage latency of the cold pulls")
    parser.add_argument("--repeat", type=int, default=1, help="rounds per timing; best of each")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive cold pulls")
    parser.add_argument("--no-fsync", action="store_true", help="PullOptions(fsync=False) for the engine")
    args = parser.parse_args(argv)
    command = [sys.executable, str(HERE / "gen_datasets.py"), args.dir, "--scale", str(args.scale)]
    subprocess.run([*command, "--only", DATASET], check=True)
    from roost import chunker

    root = os.path.join(args.dir, DATASET)
    size, count = dataset_bytes(root)
    work = tempfile.mkdtemp(prefix="bench-pull-")
    data = tempfile.mkdtemp(prefix="bench-pull-emulator-", dir=EMULATOR_DIR)
    os.environ["ROOST_CACHE_DIR"] = os.path.join(work, "cache")
    token = "owk_test_" + secrets.token_urlsafe(32)
    faults = f"storage_latency_ms={args.latency_ms:g}"
    fsync = not args.no_fsync
    print(f"chunker backend: {chunker.backend()}, {os.cpu_count()} CPUs, scale {args.scale}, fsync {fsync}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{DATASET}: {count} files, {size / 1e6:.1f} MB; pulls into {work}")
    try:
        with emulator(data, token) as server:
            asyncio.run(push(server, root))
        cold: dict[str, list[float]] = {"engine": [], "naive": []}
        last = ""
        for round_index in range(args.repeat):
            order = ("engine", "naive") if round_index % 2 == 0 else ("naive", "engine")
            for kind in order:
                if kind == "naive" and args.no_naive:
                    continue
                dest = os.path.join(work, f"{kind}-{round_index}")
                with emulator(data, token, faults) as server:
                    if kind == "engine":
                        seconds, moved, _ = asyncio.run(engine_pull(server, dest, fsync))
                        last = dest
                    else:
                        seconds, moved = asyncio.run(naive_pull(server, dest))
                if not same_tree(root, dest):
                    raise RuntimeError(f"{kind} pull into {dest} is not byte-exact")
                cold[kind].append(seconds)
                print(
                    f"  {kind} cold +{args.latency_ms:g}ms   {seconds:8.2f} s  {moved / 1e6 / seconds:8.1f} MB/s"
                )
                if dest != last:
                    shutil.rmtree(dest, ignore_errors=True)
        time.sleep(RACY_WINDOW_S)  # files just written are re-hashed by design; let them settle
        chunker.scan_directory(last)  # fills the hash cache
        scans: list[float] = []
        repulls: list[float] = []
        by_id: list[float] = []
        with emulator(data, token) as server:
            # A new emulator is a new API URL: the first re-pull misses the manifest cache (as a
            # first pull of a version does) and fills it; the timed ones hit it.
            missed, moved, version_id = asyncio.run(engine_pull(server, last, fsync))
            for _ in range(max(3, args.repeat)):
                started = time.perf_counter()
                chunker.scan_directory(last)
                scans.append(time.perf_counter() - started)
                for ref, times in (("current", repulls), (version_id, by_id)):
                    seconds, moved, _ = asyncio.run(engine_pull(server, last, fsync, ref))
                    if moved:
                        raise RuntimeError(f"the re-pull downloaded {moved} bytes")
                    times.append(seconds)
        repull_ratio = best(repulls) / best(scans)
        print(f"  warm scan              {best(scans):8.3f} s")
        print(
            f"  engine re-pull         {best(repulls):8.3f} s   (ref 'current': the roost read, manifest cached)"
        )
        print(f"  engine re-pull, by id  {best(by_id):8.3f} s   (a version id ref: no API call)")
        print(f"  engine re-pull, miss   {missed:8.3f} s   (manifest GET, parse, checks; once)")
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("summary:")
        if cold["naive"]:
            cold_ratio = best(cold["naive"]) / best(cold["engine"])
            verdict = "met" if cold_ratio >= 3 else "NOT met"
            print(
                f"  cold pull +{args.latency_ms:g} ms storage latency, naive/engine {cold_ratio:.2f}x (target >= 3x: {verdict})"
            )
        verdict = "met" if repull_ratio <= 2 else "NOT met"
        print(f"  re-pull of the unchanged tree / warm scan {repull_ratio:.2f}x (target <= 2x: {verdict})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
