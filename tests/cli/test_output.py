"""Text that tells the truth: dry runs, summaries, skipped entries, warnings, rates, deploys,
the current version, and a typo that must not create a roost."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest

from roost import Roost
from roost.chunker import SkippedEntry
from roost.cli._progress import PlainView
from roost.resources.roosts import (
    DiscoverProgress,
    PullOptions,
    PullProgressDownload,
    PullProgressPlan,
    PullResult,
    PullStats,
    PushOptions,
    PushProgressCheckMissing,
    PushProgressUpload,
    PushResult,
    Roosts,
)

from .conftest import Runner
from .test_grammar import FakePush, fake_result

SUMMARY = re.compile(
    r"^published v(\d+) ([0-9a-f]{12}): \d+ files \(.+\), \d+ of \d+ chunks uploaded \(.+\) in \d+\.\ds$"
)


@pytest.fixture
def build(tmp_path: Path) -> Path:
    root = tmp_path / "build"
    (root / "media").mkdir(parents=True)
    (root / "media" / "clip.bin").write_bytes(bytes(range(256)) * 20_000)
    (root / "readme.txt").write_text("v1\n")
    return root


def test_push_summary_has_a_short_id_and_the_elapsed_time(roost_main: Runner, build: Path) -> None:
    done = roost_main("push", str(build), "rst_out_summary", "--create")
    assert done.code == 0, done.err
    match = SUMMARY.match(done.out.strip())
    assert match is not None, done.out
    detail = roost_main("roosts", "get", "rst_out_summary", "--json").json()
    assert detail["current_version_id"].startswith(match.group(2))


def test_dry_run_shows_what_would_upload(roost_main: Runner, build: Path) -> None:
    assert roost_main("push", str(build), "rst_out_dry", "--create", "-q").code == 0
    (build / "readme.txt").write_text("v2, longer\n")
    done = roost_main("push", str(build), "rst_out_dry", "--dry-run")
    assert done.code == 0, done.err
    assert done.out.strip() == (
        "dry run: 2 files (5.1 MB); would upload 1 of 3 chunks (11 B) from 1 file; nothing was published"
    )


async def _stored_bytes(emulator: Any) -> int:
    async with Roost(token=emulator.token, api_url=emulator.url) as client:
        identity = await client.account.whoami()
    return int((identity.quota or {}).get("usedBytes") or 0)


def test_an_unknown_roost_is_refused_with_the_closest_id(
    roost_main: Runner, build: Path, emulator: Any
) -> None:
    import anyio

    assert roost_main("push", str(build), "rst_out_lobby_td", "--create", "-q").code == 0
    before = anyio.run(_stored_bytes, emulator)
    (build / "new.bin").write_bytes(b"never uploaded" * 1000)
    done = roost_main("push", str(build), "rst_out_loby_td")
    assert done.code == 4
    assert "roost rst_out_loby_td does not exist" in done.err
    assert "did you mean rst_out_lobby_td?" in done.err
    assert "--create" in done.err
    assert done.out == ""
    assert anyio.run(_stored_bytes, emulator) == before
    assert roost_main("roosts", "get", "rst_out_loby_td").code == 3
    created = roost_main("push", str(build), "rst_out_loby_td", "--create")
    assert created.code == 0, created.err


def test_quiet_prints_the_result_only(roost_main: Runner, build: Path) -> None:
    done = roost_main("-q", "push", str(build), "rst_out_quiet", "--create")
    assert done.code == 0
    assert done.err == ""
    assert SUMMARY.match(done.out.strip())


def test_deploy_says_when_a_rollout_was_already_running(roost_main: Runner, build: Path) -> None:
    assert roost_main("push", str(build), "rst_out_deploy", "--create", "--target", "m1", "-q").code == 0
    first = roost_main("deploy", "rst_out_deploy")
    assert first.code == 0, first.err
    assert first.out.startswith("deploying ")
    assert "to 1 machine:" in first.out
    again = roost_main("deploy", "rst_out_deploy")
    assert again.code == 0, again.err
    assert again.out.startswith("already running: ")
    assert "no new rollout was started" in again.out


def test_versions_list_marks_the_current_version(roost_main: Runner, build: Path) -> None:
    assert roost_main("push", str(build), "rst_out_versions", "--create", "-q").code == 0
    (build / "readme.txt").write_text("v2\n")
    assert roost_main("push", str(build), "rst_out_versions", "-q").code == 0
    assert roost_main("rollback", "rst_out_versions").code == 0
    rows = roost_main("versions", "list", "rst_out_versions").out.splitlines()[1:]
    assert [row.split()[0:2] for row in rows] == [["v2", rows[0].split()[1]], ["*", "v1"]]
    documents = roost_main("versions", "list", "rst_out_versions", "--json").json()
    assert [(d["version_number"], d["is_current"]) for d in documents] == [(2, False), (1, True)]


SKIPPED = (
    SkippedEntry("fifo", "special_file"),
    SkippedEntry("link_a", "link_outside_root"),
    SkippedEntry("link_b", "link_outside_root"),
)


@pytest.fixture
def reporting_push(monkeypatch: pytest.MonkeyPatch) -> None:
    """A push that reports skipped entries, an unmatched pattern and a warning, as the engine does."""

    async def push(resource: Roosts, directory: str, roost_id: str, opts: PushOptions) -> PushResult:
        assert opts.on_progress is not None
        await_or_none = opts.on_progress(
            DiscoverProgress(file_count=4, total_bytes=9000, skipped=SKIPPED, unmatched_ignores=("*.psd",))
        )
        assert await_or_none is None
        return fake_result(
            skipped=SKIPPED,
            warnings=("ignore pattern '*.psd' matched nothing", "description trimmed to 500 characters"),
        )

    monkeypatch.setattr(Roosts, "push", push)


@pytest.mark.usefixtures("reporting_push")
def test_skipped_entries_and_warnings_are_reported(roost_main: Runner, build: Path) -> None:
    done = roost_main("push", str(build), "rst_out_skips", "--create")
    assert done.code == 0
    lines = done.err.splitlines()
    assert "roost: skipped 3: 2 links outside the folder, 1 special file" in lines
    assert "  link_a (link outside the folder)" not in lines
    # The unmatched pattern is reported once, at discover time; other warnings after the push.
    assert [line for line in lines if "*.psd" in line] == ["warning: ignore pattern '*.psd' matched nothing"]
    assert "warning: description trimmed to 500 characters" in lines
    verbose = roost_main("push", str(build), "rst_out_skips", "--create", "-v")
    assert "  link_a (link outside the folder)" in verbose.err.splitlines()
    assert "  fifo (special file)" in verbose.err.splitlines()
    quiet = roost_main("push", str(build), "rst_out_skips", "--create", "-q")
    assert quiet.err.splitlines() == [
        "warning: ignore pattern '*.psd' matched nothing",
        "warning: description trimmed to 500 characters",
    ]


def test_the_rate_shows_from_the_first_upload_event() -> None:
    stream = io.StringIO()
    view = PlainView(stream, interval_s=3600)
    view(PushProgressCheckMissing(total=10, missing=10))
    view(PushProgressUpload(uploaded=0, total=10, bytes_uploaded=400_000, bytes_total=40_000_000))
    view(PushProgressUpload(uploaded=1, total=10, bytes_uploaded=4_000_000, bytes_total=40_000_000))
    view(PushProgressUpload(uploaded=10, total=10, bytes_uploaded=40_000_000, bytes_total=40_000_000))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # the middle event is throttled; the first and the last are not
    assert re.match(r"roost: uploaded 0/10 chunks \(400\.0 kB of 40\.0 MB, .+/s, ETA .+\)$", lines[1])
    assert lines[2].startswith("roost: uploaded 10/10 chunks (40.0 MB of 40.0 MB, ")


def test_pull_progress_lines() -> None:
    stream = io.StringIO()
    view = PlainView(stream, interval_s=3600)
    view(
        PullProgressPlan(
            files_to_write=2, chunks_to_download=3, bytes_to_download=9_000_000, chunks_to_copy=1
        )
    )
    view(PullProgressDownload(downloaded=1, total=3, bytes_downloaded=3_000_000, bytes_total=9_000_000))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "roost: 2 files to write: 3 chunks to download (9.0 MB), 1 to copy locally"
    assert re.match(r"roost: downloaded 1/3 chunks \(3\.0 MB of 9\.0 MB, .+/s, ETA .+\)$", lines[1])


def pull_result(*, check: bool, added: tuple[str, ...] = (), changed: tuple[str, ...] = ()) -> PullResult:
    stats = PullStats(
        file_count=3,
        total_bytes=300,
        unchanged_files=1,
        written_files=0 if check else 2,
        deleted_files=0,
        downloaded_chunks=0 if check else 2,
        downloaded_bytes=0 if check else 200,
        copied_chunks=0,
    )
    in_sync = not (added or changed)
    return PullResult("ef" * 32, 4, stats, added, changed, (), in_sync, check)


@pytest.fixture
def fake_pull(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, PullOptions]]:
    calls: list[tuple[str, str, PullOptions]] = []

    async def pull(resource: Roosts, roost_id: str, dest: str, opts: PullOptions) -> PullResult:
        calls.append((roost_id, str(dest), opts))
        if opts.check and "differs" in str(dest):
            return pull_result(check=True, added=("new.txt",), changed=("media/clip.bin",))
        return pull_result(check=opts.check)

    monkeypatch.setattr(Roosts, "pull", pull)
    return calls


def test_pull_maps_its_flags_and_check_sets_the_exit_code(
    roost_main: Runner, fake_pull: list[tuple[str, str, PullOptions]], tmp_path: Path, emulator: Any
) -> None:
    done = roost_main("pull", "rst_x", str(tmp_path / "out"), "--ref", "v3", "--delete", "--concurrency", "4")
    assert done.code == 0, done.err
    roost_id, dest, opts = fake_pull[0]
    assert (roost_id, dest) == ("rst_x", str(tmp_path / "out"))
    assert (opts.ref, opts.delete, opts.check, opts.concurrency) == ("v3", True, False, 4)
    assert opts.site_id == emulator.site_id
    assert done.out.startswith(f"pulled v4 {'ef' * 6} into {tmp_path / 'out'}: 3 files")
    same = roost_main("pull", "rst_x", str(tmp_path / "same"), "--check")
    assert same.code == 0
    assert same.out.startswith("in sync: ")
    differs = roost_main("pull", "rst_x", str(tmp_path / "differs"), "--check")
    assert differs.code == 1
    assert differs.out.splitlines()[1:] == ["  + new.txt", "  ~ media/clip.bin"]
    as_json = roost_main("pull", "rst_x", str(tmp_path / "differs"), "--check", "--json")
    assert as_json.code == 1
    assert as_json.json()["in_sync"] is False
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert roost_main("pull", "rst_x", str(a_file)).code == 4


def test_verbose_twice_logs_requests_without_the_token(roost_main: Runner, emulator: Any) -> None:
    done = roost_main("-vv", "whoami")
    assert done.code == 0
    assert re.search(r"^roost: GET .*/api/whoami -> 200", done.err, re.MULTILINE), done.err
    assert emulator.token not in done.err


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"created_roost": True}, f"published v3 {'ab' * 6}: 4 files (9.0 kB), 1 of 4 chunks"),
        (
            {"unchanged": True},
            f"unchanged: v3 {'ab' * 6} already holds these 4 files (9.0 kB); nothing was published",
        ),
    ],
)
def test_the_summary_says_when_nothing_changed_and_create_says_it_creates(
    roost_main: Runner, monkeypatch: pytest.MonkeyPatch, build: Path, changes: dict[str, Any], expected: str
) -> None:
    FakePush(monkeypatch, fake_result(**changes))
    done = roost_main("push", str(build), "rst_out_fake", "--create", "--skip-unchanged", "-v")
    assert done.code == 0, done.err
    assert done.out.startswith(expected), done.out
    # The roost does not exist on the emulator: --create -v says up front that this push creates it.
    assert "roost: rst_out_fake does not exist on site" in done.err, done.err
    assert "this push creates it (--create)" in done.err


def test_counts_read_as_english() -> None:
    stream = io.StringIO()
    PlainView(stream)(DiscoverProgress(file_count=1, total_bytes=2))
    assert stream.getvalue() == "roost: found 1 file (2 B)\n"
