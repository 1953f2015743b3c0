"""A faithful local emulator of the Owlette public API (the ``server`` extra).

``async with roost.testing.serve() as server:`` runs the emulator on a free loopback port and
gives ``server.url``, ``server.token`` (an ``owk_test_`` key with every scope) and
``server.site_id``. ``python -m roost.testing`` (and ``roost dev-server``) run it from a shell.
Starlette and uvicorn are imported only when a server starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ._faults import FAULT_KNOBS, Faults, FaultSpecError
from ._options import EmulatorOptions

if TYPE_CHECKING:
    from ._server import EmulatorServer

__all__ = [
    "FAULT_KNOBS",
    "EmulatorOptions",
    "EmulatorServer",
    "FaultSpecError",
    "Faults",
    "main",
    "serve",
    "serve_forever",
    "start_server",
]


@contextlib.asynccontextmanager
async def serve(options: EmulatorOptions | None = None, /, **overrides: Any) -> AsyncIterator[EmulatorServer]:
    """Run the emulator for the duration of the ``async with`` block.

    Options are the fields of :class:`EmulatorOptions`, given as an object, as keyword arguments
    (``serve(faults="api_5xx=0.1", data_dir=path)``), or both (keywords win). The server runs on
    a real loopback socket in a background thread with its own event loop, so it serves sync and
    async callers alike. ``data_dir=None`` keeps state in a temporary directory that is removed
    afterwards; with a directory, state survives restarts.
    """
    import anyio.to_thread

    resolved = EmulatorOptions.build(options, **overrides)
    server = await anyio.to_thread.run_sync(lambda: start_server(resolved))
    try:
        yield server
    finally:
        await anyio.to_thread.run_sync(server.stop)


def start_server(options: EmulatorOptions | None = None, /, **overrides: Any) -> EmulatorServer:
    """Start the emulator synchronously (same options as :func:`serve`).

    Returns once it accepts connections; call ``.stop()`` (or use it as a ``with`` block) after.
    """
    from ._server import start_server as _start

    return _start(EmulatorOptions.build(options, **overrides))


def serve_forever(argv: list[str] | None = None, *, prog: str = "python -m roost.testing") -> int:
    """``python -m roost.testing`` / ``roost dev-server``: parse ``argv``, serve until interrupted.

    Flags: ``--host 127.0.0.1 --port 8787 --data DIR --token TOKEN --faults SPEC --site-id ID``.
    Prints the base URL, the site id and a working ``owk_test_`` token. Returns the exit status.
    """
    from ._cli import serve_forever as _serve_forever

    return _serve_forever(argv, prog=prog)


main = serve_forever


def __getattr__(name: str) -> object:
    if name == "EmulatorServer":
        from ._server import EmulatorServer

        return EmulatorServer
    raise AttributeError(name)
