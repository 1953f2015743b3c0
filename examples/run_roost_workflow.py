"""The complete publish workflow, step by step, with a clear message when a step fails.

1. identity   - who the key belongs to (``account.whoami``)
2. API version - the server supports the ``Roost-Version`` this SDK sends (``account.version``)
3. site        - the key can see the site (``sites.get``)
4. roost       - the roost exists and is readable (``roosts.get``; ``--create`` creates it)
5. publish     - push the directory as a new version (``roosts.push``)
6. deploy      - optional: roll it out (``roosts.deploy``; ``--dry-run`` only plans it)

    export OWLETTE_TOKEN=owk_test_...            # required
    export OWLETTE_API_URL=http://127.0.0.1:8787 # optional (default https://owlette.app)
    export OWLETTE_SITE=site-1                   # optional (default: the key's primary site)
    python examples/run_roost_workflow.py ./dist --roost-id rst_lobby_td --create --deploy

Exit status: 0 on success, 1 when a step fails (the API error code and request id are printed),
2 on bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from roost import (
    DEFAULT_API_URL,
    DeployOptions,
    NotFoundError,
    PushOptions,
    Roost,
    RoostApiError,
)
from roost.resources.roosts import PushProgressEvent


class WorkflowStepError(Exception):
    """A workflow step could not complete; the message says why and what to do."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dist", type=Path, help="directory to publish")
    parser.add_argument("--roost-id", default=os.environ.get("OWLETTE_ROOST"), help="roost id (8-64 chars)")
    parser.add_argument("--site", default=os.environ.get("OWLETTE_SITE"), help="site id")
    parser.add_argument("--create", action="store_true", help="create the roost when it does not exist")
    parser.add_argument("--name", help="roost name used by --create (default: the roost id)")
    parser.add_argument("--target", action="append", default=[], help="machine id (repeatable) for --create")
    parser.add_argument("--description", default="published by run_roost_workflow.py")
    parser.add_argument("--deploy", action="store_true", help="deploy the new version after publishing")
    parser.add_argument(
        "--machine", action="append", default=None, help="deploy only to this machine (repeatable)"
    )
    parser.add_argument("--schedule-at", help="ISO-8601 UTC time for a scheduled rollout")
    parser.add_argument("--dry-run", action="store_true", help="plan the deploy without starting it")
    args = parser.parse_args(argv)
    if not args.roost_id:
        parser.error("--roost-id (or OWLETTE_ROOST) is required")
    if not args.dist.is_dir():
        parser.error(f"{args.dist} is not a directory")
    return args


def step(number: int, title: str, detail: str) -> None:
    print(f"[{number}/6] {title:<12} {detail}", flush=True)


def print_progress(event: PushProgressEvent) -> None:
    if event.phase == "discover":
        print(f"              found {event.file_count} files ({event.total_bytes} bytes)")
    elif event.phase == "check-missing":
        print(f"              {event.missing} of {event.total} chunks need upload")
    elif event.phase == "upload":
        print(f"              {event.uploaded}/{event.total} chunks uploaded")
    elif event.phase == "publish":
        print(f"              retrying publish (attempt {event.attempt})")


async def run(client: Roost, args: argparse.Namespace) -> None:
    identity = await client.account.whoami()
    who = identity.email or identity.user_id or "unknown user"
    key = identity.key.key_prefix if identity.key else "session"
    step(1, "identity", f"{who} (key {key}, role {identity.role})")

    api_version = await client.account.version()
    sent = client.http.roost_version
    if sent not in api_version.supported:
        raise WorkflowStepError(
            f"the server supports Roost-Version {api_version.supported}, this SDK sends {sent}: update owlette-sdk"
        )
    step(2, "api version", f"{sent} (server current {api_version.current})")

    site_id = args.site or identity.primary_site_id
    if not site_id:
        raise WorkflowStepError("no site: pass --site or set OWLETTE_SITE (the key has no primary site)")
    try:
        site = await client.sites.get(site_id)
    except NotFoundError as err:
        raise WorkflowStepError(f"site {site_id!r} does not exist or this key cannot see it") from err
    step(3, "site", f"{site.id} ({site.name})")

    try:
        roost = await client.roosts.get(args.roost_id, site_id=site_id)
        current = roost.current_version
        state = f"v{current.version_number} is current" if current else "no version yet"
        step(4, "roost", f"{roost.roost_id} ({roost.name}), {state}")
    except NotFoundError as err:
        if not args.create:
            raise WorkflowStepError(
                f"roost {args.roost_id!r} not found on {site_id}; pass --create to create it"
            ) from err
        created = await client.roosts.create(
            site_id=site_id,
            name=args.name or args.roost_id,
            targets=args.target or None,
            roost_id=args.roost_id,
        )
        step(4, "roost", f"created {created.roost_id} ({created.name})")

    step(5, "publish", f"pushing {args.dist}")
    result = await client.roosts.push(
        args.dist,
        args.roost_id,
        PushOptions(site_id=site_id, description=args.description, on_progress=print_progress),
    )
    stats = result.stats
    print(
        f"              published v{result.version_number} {result.version_id} "
        f"({stats.file_count} files, {stats.uploaded_chunks}/{stats.unique_chunks} chunks uploaded)"
    )

    if not args.deploy:
        step(6, "deploy", "skipped (pass --deploy)")
        return
    deploy = await client.roosts.deploy(
        args.roost_id,
        DeployOptions(
            site_id=site_id,
            version_id=result.version_id,
            machines=args.machine,
            schedule_at=args.schedule_at,
            dry_run=args.dry_run,
        ),
    )
    mode = (
        "planned (dry run)" if deploy.dry_run else "already running" if deploy.already_running else "started"
    )
    step(
        6, "deploy", f"rollout {deploy.rollout_id[:12]} {mode}: stage {deploy.stage}, canary {deploy.canary}"
    )


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = os.environ.get("OWLETTE_TOKEN", "").strip()
    if not token:
        print("set OWLETTE_TOKEN to an owk_live_* or owk_test_* key", file=sys.stderr)
        return 2
    async with Roost(token=token, api_url=os.environ.get("OWLETTE_API_URL") or DEFAULT_API_URL) as client:
        try:
            await run(client, args)
        except WorkflowStepError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        except RoostApiError as err:
            print(
                f"error: {err} (code {err.code}, status {err.status}, request id {err.request_id})",
                file=sys.stderr,
            )
            return 1
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
