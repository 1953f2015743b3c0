"""``roost demo``: the whole flow against an embedded local API server, in about a minute."""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import anyio

from roost import Roost
from roost.chunker import CHUNK_SIZE_BYTES, backend
from roost.resources.roosts import PullOptions, PushOptions, PushResult, RollbackOptions

from . import _exit
from ._output import print_diff, push_summary, short_id
from ._progress import make_view

DEMO_ROOST_ID = "rst_demo_lobby"
MEDIA_FILES = {"media/intro.mov": 9 * CHUNK_SIZE_BYTES // 2, "media/loop_a.mp4": 6 * CHUNK_SIZE_BYTES}
SMALL_FILE_COUNT = 240


def make_sample_build(root: Path, seed: int = 2026) -> None:
    """A TouchDesigner-like build: a few media files plus a tree of small components."""
    rng = random.Random(seed)
    for rel, size in MEDIA_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    for index in range(SMALL_FILE_COUNT):
        path = root / "components" / f"group_{index % 12:02d}" / f"comp_{index:03d}.tox"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(512, 48 * 1024)))
    (root / "project.toe").write_bytes(rng.randbytes(200_000))
    (root / "assets").mkdir(exist_ok=True)
    (root / "assets" / ".keep").write_bytes(b"")


def _fresh_sample_build(build: Path) -> None:
    if build.exists():
        shutil.rmtree(build)
    make_sample_build(build)


def change_one_chunk(root: Path) -> str:
    """Overwrite a few bytes inside the second chunk of one media file."""
    rel = "media/loop_a.mp4"
    with open(root / rel, "r+b") as handle:
        handle.seek(CHUNK_SIZE_BYTES + 1234)
        handle.write(b"edited by roost demo")
    return rel


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


async def demo(args: argparse.Namespace) -> int:
    return await run_demo(keep=args.keep)


async def run_demo(*, keep: str | None = None) -> int:
    try:
        from roost.testing import serve
    except ImportError as error:
        print(f"roost demo needs the 'server' extra: pip install 'owlette-sdk[server]' ({error})")
        return _exit.USAGE
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="roost-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    build = workdir / "dist"
    try:
        _step(f"starting the embedded Owlette API server (chunker backend: {backend()})")
        async with serve(data_dir=str(workdir / "server")) as server:
            print(f"server {server.url}, site {server.site_id}")
            async with Roost(token=server.token, api_url=server.url) as client:
                identity = await client.account.whoami()
                print(f"signed in as {identity.email or identity.user_id}")

                _step(f"generating a sample build in {build}")
                await anyio.to_thread.run_sync(_fresh_sample_build, build)

                async def push(description: str) -> PushResult:
                    view = make_view(quiet=False)
                    started = time.perf_counter()
                    ok = False
                    try:
                        result = await client.roosts.push(
                            build,
                            DEMO_ROOST_ID,
                            PushOptions(site_id=server.site_id, description=description, on_progress=view),
                        )
                        ok = True
                    finally:
                        if view is not None:
                            view.close(ok)
                    print(push_summary(result, time.perf_counter() - started))
                    return result

                _step("first push: everything is new")
                first = await push("demo: first build")

                _step("pushing the same build again: nothing to upload")
                await push("demo: unchanged")

                _step("changing one media file, then pushing: only its changed chunk uploads")
                changed = change_one_chunk(build)
                print(f"edited {changed}")
                third = await push("demo: edited one file")

                _step(f"diff v{third.version_number} against v{first.version_number}")
                diff = await client.versions.diff(
                    DEMO_ROOST_ID, third.version_id, site_id=server.site_id, against=first.version_id
                )
                print_diff(diff)

                _step(f"rolling back to v{first.version_number}")
                rolled = await client.roosts.rollback(
                    DEMO_ROOST_ID,
                    RollbackOptions(site_id=server.site_id, target_version=first.version_number),
                )
                detail = await client.roosts.get(DEMO_ROOST_ID, site_id=server.site_id)
                current = detail.current_version
                print(
                    f"current version is v{current.version_number if current else '?'} "
                    f"({short_id(rolled.current_version_id)})"
                )

                restored = workdir / "restored"
                _step(f"pulling the rolled-back version into a fresh directory, {restored}")
                if restored.exists():
                    shutil.rmtree(restored)
                view = make_view(quiet=False)
                ok = False
                try:
                    pulled = await client.roosts.pull(
                        DEMO_ROOST_ID, restored, PullOptions(site_id=server.site_id, on_progress=view)
                    )
                    ok = True
                finally:
                    if view is not None:
                        view.close(ok)
                print(
                    f"pulled v{pulled.version_number}: {pulled.stats.file_count} files, "
                    f"{pulled.stats.downloaded_chunks} chunks downloaded"
                )
                check = await client.roosts.pull(
                    DEMO_ROOST_ID, restored, PullOptions(site_id=server.site_id, check=True)
                )
                if not check.in_sync:
                    print(
                        f"the pulled directory differs from v{check.version_number}: "
                        f"{len(check.added)} added, {len(check.removed)} removed, {len(check.changed)} changed"
                    )
                    return _exit.DIFFERENT
                print(f"checked: {restored} matches v{check.version_number} byte for byte")
        print("\ndemo finished: push, dedup, diff, rollback and pull all worked against the local server")
        return _exit.OK
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept the build and server data in {workdir}")
