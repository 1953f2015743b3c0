"""The emulator in a process of its own, for the bench scripts (so its work does not share their GIL).

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

__all__ = ["EMULATOR_DIR", "Emulator", "emulator"]

EMULATOR_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


@dataclass
class Emulator:
    url: str
    token: str
    site_id: str
    pid: int

    def cpu_seconds(self) -> float:
        """The emulator process's user + system CPU so far (Linux /proc; 0 elsewhere)."""
        try:
            with open(f"/proc/{self.pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
