"""The grammar of ``roost``: every option shown works, global options anywhere, no abbreviations,
errors show the subcommand's usage, flags reach the library, completion for four shells."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from roost.chunker import DEFAULT_IGNORES
from roost.cli._parser import COMPLETION_SHELLS, build_parser, parse_rate
from roost.resources.roosts import PushOptions, PushPlan, PushResult, PushStats, Roosts

from .conftest import ROOST_CMD, Runner


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append((*prefix, name))
                paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


COMMANDS = _command_paths(build_parser())


def test_the_command_tree_is_the_documented_one() -> None:
    top = {path[0] for path in COMMANDS}
    assert top == {
        "push", "pull", "whoami", "sites", "roosts", "versions", "rollback", "deploy",
        "webhook", "dev-server", "demo", "completion",
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_working_help(roost_main: Runner, path: tuple[str, ...]) -> None:
    done = roost_main(*path, "--help")
    assert done.code == 0, done.err
    assert done.out.startswith(f"usage: roost {' '.join(path)}")


def test_global_options_work_before_and_after_the_command(roost_main: Runner, emulator: Any) -> None:
    before = roost_main("--json", "whoami")
    after = roost_main("whoami", "--json")
    assert before.code == after.code == 0, before.err + after.err
    assert before.json()["primary_site_id"] == after.json()["primary_site_id"] == emulator.site_id
    bad = "owk_test_" + "x" * 43
    assert roost_main("--token", bad, "whoami").code == 3
    assert roost_main("whoami", "--token", bad).code == 3
    assert roost_main("--api-url", emulator.url, "-q", "sites", "--json").code == 0
    unknown_site = roost_main("--site", "site-nope", "roosts", "list")
    assert unknown_site.code == 3
    assert roost_main("roosts", "list", "--site", "site-nope", "-v").code == 3
    assert roost_main("roosts", "list", "--site", emulator.site_id, "-v").code == 0


def test_a_value_given_before_the_command_is_not_reset_by_the_subcommand(roost_main: Runner) -> None:
    args = build_parser().parse_args(["--json", "--site", "s1", "-q", "-v", "whoami"])
    assert (args.json, args.site, args.quiet, args.verbose) == (True, "s1", True, 1)
    args = build_parser().parse_args(["whoami", "--site", "s2"])
    assert (args.json, args.site, args.quiet, args.verbose) == (False, "s2", False, 0)


def test_options_are_never_abbreviated(roost_main: Runner, small_build: Path) -> None:
    done = roost_main("push", str(small_build), "rst_grammar", "--desc", "x", "--dry")
    assert done.code == 2
    assert "unrecognized arguments: --desc x --dry" in done.err
    assert done.err.startswith("usage: roost push ")
    assert roost_main("--jso", "whoami").code == 2
    assert roost_main("whoami", "--verb").code == 2
    assert roost_main("versions", "lis", "rst_x").code == 2


def test_a_subcommand_error_prints_that_subcommands_usage(
    roost_main: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = roost_main("versions", "get")
    assert missing.code == 2
    assert missing.err.startswith("usage: roost versions get ")
    assert "roost versions get: error: the following arguments are required: roost_id" in missing.err
    bad_rate = roost_main("push", ".", "rst_x", "--bwlimit", "fast")
    assert bad_rate.err.startswith("usage: roost push ")
    assert "argument --bwlimit: expected bytes per second" in bad_rate.err
    bad_action = roost_main("roosts", "lst")
    assert bad_action.err.startswith("usage: roost roosts ")
    monkeypatch.delenv("OWLETTE_SITE")
    no_site = roost_main("roosts", "list")
    assert no_site.code == 2
    assert no_site.err.startswith("usage: roost roosts list ")
    assert "no site: pass --site SITE or set OWLETTE_SITE" in no_site.err


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("800", 800),
        ("500k", 500_000),
        ("10M", 10_000_000),
        ("10MB", 10_000_000),
        ("10mb/s", 10_000_000),
        ("1.5G", 1_500_000_000),
        ("10Mi", 10 * 1024**2),
        ("10MiB", 10 * 1024**2),
        ("2KiB", 2048),
    ],
)
def test_bwlimit_accepts_decimal_and_binary_units(text: str, value: int) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["fast", "0", "-5M", "10X", "0.0001", "", "9" * 4000, "9" * 400 + "T"])
def test_bwlimit_refuses_what_is_not_a_rate(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse_rate(text)
    assert len(str(caught.value)) < 200  # a 4,000-digit value is cut in the message


class FakePush:
    """Stands in for ``Roosts.push``: records the options, returns a result."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, result: PushResult) -> None:
        self.result = result
        self.calls: list[tuple[str, str, PushOptions]] = []

        async def push(resource: Roosts, directory: str, roost_id: str, opts: PushOptions) -> PushResult:
            self.calls.append((str(directory), roost_id, opts))
            return self.result

        monkeypatch.setattr(Roosts, "push", push)


def fake_result(**changes: Any) -> PushResult:
    fields: dict[str, Any] = {
        "version_id": "ab" * 32,
        "version_number": 3,
        "current_version_id": "ab" * 32,
        "previous_version_id": None,
        "stats": PushStats(
            file_count=4,
            total_bytes=9000,
            total_chunks=4,
            unique_chunks=4,
            uploaded_chunks=1,
            uploaded_bytes=1000,
        ),
        "plan": PushPlan(files=("a.bin",), chunks=("cd" * 32,), bytes=1000),
    }
    fields.update(changes)
    return PushResult(**fields)


@pytest.fixture
def fake_push(monkeypatch: pytest.MonkeyPatch) -> FakePush:
    return FakePush(monkeypatch, fake_result())


def test_push_flags_reach_push_options(roost_main: Runner, fake_push: FakePush, small_build: Path) -> None:
    ignore_file = small_build.parent / "ignores.txt"
    ignore_file.write_text("*.tmp\n")
    done = roost_main(
        "push", str(small_build), "rst_flags", "--create",
        "--bwlimit", "10M", "--stall-timeout", "7.5", "--allow-unportable-paths",
        "--ignore-from", str(ignore_file), "--no-default-ignores", "--skip-unchanged",
        "--ignore", "*.log", "--ignore", "cache/**", "--concurrency", "3", "--description", "d",
    )  # fmt: skip
    assert done.code == 0, done.err
    (_, roost_id, opts) = fake_push.calls[0]
    assert roost_id == "rst_flags"
    assert opts.bandwidth_limit == 10_000_000
    assert opts.stall_timeout_s == 7.5
    assert opts.allow_unportable_paths is True
    assert opts.ignore_file == str(ignore_file)
    assert opts.default_ignores is False
    assert opts.skip_unchanged is True
    assert tuple(opts.ignore) == ("*.log", "cache/**")
    assert (opts.concurrency, opts.description) == (3, "d")
    defaults = roost_main("push", str(small_build), "rst_flags", "--create")
    assert defaults.code == 0
    opts = fake_push.calls[1][2]
    assert (opts.bandwidth_limit, opts.stall_timeout_s, opts.default_ignores) == (None, 60.0, True)
    assert (opts.allow_unportable_paths, opts.skip_unchanged, opts.ignore_file) == (False, False, None)


def test_a_missing_ignore_file_fails_before_any_work(
    roost_main: Runner, fake_push: FakePush, small_build: Path
) -> None:
    missing = small_build.parent / "no-such-ignores"
    done = roost_main("push", str(small_build), "rst_flags", "--create", "--ignore-from", str(missing))
    assert done.code == 4
    assert f"--ignore-from {missing}" in done.err
    assert fake_push.calls == []


def test_push_help_lists_the_default_ignores(roost_main: Runner) -> None:
    text = roost_main("push", "--help").out
    for pattern in DEFAULT_IGNORES:
        assert pattern in text
    for flag in ("--bwlimit", "--stall-timeout", "--allow-unportable-paths", "--ignore-from"):
        assert flag in text
    for flag in ("--no-default-ignores", "--skip-unchanged", "--create"):
        assert flag in text


@pytest.mark.parametrize("shell", COMPLETION_SHELLS)
def test_completion_prints_a_script_for_each_shell(roost_main: Runner, shell: str) -> None:
    done = roost_main("completion", shell)
    assert done.code == 0, done.err
    assert "roost" in done.out
    if shell in ("bash", "zsh") and shutil.which(shell):
        syntax = subprocess.run([shell, "-n"], input=done.out, text=True, capture_output=True, check=False)
        assert syntax.returncode == 0, syntax.stderr
    assert roost_main("completion", "tcsh").code == 2


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell would offer for ``line`` (argcomplete's protocol, as the scripts call it)."""
    answer = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_SHELL": "bash",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(answer),
        "_ARGCOMPLETE_IFS": "\n",
    }
    subprocess.run(ROOST_CMD, env=env, check=False, capture_output=True, timeout=60)
    return answer.read_text().split()


def test_completion_answers_commands_and_options(tmp_path: Path) -> None:
    assert {"push", "pull"} <= set(complete("roost pu", tmp_path))
    assert "--bwlimit" in complete("roost push --bw", tmp_path)
    assert set(complete("roost completion ", tmp_path)) >= set(COMPLETION_SHELLS)


def test_the_module_entry_point_is_the_same_program() -> None:
    done = subprocess.run([*ROOST_CMD, "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("roost ")
