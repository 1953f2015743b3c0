"""SIGINT to a process in the middle of a pull: no partial file anywhere, and a re-run finishes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost import PullOptions, PushOptions, Roost

from .conftest import MiB, blob, disk_tree, temp_files, write_tree

pytestmark = pytest.mark.anyio

ROOST = "rst_interrupted"
SCRIPT = Path(__file__).with_name("pull_script.py")


async def test_sigint_mid_pull_leaves_no_partial_file_and_a_rerun_gets_only_the_rest(
    server: Any, client: Roost, tmp_path: Path
) -> None:
    files = {f"part{i}.bin": blob(300 + i, 2 * MiB) for i in range(8)}
    write_tree(tmp_path / "src", files)
    await client.roosts.push(tmp_path / "src", ROOST, PushOptions(site_id=server.site_id))
    server.set_faults("storage_bandwidth_mbps=4")  # about four seconds for the whole pull
    dest = tmp_path / "dest"
    command = [sys.executable, str(SCRIPT), server.url, server.token, server.site_id, ROOST, str(dest)]
    process = await anyio.to_thread.run_sync(
        lambda: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    )
    try:
        with anyio.fail_after(120):
            while not any((dest / name).exists() for name in files):
                assert process.poll() is None, process.communicate()
                await anyio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = await anyio.to_thread.run_sync(process.communicate)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, (out, err)
    assert "done" not in out
    assert temp_files(dest) == []
    left = disk_tree(dest)
    assert 0 < len(left) < len(files)
    for name, data in left.items():
        assert files[name] == data  # whatever reached a final path is whole

    server.set_faults(None)
    result = await client.roosts.pull(ROOST, dest, PullOptions(site_id=server.site_id))
    assert result.stats.downloaded_chunks == len(files) - len(left)
    assert result.stats.unchanged_files == len(left)
    assert disk_tree(dest) == files
