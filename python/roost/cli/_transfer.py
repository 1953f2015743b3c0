"""``roost push`` and ``roost pull``: the two commands that move bytes."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from roost import NotFoundError
from roost.resources.roosts import (
    DiscoverProgress,
    PullOptions,
    PullResult,
    PushOptions,
    PushResult,
)

from . import _exit
from ._config import open_client
from ._jsondoc import emit_json, to_document
from ._output import human_bytes, human_duration, plural, push_summary, short_id, warn
from ._progress import ProgressEvent, ProgressView, make_view

if TYPE_CHECKING:
    from roost import Roost

__all__ = ["pull", "push"]


def _require_directory(path: str, what: str = "DIR") -> None:
    if not os.path.exists(path):
        raise _exit.LocalInputError(f"{what} {path}: no such directory")
    if not os.path.isdir(path):
        raise _exit.LocalInputError(f"{what} {path}: not a directory")


def _require_readable_file(path: str, flag: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise _exit.LocalInputError(f"{flag} {path}: {error.strerror or error}") from error


async def _require_roost(client: Roost, roost_id: str, site_id: str) -> None:
    """Refuse a roost that does not exist: the server would create it, and a typo would publish."""
    try:
        await client.roosts.get(roost_id, site_id=site_id)
    except NotFoundError:
        existing = [summary.roost_id async for summary in client.roosts.list(site_id=site_id)]
        close = difflib.get_close_matches(roost_id, existing, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise _exit.LocalInputError(
            f"roost {roost_id} does not exist on site {site_id}; {hint}"
            "pass --create to create it; nothing was uploaded",
            code="roost_not_found",
        ) from None


async def _roost_exists(client: Roost, roost_id: str, site_id: str) -> bool:
    try:
        await client.roosts.get(roost_id, site_id=site_id)
    except NotFoundError:
        return False
    return True


class _Progress:
    """Forwards events to the display (if any) and warns at once about ignore patterns that
    matched nothing, which are usually typos worth seeing before a long upload."""

    def __init__(self, view: ProgressView | None, *, warnings: bool) -> None:
        self.view = view
        self.warnings = warnings
        self.reported_patterns: tuple[str, ...] = ()

    def __call__(self, event: ProgressEvent) -> None:
        if self.view is not None:
            self.view(event)
        if isinstance(event, DiscoverProgress) and self.warnings:
            for pattern in event.unmatched_ignores:
                warn(f"ignore pattern {pattern!r} matched nothing")
            self.reported_patterns = event.unmatched_ignores

    def close(self, ok: bool) -> None:
        if self.view is not None:
            self.view.close(ok)


def _print_warnings(result: PushResult, already_reported: tuple[str, ...]) -> None:
    for text in result.warnings:
        # The engine may word the unmatched-pattern warning itself: it was shown at discover time.
        if not any(repr(pattern) in text or f"`{pattern}`" in text for pattern in already_reported):
            warn(text)


def _dry_run_text(result: PushResult) -> str:
    stats = result.stats
    scanned = f"{plural(stats.file_count, 'file')} ({human_bytes(stats.total_bytes)})"
    plan = result.plan
    if plan is None:
        return f"dry run: {scanned}; nothing was published"
    return (
        f"dry run: {scanned}; would upload {len(plan.chunks)} of {stats.unique_chunks} chunks "
        f"({human_bytes(plan.bytes)}) from {plural(len(plan.files), 'file')}; nothing was published"
    )


def _push_document(result: PushResult) -> dict[str, Any]:
    document: dict[str, Any] = to_document(result)
    if result.dry_run:
        # A dry run publishes nothing: the library's 0 means "no version", which is null here.
        document["version_number"] = None
    return document


async def push(args: argparse.Namespace) -> int:
    _require_directory(args.directory)
    if args.ignore_from is not None:
        _require_readable_file(args.ignore_from, "--ignore-from")
    async with open_client(args) as (client, settings):
        site_id = settings.require_site()
        if not args.create:
            await _require_roost(client, args.roost_id, site_id)
        elif (
            args.verbose > 0
            and not (args.json or args.quiet)
            and not await _roost_exists(client, args.roost_id, site_id)
        ):
            print(
                f"roost: {args.roost_id} does not exist on site {site_id} yet; this push creates it (--create)",
                file=sys.stderr,
                flush=True,
            )
        progress = _Progress(
            make_view(quiet=args.json or args.quiet, verbose=args.verbose > 0), warnings=not args.json
        )
        options = PushOptions(
            site_id=site_id,
            name=args.name,
            targets=args.targets,
            extract_path=args.extract_path,
            description=args.description,
            ignore=tuple(args.ignore),
            on_progress=progress,
            concurrency=args.concurrency,
            dry_run=args.dry_run,
            ignore_file=args.ignore_from,
            default_ignores=args.default_ignores,
            bandwidth_limit=args.bwlimit,
            stall_timeout_s=args.stall_timeout,
            allow_unportable_paths=args.allow_unportable_paths,
            skip_unchanged=args.skip_unchanged,
        )
        started = time.perf_counter()
        ok = False
        try:
            result = await client.roosts.push(args.directory, args.roost_id, options)
            ok = True
        finally:
            progress.close(ok)
        elapsed = time.perf_counter() - started
    if args.json:
        emit_json(_push_document(result))
        return _exit.OK
    _print_warnings(result, progress.reported_patterns)
    print(_dry_run_text(result) if result.dry_run else push_summary(result, elapsed))
    return _exit.OK


def _pull_text(result: PullResult, directory: str, elapsed: float) -> list[str]:
    stats = result.stats
    head = f"v{result.version_number} {short_id(result.version_id)}"
    if result.check:
        if result.in_sync:
            return [f"in sync: {directory} matches {head} ({plural(stats.file_count, 'file')})"]
        lines = [
            f"different: {directory} differs from {head}: {len(result.added)} added, "
            f"{len(result.removed)} removed, {len(result.changed)} changed"
        ]
        lines += [f"  + {path}" for path in result.added]
        lines += [f"  - {path}" for path in result.removed]
        lines += [f"  ~ {path}" for path in result.changed]
        return lines
    lines = [
        f"pulled {head} into {directory}: {plural(stats.file_count, 'file')} ({human_bytes(stats.total_bytes)}), "
        f"{stats.written_files} written, {stats.unchanged_files} unchanged, {stats.deleted_files} deleted; "
        f"{stats.downloaded_chunks} chunks downloaded ({human_bytes(stats.downloaded_bytes)}), "
        f"{stats.copied_chunks} copied locally in {human_duration(elapsed)}"
    ]
    if result.removed and not stats.deleted_files:
        lines.append(f"kept {len(result.removed)} files that are not in the version (--delete removes them)")
    return lines


def _require_no_file(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise _exit.LocalInputError(f"DIR {path}: not a directory")


async def pull(args: argparse.Namespace) -> int:
    _require_no_file(args.directory)
    async with open_client(args) as (client, settings):
        view = None if args.check else make_view(quiet=args.json or args.quiet, verbose=args.verbose > 0)
        progress = _Progress(view, warnings=False)
        options = PullOptions(
            site_id=settings.require_site(),
            ref=args.ref,
            delete=args.delete,
            check=args.check,
            concurrency=args.concurrency,
            on_progress=progress,
        )
        started = time.perf_counter()
        ok = False
        try:
            result = await client.roosts.pull(args.roost_id, args.directory, options)
            ok = True
        finally:
            progress.close(ok)
        elapsed = time.perf_counter() - started
    code = _exit.DIFFERENT if result.check and not result.in_sync else _exit.OK
    if args.json:
        emit_json(result)
        return code
    for line in _pull_text(result, args.directory, elapsed):
        print(line)
    return code
