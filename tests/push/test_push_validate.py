"""Fail before the work: bad arguments cost no file and no request; the roost read runs with the scan."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import anyio
import pytest

import roost
from roost import AuthenticationError, NotFoundError, chunker
from roost._push import engine, push_directory
from roost.chunker import HashProgress
from roost.resources import roosts as roosts_module

from .fakes import SITE, FakeApi, write_tree

pytestmark = pytest.mark.anyio

ROOST = "rst_validate"
PUBLIC = (
    "PushOptions",
    "PushResult",
    "PushPlan",
    "PushStats",
    "PushProgressCheckMissing",
    "PushProgressUpload",
    "PushProgressPublish",
    "PushProgressEvent",
    "PushSourceNotFoundError",
    "PushSourceNotADirectoryError",
    "UnportablePath",
    "UnportablePathError",
)


def test_push_shapes_are_public_from_roost_and_the_roosts_module() -> None:
    from roost import _push

    for name in PUBLIC:
        assert getattr(roost, name) is getattr(_push, name), name
        assert getattr(roosts_module, name) is getattr(_push, name), name
        assert name in roost.__all__, name
        assert name in roosts_module.__all__, name
    assert issubclass(roost.UnportablePathError, ValueError)
    assert _push.push_directory is engine.push_directory


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Calls that reached the scan (a push that fails validation opens no file)."""
    calls: list[object] = []
    real = chunker._stream_tree

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_stream_tree", spy)
    return calls


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("short", {}, "roost_id"),
    ("rst with space", {}, "roost_id"),
    ("rst_../../x", {}, "roost_id"),
    ("r" * 65, {}, "roost_id"),
    (ROOST, {"site_id": "site/1"}, "site_id"),
    (ROOST, {"site_id": "s" * 129}, "site_id"),
    (ROOST, {"description": "d" * 501}, "description"),
    (ROOST, {"description": "\U0001f989" * 251}, "description"),  # 502 UTF-16 units, as JS counts
    (ROOST, {"description": 7}, "description"),
    (ROOST, {"name": "   "}, "name"),
    (ROOST, {"name": ""}, "name"),
    (ROOST, {"targets": []}, "targets"),
    (ROOST, {"targets": ["machine-a", " "]}, r"targets\[1\]"),
    (ROOST, {"targets": "machine-a"}, "targets"),
    (ROOST, {"extract_path": 3}, "extract_path"),
    (ROOST, {"concurrency": 0}, "concurrency"),
    (ROOST, {"concurrency": 10_000}, "concurrency"),
    (ROOST, {"concurrency": True}, "concurrency"),
    (ROOST, {"concurrency": 2.0}, "concurrency"),
    (ROOST, {"concurrency": 10**4000}, "concurrency"),  # no OverflowError from a float conversion
    (ROOST, {"concurrency": 10**5000}, "concurrency .* about 5000 digits"),  # past the print limit
    (ROOST, {"bandwidth_limit": 0}, "bandwidth_limit"),
    (ROOST, {"bandwidth_limit": 10}, "bandwidth_limit"),
    (ROOST, {"bandwidth_limit": 1.5e6}, "bandwidth_limit"),
    (ROOST, {"bandwidth_limit": 10**4000}, "bandwidth_limit"),
    (ROOST, {"stall_timeout_s": 0}, "stall_timeout_s"),
    (ROOST, {"stall_timeout_s": -1.0}, "stall_timeout_s"),
    (ROOST, {"stall_timeout_s": math.inf}, "stall_timeout_s"),
    (ROOST, {"stall_timeout_s": math.nan}, "stall_timeout_s"),
    (ROOST, {"stall_timeout_s": 10**4000}, "stall_timeout_s"),
    (ROOST, {"ignore": "dist"}, "ignore"),
    (ROOST, {"ignore": ["ok", 3]}, r"ignore\[1\]"),
    (ROOST, {"ignore_file": 3}, "ignore_file"),
    (ROOST, {"verify_cache": "slow"}, "verify_cache"),
    (ROOST, {"dry_run": "yes"}, "dry_run"),
    (ROOST, {"skip_unchanged": 1}, "skip_unchanged"),
]


@pytest.mark.parametrize(("roost_id", "options", "field"), BAD)
async def test_bad_arguments_fail_before_any_file_or_request(
    tmp_path: Path, opened: list[object], roost_id: str, options: dict[str, Any], field: str
) -> None:
    write_tree(tmp_path, {"a.txt": b"alpha"})
    api = FakeApi()
    async with api.client() as http:
        with pytest.raises(ValueError, match=field) as caught:
            await push_directory(http, tmp_path, roost_id, roost.PushOptions(**{"site_id": SITE, **options}))
    assert "push:" in str(caught.value)
    assert opened == []
    assert api.requests == []


async def test_description_error_names_the_rule_and_the_value(tmp_path: Path, opened: list[object]) -> None:
    write_tree(tmp_path, {"a.txt": b"alpha"})
    api = FakeApi()
    async with api.client() as http:
        with pytest.raises(ValueError, match="description") as caught:
            await push_directory(
                http, tmp_path, ROOST, roost.PushOptions(site_id=SITE, description="x" * 501)
            )
    message = str(caught.value)
    assert "PushOptions.description" in message
    assert "at most 500" in message
    assert "got 501" in message
    assert opened == []
    assert api.requests == []


async def test_limits_at_the_edge_are_accepted(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.txt": b"alpha"})
    api = FakeApi()
    opts = roost.PushOptions(
        site_id=SITE,
        description="d" * 500,
        targets=["m1", "m1"],
        concurrency=256,
        bandwidth_limit=1024,
        stall_timeout_s=0.5,
    )
    async with api.client() as http:
        result = await push_directory(http, tmp_path, "a" * 64, opts)
    assert result.version_number == 1


def many_files(root: Path, count: int) -> None:
    write_tree(root, {f"d{i % 10}/f{i:04}.bin": i.to_bytes(4, "big") * 64 for i in range(count)})


async def test_bad_token_cancels_the_scan(tmp_path: Path) -> None:
    many_files(tmp_path, 300)
    hashed: list[HashProgress] = []
    api = FakeApi()

    async def slow(event: object) -> None:
        if isinstance(event, HashProgress) and event.file:
            hashed.append(event)
            await anyio.sleep(0.05)  # 300 files: 15 s unless the failed read cancels the scan

    async with api.client(token="owk_test_revoked") as http:
        with pytest.raises(AuthenticationError):
            await push_directory(http, tmp_path, ROOST, roost.PushOptions(site_id=SITE, on_progress=slow))
    assert 1 <= len(hashed) < 300
    assert [r.url.path for r in api.requests] == [f"/api/roosts/{ROOST}"]


async def test_unknown_site_cancels_the_scan(tmp_path: Path) -> None:
    many_files(tmp_path, 300)
    hashed: list[HashProgress] = []
    api = FakeApi(site_exists=False)

    async def stuck(event: object) -> None:
        if isinstance(event, HashProgress) and event.file:
            hashed.append(event)
            if len(hashed) > 1:  # the read starts once the first file is hashed
                await anyio.sleep_forever()  # only the failed roost read can end this push

    async with api.client() as http:
        with pytest.raises(NotFoundError, match="site not found"):
            await push_directory(http, tmp_path, ROOST, roost.PushOptions(site_id=SITE, on_progress=stuck))
    # the read is sent right after the first event; its failure may land before the second
    assert len(hashed) in (1, 2)
    assert api.check_batches == []
    assert api.puts == []
    assert api.publishes == []


async def test_created_roost_tells_whether_the_publish_created_it(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.txt": b"alpha"})
    api = FakeApi(roost_exists=False)
    async with api.client() as http:
        first = await push_directory(http, tmp_path, ROOST, roost.PushOptions(site_id=SITE))
        (tmp_path / "a.txt").write_bytes(b"beta")
        second = await push_directory(http, tmp_path, ROOST, roost.PushOptions(site_id=SITE))
    assert first.created_roost is True
    assert second.created_roost is False


async def test_created_roost_is_false_for_an_existing_empty_roost(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.txt": b"alpha"})
    api = FakeApi(roost_exists=True, head=None)  # created with roosts.create(), no version yet
    async with api.client() as http:
        result = await push_directory(http, tmp_path, ROOST, roost.PushOptions(site_id=SITE))
    assert result.created_roost is False
    assert result.previous_version_id is None
