"""What the bench scripts share: the emulator in a process of its own (so its work does not share
their GIL), a process's CPU-seconds, and a dataset's size.

``emulator(data, token)`` starts ``python -m roost.testing`` on a free port with its state in
``data`` and yields its URL and site id once it says it is up; the process is stopped on exit.
``EMULATOR_DIR`` is tmpfs where there is one: the emulator fsyncs every stored chunk, and the
disk must not set the pace of a benchmark.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "EMULATOR_DIR",
    "Emulator",
    "dataset_bytes",
    "emulator",
    "process_cpu_seconds",
    "process_cpu_times",
]

EMULATOR_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


@dataclass
class Emulator:
    url: str
    token: str
    site_id: str
    pid: int

    def cpu_seconds(self) -> float:
        """The emulator process's user + system CPU so far."""
        return process_cpu_seconds(self.pid)

    def cpu_times(self) -> tuple[float, float]:
        """The emulator process's (user, system) CPU so far."""
        return process_cpu_times(self.pid)


def process_cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU-seconds of a running process (Linux /proc; zeros elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a running process (Linux /proc; 0 elsewhere)."""
    return sum(process_cpu_times(pid))


def compile_package() -> int:
    """Write the bytecode of every ``roost`` module the way ``pip install`` does, and return how
    many modules that (re)compiled.

    A client process then measures what an installed SDK costs. Without it, a checkout whose
    environment sets ``PYTHONDONTWRITEBYTECODE`` (or whose sources just changed) compiles every
    module it imports in every client process: some 38 ms of the engine's first push, and more
    of ``import roost``, that no installed copy pays.
    """
    import compileall

    import roost

    package = os.path.dirname(roost.__file__)
    before = _bytecode_files(package)
    compileall.compile_dir(package, quiet=1)
    return len(_bytecode_files(package) - before)


def _bytecode_files(root: str) -> set[tuple[str, float]]:
    """Every ``.pyc`` under ``root`` with its modification time."""
    found: set[tuple[str, float]] = set()
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.endswith(".pyc"):
                path = os.path.join(dirpath, name)
                found.add((path, os.path.getmtime(path)))
    return found


def dataset_bytes(root: str) -> tuple[int, int]:
    """The bytes and the number of files under ``root``."""
    total = count = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += os.path.getsize(os.path.join(dirpath, name))
            count += 1
    return total, count


@contextmanager
def emulator(data: str, token: str, faults: str = "") -> Iterator[Emulator]:
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
        yield Emulator(url, token, site_id, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
