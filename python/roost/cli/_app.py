"""``main()``: parse, dispatch, and keep the exit-code and error contract of ``roost``.

Errors go to stderr as one ``error: ...`` line; under ``--json`` the same facts are also printed
on stdout as ``{"error": {"status", "code", "message", "request_id"}}``, with the same exit code.
A closed stdout (``roost ... | head -1``) ends the command quietly with exit 0, as git does: the
reader has what it wanted, and a pipeline under ``set -o pipefail`` should not fail for that.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from roost import (
    ChunkDownloadError,
    ChunkSourceChangedError,
    ChunkUploadError,
    MalformedResponseError,
    RoostApiError,
    RoostConnectionError,
)
from roost.resources.roosts import UnsafeManifestPathError

from . import _exit
from ._jsondoc import emit_json, error_document
from ._parser import build_parser

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int] | int]

_INTERRUPTED = {
    "push": "interrupted: stopped cleanly, nothing was published",
    "pull": "interrupted: stopped cleanly, no partially written file was left behind",
}


@dataclass(frozen=True, slots=True)
class _Failure:
    """An error already classified: exit code and the fields of its JSON document."""

    exit_code: int
    code: str
    message: str
    status: int | None = None
    request_id: str | None = None


def _classify(error: BaseException) -> _Failure | None:
    if isinstance(error, RoostApiError):
        return _Failure(
            _exit.API_ERROR, error.code or f"http_{error.status}", str(error), error.status, error.request_id
        )
    if isinstance(error, UnsafeManifestPathError):
        return _Failure(_exit.API_ERROR, "unsafe_manifest_path", str(error))
    if isinstance(error, ChunkUploadError):
        return _Failure(_exit.API_ERROR, "chunk_upload_failed", str(error))
    if isinstance(error, ChunkDownloadError):
        return _Failure(_exit.API_ERROR, "chunk_download_failed", str(error))
    if isinstance(error, RoostConnectionError):
        return _Failure(_exit.API_ERROR, "connection_error", str(error))
    if isinstance(error, MalformedResponseError):
        return _Failure(_exit.API_ERROR, "malformed_response", str(error))
    if isinstance(error, httpx.HTTPError):
        return _Failure(
            _exit.API_ERROR, "connection_error", f"could not reach the API: {type(error).__name__}: {error}"
        )
    if isinstance(error, _exit.LocalInputError):
        return _Failure(_exit.LOCAL_INPUT, error.code, str(error))
    if isinstance(error, ChunkSourceChangedError):
        return _Failure(_exit.LOCAL_INPUT, "source_changed", str(error))
    if isinstance(error, (OSError, ValueError)):
        return _Failure(_exit.LOCAL_INPUT, "local_input", str(error))
    return None


def _wants_json(argv: Sequence[str]) -> bool:
    words = list(argv)
    return "--json" in (words[: words.index("--")] if "--" in words else words)


def _report(failure: _Failure, as_json: bool) -> int:
    print(f"error: {failure.message}", end="", file=sys.stderr)
    if failure.status is not None:
        print(
            f" (http {failure.status}, code {failure.code}, request id {failure.request_id})",
            end="",
            file=sys.stderr,
        )
    print(file=sys.stderr, flush=True)
    if as_json:
        emit_json(error_document(failure.status, failure.code, failure.message, failure.request_id))
    return failure.exit_code


def _usage(error: _exit.UsageError, parser: argparse.ArgumentParser, as_json: bool) -> int:
    shown = error.parser or parser
    shown.print_usage(sys.stderr)
    print(f"{shown.prog}: error: {error}", file=sys.stderr, flush=True)
    if as_json:
        emit_json(error_document(None, "usage", str(error), None))
    return _exit.USAGE


def _configure_logging(verbosity: int) -> None:
    if verbosity >= 2:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("roost: %(message)s"))
        logger = logging.getLogger("roost")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _run(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    as_json = _wants_json(argv)
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            args.command_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except _exit.UsageError as error:
        return _usage(error, parser, as_json)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else _exit.OK
    as_json = bool(getattr(args, "json", False))
    _configure_logging(getattr(args, "verbose", 0))
    handler: Handler = args.handler
    try:
        outcome = handler(args)
        code = outcome if isinstance(outcome, int) else asyncio.run(outcome)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        message = _INTERRUPTED.get(args.command, "interrupted")
        return _report(_Failure(_exit.INTERRUPTED, "interrupted", message), as_json)
    except _exit.UsageError as error:
        return _usage(error, args.command_parser, as_json)
    except BrokenPipeError:
        raise
    except Exception as error:
        failure = _classify(error)
        if failure is None:
            raise
        return _report(failure, as_json)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``roost``; returns the exit code (see ``roost --help``)."""
    try:
        import argcomplete
        import rich  # noqa: F401  (only probing that the extra is installed)
    except ImportError:
        print(
            "roost: the command line needs the 'cli' extra: pip install 'owlette-sdk[cli]'", file=sys.stderr
        )
        return _exit.USAGE
    parser = build_parser()
    # Answers a shell's completion request and exits; returns at once otherwise.
    argcomplete.autocomplete(parser)
    try:
        return _run(parser, list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        _silence_stdout()
        return _exit.OK
