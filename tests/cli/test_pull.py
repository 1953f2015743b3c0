"""``roost pull`` end to end against the emulator (needs the pull engine of issue 13)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.testing import serve

from .conftest import ROOST_CMD, cli_env
from .test_json_contract import documented, follows_the_contract, same_shape

pytestmark = pytest.mark.anyio


async def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([*ROOST_CMD, *args], env=env, check=False)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def test_pull_rebuilds_the_version_and_check_reports_differences(
    server: Any, small_build: Path, tmp_path: Path
) -> None:
    env = cli_env(server)
    assert (
        await run_cli("push", str(small_build), "rst_pull_cli", "--create", "-q", env=env)
    ).returncode == 0
    dest = tmp_path / "restored"
    pulled = await run_cli("pull", "rst_pull_cli", str(dest), "--json", env=env)
    assert pulled.returncode == 0, pulled.stderr.decode()
    document = json.loads(pulled.stdout)
    same_shape(document, documented()["roost pull ROOST_ID DIR --json"])
    follows_the_contract(document)
    assert document["in_sync"] is True
    assert tree(dest) == tree(small_build)

    check = await run_cli("pull", "rst_pull_cli", str(dest), "--check", env=env)
    assert check.returncode == 0, check.stderr.decode()
    assert check.stdout.decode().startswith("in sync: ")

    (dest / "components" / "g0" / "c0.tox").write_bytes(b"edited")
    (dest / "extra.txt").write_text("not in the version")
    (dest / "empty.marker").unlink()
    differs = await run_cli("pull", "rst_pull_cli", str(dest), "--check", env=env)
    assert differs.returncode == 1
    lines = differs.stdout.decode().splitlines()
    assert lines[0].endswith("1 added, 1 removed, 1 changed")
    assert lines[1:] == ["  + empty.marker", "  - extra.txt", "  ~ components/g0/c0.tox"]

    again = await run_cli("pull", "rst_pull_cli", str(dest), "--delete", env=env)
    assert again.returncode == 0, again.stderr.decode()
    assert again.stdout.decode().startswith("pulled v1 ")
    assert tree(dest) == tree(small_build)


async def test_pull_shows_bytes_rate_and_eta(server: Any, small_build: Path, tmp_path: Path) -> None:
    env = cli_env(server)
    assert (
        await run_cli("push", str(small_build), "rst_pull_rate", "--create", "-q", env=env)
    ).returncode == 0
    done = await run_cli("pull", "rst_pull_rate", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr.decode()
    progress = [line for line in done.stderr.decode().splitlines() if line.startswith("roost: downloaded ")]
    assert progress, done.stderr.decode()
    assert "/s" in progress[0]


async def test_sigint_mid_pull_exits_130_and_leaves_no_partial_file(
    small_build: Path, tmp_path: Path
) -> None:
    async with serve(faults="storage_latency_ms=400,seed=1") as slow:
        env = cli_env(slow)
        assert (
            await run_cli("push", str(small_build), "rst_pull_int", "--create", "-q", env=env)
        ).returncode == 0
        dest = tmp_path / "out"
        process = await anyio.open_process(
            [*ROOST_CMD, "pull", "rst_pull_int", str(dest)], env=env, stderr=subprocess.PIPE
        )
        assert process.stderr is not None
        seen = b""
        with anyio.fail_after(60):
            async for data in process.stderr:
                seen += data
                if b"to download" in seen:
                    break
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            rest = b"".join([data async for data in process.stderr])
            code = await process.wait()
        assert code == 130, (seen + rest).decode()
        pulled = tree(dest)
        for path, content in tree(small_build).items():
            assert pulled.get(path, content) == content, f"{path} is partial"
