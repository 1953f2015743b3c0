"""``start_push`` / ``start_pull``: handles a UI polls, completes, or cancels mid-upload."""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import roost.sync
from roost import PushOptions
from roost._pull.types import PullOptions, PullProgressDownload, PullProgressEvent, PullResult, PullStats
from roost.resources.roosts import PushProgressEvent, PushProgressUpload, Roosts
from roost.testing import EmulatorServer, start_server

from .conftest import make_tree

# A guard against a hung test, not a speed expectation.
GIVE_UP_S = 120.0


def poll_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_start_push_returns_at_once_and_is_polled_to_completion(
    server: EmulatorServer, tmp_path: Path
) -> None:
    root = make_tree(tmp_path / "build", files=6, size=50_000)
    seen_by_user: list[PushProgressEvent] = []
    with roost.sync.Roost(token=server.token, api_url=server.url) as client:
        options = PushOptions(site_id=server.site_id, name="ui", on_progress=seen_by_user.append)
        handle = client.roosts.start_push(root, "rst_ui_poll", options)
        phases: list[str] = []
        while not handle.done():  # what a per-frame callback does
            latest = handle.latest
            if latest is not None and (not phases or phases[-1] != latest.phase):
                phases.append(latest.phase)
            time.sleep(0.005)
        result = handle.result(timeout=0)
        assert result.version_number == 1
        assert handle.latest is seen_by_user[-1]  # the user's own callback still runs
        assert isinstance(handle.latest, PushProgressUpload)
        assert handle.latest.uploaded == handle.latest.total == 6
        assert handle.cancel() is False  # finished already
        assert [v["versionNumber"] for v in client.versions.list("rst_ui_poll", site_id=server.site_id)] == [
            1
        ]


def test_start_push_cancelled_mid_upload_publishes_nothing(tmp_path: Path) -> None:
    # 8 chunks through a 0.5 MB/s storage link: the first upload event (4 chunks) comes well
    # before the last chunk is stored.
    root = make_tree(tmp_path / "build", files=8, size=256 * 1024)
    with (
        start_server(faults="storage_bandwidth_mbps=0.5") as server,
        roost.sync.Roost(token=server.token, api_url=server.url) as client,
    ):
        client.roosts.create(site_id=server.site_id, name="cancel me", roost_id="rst_cancel")
        handle = client.roosts.start_push(root, "rst_cancel", PushOptions(site_id=server.site_id))

        def mid_upload() -> bool:
            latest = handle.latest
            return handle.done() or (
                isinstance(latest, PushProgressUpload) and latest.uploaded < latest.total
            )

        poll_until(mid_upload, "an upload progress event")
        assert not handle.done()
        assert handle.cancel() is True
        assert handle.done()
        with pytest.raises(concurrent.futures.CancelledError):
            handle.result()
        assert list(client.versions.list("rst_cancel", site_id=server.site_id)) == []
        assert client.roosts.get("rst_cancel", site_id=server.site_id).current_version_id is None


def test_a_failed_push_raises_its_error_from_result(server: EmulatorServer, tmp_path: Path) -> None:
    with roost.sync.Roost(token=server.token, api_url=server.url) as client:
        handle = client.roosts.start_push(
            tmp_path / "absent", "rst_missing", PushOptions(site_id=server.site_id)
        )
        with pytest.raises(FileNotFoundError):
            handle.result(timeout=GIVE_UP_S)
        assert handle.done()
        with pytest.raises(TypeError, match="PushOptions"):
            client.roosts.start_push(tmp_path, "rst_missing", {"site_id": "s"})  # type: ignore[arg-type]


def test_result_with_a_timeout_leaves_the_push_running(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "build", files=4, size=256 * 1024)
    with (
        start_server(faults="storage_bandwidth_mbps=0.5") as server,
        roost.sync.Roost(token=server.token, api_url=server.url) as client,
    ):
        handle = client.roosts.start_push(root, "rst_slow_push", PushOptions(site_id=server.site_id))
        with pytest.raises(TimeoutError):
            handle.result(timeout=0.01)
        assert handle.result(timeout=GIVE_UP_S).version_number == 1


def test_closing_the_client_cancels_a_running_push(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "build", files=8, size=256 * 1024)
    with start_server(faults="storage_bandwidth_mbps=0.5") as server:
        client = roost.sync.Roost(token=server.token, api_url=server.url)
        handle = client.roosts.start_push(root, "rst_closed", PushOptions(site_id=server.site_id))
        poll_until(lambda: handle.latest is not None, "the first progress event")
        client.close()
        assert handle.done()
        with pytest.raises(concurrent.futures.CancelledError):
            handle.result()


def test_start_pull_reports_progress_and_its_result(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The handle's wiring, with the pull engine replaced by a script of events."""
    calls: list[tuple[str, str, PullOptions]] = []

    async def scripted_pull(
        self: Roosts, roost_id: str, dest: str | os.PathLike[str], opts: PullOptions
    ) -> PullResult:
        calls.append((roost_id, os.fspath(dest), opts))
        for done in (1, 2):
            event: PullProgressEvent = PullProgressDownload(downloaded=done, total=2)
            if opts.on_progress is not None:
                await_or_value = opts.on_progress(event)
                if await_or_value is not None:
                    await await_or_value
        stats = PullStats(
            file_count=2,
            total_bytes=10,
            unchanged_files=0,
            written_files=2,
            deleted_files=0,
            downloaded_chunks=2,
            downloaded_bytes=10,
            copied_chunks=0,
        )
        return PullResult(
            version_id="v" * 64,
            version_number=3,
            stats=stats,
            added=("a", "b"),
            changed=(),
            removed=(),
            in_sync=True,
        )

    monkeypatch.setattr(Roosts, "pull", scripted_pull)
    seen: list[PullProgressEvent] = []
    with roost.sync.Roost(token="owk_test_pull", api_url="http://pull.invalid") as client:
        options = PullOptions(site_id="site-1", on_progress=seen.append)
        handle = client.roosts.start_pull("rst_abc", tmp_path / "dest", options)
        result = handle.result(timeout=GIVE_UP_S)
    assert result.version_number == 3
    assert handle.latest == PullProgressDownload(downloaded=2, total=2)
    assert seen == [PullProgressDownload(downloaded=1, total=2), PullProgressDownload(downloaded=2, total=2)]
    assert calls[0][:2] == ("rst_abc", os.fspath(tmp_path / "dest"))
    assert calls[0][2].site_id == "site-1"
