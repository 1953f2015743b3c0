"""One client push for ``scripts/bench_push.py``, run in a process of its own.

    ROOST_BENCH_TOKEN=... python scripts/bench_push_client.py {engine,naive} ROOT URL SITE [--skip-unchanged]

The parent reads this process's CPU from its rusage (``os.wait4``), so everything a real client
pays (interpreter start, imports, the push, teardown) is counted, and nothing of the parent's.
The token comes from the environment, never the command line (``ps`` would show it). Prints one
JSON line: the push call's wall time, what was uploaded, the timing of the upload progress
events, and the API requests the push made.

- ``engine``: ``client.roosts.push`` (the hash cache and ledger live under ``ROOST_CACHE_DIR``,
  which the parent sets);
- ``naive``: the reference SDKs' approach: walk, hash one file at a time (64 KiB reads), check
  in sequential batches, mint every URL up front, 8 workers that read (on the event loop) and
  PUT, then publish.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import httpx

from roost import PushOptions, Roost, RoostClient
from roost.resources.roosts import PushProgressEvent

CHUNK = 4 * 1024 * 1024
READ_BLOCK = 64 * 1024
NAIVE_WORKERS = 8
CHECK_BATCH = 900
ROOST_ID = "rst_bench_push"
TOKEN_ENV = "ROOST_BENCH_TOKEN"


class Marks:
    """Progress-event timestamps, relative to the start of the push call."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.scanned: float | None = None
        # (seconds, chunks stored, bytes uploaded) of the first and the last upload event
        self.first_upload: tuple[float, int, int] | None = None
        self.last_upload: tuple[float, int, int] | None = None
        self.upload_events = 0

    def progress(self, event: PushProgressEvent) -> None:
        now = time.perf_counter() - self.started
        if event.phase == "hash" and event.file == "":
            self.scanned = now
        elif event.phase == "upload":
            mark = (now, event.uploaded, event.bytes_uploaded)
            if self.first_upload is None:
                self.first_upload = mark
            self.last_upload = mark
            self.upload_events += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "scan_seconds": self.scanned,
            "first_upload": self.first_upload,
            "last_upload": self.last_upload,
            "upload_events": self.upload_events,
        }


async def engine_push(url: str, token: str, site_id: str, root: str, skip_unchanged: bool) -> dict[str, Any]:
    requests: list[str] = []

    async def count(request: httpx.Request) -> None:
        requests.append(f"{request.method} {request.url.path}")

    async with Roost(token=token, api_url=url, timeout=120) as client:
        # Counted with an event hook on the API client alone: the SDK has no public hook, and a
        # custom transport would also move storage PUTs off the lean transport they use for real.
        client.http._http.event_hooks["request"].append(count)
        marks = Marks()
        result = await client.roosts.push(
            root,
            ROOST_ID,
            PushOptions(site_id=site_id, on_progress=marks.progress, skip_unchanged=skip_unchanged),
        )
        seconds = time.perf_counter() - marks.started
    return {
        "push_seconds": seconds,
        "uploaded_chunks": result.stats.uploaded_chunks,
        "uploaded_bytes": result.stats.uploaded_bytes,
        "unique_chunks": result.stats.unique_chunks,
        "unchanged": result.unchanged,
        "version_number": result.version_number,
        "api_requests": requests,
        **marks.as_json(),
    }


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


async def naive_push(url: str, token: str, site_id: str, root_text: str) -> dict[str, Any]:
    marks = Marks()
    files, sources = naive_scan(root_text)  # blocking, on the event loop, like the reference
    marks.scanned = time.perf_counter() - marks.started
    unique = list(sources)
    async with RoostClient(token=token, api_url=url, timeout=120) as http:
        missing: list[str] = []
        for i in range(0, len(unique), CHECK_BATCH):
            body = {"siteId": site_id, "hashes": unique[i : i + CHECK_BATCH]}
            missing += (await http.request("/api/chunks/check", method="POST", body=body)).data["missing"]
        urls: dict[str, str] = {}
        for i in range(0, len(missing), CHECK_BATCH):
            body = {"siteId": site_id, "hashes": missing[i : i + CHECK_BATCH]}
            urls.update(
                (await http.request("/api/chunks/upload-urls", method="POST", body=body)).data["urls"]
            )
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
            f"/api/roosts/{ROOST_ID}/versions", method="POST", body={"siteId": site_id, "version": version}
        )
    return {
        "push_seconds": time.perf_counter() - marks.started,
        "uploaded_chunks": uploaded[0],
        "uploaded_bytes": uploaded[1],
        "unique_chunks": len(unique),
        "unchanged": False,
        "version_number": 0,
        "api_requests": [],
        **marks.as_json(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("engine", "naive"))
    parser.add_argument("root")
    parser.add_argument("url")
    parser.add_argument("site_id")
    parser.add_argument("--skip-unchanged", action="store_true")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV)
    if not token:
        parser.error(f"set {TOKEN_ENV} to the emulator's token")
    if args.kind == "engine":
        report = asyncio.run(engine_push(args.url, token, args.site_id, args.root, args.skip_unchanged))
    else:
        report = asyncio.run(naive_push(args.url, token, args.site_id, args.root))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
