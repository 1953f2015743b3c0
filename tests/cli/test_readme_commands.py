"""Every ``roost ...`` line in README.md's code blocks, typed into a shell as a user would.

Lines run in README order in one working directory against one emulator, so each builds on the
state the previous ones left (the tour pushes before it lists versions). A documented flag that
stops working fails here.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from roost import sign_body
from roost.testing import start_server

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"^```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
WEBHOOK_SECRET = "whsec_readme"
WEBHOOK_BODY = b'{"event":"version.published","roostId":"rst_lobby_td"}'


def readme_commands() -> list[str]:
    commands: list[str] = []
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("roost "):
                commands.append(line.strip())
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_it_promises() -> None:
    shown = {" ".join(command.split()[:2]) for command in COMMANDS}
    for command in ("roost push", "roost pull", "roost dev-server", "roost completion", "roost webhook"):
        assert command in shown


@dataclass(frozen=True)
class Workspace:
    cwd: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    cwd = tmp_path_factory.mktemp("readme")
    rng = random.Random(14)
    (cwd / "dist" / "media").mkdir(parents=True)
    (cwd / "dist" / "media" / "intro.mov").write_bytes(rng.randbytes(300_000))
    (cwd / "dist" / "project.toe").write_bytes(rng.randbytes(20_000))
    (cwd / "dist" / "scratch.tmp").write_text("ignored by --ignore")
    (cwd / ".deployignore").write_text("# a comment\n*.log\n")
    (cwd / "body.json").write_bytes(WEBHOOK_BODY)
    with start_server() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OWLETTE_")}
        env.update(
            OWLETTE_TOKEN=server.token,
            OWLETTE_API_URL=server.url,
            OWLETTE_SITE=server.site_id,
            # The `roost` a user types: the console script installed beside this interpreter.
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            ROOST_SIGNATURE=sign_body(WEBHOOK_BODY, WEBHOOK_SECRET),
            WEBHOOK_SECRET=WEBHOOK_SECRET,
            PYTHONUNBUFFERED="1",
        )
        yield Workspace(cwd, env)


def run_server_line(command: str, workspace: Workspace) -> None:
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=workspace.cwd,
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("# press Ctrl+C"):
            break
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    assert code == 0, "".join(printed) + (process.stderr.read() if process.stderr else "")
    assert any(line.startswith("export OWLETTE_TOKEN=") for line in printed), printed


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str, workspace: Workspace) -> None:
    if command.startswith("roost dev-server"):
        run_server_line(command, workspace)
        return
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=workspace.cwd,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
