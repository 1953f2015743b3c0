"""Every ``--json`` document: snake_case keys, ISO-8601 UTC timestamps, null for absent values,
and exactly the keys docs/cli-json.md shows; errors as ``{"error": ...}``; closed pipes quiet."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from roost import sign_body

from .conftest import ROOST_CMD, Runner, cli_env

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli-json.md"
SECTION = re.compile(r"^## `(?P<title>[^`]+)`\n.*?```json\n(?P<body>.*?)\n```", re.MULTILINE | re.DOTALL)
KEY = re.compile(r"^[a-z][a-z0-9_]*$")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ROOST = "rst_json_contract"


def documented() -> dict[str, Any]:
    return {m["title"]: json.loads(m["body"]) for m in SECTION.finditer(DOC.read_text(encoding="utf-8"))}


def same_shape(actual: Any, example: Any, where: str = "$") -> None:
    """Objects have exactly the documented keys; arrays are compared by their first elements."""
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(example), f"{where}: keys {sorted(actual)} != documented {sorted(example)}"
        for key, value in example.items():
            if value is not None and actual[key] is not None:
                same_shape(actual[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        if example and actual:
            same_shape(actual[0], example[0], f"{where}[0]")


def follows_the_contract(value: Any, where: str = "$", key: str = "") -> None:
    assert value != "", f"{where}: an absent value must be null, not an empty string"
    if isinstance(value, dict):
        for name, item in value.items():
            assert KEY.match(name), f"{where}: key {name!r} is not snake_case"
            follows_the_contract(item, f"{where}.{name}", name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            follows_the_contract(item, f"{where}[{index}]")
    elif key in ("at", "timestamp") or key.endswith("_at"):
        assert value is None or (isinstance(value, str) and ISO_UTC.match(value)), f"{where}: {value!r}"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("json") / "build"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(bytes(range(256)) * 40)
    (root / "sub" / "a.txt").write_text("hi\n")
    return root


def test_every_documented_document_matches_the_program(roost_main: Runner, build: Path) -> None:
    docs = documented()
    assert roost_main("push", str(build), ROOST, "--create", "--target", "m1", "--json", "-q").code == 0
    (build / "sub" / "a.txt").write_text("hi again\n")
    body = b'{"event":"version.published"}'
    runs: dict[str, list[str]] = {
        "roost push DIR ROOST_ID --dry-run --json": ["push", str(build), ROOST, "--dry-run", "--json"],
        "roost push DIR ROOST_ID --json": ["push", str(build), ROOST, "--json"],
        "roost whoami --json": ["whoami", "--json"],
        "roost sites --json": ["sites", "--json"],
        "roost roosts list --json": ["roosts", "list", "--json"],
        "roost roosts get ROOST --json": ["roosts", "get", ROOST, "--json"],
        "roost roosts create NAME --json": ["roosts", "create", "Wall", "--id", "rst_json_wall", "--json"],
        "roost versions list ROOST --json": ["versions", "list", ROOST, "--json"],
        "roost versions get ROOST [REF] --json": ["versions", "get", ROOST, "--json"],
        "roost versions files ROOST [REF] --json": ["versions", "files", ROOST, "--json"],
        "roost versions diff ROOST [REF] --json": ["versions", "diff", ROOST, "--json"],
        "roost rollback ROOST --json": ["rollback", ROOST, "--json"],
        "roost deploy ROOST --json": ["deploy", ROOST, "--json"],
        "roost webhook verify ... --json": [
            "webhook",
            "verify",
            "--header",
            sign_body(body, "whsec_x"),
            "--secret",
            "whsec_x",
            "--body",
            str(build / "big.bin"),
            "--json",
        ],
        "any command, on failure, with --json": ["roosts", "get", "rst_json_missing", "--json"],
    }
    # pull and dev-server are checked by their own tests (test_pull.py, test_dev_server.py).
    assert set(docs) == {*runs, "roost pull ROOST_ID DIR --json", "roost dev-server --json"}
    for title, argv in runs.items():
        done = roost_main(*argv)
        expected_code = {"any command, on failure, with --json": 3, "roost webhook verify ... --json": 1}
        assert done.code == expected_code.get(title, 0), f"{title}: {done.err}"
        document = done.json()
        same_shape(document, docs[title], title)
        follows_the_contract(document, title)


def test_camel_case_and_epoch_milliseconds_from_the_api_are_converted(roost_main: Runner) -> None:
    key = roost_main("whoami", "--json").json()["key"]
    assert ISO_UTC.match(key["expires_at"])  # the API sends epoch milliseconds
    assert "keyPrefix" not in key
    assert key["key_prefix"].startswith("owk_test_")


@pytest.mark.parametrize(
    ("argv", "code", "error_code"),
    [
        (["roosts", "get", "rst_json_missing", "--json"], 3, "not_found"),
        (["--json", "versions", "get"], 2, "usage"),
        (["push", "/no/such/dir", ROOST, "--json"], 4, "local_input"),
        (["push", "PLACEHOLDER", "rst_json_typo", "--json"], 4, "roost_not_found"),
    ],
)
def test_errors_under_json_print_an_error_document_and_keep_the_exit_code(
    roost_main: Runner, build: Path, argv: list[str], code: int, error_code: str
) -> None:
    argv = [str(build) if word == "PLACEHOLDER" else word for word in argv]
    done = roost_main(*argv)
    assert done.code == code, done.err
    error = done.json()["error"]
    assert set(error) == {"status", "code", "message", "request_id"}
    assert error["code"] == error_code
    assert error["message"]
    assert error["message"] in done.err
    if code == 3:
        assert error["status"] == 404
        assert error["request_id"]
    else:
        assert error["status"] is None
        assert error["request_id"] is None


def test_a_closed_pipe_ends_the_command_quietly(emulator: Any, tmp_path: Path) -> None:
    env = cli_env(emulator)
    root = tmp_path / "many"
    root.mkdir()
    for index in range(1500):  # a document far larger than a pipe buffer
        (root / f"file_{index:05d}.txt").write_text(str(index))
    pushed = subprocess.run(
        [*ROOST_CMD, "push", str(root), "rst_json_pipe", "--create", "-q"], env=env, capture_output=True
    )
    assert pushed.returncode == 0, pushed.stderr
    command = " ".join(ROOST_CMD) + " versions files rst_json_pipe --json"
    for reader in ("head -1", "true"):
        done = subprocess.run(
            ["bash", "-c", f'{command} | {reader}; echo "exit=${{PIPESTATUS[0]}}" >&2'],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.stderr.strip() == "exit=0", f"{reader}: {done.stderr}"
        assert done.stdout == ("[\n" if reader == "head -1" else "")
