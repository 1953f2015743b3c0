"""One function per ``roost`` subcommand. Each returns its exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .._roost import Roost
from ..resources.roosts import DeployOptions, PushOptions, RollbackOptions
from ..signature import verify_signature
from . import _exit
from ._app import emit_json
from ._config import Settings, resolve
from ._progress import PlainView, TerminalView, human_bytes

WEBHOOK_SECRET_ENV = "OWLETTE_WEBHOOK_SECRET"


@asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[tuple[Roost, Settings]]:
    settings = resolve(args)
    async with Roost(token=settings.token, api_url=settings.api_url) as client:
        yield client, settings


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def make_view(quiet: bool) -> PlainView | TerminalView | None:
    """The progress display for this process: none under --json, live on a terminal, else lines."""
    if quiet:
        return None
    if sys.stderr.isatty():
        from rich.console import Console

        return TerminalView(Console(stderr=True))
    return PlainView(sys.stderr)


def _require_directory(path: str) -> None:
    if not os.path.exists(path):
        raise _exit.LocalInputError(f"{path}: no such directory")
    if not os.path.isdir(path):
        raise _exit.LocalInputError(f"{path}: not a directory")


async def push(args: argparse.Namespace) -> int:
    _require_directory(args.directory)
    async with _client(args) as (client, settings):
        view = make_view(args.json)
        options = PushOptions(
            site_id=settings.require_site(),
            name=args.name,
            targets=args.targets,
            extract_path=args.extract_path,
            description=args.description,
            ignore=tuple(args.ignore),
            on_progress=view,
            concurrency=args.concurrency,
            dry_run=args.dry_run,
        )
        try:
            result = await client.roosts.push(args.directory, args.roost_id, options)
        finally:
            if view is not None:
                view.close()
    if args.json:
        emit_json(result)
        return _exit.OK
    stats = result.stats
    if args.dry_run:
        print(
            f"dry run: {stats.file_count} files ({human_bytes(stats.total_bytes)}), "
            f"{stats.uploaded_chunks} of {stats.unique_chunks} chunks would upload "
            f"({human_bytes(stats.uploaded_bytes)}); nothing was published"
        )
        return _exit.OK
    print(
        f"published v{result.version_number} {result.version_id}: {stats.file_count} files "
        f"({human_bytes(stats.total_bytes)}), {stats.uploaded_chunks} of {stats.unique_chunks} chunks "
        f"uploaded ({human_bytes(stats.uploaded_bytes)})"
    )
    return _exit.OK


async def whoami(args: argparse.Namespace) -> int:
    async with _client(args) as (client, _):
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
    async with _client(args) as (client, _):
        found = await client.sites.list()
    if args.json:
        emit_json(found)
        return _exit.OK
    _table([[s.id, s.name, s.timezone or ""] for s in found], ["SITE", "NAME", "TIMEZONE"])
    return _exit.OK


async def roosts_list(args: argparse.Namespace) -> int:
    async with _client(args) as (client, settings):
        rows = [
            r
            async for r in client.roosts.list(
                site_id=settings.require_site(), include_deleted=args.include_deleted
            )
        ]
    if args.json:
        emit_json(rows)
        return _exit.OK
    _table(
        [[r.roost_id, r.name, r.current_version_id or "-"] for r in rows],
        ["ROOST", "NAME", "CURRENT VERSION"],
    )
    return _exit.OK


async def roosts_get(args: argparse.Namespace) -> int:
    async with _client(args) as (client, settings):
        detail = await client.roosts.get(args.roost_id, site_id=settings.require_site())
    if args.json:
        emit_json(detail)
        return _exit.OK
    current = detail.current_version
    print(f"roost:   {detail.roost_id} ({detail.name})")
    print(f"targets: {', '.join(detail.targets or []) or '-'}")
    if current is not None:
        print(f"current: v{current.version_number} {current.version_id} ({current.total_files} files)")
    else:
        print("current: none published yet")
    return _exit.OK


async def roosts_create(args: argparse.Namespace) -> int:
    async with _client(args) as (client, settings):
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
    async with _client(args) as (client, settings):
        rows = [v async for v in client.versions.list(args.roost_id, site_id=settings.require_site())]
    if args.json:
        emit_json(rows)
        return _exit.OK
    _table(
        [
            [
                f"v{v.get('versionNumber')}",
                str(v.get("versionId")),
                str(v.get("createdAt")),
                v.get("description") or "",
            ]
            for v in rows
        ],
        ["VERSION", "ID", "CREATED", "DESCRIPTION"],
    )
    return _exit.OK


async def versions_get(args: argparse.Namespace) -> int:
    async with _client(args) as (client, settings):
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
    async with _client(args) as (client, settings):
        files = [
            f
            async for f in client.versions.files(
                args.roost_id, args.ref, site_id=settings.require_site(), prefix=args.prefix
            )
        ]
    if args.json:
        emit_json(files)
        return _exit.OK
    _table(
        [[str(f["size"]), str(len(f.get("chunks") or [])), f["path"]] for f in files],
        ["SIZE", "CHUNKS", "PATH"],
    )
    return _exit.OK


async def versions_diff(args: argparse.Namespace) -> int:
    async with _client(args) as (client, settings):
        diff = await client.versions.diff(
            args.roost_id, args.ref, site_id=settings.require_site(), against=args.against
        )
    if args.json:
        emit_json(diff)
        return _exit.OK
    print_diff(diff)
    return _exit.OK


def print_diff(diff: dict[str, Any]) -> None:
    summary = diff.get("summary") or {}
    print(
        f"{summary.get('added', 0)} added, {summary.get('removed', 0)} removed, "
        f"{summary.get('changed', 0)} changed, {summary.get('unchanged', 0)} unchanged "
        f"({int(summary.get('netBytesDelta') or 0):+d} bytes)"
    )
    for entry in diff.get("added") or []:
        print(f"  + {entry['path']}")
    for entry in diff.get("removed") or []:
        print(f"  - {entry['path']}")
    for entry in diff.get("modified") or []:
        print(f"  ~ {entry['path']} ({entry.get('fromSize')} -> {entry.get('toSize')} bytes)")


async def rollback(args: argparse.Namespace) -> int:
    target: str | int | None = args.target
    async with _client(args) as (client, settings):
        result = await client.roosts.rollback(
            args.roost_id, RollbackOptions(site_id=settings.require_site(), target_version=target)
        )
    if args.json:
        emit_json(result)
    else:
        print(f"rolled back: current version is now {result.current_version_id}")
    return _exit.OK


async def deploy(args: argparse.Namespace) -> int:
    async with _client(args) as (client, settings):
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
    prefix = "dry run: would deploy" if result.dry_run else "deploying"
    print(
        f"{prefix} {result.version_id} ({result.stage}) to {len(result.canary) + len(result.fleet)} machines"
    )
    print(f"  canary: {', '.join(result.canary) or '-'}")
    print(f"  fleet:  {', '.join(result.fleet) or '-'}")
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
            raise _exit.LocalInputError(f"{args.body}: {error.strerror}") from error
    result = verify_signature(args.header, body, secret, tolerance_seconds=args.tolerance)
    if args.json:
        emit_json(result)
    else:
        print("valid" if result.ok else f"invalid: {result.reason}")
    return _exit.OK if result.ok else 1


def dev_server(args: argparse.Namespace) -> int:
    try:
        from ..testing import serve_forever
    except ImportError as error:
        print(
            f"roost: dev-server needs the 'server' extra: pip install 'owlette-sdk[server]' ({error})",
            file=sys.stderr,
        )
        return _exit.USAGE
    return serve_forever(list(args.rest), prog="roost dev-server")


async def demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return await run_demo(keep=args.keep)
