"""Every script in examples/ runs against the local emulator, as a user would run it."""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from roost import PushOptions, Roost

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from roost.testing import EmulatorServer, start_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    running = start_server()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def client(server: EmulatorServer) -> AsyncIterator[Roost]:
    async with Roost(token=server.token, api_url=server.url) as roost_client:
        yield roost_client


def example_env(server: EmulatorServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OWLETTE_")}
    env.update({"OWLETTE_TOKEN": server.token, "OWLETTE_API_URL": server.url, "OWLETTE_SITE": server.site_id})
    env.update(extra)
    return env


def run_example(
    server: EmulatorServer, name: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env or example_env(server),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_hello_world(server: EmulatorServer, tmp_path: Path) -> None:
    write_tree(tmp_path / "dist", {"index.html": b"<h1>hello</h1>", "app.js": b"console.log(1)"})
    done = run_example(server, "hello_world.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published v1 ")
    assert "2 chunks uploaded" in done.stdout

    done = run_example(server, "hello_world.py", "dist", "rst_hello_world", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "published v2 " in done.stdout  # same bytes, new createdAt: a new version, nothing re-uploaded
    assert "0 chunks uploaded" in done.stdout


def test_run_roost_workflow(server: EmulatorServer, tmp_path: Path) -> None:
    dist = write_tree(tmp_path / "dist", {"show.toe": os.urandom(3000), "media/loop.mp4": os.urandom(9000)})

    missing = run_example(server, "run_roost_workflow.py", str(dist), "--roost-id", "rst_workflow_01")
    assert missing.returncode == 1
    assert "pass --create" in missing.stderr

    done = run_example(
        server,
        "run_roost_workflow.py",
        str(dist),
        "--roost-id",
        "rst_workflow_01",
        "--create",
        "--target",
        "machine-a7f3",
        "--target",
        "machine-b",
        "--deploy",
        "--dry-run",
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in (
        "[1/6] identity",
        "[2/6] api version",
        "[3/6] site",
        "[4/6] roost",
        "[5/6] publish",
        "[6/6] deploy",
    ):
        assert label in out
    assert "created rst_workflow_01" in out
    assert "published v1" in out
    assert "planned (dry run)" in out
    assert "canary ['machine-a7f3']" in out

    (dist / "show.toe").write_bytes(os.urandom(3000))
    again = run_example(
        server,
        "run_roost_workflow.py",
        str(dist),
        "--roost-id",
        "rst_workflow_01",
        "--deploy",
        "--machine",
        "machine-b",
    )
    assert again.returncode == 0, again.stderr
    assert "v1 is current" in again.stdout
    assert "published v2" in again.stdout
    assert "started: stage canary" in again.stdout

    bad_site = run_example(
        server,
        "run_roost_workflow.py",
        str(dist),
        "--roost-id",
        "rst_workflow_01",
        env=example_env(server, OWLETTE_SITE="no-such-site"),
    )
    assert bad_site.returncode == 1
    assert "no-such-site" in bad_site.stderr


def test_nightly_sync_publishes_and_rolls_back(server: EmulatorServer, tmp_path: Path) -> None:
    builds = tmp_path / "builds"
    write_tree(builds / "lobby", {"index.html": b"lobby v1", "media/a.bin": os.urandom(2000)})
    write_tree(builds / "atrium", {"index.html": b"atrium v1"})
    report = tmp_path / "report.json"

    first = run_example(
        server,
        "nightly_sync.py",
        str(builds),
        "--require",
        "index.html",
        "--report",
        str(report),
        "--target",
        "machine-a7f3",
    )
    assert first.returncode == 0, first.stdout + first.stderr
    rows = {r["build"]: r for r in json.loads(report.read_text())}
    assert {r["status"] for r in rows.values()} == {"published"}
    assert rows["lobby"]["roost_id"] == "rst_nightly_lobby"
    assert rows["lobby"]["version_number"] == 1
    good_lobby = rows["lobby"]["version_id"]

    # the next night, the lobby build lost its entry file: published, verified, rolled back
    (builds / "lobby" / "index.html").unlink()
    (builds / "lobby" / "media" / "b.bin").write_bytes(os.urandom(100))
    (builds / "atrium" / "index.html").write_bytes(b"atrium v2")
    second = run_example(
        server,
        "nightly_sync.py",
        str(builds),
        "--require",
        "index.html",
        "--report",
        str(report),
        "--deploy",
        "--concurrency",
        "2",
    )
    assert second.returncode == 1
    rows = {r["build"]: r for r in json.loads(report.read_text())}
    assert rows["lobby"]["status"] == "rolled_back"
    assert rows["lobby"]["rolled_back_to"] == good_lobby
    assert any("index.html" in p for p in rows["lobby"]["problems"])
    assert rows["atrium"]["status"] == "published"
    assert rows["atrium"]["version_number"] == 2
    assert rows["atrium"]["rollout_id"] == rows["atrium"]["version_id"]
    assert "rolled_back" in second.stdout

    # a brand-new build that fails has nothing to roll back to
    write_tree(builds / "foyer", {"readme.txt": b"no entry file"})
    third = run_example(
        server,
        "nightly_sync.py",
        str(builds / ".."),
        "--prefix",
        "rst_other_",
        "--require",
        "x",
        "--report",
        str(report),
    )
    assert third.returncode == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listening on {port}")


@pytest.fixture
def receiver_port() -> int:
    return free_port()


@pytest.mark.anyio
async def test_webhook_receiver_verifies_deliveries(
    server: EmulatorServer, client: Roost, tmp_path: Path, receiver_port: int
) -> None:
    site = server.site_id
    url = f"http://127.0.0.1:{receiver_port}/hooks/roost"
    hook = await client.webhooks.subscribe(site_id=site, url=url, events=["version.published"])
    secret = hook["signingSecret"]
    events_file = tmp_path / "events.jsonl"
    env = example_env(
        server, WEBHOOK_SECRET=f"whsec_old_{'0' * 40},{secret}", WEBHOOK_EVENTS_FILE=str(events_file)
    )
    command = [sys.executable, str(EXAMPLES / "webhook_receiver.py"), "--port", str(receiver_port)]
    proc = await anyio.to_thread.run_sync(
        functools.partial(
            subprocess.Popen, command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    )
    try:
        await anyio.to_thread.run_sync(wait_for_port, receiver_port)

        good = await client.webhooks.probe(site, "version.published", url=url, signing_secret=secret)
        assert good["status"] == 200, good
        forged = await client.webhooks.probe(site, "version.published", url=url, signing_secret="s" * 40)
        assert forged["status"] == 401
        assert "bad_signature" in forged.get("responseBody", "")

        # a real delivery: publishing a version emits version.published to the subscription
        await client.roosts.create(site_id=site, name="hooked", roost_id="rst_hooked_01")
        dist = write_tree(tmp_path / "dist", {"index.html": b"hooked"})
        result = await client.roosts.push(dist, "rst_hooked_01", PushOptions(site_id=site))
        deadline = time.monotonic() + 20
        published: list[dict[str, object]] = []
        while time.monotonic() < deadline and not published:
            if events_file.exists():
                events = [json.loads(line) for line in events_file.read_text().splitlines()]
                published = [
                    e
                    for e in events
                    if isinstance(e.get("data"), dict) and e["data"].get("versionId") == result.version_id
                ]
            await anyio.sleep(0.2)
        assert published, "the receiver never accepted the version.published delivery"

        deliveries = await client.webhooks.deliveries(hook["id"], site)
        assert any(d["state"] == "succeeded" for d in deliveries["deliveries"])
    finally:
        proc.terminate()
        await anyio.to_thread.run_sync(functools.partial(proc.communicate, timeout=10))
