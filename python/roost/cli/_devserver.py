"""``roost dev-server``: the local API emulator in a terminal, with paste-ready settings."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from types import FrameType

from . import _exit
from ._config import API_URL_ENV, SITE_ENV, TOKEN_ENV
from ._jsondoc import emit_json

__all__ = ["dev_server"]

_TOKEN_PREFIXES = ("owk_test_", "owk_live_")


def dev_server(args: argparse.Namespace) -> int:
    try:
        from roost.testing import Faults, FaultSpecError, start_server
    except ImportError as error:
        raise _exit.UsageError(
            f"dev-server needs the 'server' extra: pip install 'owlette-sdk[server]' ({error})"
        ) from error
    token: str | None = getattr(args, "token", None)
    if token is not None and not token.startswith(_TOKEN_PREFIXES):
        raise _exit.UsageError(f"--token must start with owk_test_ or owk_live_, got {token[:9]!r}...")
    try:
        faults = Faults.parse(args.faults)
    except FaultSpecError as error:
        raise _exit.UsageError(f"--faults: {error}") from error
    try:
        server = start_server(
            host=args.host,
            port=args.port,
            data_dir=args.data,
            token=token,
            faults=faults,
            site_id=args.site_id,
        )
    except OSError as error:
        raise _exit.LocalInputError(f"could not listen on {args.host}:{args.port}: {error}") from error
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous_int = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        settings = {API_URL_ENV: server.url, TOKEN_ENV: server.token, SITE_ENV: server.site_id}
        if getattr(args, "json", False):
            emit_json(
                {
                    "api_url": server.url,
                    "token": server.token,
                    "site_id": server.site_id,
                    "data_dir": str(server.data_dir),
                    "faults": faults.spec() or None,
                }
            )
        else:
            # Everything but the export lines is a shell comment, so the whole block pastes safely.
            print(f"# roost dev-server listening on {server.url}; paste into a shell:")
            for name, value in settings.items():
                print(f"export {name}={shlex.quote(value)}")
            print(f"# data dir: {server.data_dir}{'' if args.data else ' (temporary)'}")
            if faults.spec():
                print(f"# faults: {faults.spec()}")
            print("# press Ctrl+C to stop")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
        server.stop()
    print("# roost dev-server stopped", file=sys.stderr)
    return _exit.OK
