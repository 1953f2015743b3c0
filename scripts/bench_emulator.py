"""Measure the emulator alone: its storage plane, and the check + publish of a 20,000-file version.

    .venv/bin/python scripts/bench_emulator.py [--small 20000] [--large 600] [--procs 2] [--conns 8]

The emulator runs in its own process (``python -m roost.testing``) with its data on /dev/shm when
it exists, so the figures are the server's, not the disk's. The load generator is lean: worker
processes, each with a few keep-alive raw sockets, one request in flight per socket (no
pipelining). Small bodies are precomputed bytes; every 4 MiB PUT stores a new object, as a push
does: a body is one of 16 shared 4 MiB-16 B files on /dev/shm, sent with sendfile (the kernel
hands its pages to the socket), followed by a 16-byte tail of its own. Each storage line also
gives the CPU spent per PUT by the emulator process and by the generator's processes, and the
check and publish lines the emulator's CPU: on a shared machine the wall time also measures
whoever else runs. Targets (issue 15): >= 3,000 small PUT/s and >= 1 GB/s of 4 MiB PUTs while
every body's SHA-256 is verified; a publish of 20,000 files under 0.25 s and a check of their
hashes well under 0.23 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import multiprocessing.queues
import multiprocessing.synchronize
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from bench_server import process_cpu_seconds

CHUNK = 4 * 1024 * 1024
MEDIA_TYPE = "application/vnd.owlette.version.v1+json"


@dataclass(frozen=True)
class Emulator:
    url: str
    token: str
    site_id: str
    pid: int

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Roost-Version": "2026-04-22"}


@contextmanager
def emulator() -> Iterator[Emulator]:
    parent = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="roost-bench-emu-", dir=parent) as data:
        process = subprocess.Popen(
            [sys.executable, "-m", "roost.testing", "--port", "0", "--data", data],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            fields: dict[str, str] = {}
            for line in process.stdout:
                match = re.match(r"\s+(base URL|site id|token)\s*:\s*(\S+)", line)
                if match:
                    fields[match.group(1)] = match.group(2)
                if len(fields) == 3:
                    break
            yield Emulator(fields["base URL"], fields["token"], fields["site id"], process.pid)
        finally:
            process.terminate()
            process.communicate(timeout=20)


@dataclass
class CpuMeter:
    """CPU-seconds spent by the emulator process and by the load generator's processes."""

    server_s: float = 0.0
    generator_s: float = 0.0

    def describe(self, count: int) -> str:
        return (
            f"CPU per PUT: server {self.server_s / count * 1e3:.2f} ms,"
            f" generator {self.generator_s / count * 1e3:.2f} ms"
        )


@contextmanager
def cpu_meter(emu: Emulator) -> Iterator[CpuMeter]:
    meter = CpuMeter()
    server = process_cpu_seconds(emu.pid)
    # the generator's worker processes are reaped by join(), so they count as children here
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    yield meter
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    meter.server_s = process_cpu_seconds(emu.pid) - server
    meter.generator_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def upload_urls(emu: Emulator, hashes: list[str]) -> dict[str, str]:
    urls: dict[str, str] = {}
    with httpx.Client(base_url=emu.url, headers=emu.headers(), timeout=120) as client:
        for start in range(0, len(hashes), 1000):
            body = {"siteId": emu.site_id, "hashes": hashes[start : start + 1000]}
            response = client.post("/api/chunks/upload-urls", json=body)
            response.raise_for_status()
            urls.update(response.json()["urls"])
    return urls


def _head(url: str, length: int) -> bytes:
    parts = urlsplit(url)
    return (
        f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


# A body is the bytes themselves (small PUTs), or a file of shared bytes followed by a tail of
# its own (4 MiB PUTs: every PUT is a new object, as in a push, without 2 GB of distinct files).
Body = bytes | tuple[str, bytes]


def _send(sock: socket.socket, url: str, body: Body, files: dict[str, tuple[int, int]]) -> None:
    if isinstance(body, bytes):
        sock.sendall(_head(url, len(body)) + body)
        return
    path, tail = body
    if path not in files:
        fd = os.open(path, os.O_RDONLY)
        files[path] = (fd, os.fstat(fd).st_size)
    fd, size = files[path]
    sock.sendall(_head(url, size + len(tail)))
    # sendfile from /dev/shm: the kernel hands the file's pages to the socket, so the generator
    # spends little CPU on 4 MiB bodies and the figure is the server's
    offset = 0
    while offset < size:
        offset += os.sendfile(sock.fileno(), fd, offset, size - offset)
    sock.sendall(tail)


def _worker(
    url: str,
    conns: int,
    jobs: list[tuple[str, Body]],
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.queues.SimpleQueue[int],
) -> None:
    """Send every (url, body) PUT over ``conns`` keep-alive sockets; reports the count of 200s."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    selector = selectors.DefaultSelector()
    pending = list(reversed(jobs))
    ok = 0
    sockets = []
    for _ in range(min(conns, len(jobs))):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
    barrier.wait()
    state: dict[socket.socket, bytearray] = {}
    files: dict[str, tuple[int, int]] = {}
    for sock in sockets:
        if pending:
            target, body = pending.pop()
            _send(sock, target, body, files)
            state[sock] = bytearray()
            selector.register(sock, selectors.EVENT_READ)
    while state:
        for key, _ in selector.select():
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            sock = ready
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("server closed a connection")
            buffer = state[sock]
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                continue
            match = re.search(rb"content-length: *(\d+)", bytes(buffer[:end]), re.I)
            length = int(match.group(1)) if match else 0
            if len(buffer) < end + 4 + length:
                continue
            if buffer.startswith(b"HTTP/1.1 200"):
                ok += 1
            if pending:
                target, body = pending.pop()
                state[sock] = bytearray()
                _send(sock, target, body, files)
            else:
                selector.unregister(sock)
                del state[sock]
    for sock in sockets:
        sock.close()
    for fd, _ in files.values():
        os.close(fd)
    results.put(ok)


def put_all(emu: Emulator, jobs: list[tuple[str, Body]], procs: int, conns: int) -> tuple[float, int]:
    """Seconds to PUT every job with ``procs`` client processes, and how many answered 200."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(procs + 1, timeout=120)
    results: multiprocessing.queues.SimpleQueue[int] = ctx.SimpleQueue()
    workers = [
        ctx.Process(target=_worker, args=(emu.url, conns, jobs[i::procs], barrier, results), daemon=True)
        for i in range(procs)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join(timeout=300)
    elapsed = time.perf_counter() - started
    counts = [results.get() for worker in workers if worker.exitcode == 0]
    return elapsed, sum(counts)


def bench_small(emu: Emulator, count: int, procs: int, conns: int) -> list[bytes]:
    bodies = [os.urandom(1024) for _ in range(count)]
    hashes = [hashlib.sha256(b).hexdigest() for b in bodies]
    urls = upload_urls(emu, hashes)
    jobs: list[tuple[str, Body]] = [(urls[h], b) for h, b in zip(hashes, bodies, strict=True)]
    with cpu_meter(emu) as cpu:
        elapsed, ok = put_all(emu, jobs, procs, conns)
    print(
        f"storage small PUTs (1 KiB): {count / elapsed:,.0f} PUT/s ({count} in {elapsed:.2f} s, {ok} ok;"
        f" {cpu.describe(count)})"
    )
    return bodies


def bench_large(emu: Emulator, count: int, procs: int, conns: int) -> None:
    bases = max(procs * conns, 8)
    tail_size = 16
    parent = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="roost-bench-bodies-", dir=parent) as folder:
        paths: list[str] = []
        states = []
        for index in range(bases):
            base = os.urandom(CHUNK - tail_size)
            states.append(hashlib.sha256(base))
            paths.append(os.path.join(folder, f"base{index}"))
            with open(paths[-1], "wb") as handle:
                handle.write(base)
        bodies: list[tuple[str, bytes]] = []
        hashes: list[str] = []
        for index in range(count):
            tail = index.to_bytes(tail_size, "big")
            state = states[index % bases].copy()
            state.update(tail)
            hashes.append(state.hexdigest())
            bodies.append((paths[index % bases], tail))
        urls = upload_urls(emu, hashes)
        jobs: list[tuple[str, Body]] = [(urls[h], b) for h, b in zip(hashes, bodies, strict=True)]
        with cpu_meter(emu) as cpu:
            elapsed, ok = put_all(emu, jobs, procs, min(conns, 4))
    rate = count * CHUNK / elapsed / 1e9
    print(f"storage 4 MiB PUTs: {rate:.2f} GB/s ({count} in {elapsed:.2f} s, {ok} ok; {cpu.describe(count)})")
    # The bound where the emulator and the load generator share the cores: each PUT needs this
    # much CPU in all, and no schedule does better than every core busy all the time.
    cores = os.cpu_count() or 1
    per_put = (cpu.server_s + cpu.generator_s) / count
    if per_put > 0:
        print(
            f"  CPU bound: {per_put * 1e3:.2f} ms a PUT on {cores} cores caps 4 MiB PUTs at"
            f" {cores / per_put * CHUNK / 1e9:.2f} GB/s; 1 GB/s needs at most"
            f" {cores / (1e9 / CHUNK) * 1e3:.2f} ms a PUT"
        )


def bench_publish(emu: Emulator, bodies: list[bytes]) -> None:
    files = []
    hashes = []
    for index, body in enumerate(bodies[:20_000]):
        digest = hashlib.sha256(body).hexdigest()
        hashes.append(digest)
        files.append(
            {
                "path": f"dir{index // 500:03d}/file{index:05d}.bin",
                "size": len(body),
                "chunks": [{"hash": digest, "size": len(body)}],
            }
        )
    config = {"producer": "bench", "createdAt": "2026-04-22T15:30:00.000Z"}
    version: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE,
        "config": config,
        "files": files,
    }
    with httpx.Client(base_url=emu.url, headers=emu.headers(), timeout=120) as client:
        # server CPU-seconds next to the wall time: on a shared machine the wall time also
        # measures whoever else is running
        cpu = process_cpu_seconds(emu.pid)
        started = time.perf_counter()
        for start in range(0, len(hashes), 900):
            response = client.post(
                "/api/chunks/check", json={"siteId": emu.site_id, "hashes": hashes[start : start + 900]}
            )
            response.raise_for_status()
            assert response.json()["missing"] == []
        check = time.perf_counter() - started
        check_cpu = process_cpu_seconds(emu.pid) - cpu
        text = json.dumps({"siteId": emu.site_id, "version": version})
        cpu = process_cpu_seconds(emu.pid)
        started = time.perf_counter()
        response = client.post(
            "/api/roosts/bench-roost-01/versions", content=text, headers={"Content-Type": "application/json"}
        )
        publish = time.perf_counter() - started
        publish_cpu = process_cpu_seconds(emu.pid) - cpu
        response.raise_for_status()
        # what the server still spends once it has answered (work it deferred), in a quiet second
        time.sleep(1.0)
        after_cpu = process_cpu_seconds(emu.pid) - cpu - publish_cpu
        config["createdAt"] = "2026-04-23T15:30:00.000Z"
        text = json.dumps({"siteId": emu.site_id, "version": version})
        started = time.perf_counter()
        client.post(
            "/api/roosts/bench-roost-01/versions", content=text, headers={"Content-Type": "application/json"}
        ).raise_for_status()
        second = time.perf_counter() - started
        referrers = [_referrers(client, emu, hashes[len(hashes) // 2]) for _ in range(3)]
    print(
        f"check of {len(hashes)} hashes ({(len(hashes) + 899) // 900} calls): {check:.3f} s"
        f" (server CPU {check_cpu:.2f} s)"
    )
    print(
        f"publish of a {len(files)}-file version: {publish:.3f} s (server CPU {publish_cpu:.2f} s,"
        f" then {after_cpu:.2f} s after the answer; a second version: {second:.3f} s)"
    )
    print(
        "referrers of one chunk in both versions: "
        + ", then ".join(
            f"{wall * 1e3:.1f} ms (server CPU {cpu_s * 1e3:.0f} ms)" for wall, cpu_s in referrers
        )
    )


def _referrers(client: httpx.Client, emu: Emulator, digest: str) -> tuple[float, float]:
    """Wall and server CPU seconds of one ``GET /api/chunks/{digest}/referrers``."""
    cpu = process_cpu_seconds(emu.pid)
    started = time.perf_counter()
    response = client.get(f"/api/chunks/{digest}/referrers", params={"siteId": emu.site_id})
    wall = time.perf_counter() - started
    response.raise_for_status()
    assert len(response.json()["referrers"]) == 2
    return wall, process_cpu_seconds(emu.pid) - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=600)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--conns", type=int, default=8)
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}, client processes: {args.procs} x {args.conns} connections")
    with emulator() as emu:
        bodies = bench_small(emu, args.small, args.procs, args.conns)
        bench_large(emu, args.large, args.procs, args.conns)
        bench_publish(emu, bodies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
