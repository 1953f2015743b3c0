"""``python -m roost.testing --data DIR``: state survives a clean restart and a hard kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ._helpers import make_version, sha

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    process: subprocess.Popen[str]
    url: str
    site_id: str
    token: str


@contextmanager
def cli(*args: str) -> Iterator[Running]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    process = subprocess.Popen(
        [sys.executable, "-m", "roost.testing", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    info: dict[str, str] = {}
    deadline = time.monotonic() + 30
    while len(info) < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        label, sep, value = line.partition(":")
        if sep and label.strip() in ("base URL", "site id", "token"):
            info[label.strip()] = value.strip()
    if len(info) < 3:
        process.kill()
        raise AssertionError(f"emulator CLI did not start: {info}")
    try:
        yield Running(process, info["base URL"], info["site id"], info["token"])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stdout.close()


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Roost-Version": "2026-04-22"}


def seed(running: Running, roost_id: str, payload: bytes) -> tuple[str, str]:
    """Upload one chunk and publish it; returns (chunk hash, version id)."""
    version, chunks = make_version({"file.bin": payload})
    digest = sha(payload)
    with httpx.Client(base_url=running.url, headers=headers(running.token)) as client:
        urls = client.post("/api/chunks/upload-urls", json={"siteId": running.site_id, "hashes": [digest]})
        assert httpx.put(urls.json()["urls"][digest], content=chunks[digest]).status_code == 200
        published = client.post(
            f"/api/roosts/{roost_id}/versions",
            json={"siteId": running.site_id, "version": version, "description": "kept"},
            headers={"Idempotency-Key": f"seed-{roost_id}"},
        )
        assert published.status_code == 201, published.text
        return digest, str(published.json()["versionId"])


def verify(running: Running, roost_id: str, digest: str, version_id: str, payload: bytes) -> None:
    with httpx.Client(base_url=running.url, headers=headers(running.token)) as client:
        roost = client.get(f"/api/roosts/{roost_id}", params={"siteId": running.site_id})
        assert roost.status_code == 200, roost.text
        assert roost.json()["currentVersionId"] == version_id
        version = client.get(f"/api/roosts/{roost_id}/versions/1", params={"siteId": running.site_id})
        assert version.json()["description"] == "kept"
        check = client.post("/api/chunks/check", json={"siteId": running.site_id, "hashes": [digest]})
        assert check.json() == {"missing": []}
        urls = client.post("/api/chunks/download-urls", json={"siteId": running.site_id, "hashes": [digest]})
        assert httpx.get(urls.json()["urls"][digest]).content == payload


@pytest.mark.slow
def test_restart_with_data_keeps_everything(tmp_path: Path) -> None:
    data = tmp_path / "state"
    payload = b"survives a restart" * 100
    with cli("--data", str(data), "--site-id", "restart-site") as first:
        digest, version_id = seed(first, "restart-roost", payload)
        first.process.send_signal(signal.SIGINT)
        assert first.process.wait(timeout=20) == 0
    with cli("--data", str(data)) as second:
        assert second.site_id == "restart-site"
        assert second.token == first.token
        verify(second, "restart-roost", digest, version_id, payload)
        # the idempotency cache survived too
        with httpx.Client(base_url=second.url, headers=headers(second.token)) as client:
            version, _ = make_version({"file.bin": payload})
            replay = client.post(
                "/api/roosts/restart-roost/versions",
                json={"siteId": second.site_id, "version": version, "description": "kept"},
                headers={"Idempotency-Key": "seed-restart-roost"},
            )
            assert replay.headers.get("idempotent-replayed") == "true"


@pytest.mark.slow
def test_hard_kill_loses_nothing_committed(tmp_path: Path) -> None:
    data = tmp_path / "state"
    payload = b"committed before the crash" * 50
    with cli("--data", str(data)) as first:
        digest, version_id = seed(first, "crash-roost", payload)
        first.process.kill()  # SIGKILL: no clean shutdown
        first.process.wait(timeout=10)
    with cli("--data", str(data)) as second:
        verify(second, "crash-roost", digest, version_id, payload)


def test_cli_rejects_an_unknown_fault_knob() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    result = subprocess.run(
        [sys.executable, "-m", "roost.testing", "--faults", "api_5xx=0.1,bogus=1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 2
    assert "unknown fault knob 'bogus'" in result.stderr
    assert "api_5xx, api_429, storage_5xx, storage_drop" in result.stderr
