"""The grammar of ``roost``: commands, options, and how a usage error finds its (sub)command.

argparse, because it gives everything asked of this command line with the least code of our
own: options are never abbreviated (``allow_abbrev=False`` on every parser), a subcommand's error
is reported by that subcommand's parser (so it prints that usage), global options shared through
``parents`` work before and after the command (the copy on each subcommand defaults to
``SUPPRESS`` so that it never overwrites a value given before the command), and ``argcomplete``
turns this same parser into completion for bash, zsh, fish and PowerShell.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Any, NoReturn

from roost import SDK_VERSION
from roost.chunker import DEFAULT_IGNORES

from . import _commands, _demo, _devserver, _transfer
from ._config import API_URL_ENV, SITE_ENV, TOKEN_ENV
from ._exit import UsageError

__all__ = ["COMPLETION_SHELLS", "RoostArgumentParser", "build_parser", "parse_rate"]

COMPLETION_SHELLS = ("bash", "zsh", "fish", "powershell")

_EXIT_CODES = (
    "exit codes: 0 ok, 1 different (pull --check) or invalid (webhook verify), 2 usage, "
    "3 API error, 4 local input error, 130 interrupted"
)

_RATE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)(i?)b?(?:/s)?$")
_RATE_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class RoostArgumentParser(argparse.ArgumentParser):
    """Raises :class:`UsageError` carrying this parser, so the error shows this command's usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self)


def _echo(text: str) -> str:
    """A value typed on the command line, quoted for an error, cut short when it is very long."""
    return repr(text) if len(text) <= 60 else f"{text[:40]!r}... ({len(text)} characters)"


def parse_rate(text: str) -> int:
    """``10M`` -> 10,000,000 bytes/s; ``10Mi`` / ``10MiB`` -> 10 x 1024^2; plain numbers are bytes/s."""
    match = _RATE.match(text.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected bytes per second such as 500k, 10M, 1.5G or 10MiB, got {_echo(text)}"
        )
    number, unit, binary = match.groups()
    base = 1024 if binary else 1000
    scaled = float(number) * base ** _RATE_UNITS[unit]
    if not math.isfinite(scaled):  # 4,000 digits: float() gives inf, and int(inf) would crash
        raise argparse.ArgumentTypeError(f"expected a rate a link can have, got {_echo(text)}")
    value = int(scaled)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a rate of at least 1 byte per second, got {_echo(text)}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {_echo(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {_echo(text)}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {_echo(text)}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def _api_options(*, top: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("API options (before or after the command)")
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group.add_argument("--token", help=f"API token (default: ${TOKEN_ENV})", **unset)
    group.add_argument(
        "--api-url", help=f"API base URL (default: ${API_URL_ENV} or https://owlette.app)", **unset
    )
    group.add_argument("--site", help=f"site id (default: ${SITE_ENV})", **unset)
    return parent


def _output_options(*, top: bool) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = parent.add_argument_group("output options (before or after the command)")
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print one JSON document on stdout (schemas: docs/cli-json.md)",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="say more: list skipped paths; twice: log HTTP requests",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="no progress display; results and errors only",
    )
    return parent


class _Commands:
    """Adds subcommands that share the project's parser conventions."""

    def __init__(self, actions: Any, api: argparse.ArgumentParser, output: argparse.ArgumentParser) -> None:
        self._actions = actions
        self._api = api
        self._output = output

    def add(
        self,
        name: str,
        help_text: str,
        *,
        api: bool = True,
        output: bool = True,
        epilog: str | None = None,
    ) -> RoostArgumentParser:
        parents = ([self._api] if api else []) + ([self._output] if output else [])
        parser: RoostArgumentParser = self._actions.add_parser(
            name,
            help=help_text,
            description=help_text[:1].upper() + help_text[1:] + ".",
            epilog=epilog,
            parents=parents,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.set_defaults(command_parser=parser)
        return parser

    def group(self, name: str, help_text: str) -> _Commands:
        parser = self.add(name, help_text, api=False, output=False)
        actions = parser.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
        return _Commands(actions, self._api, self._output)


def _push_parser(commands: _Commands) -> None:
    ignores = ", ".join(DEFAULT_IGNORES)
    push = commands.add(
        "push",
        "publish a directory as a new version of a roost",
        epilog=(
            f"ignored by default: {ignores} (--no-default-ignores keeps them)\n"
            "ignore files use gitignore syntax; .roostignore at DIR is read unless --ignore-from is given\n"
            "--bwlimit units: k, M, G are powers of 1000 (10M = 10,000,000 bytes/s); "
            "Ki, Mi, Gi powers of 1024\n" + _EXIT_CODES
        ),
    )
    push.add_argument("directory", help="the build folder to publish")
    push.add_argument("roost_id", help="the roost to publish to (must exist unless --create)")
    push.add_argument("--create", action="store_true", help="create the roost when it does not exist")
    push.add_argument("--description", help="version description (<= 500 characters)")
    push.add_argument("--name", help="rename the roost on publish")
    push.add_argument(
        "--ignore", action="append", default=[], metavar="GLOB", help="skip matching paths (repeatable)"
    )
    push.add_argument(
        "--ignore-from", metavar="FILE", help="read ignore patterns from FILE (gitignore syntax)"
    )
    push.add_argument(
        "--no-default-ignores",
        dest="default_ignores",
        action="store_false",
        help=f"publish what is ignored by default ({ignores})",
    )
    push.add_argument(
        "--target", action="append", dest="targets", metavar="MACHINE", help="retarget (repeatable)"
    )
    push.add_argument("--extract-path", help="on-disk extract root on the machines")
    push.add_argument("--concurrency", type=_positive_int, default=8, help="parallel uploads (default 8)")
    push.add_argument(
        "--bwlimit", type=parse_rate, metavar="RATE", help="cap uploads at RATE bytes/s (10M, 2MiB)"
    )
    push.add_argument(
        "--stall-timeout",
        type=_positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="retry an upload when no byte moved for this long (default 60)",
    )
    push.add_argument(
        "--allow-unportable-paths",
        action="store_true",
        help="publish paths that are invalid or ambiguous on Windows instead of refusing",
    )
    push.add_argument(
        "--skip-unchanged",
        action="store_true",
        help="publish nothing when the files and fields equal the roost's current version",
    )
    push.add_argument(
        "--dry-run", action="store_true", help="hash and check only: upload and publish nothing"
    )
    push.set_defaults(handler=_transfer.push)


def _pull_parser(commands: _Commands) -> None:
    pull = commands.add(
        "pull",
        "rebuild a version of a roost in a directory, downloading only what differs",
        epilog=_EXIT_CODES,
    )
    pull.add_argument("roost_id", help="the roost to pull from")
    pull.add_argument("directory", help="the destination folder (created when missing)")
    pull.add_argument(
        "--ref", default="current", help="version: current, previous, 3, v3, #3 or an id (default current)"
    )
    pull.add_argument("--delete", action="store_true", help="delete files that are not in the version")
    pull.add_argument(
        "--check",
        action="store_true",
        help="compare only, download nothing: exit 0 when in sync, 1 when different",
    )
    pull.add_argument("--concurrency", type=_positive_int, default=8, help="parallel downloads (default 8)")
    pull.set_defaults(handler=_transfer.pull)


def _read_parsers(commands: _Commands) -> None:
    commands.add("whoami", "show the identity behind the token").set_defaults(handler=_commands.whoami)
    commands.add("sites", "list the sites the token can see").set_defaults(handler=_commands.sites)

    roosts = commands.group("roosts", "list, show or create roosts")
    listing = roosts.add("list", "list the roosts of a site")
    listing.add_argument("--include-deleted", action="store_true", help="list deleted roosts too")
    listing.set_defaults(handler=_commands.roosts_list)
    get = roosts.add("get", "show one roost")
    get.add_argument("roost_id")
    get.set_defaults(handler=_commands.roosts_get)
    create = roosts.add("create", "create a roost")
    create.add_argument("name")
    create.add_argument("--id", dest="roost_id", help="roost id (the server generates one if omitted)")
    create.add_argument("--target", action="append", dest="targets", metavar="MACHINE", help="(repeatable)")
    create.add_argument("--extract-path", help="on-disk extract root on the machines")
    create.set_defaults(handler=_commands.roosts_create)

    versions = commands.group("versions", "list, show, list files of or diff versions")
    vlist = versions.add("list", "list versions, newest first (* marks the current one)")
    vlist.add_argument("roost_id")
    vlist.set_defaults(handler=_commands.versions_list)
    vget = versions.add("get", "show one version")
    vget.add_argument("roost_id")
    vget.add_argument("ref", nargs="?", default="current", help="number, #n, vN, id, current, ...")
    vget.set_defaults(handler=_commands.versions_get)
    files = versions.add("files", "list a version's files")
    files.add_argument("roost_id")
    files.add_argument("ref", nargs="?", default="current")
    files.add_argument("--prefix", help="only paths starting with this")
    files.set_defaults(handler=_commands.versions_files)
    diff = versions.add("diff", "compare two versions")
    diff.add_argument("roost_id")
    diff.add_argument("ref", nargs="?", default="current")
    diff.add_argument("--against", default="previous", help="baseline version (default: previous)")
    diff.set_defaults(handler=_commands.versions_diff)


def _write_parsers(commands: _Commands) -> None:
    rollback = commands.add("rollback", "make an earlier version current")
    rollback.add_argument("roost_id")
    rollback.add_argument("--to", dest="target", help="target version (default: previous)")
    rollback.set_defaults(handler=_commands.rollback)

    deploy = commands.add("deploy", "roll a version out to machines")
    deploy.add_argument("roost_id")
    deploy.add_argument("--version", dest="version_id", help="version id (default: current)")
    deploy.add_argument("--machine", action="append", dest="machines", metavar="MACHINE", help="(repeatable)")
    deploy.add_argument("--at", dest="schedule_at", metavar="ISO", help="schedule for an ISO-8601 UTC time")
    deploy.add_argument("--dry-run", action="store_true", help="plan the rollout, change nothing")
    deploy.set_defaults(handler=_commands.deploy)

    webhook = commands.group("webhook", "webhook helpers")
    verify = webhook.add(
        "verify", "check a Roost-Signature header against a body (exit 1 when invalid)", api=False
    )
    verify.add_argument("--header", required=True, help="the Roost-Signature header value")
    verify.add_argument("--body", default="-", help="file holding the raw body, or - for stdin (default)")
    verify.add_argument("--secret", help=f"signing secret (default: ${_commands.WEBHOOK_SECRET_ENV})")
    verify.add_argument("--tolerance", type=float, default=300.0, help="replay window in seconds")
    verify.set_defaults(handler=_commands.webhook_verify)


def _local_parsers(commands: _Commands) -> None:
    dev = commands.add(
        "dev-server", "run the local Owlette API emulator until interrupted", api=False, output=False
    )
    dev.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    dev.add_argument("--port", type=_port, default=8787, help="port; 0 picks a free one (default 8787)")
    dev.add_argument("--data", metavar="DIR", help="keep state in DIR across restarts (default: a temp dir)")
    dev.add_argument(
        "--token", default=argparse.SUPPRESS, help="the owk_test_/owk_live_ token it accepts (default: new)"
    )
    dev.add_argument("--site-id", help="id of the emulator's site (default dev-site)")
    dev.add_argument("--faults", metavar="SPEC", help="fault injection, knob=value,... (see README)")
    dev.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the settings as one JSON document",
    )
    dev.set_defaults(handler=_devserver.dev_server)

    demo = commands.add(
        "demo", "push a sample build to an embedded local server, end to end", api=False, output=False
    )
    demo.add_argument("--keep", metavar="DIR", help="keep the sample build and server data in DIR")
    demo.set_defaults(handler=_demo.demo)

    completion = commands.add(
        "completion",
        "print the shell completion script",
        api=False,
        output=False,
        epilog=(
            'bash:       eval "$(roost completion bash)"     (in ~/.bashrc)\n'
            'zsh:        eval "$(roost completion zsh)"      (in ~/.zshrc, after compinit)\n'
            "fish:       roost completion fish | source\n"
            "powershell: roost completion powershell | Out-String | Invoke-Expression"
        ),
    )
    completion.add_argument("shell", choices=COMPLETION_SHELLS)
    completion.set_defaults(handler=_commands.completion)


def build_parser() -> RoostArgumentParser:
    parser = RoostArgumentParser(
        prog="roost",
        description="Publish builds to Owlette roosts and manage them from a terminal or CI job.",
        epilog=_EXIT_CODES,
        parents=[_api_options(top=True), _output_options(top=True)],
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"roost {SDK_VERSION}")
    parser.set_defaults(command_parser=parser)
    actions = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = _Commands(actions, _api_options(top=False), _output_options(top=False))
    _push_parser(commands)
    _pull_parser(commands)
    _read_parsers(commands)
    _write_parsers(commands)
    _local_parsers(commands)
    return parser
