"""Argument parsing, dispatch and the exit-code contract of ``roost``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

import httpx

from .._errors import ChunkSourceChangedError, ChunkUploadError, RoostApiError
from .._version import SDK_VERSION
from .._wire import MalformedResponseError
from . import _exit
from ._config import API_URL_ENV, SITE_ENV, TOKEN_ENV

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int] | int]


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def emit_json(value: Any, stream: TextIO | None = None) -> None:
    print(json.dumps(_to_jsonable(value), indent=2, sort_keys=False), file=stream or sys.stdout)


def _client_args(parser: argparse.ArgumentParser, *, site: bool = True) -> None:
    parser.add_argument("--token", help=f"API token (default: ${TOKEN_ENV})")
    parser.add_argument("--api-url", help=f"API base URL (default: ${API_URL_ENV} or https://owlette.app)")
    if site:
        parser.add_argument("--site", help=f"site id (default: ${SITE_ENV})")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def build_parser() -> argparse.ArgumentParser:
    from . import _commands

    parser = argparse.ArgumentParser(
        prog="roost",
        description="Publish builds to Owlette roosts and manage them from a terminal or CI job.",
        epilog="exit codes: 0 ok, 2 usage, 3 API error, 4 local input error, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"roost {SDK_VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    push = commands.add_parser("push", help="publish a directory as a new version of a roost")
    push.add_argument("directory", help="the build folder to publish")
    push.add_argument("roost_id", help="the roost to publish to")
    _client_args(push)
    push.add_argument("--description", help="version description (<= 500 characters)")
    push.add_argument("--name", help="rename the roost on publish")
    push.add_argument("--ignore", action="append", default=[], metavar="GLOB", help="skip paths (repeatable)")
    push.add_argument(
        "--target", action="append", dest="targets", metavar="MACHINE", help="retarget (repeatable)"
    )
    push.add_argument("--extract-path", help="on-disk extract root on the machines")
    push.add_argument("--concurrency", type=_positive_int, default=8, help="parallel uploads (default 8)")
    push.add_argument(
        "--dry-run", action="store_true", help="hash and check only: upload and publish nothing"
    )
    push.set_defaults(handler=_commands.push)

    whoami = commands.add_parser("whoami", help="show the identity behind the token")
    _client_args(whoami, site=False)
    whoami.set_defaults(handler=_commands.whoami)

    sites = commands.add_parser("sites", help="list the sites the token can see")
    _client_args(sites, site=False)
    sites.set_defaults(handler=_commands.sites)

    roosts = commands.add_parser("roosts", help="list, show or create roosts")
    roost_commands = roosts.add_subparsers(dest="roosts_command", metavar="ACTION", required=True)
    roosts_list = roost_commands.add_parser("list", help="list roosts of a site")
    _client_args(roosts_list)
    roosts_list.add_argument("--include-deleted", action="store_true")
    roosts_list.set_defaults(handler=_commands.roosts_list)
    roosts_get = roost_commands.add_parser("get", help="show one roost")
    roosts_get.add_argument("roost_id")
    _client_args(roosts_get)
    roosts_get.set_defaults(handler=_commands.roosts_get)
    roosts_create = roost_commands.add_parser("create", help="create a roost")
    roosts_create.add_argument("name")
    _client_args(roosts_create)
    roosts_create.add_argument("--id", dest="roost_id", help="roost id (the server generates one if omitted)")
    roosts_create.add_argument("--target", action="append", dest="targets", metavar="MACHINE")
    roosts_create.add_argument("--extract-path")
    roosts_create.set_defaults(handler=_commands.roosts_create)

    versions = commands.add_parser("versions", help="list, show, list files of or diff versions")
    version_commands = versions.add_subparsers(dest="versions_command", metavar="ACTION", required=True)
    versions_list = version_commands.add_parser("list", help="list versions, newest first")
    versions_list.add_argument("roost_id")
    _client_args(versions_list)
    versions_list.set_defaults(handler=_commands.versions_list)
    versions_get = version_commands.add_parser("get", help="show one version")
    versions_get.add_argument("roost_id")
    versions_get.add_argument("ref", nargs="?", default="current", help="number, #n, vN, id, current, ...")
    _client_args(versions_get)
    versions_get.set_defaults(handler=_commands.versions_get)
    versions_files = version_commands.add_parser("files", help="list a version's files")
    versions_files.add_argument("roost_id")
    versions_files.add_argument("ref", nargs="?", default="current")
    versions_files.add_argument("--prefix")
    _client_args(versions_files)
    versions_files.set_defaults(handler=_commands.versions_files)
    versions_diff = version_commands.add_parser("diff", help="compare two versions")
    versions_diff.add_argument("roost_id")
    versions_diff.add_argument("ref", nargs="?", default="current")
    versions_diff.add_argument("--against", default="previous", help="baseline version (default: previous)")
    _client_args(versions_diff)
    versions_diff.set_defaults(handler=_commands.versions_diff)

    rollback = commands.add_parser("rollback", help="make an earlier version current")
    rollback.add_argument("roost_id")
    rollback.add_argument("--to", dest="target", help="target version (default: previous)")
    _client_args(rollback)
    rollback.set_defaults(handler=_commands.rollback)

    deploy = commands.add_parser("deploy", help="roll a version out to machines")
    deploy.add_argument("roost_id")
    deploy.add_argument("--version", dest="version_id", help="version id (default: current)")
    deploy.add_argument("--machine", action="append", dest="machines", metavar="MACHINE")
    deploy.add_argument("--at", dest="schedule_at", metavar="ISO", help="schedule for an ISO-8601 UTC time")
    deploy.add_argument("--dry-run", action="store_true")
    _client_args(deploy)
    deploy.set_defaults(handler=_commands.deploy)

    webhook = commands.add_parser("webhook", help="webhook helpers")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    verify = webhook_commands.add_parser("verify", help="check a Roost-Signature header against a body")
    verify.add_argument("--header", required=True, help="the Roost-Signature header value")
    verify.add_argument("--body", default="-", help="file holding the raw body, or - for stdin (default)")
    verify.add_argument("--secret", help="signing secret (default: $OWLETTE_WEBHOOK_SECRET)")
    verify.add_argument("--tolerance", type=float, default=300.0, help="replay window in seconds")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=_commands.webhook_verify)

    dev_server = commands.add_parser("dev-server", help="run the local Owlette API emulator", add_help=False)
    dev_server.add_argument("rest", nargs=argparse.REMAINDER)
    dev_server.set_defaults(handler=_commands.dev_server)

    demo = commands.add_parser("demo", help="push a sample build to an embedded local server, end to end")
    demo.add_argument("--keep", metavar="DIR", help="keep the sample build and server data in DIR")
    demo.set_defaults(handler=_commands.demo)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _report_api_error(error: RoostApiError) -> None:
    print(
        f"error: {error} (http {error.status}, code {error.code}, request id {error.request_id})",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``roost``; returns the exit code (see ``roost --help``)."""
    try:
        import rich  # noqa: F401  (only probing that the extra is installed)
    except ImportError:
        print(
            "roost: the command line needs the 'cli' extra: pip install 'owlette-sdk[cli]'",
            file=sys.stderr,
        )
        return _exit.USAGE
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        outcome = handler(args)
        return outcome if isinstance(outcome, int) else asyncio.run(outcome)
    except KeyboardInterrupt:
        print("interrupted: stopped cleanly, nothing was published", file=sys.stderr)
        return _exit.INTERRUPTED
    except _exit.UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"roost: error: {error}", file=sys.stderr)
        return _exit.USAGE
    except RoostApiError as error:
        _report_api_error(error)
        return _exit.API_ERROR
    except (ChunkUploadError, MalformedResponseError) as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit.API_ERROR
    except httpx.HTTPError as error:
        print(f"error: could not reach the API: {type(error).__name__}: {error}", file=sys.stderr)
        return _exit.API_ERROR
    except (ChunkSourceChangedError, _exit.LocalInputError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return _exit.LOCAL_INPUT
