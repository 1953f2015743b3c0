"""Push benchmark: the push engine against a naive sequential pusher, end to end on the emulator.

    python scripts/bench_push.py [DIR] [--scale 1.0] [--only NAME] [--repeat N]
                                 [--latency-ms 20] [--cap-mbps 100] [--no-latency] [--no-cap]

DIR (default ``./datasets``) holds the datasets of ``scripts/gen_datasets.py`` (built on demand at
``--scale``). Every scenario runs against a fresh emulator (``python -m roost.testing``) in its
own process, over real loopback sockets, so the emulator's work does not share our GIL:

- ``engine cold`` / ``engine re-push``: ``client.roosts.push`` of the dataset to an empty
  emulator, then the same tree again (nothing to upload: scan + check + publish);
- ``naive cold`` / ``naive re-push``: the reference SDKs' approach in the same run: walk the
  tree, then hash one file at a time (64 KiB reads), check in sequential batches, mint every URL
  up front, then 8 workers that each read a chunk (on the event loop) and PUT it, then publish;
- ``+latency``: both cold pushes again with ``storage_latency_ms`` (default 20 ms per request);
- ``media, cap``: the engine's cold push of ``media`` with a storage bandwidth cap (default
  100 MB/s), reporting the upload phase's rate against the cap.

Each dataset is read once before its runs (warm page cache, as in performance-facts.md). With
``--repeat N`` every comparison runs N rounds, alternating which pusher goes first, and keeps
the best time of each (the first push after a warm-up tends to be slower). Times are wall-clock
seconds; throughput is dataset bytes per second (MB = 10**6 bytes);
``ratio`` is naive time / engine time from the same run. Targets (issue 5): ratio >= 3 on
``touchdesigner`` with latency, and the capped upload at >= 90 % of the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import anyio
import httpx

from roost import PushOptions, Roost, RoostClient
from roost.resources.roosts import PushProgressEvent

DATASETS = ("media", "touchdesigner", "many-tiny")
CHUNK = 4 * 1024 * 1024
READ_BLOCK = 64 * 1024
NAIVE_WORKERS = 8
ROOST_ID = "rst_bench_push"
HERE = Path(__file__).resolve().parent
#: The emulator fsyncs every stored chunk; on tmpfs that is free, so the disk does not set the pace.
EMULATOR_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


# ---------------------------------------------------------------------------------------------
# the emulator, in its own process


@dataclass
class Emulator:
    url: str
    token: str
    site_id: str
    process: subprocess.Popen[str]


@contextmanager
def emulator(faults: str = "") -> Iterator[Emulator]:
    token = "owk_test_" + secrets.token_urlsafe(32)
    data = tempfile.mkdtemp(prefix="bench-push-emulator-", dir=EMULATOR_DIR)
    command = [sys.executable, "-m", "roost.testing", "--port", "0", "--token", token, "--data", data]
    if faults:
        command += ["--faults", faults]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = site_id = ""
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while not (url and site_id):
            line = process.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            label, _, value = line.partition(":")
            if label.strip() == "base URL":
                url = value.strip()
            elif label.strip() == "site id":
                site_id = value.strip()
        yield Emulator(url, token, site_id, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# the engine


@dataclass
class Run:
    seconds: float
    uploaded_bytes: int
    uploaded_chunks: int
    scan_seconds: float = 0.0
    upload_seconds: float = 0.0


async def engine_push(server: Emulator, root: str) -> Run:
    os.environ["ROOST_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-push-cache-")  # no warm hash cache
    marks: dict[str, float] = {}

    def progress(event: PushProgressEvent) -> None:
        now = time.perf_counter()
        if event.phase == "hash" and event.file == "":
            marks["scanned"] = now
        elif event.phase == "check-missing":
            marks["checked"] = now
        elif event.phase == "upload":
            marks["uploaded"] = now

    async with Roost(token=server.token, api_url=server.url, timeout=120) as client:
        started = time.perf_counter()
        result = await client.roosts.push(
            root, ROOST_ID, PushOptions(site_id=server.site_id, on_progress=progress)
        )
        elapsed = time.perf_counter() - started
    shutil.rmtree(os.environ.pop("ROOST_CACHE_DIR"), ignore_errors=True)
    checked = marks.get("checked", started)
    return Run(
        seconds=elapsed,
        uploaded_bytes=result.stats.uploaded_bytes,
        uploaded_chunks=result.stats.uploaded_chunks,
        scan_seconds=marks.get("scanned", started) - started,
        upload_seconds=marks.get("uploaded", checked) - checked,
    )


# ---------------------------------------------------------------------------------------------
# the naive baseline: what the reference SDKs do, minus their bugs


def naive_walk(root: Path) -> list[tuple[Path, str, int]]:
    found: list[tuple[Path, str, int]] = []

    def visit(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.name in (".git", "node_modules"):
                continue
            if entry.is_dir():
                visit(entry)
            elif entry.is_file():
                found.append((entry, entry.relative_to(root).as_posix(), entry.stat().st_size))

    visit(root)
    return found


def naive_hash(path: Path, size: int) -> list[tuple[str, int]]:
    chunks: list[tuple[str, int]] = []
    with path.open("rb") as handle:
        left = size
        while left > 0:
            want = min(CHUNK, left)
            digest = hashlib.sha256()
            got = 0
            while got < want:
                block = handle.read(min(READ_BLOCK, want - got))
                if not block:
                    raise RuntimeError(f"{path} shrank while hashing")
                digest.update(block)
                got += len(block)
            chunks.append((digest.hexdigest(), want))
            left -= want
    return chunks


def naive_scan(
    root_text: str,
) -> tuple[list[tuple[str, int, list[tuple[str, int]]]], dict[str, tuple[Path, int, int]]]:
    """Walk, then hash one file at a time; the first occurrence of a chunk is its source."""
    root = Path(root_text).resolve()
    walked = naive_walk(root)
    files = [(rel, size, naive_hash(path, size)) for path, rel, size in walked]
    sources: dict[str, tuple[Path, int, int]] = {}
    for (path, _, _), (_, _, chunks) in zip(walked, files, strict=True):
        offset = 0
        for digest, size in chunks:
            sources.setdefault(digest, (path, offset, size))
            offset += size
    return files, sources


def naive_read(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(size)


async def naive_push(server: Emulator, root_text: str) -> Run:
    started = time.perf_counter()
    files, sources = naive_scan(root_text)  # blocking, on the event loop, like the reference
    scanned = time.perf_counter()
    unique = list(sources)
    async with RoostClient(token=server.token, api_url=server.url, timeout=120) as http:
        missing: list[str] = []
        for i in range(0, len(unique), 900):
            response = await http.request(
                "/api/chunks/check",
                method="POST",
                body={"siteId": server.site_id, "hashes": unique[i : i + 900]},
            )
            missing += response.data["missing"]
        urls: dict[str, str] = {}
        for i in range(0, len(missing), 900):
            response = await http.request(
                "/api/chunks/upload-urls",
                method="POST",
                body={"siteId": server.site_id, "hashes": missing[i : i + 900]},
            )
            urls.update(response.data["urls"])
        checked = time.perf_counter()
        queue = list(reversed(missing))
        uploaded = [0, 0]
        async with httpx.AsyncClient(timeout=120) as storage:

            async def worker() -> None:
                while queue:
                    digest = queue.pop()
                    path, offset, size = sources[digest]
                    data = naive_read(path, offset, size)  # blocking, on the event loop
                    response = await storage.put(
                        urls[digest], content=data, headers={"Content-Type": "application/octet-stream"}
                    )
                    if response.status_code >= 300:
                        raise RuntimeError(f"PUT {digest} -> {response.status_code}")
                    uploaded[0] += 1
                    uploaded[1] += size

            async with anyio.create_task_group() as group:
                for _ in range(min(NAIVE_WORKERS, len(missing))):
                    group.start_soon(worker)
        upload_done = time.perf_counter()
        version = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.owlette.version.v1+json",
            "config": {"producer": "bench naive", "createdAt": datetime.now(timezone.utc).isoformat()},
            "files": [
                {"path": rel, "size": size, "chunks": [{"hash": h, "size": s} for h, s in chunks]}
                for rel, size, chunks in sorted(files)
            ],
        }
        await http.request(
            f"/api/roosts/{ROOST_ID}/versions",
            method="POST",
            body={"siteId": server.site_id, "version": version},
        )
    return Run(
        seconds=time.perf_counter() - started,
        uploaded_bytes=uploaded[1],
        uploaded_chunks=uploaded[0],
        scan_seconds=scanned - started,
        upload_seconds=upload_done - checked,
    )


# ---------------------------------------------------------------------------------------------
# scenarios and report


def dataset_bytes(root: str) -> tuple[int, int]:
    total = count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += os.path.getsize(os.path.join(dirpath, name))
            count += 1
    return total, count


def mbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6 if seconds > 0 else float("inf")


def line(label: str, run: Run, size: int) -> str:
    return (
        f"  {label:<24} {run.seconds:8.2f} s  {mbps(size, run.seconds):8.1f} MB/s"
        f"   scan {run.scan_seconds:6.2f} s  upload {run.upload_seconds:6.2f} s"
        f"  ({run.uploaded_chunks} chunks, {run.uploaded_bytes / 1e6:.1f} MB)"
    )


def cold_and_repush(kind: str, root: str, faults: str = "") -> tuple[Run, Run]:
    push = engine_push if kind == "engine" else naive_push
    with emulator(faults) as server:
        cold = asyncio.run(push(server, root))
        again = asyncio.run(push(server, root))
    return cold, again


def cold(kind: str, root: str, faults: str) -> Run:
    push = engine_push if kind == "engine" else naive_push
    with emulator(faults) as server:
        return asyncio.run(push(server, root))


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda run: run.seconds)


def compare_pairs(root: str, repeat: int) -> dict[str, tuple[Run, Run]]:
    """Cold push + re-push for both pushers, ``repeat`` rounds in alternating order; best of each."""
    results: dict[str, list[tuple[Run, Run]]] = {"engine": [], "naive": []}
    for round_index in range(repeat):
        order = ("engine", "naive") if round_index % 2 == 0 else ("naive", "engine")
        for kind in order:
            results[kind].append(cold_and_repush(kind, root))
    return {
        kind: (best([pair[0] for pair in pairs]), best([pair[1] for pair in pairs]))
        for kind, pairs in results.items()
    }


def compare_cold(root: str, faults: str, repeat: int) -> dict[str, Run]:
    results: dict[str, list[Run]] = {"engine": [], "naive": []}
    for round_index in range(repeat):
        order = ("engine", "naive") if round_index % 2 == 0 else ("naive", "engine")
        for kind in order:
            results[kind].append(cold(kind, root, faults))
    return {kind: best(runs) for kind, runs in results.items()}


def _exit_on_term(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not interrupt the cleanup
    sys.exit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", default="datasets")
    parser.add_argument("--scale", type=float, default=1.0, help="dataset scale (gen_datasets.py --scale)")
    parser.add_argument("--only", choices=DATASETS, action="append", help="run only these datasets")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="storage latency of the +latency runs")
    parser.add_argument(
        "--cap-mbps", type=float, default=100.0, help="storage bandwidth cap of the media run"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds per comparison, alternating order; best of each"
    )
    parser.add_argument("--no-latency", action="store_true", help="skip the +latency runs")
    parser.add_argument("--no-cap", action="store_true", help="skip the capped media run")
    args = parser.parse_args(argv)
    names = args.only or list(DATASETS)
    for name in names:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "gen_datasets.py"),
                args.dir,
                "--scale",
                str(args.scale),
                "--only",
                name,
            ],
            check=True,
        )
    from roost import chunker

    signal.signal(signal.SIGTERM, _exit_on_term)  # so the running emulator is stopped and cleaned up
    print(f"chunker backend: {chunker.backend()}, {os.cpu_count()} CPUs, scale {args.scale}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    summary: list[str] = []
    for name in names:
        root = os.path.join(args.dir, name)
        size, count = dataset_bytes(root)
        chunker.scan_directory(root)  # warm the page cache: every scenario starts from the same state
        print(f"\n{name}: {count} files, {size / 1e6:.1f} MB")
        pairs = compare_pairs(root, args.repeat)
        engine_cold, engine_again = pairs["engine"]
        naive_cold, naive_again = pairs["naive"]
        print(line("engine cold", engine_cold, size))
        print(line("engine re-push", engine_again, size))
        print(line("naive cold", naive_cold, size))
        print(line("naive re-push", naive_again, size))
        ratios = (
            f"{name}: cold {naive_cold.seconds / engine_cold.seconds:.2f}x, "
            f"re-push {naive_again.seconds / engine_again.seconds:.2f}x"
        )
        if not args.no_latency:
            faults = f"storage_latency_ms={args.latency_ms:g}"
            slow = compare_cold(root, faults, args.repeat)
            print(line(f"engine cold +{args.latency_ms:g}ms", slow["engine"], size))
            print(line(f"naive cold +{args.latency_ms:g}ms", slow["naive"], size))
            ratio = slow["naive"].seconds / slow["engine"].seconds
            ratios += f", cold +{args.latency_ms:g} ms storage latency {ratio:.2f}x"
            if name == "touchdesigner":
                ratios += f" (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})"
        print(f"  ratio naive/engine: {ratios.split(': ', 1)[1]}")
        summary.append(ratios)
        if name == "media" and not args.no_cap:
            capped = best(
                [
                    cold("engine", root, f"storage_bandwidth_mbps={args.cap_mbps:g}")
                    for _ in range(args.repeat)
                ]
            )
            rate = mbps(capped.uploaded_bytes, capped.upload_seconds)
            share = rate / args.cap_mbps
            print(line(f"engine cold, {args.cap_mbps:g} MB/s cap", capped, size))
            verdict = "met" if share >= 0.9 else "NOT met"
            note = f"media capped at {args.cap_mbps:g} MB/s: upload phase {rate:.1f} MB/s = {share:.0%} of the cap"
            print(f"  {note} (target >= 90 %: {verdict})")
            summary.append(f"{note} (target >= 90 %: {verdict})")
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("summary (naive time / engine time, same run):")
    for item in summary:
        print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
