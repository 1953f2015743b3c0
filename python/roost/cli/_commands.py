"""One function per ``roost`` command that reads or changes API state. Each returns its exit code.

``push`` and ``pull`` live in ``_transfer``, ``dev-server`` in ``_devserver``, ``demo`` in ``_demo``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from roost.resources.roosts import DeployOptions, RollbackOptions
from roost.signature import verify_signature

from . import _exit
from ._config import open_client
from ._jsondoc import emit_json
from ._output import human_bytes, plural, print_diff, print_table, short_id

WEBHOOK_SECRET_ENV = "OWLETTE_WEBHOOK_SECRET"


async def whoami(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, _):
        identity = await client.account.whoami()
    if args.json:
        emit_json(identity)
        return _exit.OK
    print(f"user:         {identity.email or identity.user_id}")
    print(f"role:         {identity.role}")
    print(f"primary site: {identity.primary_site_id}")
    if identity.key is not None:
        print(f"key:          {identity.key.key_prefix} ({identity.key.environment})")
    return _exit.OK


async def sites(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, _):
        found = await client.sites.list()
    if args.json:
        emit_json(found)
        return _exit.OK
    print_table([[s.id, s.name, s.timezone or "-"] for s in found], ["SITE", "NAME", "TIMEZONE"])
    return _exit.OK


async def roosts_list(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        rows = [
            r
            async for r in client.roosts.list(
                site_id=settings.require_site(), include_deleted=args.include_deleted
            )
        ]
    if args.json:
        emit_json(rows)
        return _exit.OK
    print_table(
        [[r.roost_id, r.name, short_id(r.current_version_id)] for r in rows],
        ["ROOST", "NAME", "CURRENT VERSION"],
    )
    return _exit.OK


async def roosts_get(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        detail = await client.roosts.get(args.roost_id, site_id=settings.require_site())
    if args.json:
        emit_json(detail)
        return _exit.OK
    print(f"roost:    {detail.roost_id} ({detail.name})")
    print(f"targets:  {', '.join(detail.targets) or '-'}")
    current = detail.current_version
    if current is None:
        print("current:  - (nothing published yet)")
    else:
        print(
            f"current:  v{current.version_number} {short_id(current.version_id)} "
            f"({current.total_files} files, {human_bytes(current.total_size)})"
        )
    return _exit.OK


async def roosts_create(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        created = await client.roosts.create(
            site_id=settings.require_site(),
            name=args.name,
            targets=args.targets,
            extract_path=args.extract_path,
            roost_id=args.roost_id,
        )
    if args.json:
        emit_json(created)
    else:
        print(f"created {created.roost_id} ({created.name})")
    return _exit.OK


async def versions_list(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        site_id = settings.require_site()
        rows = [v async for v in client.versions.list(args.roost_id, site_id=site_id)]
        current_id = (await client.roosts.get(args.roost_id, site_id=site_id)).current_version_id
    if args.json:
        emit_json([{**row, "is_current": row.get("versionId") == current_id} for row in rows])
        return _exit.OK
    print_table(
        [
            [
                ("* " if v.get("versionId") == current_id else "  ") + f"v{v.get('versionNumber')}",
                short_id(v.get("versionId")),
                str(v.get("createdAt") or "-"),
                v.get("description") or "",
            ]
            for v in rows
        ],
        ["  VERSION", "ID", "CREATED", "DESCRIPTION"],
    )
    return _exit.OK


async def versions_get(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        version = await client.versions.get(args.roost_id, args.ref, site_id=settings.require_site())
    if args.json:
        emit_json(version)
        return _exit.OK
    metadata: dict[str, Any] = version.get("metadata") or {}
    print(f"version: v{version.get('versionNumber')} {version.get('versionId')}")
    print(f"files:   {metadata.get('totalFiles')} ({human_bytes(int(metadata.get('totalSize') or 0))})")
    print(f"created: {metadata.get('createdAt')} by {metadata.get('createdBy')}")
    if version.get("description"):
        print(f"notes:   {version['description']}")
    return _exit.OK


async def versions_files(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        files = [
            f
            async for f in client.versions.files(
                args.roost_id, args.ref, site_id=settings.require_site(), prefix=args.prefix
            )
        ]
    if args.json:
        emit_json(files)
        return _exit.OK
    print_table(
        [[str(f["size"]), str(len(f.get("chunks") or [])), f["path"]] for f in files],
        ["SIZE", "CHUNKS", "PATH"],
    )
    return _exit.OK


async def versions_diff(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        diff = await client.versions.diff(
            args.roost_id, args.ref, site_id=settings.require_site(), against=args.against
        )
    if args.json:
        emit_json(diff)
        return _exit.OK
    print_diff(diff)
    return _exit.OK


async def rollback(args: argparse.Namespace) -> int:
    target: str | int | None = args.target
    async with open_client(args) as (client, settings):
        result = await client.roosts.rollback(
            args.roost_id, RollbackOptions(site_id=settings.require_site(), target_version=target)
        )
    if args.json:
        emit_json(result)
        return _exit.OK
    number = f"v{result.current_version_number} " if result.current_version_number is not None else ""
    print(f"rolled back: current version is now {number}{short_id(result.current_version_id)}")
    return _exit.OK


async def deploy(args: argparse.Namespace) -> int:
    async with open_client(args) as (client, settings):
        result = await client.roosts.deploy(
            args.roost_id,
            DeployOptions(
                site_id=settings.require_site(),
                version_id=args.version_id,
                machines=args.machines,
                schedule_at=args.schedule_at,
                dry_run=args.dry_run,
            ),
        )
    if args.json:
        emit_json(result)
        return _exit.OK
    machines = plural(len(result.canary) + len(result.fleet), "machine")
    version = short_id(result.version_id)
    if result.dry_run:
        print(f"dry run: would deploy {version} to {machines} ({result.stage}); nothing changed")
    elif result.already_running:
        print(
            f"already running: rollout {result.rollout_id} of {version} ({result.stage}) "
            f"to {machines}; no new rollout was started"
        )
    else:
        print(f"deploying {version} to {machines}: rollout {result.rollout_id} ({result.stage})")
    print(f"  canary: {', '.join(result.canary) or '-'}")
    print(f"  fleet:  {', '.join(result.fleet) or '-'}")
    if result.scheduled:
        print(f"  scheduled: {result.scheduled.get('at')} {result.scheduled.get('warning') or ''}".rstrip())
    return _exit.OK


def webhook_verify(args: argparse.Namespace) -> int:
    secret = args.secret or os.environ.get(WEBHOOK_SECRET_ENV)
    if not secret:
        raise _exit.UsageError(f"no signing secret: pass --secret or set {WEBHOOK_SECRET_ENV}")
    if args.body == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            with open(args.body, "rb") as handle:
                body = handle.read()
        except OSError as error:
            raise _exit.LocalInputError(f"--body {args.body}: {error.strerror}") from error
    result = verify_signature(args.header, body, secret, tolerance_seconds=args.tolerance)
    if args.json:
        emit_json(result)
    elif not args.quiet:
        print("valid" if result.ok else f"invalid: {result.reason}")
    return _exit.OK if result.ok else _exit.DIFFERENT


def completion(args: argparse.Namespace) -> int:
    from argcomplete.shell_integration import shellcode

    # The script calls `roost` back with the words typed so far; main() answers through argcomplete.
    sys.stdout.write(shellcode(["roost"], shell=args.shell))
    sys.stdout.flush()
    return _exit.OK
