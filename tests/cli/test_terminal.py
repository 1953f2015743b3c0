"""The live progress display, rendered under a pseudo-terminal and read back as a screen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pexpect
import pyte
import pytest

from .conftest import ROOST_CMD, cli_env

pytestmark = pytest.mark.anyio

COLUMNS, LINES = 140, 40


def run_in_pty(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run a command on a pseudo-terminal; return its exit code, final screen and raw output."""
    child = pexpect.spawn(
        args[0],
        args[1:],
        env=env,
        dimensions=(LINES, COLUMNS),
        timeout=120,
        encoding="utf-8",
        codec_errors="replace",
    )
    raw = child.read()
    child.close()
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.Stream(screen)
    stream.feed(raw.replace("\n", "\r\n") if "\r\n" not in raw else raw)
    return child.exitstatus if child.exitstatus is not None else -1, "\n".join(screen.display), raw


async def test_progress_display_shows_every_state_and_ends_with_the_version(
    server: Any, small_build: Path
) -> None:
    env = cli_env(server, TERM="xterm-256color")
    code, screen, raw = await anyio.to_thread.run_sync(
        run_in_pty, [*ROOST_CMD, "push", str(small_build), "rst_pty_tests", "--create"], env
    )
    assert code == 0, raw
    lines = [line.rstrip() for line in screen.splitlines() if line.strip()]
    hashing = next(line for line in lines if "hashing" in line)
    checking = next(line for line in lines if "checking" in line)
    uploading = next(line for line in lines if "uploading" in line)
    assert "32/32 files" in hashing
    assert "32 of 32 chunks needed" in checking
    assert "32/32 chunks" in uploading
    assert "100%" in uploading
    assert lines[-1].startswith("published v1 ")
    # A live display redraws in place: the raw stream carries cursor movement, not plain lines.
    assert "\x1b[" in raw


SPINNER_FRAMES = set("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")


async def test_finished_spinners_stop(server: Any, small_build: Path) -> None:
    env = cli_env(server, TERM="xterm-256color")
    code, screen, raw = await anyio.to_thread.run_sync(
        run_in_pty, [*ROOST_CMD, "push", str(small_build), "rst_pty_spinners", "--create"], env
    )
    assert code == 0, raw
    task_lines = [
        line for line in screen.splitlines() if any(w in line for w in ("hashing", "checking", "uploading"))
    ]
    assert len(task_lines) == 3, screen
    for line in task_lines:
        assert not SPINNER_FRAMES & set(line), line
