"""A nightly batch job: publish every build folder, verify each release, roll back the bad ones.

Every immediate sub-directory of BUILDS_ROOT is one build; it is published to the roost
``<prefix><folder name>`` (created on first run). Builds are pushed concurrently (``--concurrency``).
After each publish the job verifies the *published* version:

* the version's file listing matches the local folder (paths and sizes), and
* every ``--require`` entry file (e.g. ``index.html``) is part of it.

A build that fails verification is rolled back to the version that was current before the job
ran (if there was one), so machines never pick up a broken release. Replace :func:`verify` with
your own smoke test (hit a staging machine, validate a manifest, ...).

    export OWLETTE_TOKEN=owk_live_...  OWLETTE_SITE=site-1  [OWLETTE_API_URL=...]
    python examples/nightly_sync.py ./builds --require index.html --report nightly.json [--deploy]

Exit status: 0 when every build published and verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from roost import (
    DEFAULT_API_URL,
    DeployOptions,
    NotFoundError,
    PushOptions,
    PushResult,
    RollbackOptions,
    Roost,
    RoostApiError,
)


@dataclass
class BuildReport:
    build: str
    roost_id: str
    status: str = "pending"  # published | rolled_back | failed
    version_number: int | None = None
    version_id: str | None = None
    uploaded_chunks: int = 0
    total_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    rolled_back_to: str | None = None
    rollout_id: str | None = None
    seconds: float = 0.0


def roost_id_for(prefix: str, folder: str) -> str:
    roost_id = prefix + re.sub(r"[^A-Za-z0-9_-]", "-", folder)
    if not 8 <= len(roost_id) <= 64:
        raise ValueError(f"roost id {roost_id!r} must be 8-64 characters; adjust --prefix or the folder name")
    return roost_id


def local_manifest(folder: Path) -> dict[str, int]:
    """Relative POSIX path -> size of every non-empty file the push would publish."""
    files: dict[str, int] = {}
    for path in folder.rglob("*"):
        if path.is_file() and not {".git", "node_modules"} & set(path.relative_to(folder).parts):
            size = path.stat().st_size
            if size:
                files[path.relative_to(folder).as_posix()] = size
    return files


async def verify(
    client: Roost, site_id: str, roost_id: str, result: PushResult, folder: Path, required: list[str]
) -> list[str]:
    """Problems found in the published version (empty when it is good)."""
    published = {
        entry["path"]: entry["size"]
        async for entry in client.versions.files(roost_id, result.version_id, site_id=site_id)
    }
    expected = local_manifest(folder)
    problems = [
        f"missing from the published version: {path}" for path in sorted(expected.keys() - published.keys())
    ]
    problems += [
        f"unexpected in the published version: {path}" for path in sorted(published.keys() - expected.keys())
    ]
    problems += [
        f"size mismatch for {path}: {published[path]} != {expected[path]}"
        for path in sorted(expected.keys() & published.keys())
        if published[path] != expected[path]
    ]
    problems += [
        f"required entry file {name} is not in the build" for name in required if name not in published
    ]
    return problems


async def sync_one(
    client: Roost, site_id: str, folder: Path, report: BuildReport, args: argparse.Namespace
) -> None:
    started = time.monotonic()
    try:
        try:
            before = (await client.roosts.get(report.roost_id, site_id=site_id)).current_version_id
        except NotFoundError:
            await client.roosts.create(
                site_id=site_id,
                name=f"nightly {folder.name}",
                roost_id=report.roost_id,
                targets=args.target or None,
            )
            before = None

        result = await client.roosts.push(
            folder,
            report.roost_id,
            PushOptions(
                site_id=site_id, description=f"nightly build {time.strftime('%Y-%m-%d')} ({folder.name})"
            ),
        )
        report.version_number = result.version_number
        report.version_id = result.version_id
        report.uploaded_chunks = result.stats.uploaded_chunks
        report.total_bytes = result.stats.total_bytes

        report.problems = await verify(client, site_id, report.roost_id, result, folder, args.require)
        if report.problems:
            if before is not None and before != result.version_id:
                rolled = await client.roosts.rollback(
                    report.roost_id, RollbackOptions(site_id=site_id, target_version=before)
                )
                report.rolled_back_to = rolled.current_version_id
                report.status = "rolled_back"
            else:
                report.status = "failed"
                report.problems.append("no earlier version to roll back to")
            return

        report.status = "published"
        if args.deploy:
            deploy = await client.roosts.deploy(
                report.roost_id, DeployOptions(site_id=site_id, version_id=result.version_id)
            )
            report.rollout_id = deploy.rollout_id
    except (RoostApiError, OSError, ValueError) as err:
        report.status = "failed"
        code = f" [{err.code}, request id {err.request_id}]" if isinstance(err, RoostApiError) else ""
        report.problems.append(f"{type(err).__name__}: {err}{code}")
    finally:
        report.seconds = round(time.monotonic() - started, 2)


def print_table(reports: list[BuildReport]) -> None:
    print(f"{'build':<20} {'roost':<28} {'status':<12} {'version':>7} {'chunks up':>9}  notes")
    for r in reports:
        version = f"v{r.version_number}" if r.version_number else "-"
        notes = "; ".join(r.problems) or (f"rollout {r.rollout_id[:12]}" if r.rollout_id else "")
        print(f"{r.build:<20} {r.roost_id:<28} {r.status:<12} {version:>7} {r.uploaded_chunks:>9}  {notes}")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="publish, verify and (on failure) roll back every build folder"
    )
    parser.add_argument("builds_root", type=Path)
    parser.add_argument("--prefix", default="rst_nightly_", help="roost id prefix (default rst_nightly_)")
    parser.add_argument("--require", action="append", default=[], help="entry file every build must contain")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--deploy", action="store_true", help="deploy builds that pass verification")
    parser.add_argument("--target", action="append", default=[], help="machine id for roosts the job creates")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)

    token = os.environ.get("OWLETTE_TOKEN", "").strip()
    if not token:
        print("set OWLETTE_TOKEN", file=sys.stderr)
        return 2
    folders = sorted(p for p in args.builds_root.iterdir() if p.is_dir()) if args.builds_root.is_dir() else []
    if not folders:
        print(f"no build folders under {args.builds_root}", file=sys.stderr)
        return 2

    async with Roost(token=token, api_url=os.environ.get("OWLETTE_API_URL") or DEFAULT_API_URL) as client:
        site_id = os.environ.get("OWLETTE_SITE") or (await client.account.whoami()).primary_site_id
        if not site_id:
            print("set OWLETTE_SITE (the key has no primary site)", file=sys.stderr)
            return 2
        reports = [BuildReport(build=f.name, roost_id=roost_id_for(args.prefix, f.name)) for f in folders]
        limit = asyncio.Semaphore(max(1, args.concurrency))

        async def guarded(folder: Path, report: BuildReport) -> None:
            async with limit:
                await sync_one(client, site_id, folder, report, args)

        await asyncio.gather(*(guarded(f, r) for f, r in zip(folders, reports, strict=True)))

    print_table(reports)
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return 0 if all(r.status == "published" for r in reports) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
