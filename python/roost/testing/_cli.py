"""``python -m roost.testing`` / ``roost dev-server``: run the emulator until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from ._faults import FAULT_KNOBS, Faults, FaultSpecError

__all__ = ["build_parser", "serve_forever"]


def build_parser(prog: str = "python -m roost.testing") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a local emulator of the Owlette public API (roost.testing).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8787, help="port to bind; 0 picks a free one (default 8787)"
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="keep state in DIR so it survives restarts (default: a temp dir)",
    )
    parser.add_argument("--token", default=None, help="use this owk_test_/owk_live_ key as the working token")
    parser.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help=f"fault injection, comma-separated knob=value; knobs: {', '.join(FAULT_KNOBS)}",
    )
    parser.add_argument("--site-id", default=None, help="id of the emulator's site (default dev-site)")
    return parser


def serve_forever(argv: list[str] | None = None, *, prog: str = "python -m roost.testing") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        faults = Faults.parse(args.faults)
    except FaultSpecError as exc:
        parser.error(str(exc))
    if args.token is not None and not args.token.startswith(("owk_test_", "owk_live_")):
        parser.error("--token must start with owk_test_ or owk_live_")
    try:
        from ._options import EmulatorOptions
        from ._server import start_server
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        print(
            f"roost.testing needs the server extra: pip install 'owlette-sdk[server]' ({exc})",
            file=sys.stderr,
        )
        return 2
    try:
        server = start_server(
            EmulatorOptions(
                host=args.host,
                port=args.port,
                data_dir=args.data,
                token=args.token,
                faults=faults,
                site_id=args.site_id,
            )
        )
    except OSError as exc:
        print(f"could not start the emulator on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        print(f"roost emulator listening on {server.url}", flush=True)
        print(f"  base URL : {server.url}", flush=True)
        print(f"  site id  : {server.site_id}", flush=True)
        print(f"  token    : {server.token}", flush=True)
        print(f"  data dir : {server.data_dir}{'' if args.data else ' (temporary)'}", flush=True)
        if faults.spec():
            print(f"  faults   : {faults.spec()}", flush=True)
        print("press Ctrl+C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        server.stop()
    print("roost emulator stopped", flush=True)
    return 0
