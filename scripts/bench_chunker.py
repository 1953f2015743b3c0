"""Chunker benchmark: native vs pure-Python fallback vs a naive baseline, as ratios from one run.

    python scripts/gen_datasets.py datasets          # once (or with --scale 0.05 for a quick run)
    python scripts/bench_chunker.py datasets [--repeat 3] [--only media] [--modes]

For each dataset (warm page cache, best of ``--repeat`` runs):

- ``native``: ``roost.chunker.scan_directory`` on the Rust core;
- ``fallback``: the same call with ``ROOST_NATIVE=0``;
- ``naive``: the reference SDKs' approach: pathlib walk, one file at a time, 64 KiB reads;
- ``ceiling``: read + SHA-256 of every chunk of the dataset and nothing else (no walk, no
  bookkeeping, no result objects), on one thread per core, measured two ways, the faster
  counting: ``hashlib`` (OpenSSL) reading 1 MiB pieces into reused buffers, and the native
  core's chunk reader (``_native.hash_chunks``). For large files this is what the hardware allows.

The hash cache (``--no-cache`` skips this): ``warm``, a re-scan of the unchanged tree with the
cache (native and fallback; the cache in a temporary ``ROOST_CACHE_DIR``, primed by one scan), is
compared with ``native`` (a cold scan, ``cache=False``) and with ``find DIR -type f -printf '%s
%T@\n'`` (one ``stat`` per file: what a warm scan is bounded by), on the same tree in the same run;
``load`` is the time to read and index the cache file, and ``warm_fast_native`` a warm native
re-scan with ``verify="fast"`` (every file read once for its xxh3-128 digest).

It checks that the three implementations produce the same hashes, prints times and the ratios
the targets are stated in, and the peak RSS of a native scan of ``many-tiny`` (measured in a
fresh subprocess with ``resource.getrusage``). ``--modes`` also times the native read paths
(reused buffer with 64 KiB / 256 KiB / 1 MiB / 4 MiB pieces, and mmap).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import roost.chunker as chunker
from roost.chunker import _backend as _chunker_native
from roost.chunker import _hash_cache

CHUNK = 4 * 1024 * 1024
DATASETS = ("media", "touchdesigner", "many-tiny")
TARGETS = {
    "native/ceiling on media": ("media", "native/ceiling", 0.90),
    "native/fallback on many-tiny": ("many-tiny", "native/fallback", 2.5),
    "native/naive on many-tiny": ("many-tiny", "native/naive", 8.0),
    "fallback/naive on media": ("media", "fallback/naive", 2.0),
    "cold/warm-cache on touchdesigner": ("touchdesigner", "cold/warm", 10.0),
    "find/warm-cache on touchdesigner": ("touchdesigner", "find/warm", 0.5),
    "cold/warm-cache on media": ("media", "cold/warm", 100.0),
}
MEMORY_TARGET_MIB = 80.0
LOAD_WARNING = 1.0  # a 1-minute load average above this while measuring: the figures are suspect

Result = dict[str, tuple[int, tuple[str, ...]]]


# ---------------------------------------------------------------------------------------------
# the implementations under test


def run_native(root: str) -> list[chunker.ChunkedFileEntry]:
    os.environ.pop("ROOST_NATIVE", None)
    if chunker.backend() != "native":
        raise RuntimeError("the native extension is not available")
    return chunker.scan_directory(root, cache=False)


def run_fallback(root: str) -> list[chunker.ChunkedFileEntry]:
    os.environ["ROOST_NATIVE"] = "0"
    try:
        return chunker.scan_directory(root, cache=False)
    finally:
        os.environ.pop("ROOST_NATIVE", None)


def run_warm(root: str, backend: str, verify: str = "stat") -> list[chunker.ChunkedFileEntry]:
    """A re-scan with the hash cache (primed beforehand): nothing is SHA-256-hashed (with
    ``verify="fast"`` every file is read once for its xxh3-128 digest)."""
    if backend == "python":
        os.environ["ROOST_NATIVE"] = "0"
    try:
        entries, report = chunker._scan_tree(root, cache=True, verify=verify)  # type: ignore[arg-type]
    finally:
        os.environ.pop("ROOST_NATIVE", None)
    if report.files_read:
        raise RuntimeError(f"the warm scan of {root} read {report.files_read} files")
    return entries


def run_find(root: str) -> int:
    """``find DIR -type f -printf '%s %T@\\n'``: one stat per file, the floor of a warm scan."""
    out = subprocess.run(
        ["find", root, "-type", "f", "-printf", "%s %T@\\n"], check=True, capture_output=True
    ).stdout
    return out.count(b"\n")


def run_cache_load(root: str) -> int:
    snap = _hash_cache.load(_hash_cache.cache_path(root), chunker.CHUNK_SIZE_BYTES)
    if snap is None:
        raise RuntimeError("no usable hash cache")
    return len(snap.index)


def cache_rows(root: str, repeat: int, cold_s: float, want: Result) -> dict[str, Any]:
    """Warm-cache re-scans against the cold native scan and ``find``, in one interleaved run."""
    # writes the cache, with the content digests verify="fast" checks (kept by the plain scans)
    run_warm_prime = chunker.scan_directory(root, cache=True, verify="fast")
    del run_warm_prime
    t = interleaved(
        {
            "warm_native": partial(run_warm, root, "native"),
            "warm_fast_native": partial(run_warm, root, "native", "fast"),
            "warm_fallback": partial(run_warm, root, "python"),
            "find": partial(run_find, root),
            "load": partial(run_cache_load, root),
        },
        max(repeat, 5),
    )
    for key in ("warm_native", "warm_fast_native", "warm_fallback"):
        if as_result(t[key][1]) != want:
            raise RuntimeError(f"{root}: the {key} scan DISAGREES with the cold one")
    warm_s, find_s = t["warm_native"][0], t["find"][0]
    return {
        "warm_native_s": warm_s,
        "warm_fast_native_s": t["warm_fast_native"][0],
        "warm_fallback_s": t["warm_fallback"][0],
        "find_s": find_s,
        "cache_load_s": t["load"][0],
        "cold/warm": cold_s / warm_s,
        "find/warm": find_s / warm_s,
    }


def as_result(entries: list[chunker.ChunkedFileEntry]) -> Result:
    return {e.path: (e.size, tuple(c.hash for c in e.chunks)) for e in entries}


def run_naive(root: str) -> Result:
    """The reference SDKs' algorithm: recursive pathlib walk, sequential 64 KiB reads."""
    base = Path(root).resolve()
    skip = {".git", "node_modules"}
    files: list[Path] = []

    def walk(d: Path) -> None:
        for p in d.iterdir():
            if p.name in skip:
                continue
            if p.is_symlink():
                try:
                    target = p.resolve(strict=True)
                except OSError:
                    continue
                if target != base and base not in target.parents:
                    continue
            if p.is_dir():
                walk(p)
            elif p.is_file() and p.stat().st_size > 0:
                files.append(p)

    walk(base)
    files.sort()
    out: Result = {}
    for p in files:
        size = p.stat().st_size
        hashes: list[str] = []
        with open(p, "rb") as f:
            left = size
            while left > 0:
                want = min(CHUNK, left)
                h = hashlib.sha256()
                got = 0
                while got < want:
                    block = f.read(min(65536, want - got))
                    if not block:
                        break
                    h.update(block)
                    got += len(block)
                hashes.append(h.hexdigest())
                left -= got
                if got < want:
                    break
        out[p.relative_to(base).as_posix()] = (size, tuple(hashes))
    return out


def chunk_list(root: str) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            size = os.path.getsize(p)
            out.extend((p, off, min(CHUNK, size - off)) for off in range(0, size, CHUNK))
    return out


def run_ceiling_hashlib(chunks: list[tuple[str, int, int]]) -> None:
    """Read + hash every chunk with hashlib (OpenSSL) on one thread per core, nothing else.

    Each chunk is read in 1 MiB pieces into a reused buffer and hashed while in cache.
    """
    threads = os.cpu_count() or 1
    piece = 1024 * 1024
    local = threading.local()

    def one(item: tuple[str, int, int]) -> str:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = memoryview(bytearray(piece))
        path, off, size = item
        h = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY)
        try:
            done = 0
            while done < size:
                n = os.preadv(fd, [buf[: min(piece, size - done)]], off + done)
                if n == 0:
                    break
                h.update(buf[:n])
                done += n
        finally:
            os.close(fd)
        return h.hexdigest()

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, chunks, chunksize=max(1, len(chunks) // (threads * 64))):
            pass


def run_ceiling_native(chunks: list[tuple[str, int, int]]) -> None:
    """Read + hash every chunk with the native core's reader on every core, nothing else."""
    native = _chunker_native.loaded()
    if native is None:
        raise RuntimeError("the native extension is not available")
    native.hash_chunks(chunks)


# ---------------------------------------------------------------------------------------------
# measuring


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, Any]]:
    """Best time (and last value) of each function over ``repeat`` rounds that run each once.

    Rounds interleave the contenders, so that a burst of load on a shared machine hits them
    alike; the minimum filters out what remains.
    """
    best: dict[str, float] = dict.fromkeys(fns, float("inf"))
    values: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            values.pop(name, None)
            gc.collect()
            t0 = time.perf_counter()
            values[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: (best[name], values[name]) for name in fns}


def warm(root: str) -> tuple[int, int]:
    files = total = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while block := f.read(1 << 20):
                    total += len(block)
            files += 1
    return files, total


_RSS_PROBE = """
import resource, sys

def peak_kib():
    # VmHWM (Linux) starts afresh at exec; ru_maxrss may still hold the forking parent's peak.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

import roost.chunker as c
base = peak_kib()
entries = c.scan_directory(sys.argv[1], cache=False)
print(base, peak_kib(), len(entries), c.backend())
"""


def peak_rss_mib(root: str, backend: str) -> tuple[float, float]:
    """(peak RSS of a fresh interpreter that imported roost, peak RSS after a scan), in MiB."""
    env = dict(os.environ)
    if backend == "python":
        env["ROOST_NATIVE"] = "0"
    else:
        env.pop("ROOST_NATIVE", None)
    out = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, root], check=True, capture_output=True, text=True, env=env
    ).stdout.split()
    if out[3] != backend:
        raise RuntimeError(f"expected the {backend} backend, got {out[3]}")
    return int(out[0]) / 1024, int(out[1]) / 1024


def native_modes(root: str, repeat: int) -> dict[str, float]:
    native = _chunker_native.loaded()
    assert native is not None
    out: dict[str, float] = {}
    variants: list[tuple[str, dict[str, Any]]] = [
        ("buffer 64K", {"piece_kib": 64}),
        ("buffer 256K (default)", {"piece_kib": 256}),
        ("buffer 1M", {"piece_kib": 1024}),
        ("buffer 4M", {"piece_kib": 4096}),
        ("mmap", {"mmap": True}),
    ]

    def once(kw: dict[str, Any]) -> None:
        job = native.ScanJob(root, [], **kw)
        while job.wait_walk(1.0) is None:
            pass
        job.start_hashing()
        while job.next_batch(1.0) is not None:
            pass

    times = interleaved({name: partial(once, kw) for name, kw in variants}, repeat)
    for name, (seconds, _) in times.items():
        out[name] = seconds
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", default="datasets")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=DATASETS, action="append")
    parser.add_argument("--modes", action="store_true", help="also time the native read paths")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--no-cache", action="store_true", help="skip the warm hash-cache rows")
    args = parser.parse_args(argv)
    if not args.no_cache:
        os.environ["ROOST_CACHE_DIR"] = tempfile.mkdtemp(prefix="roost-bench-cache-")

    print(
        f"cores: {os.cpu_count()}, native SHA extensions: {dict(native_cpu())}, repeat: best of {args.repeat}"
    )
    report: dict[str, Any] = {}
    header = f"{'dataset':<14}{'files':>8}{'GB':>7}{'native':>9}{'fallback':>10}{'naive':>8}{'ceiling':>9}"
    print(header + "   native/fallback  native/naive  fallback/naive  native/ceiling")
    for name in args.only or DATASETS:
        root = os.path.realpath(os.path.join(args.dir, name))
        if not os.path.isdir(root):
            print(f"{name}: missing, run scripts/gen_datasets.py {args.dir}", file=sys.stderr)
            return 2
        nfiles, nbytes = warm(root)
        chunks = chunk_list(root)
        load_before = load_average()
        t = interleaved(
            {
                "native": partial(run_native, root),
                "fallback": partial(run_fallback, root),
                "naive": partial(run_naive, root),
                "ceiling_hashlib": partial(run_ceiling_hashlib, chunks),
                "ceiling_native": partial(run_ceiling_native, chunks),
            },
            args.repeat,
        )
        t_native, e_native = t["native"]
        t_fallback, e_fallback = t["fallback"]
        t_naive, r_naive = t["naive"]
        t_ceiling_py = t["ceiling_hashlib"][0]
        t_ceiling_rs = t["ceiling_native"][0]
        t_ceiling = min(t_ceiling_py, t_ceiling_rs)
        r_native, r_fallback = as_result(e_native), as_result(e_fallback)
        del e_native, e_fallback, t
        if r_native != r_fallback:
            print(f"{name}: native and fallback DISAGREE", file=sys.stderr)
            return 1
        if {k: v for k, v in r_native.items() if v[0] > 0} != r_naive:
            print(f"{name}: native and the naive baseline DISAGREE", file=sys.stderr)
            return 1
        row: dict[str, Any] = {
            "files": nfiles,
            "bytes": nbytes,
            "native_s": t_native,
            "fallback_s": t_fallback,
            "naive_s": t_naive,
            "ceiling_s": t_ceiling,
            "ceiling_hashlib_s": t_ceiling_py,
            "ceiling_native_reader_s": t_ceiling_rs,
            "native/fallback": t_fallback / t_native,
            "native/naive": t_naive / t_native,
            "fallback/naive": t_naive / t_fallback,
            "native/ceiling": t_ceiling / t_native,
        }
        report[name] = row
        print(
            f"{name:<14}{nfiles:>8}{nbytes / 1e9:>7.2f}{t_native:>8.3f}s{t_fallback:>9.3f}s{t_naive:>7.3f}s"
            f"{t_ceiling:>8.3f}s   {row['native/fallback']:>14.2f}x {row['native/naive']:>12.2f}x "
            f"{row['fallback/naive']:>14.2f}x {row['native/ceiling']:>14.0%}"
        )
        print(
            f"    ceiling: hashlib {t_ceiling_py:.3f}s, native reader {t_ceiling_rs:.3f}s (the faster counts)"
        )
        load_after = load_average()
        row["load_average"] = [load_before, load_after]
        if max(load_before, load_after) > LOAD_WARNING:
            print(
                f"    WARNING: 1-minute load average {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} "
                "cores: other work competed for the CPU, which hurts the multi-threaded contenders most"
            )
        if not args.no_cache:
            cache = cache_rows(root, args.repeat, t_native, r_native)
            row.update(cache)
            print(
                f"    hash cache: cold native {t_native:.3f}s, warm native {cache['warm_native_s']:.4f}s "
                f"({cache['cold/warm']:.1f}x faster; find {cache['find_s']:.4f}s, warm/find "
                f"{1 / cache['find/warm']:.2f}x), warm fallback {cache['warm_fallback_s']:.4f}s, "
                f'cache load {cache["cache_load_s"] * 1000:.1f} ms; warm native verify="fast" '
                f"{cache['warm_fast_native_s']:.4f}s"
            )
        if args.modes:
            modes = native_modes(root, args.repeat)
            report[name]["native_modes_s"] = modes
            print("    native read paths: " + ", ".join(f"{k} {v:.3f}s" for k, v in modes.items()))

    print()
    for label, (ds, key, goal) in TARGETS.items():
        if ds in report:
            if key not in report[ds]:
                continue
            value = report[ds][key]
            shown = f"{value:.0%}" if key == "native/ceiling" else f"{value:.2f}x"
            goal_shown = f"{goal:.0%}" if key == "native/ceiling" else f"{goal}x"
            print(f"target {label}: {shown} (goal >= {goal_shown}) {'OK' if value >= goal else 'MISSED'}")
    if "many-tiny" in report:
        root = os.path.realpath(os.path.join(args.dir, "many-tiny"))
        base, peak = peak_rss_mib(root, "native")
        _, fb_peak = peak_rss_mib(root, "python")
        report["many-tiny"]["peak_rss_mib"] = {"native": peak, "fallback": fb_peak, "interpreter": base}
        verdict = "OK" if peak < MEMORY_TARGET_MIB else "MISSED"
        print(
            f"target peak RSS of a native scan of many-tiny: {peak:.1f} MiB (goal < {MEMORY_TARGET_MIB:.0f}) "
            f"{verdict}; interpreter + roost alone {base:.1f} MiB; fallback {fb_peak:.1f} MiB"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


def native_cpu() -> list[tuple[str, bool]]:
    native = _chunker_native.loaded()
    return native.cpu_features() if native is not None else []


if __name__ == "__main__":
    sys.exit(main())
