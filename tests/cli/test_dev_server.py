"""``roost dev-server``: every documented flag works and it prints paste-ready settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from .conftest import ROOST_CMD


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OWLETTE_")} | {"PYTHONUNBUFFERED": "1"}


def start(*flags: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [*ROOST_CMD, "dev-server", *flags],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("# press Ctrl+C") or line.startswith("}"):
            break
    return process, lines


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def test_flags_work_and_the_export_lines_paste_into_a_shell(tmp_path: Path) -> None:
    data = tmp_path / "state"
    process, lines = start("--port", "0", "--data", str(data), "--faults", "api_latency_ms=1,seed=3")
    try:
        exports = [line for line in lines if line.startswith("export ")]
        assert [line.split("=", 1)[0] for line in exports] == [
            "export OWLETTE_API_URL",
            "export OWLETTE_TOKEN",
            "export OWLETTE_SITE",
        ]
        assert all(line.startswith(("export ", "# ")) for line in lines), lines
        assert f"# data dir: {data}" in lines
        faults = next(line for line in lines if line.startswith("# faults: "))
        assert "api_latency_ms=1" in faults
        assert "seed=3" in faults
        # Pasted as printed, the block configures a shell for the CLI.
        script = "\n".join(lines) + "\n" + " ".join(ROOST_CMD) + " whoami --json\n"
        done = subprocess.run(
            ["bash", "-c", script], env=clean_env(), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["primary_site_id"]
    finally:
        assert stop(process) == 0
    assert data.is_dir()


def test_json_settings_and_a_chosen_token_and_site() -> None:
    token = "owk_test_" + "k" * 43
    process, lines = start("--port", "0", "--json", "--token", token, "--site-id", "site-dev-2")
    try:
        settings = json.loads("\n".join(lines))
        assert settings["token"] == token
        assert settings["site_id"] == "site-dev-2"
        assert settings["api_url"].startswith("http://127.0.0.1:")
        assert settings["faults"] is None
    finally:
        assert stop(process) == 0


def test_bad_flags_fail_with_the_dev_server_usage() -> None:
    for flags in (["--faults", "bogus=1"], ["--port", "70000"], ["--token", "abc"]):
        done = subprocess.run(
            [*ROOST_CMD, "dev-server", *flags], env=clean_env(), capture_output=True, text=True
        )
        assert done.returncode == 2, flags
        assert done.stderr.startswith("usage: roost dev-server "), done.stderr
