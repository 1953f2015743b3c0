"""A faithful local emulator of the Owlette public API (the ``server`` extra).

``async with roost.testing.serve() as server:`` runs the emulator on a free loopback port and
gives ``server.url``, ``server.token`` (an ``owk_test_`` key with every scope) and
``server.site_id``. ``python -m roost.testing`` (and ``roost dev-server``) run it from a shell.
Starlette and uvicorn are imported only when a server starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from ._faults import FAULT_KNOBS, Faults, FaultSpecError

if TYPE_CHECKING:
    from ._server import EmulatorServer

__all__ = [
    "FAULT_KNOBS",
    "EmulatorServer",
    "FaultSpecError",
    "Faults",
    "main",
    "serve",
    "serve_forever",
    "start_server",
]


@contextlib.asynccontextmanager
async def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    token: str | None = None,
    faults: Faults | str | None = None,
    upload_url_ttl_s: float = 3600,
    download_url_ttl_s: float = 900,
    site_id: str | None = None,
    strict_webhook_urls: bool = False,
    webhook_retry_base_s: float = 5.0,
) -> AsyncIterator[EmulatorServer]:
    """Run the emulator for the duration of the ``async with`` block.

    The server runs uvicorn on a real loopback socket in a background thread with its own event
    loop, so it serves sync and async callers alike. ``data_dir=None`` keeps state in a temporary
    directory that is removed afterwards; with a directory, state survives restarts.
    """
    import anyio.to_thread

    server = await anyio.to_thread.run_sync(
        lambda: start_server(
            host=host,
            port=port,
            data_dir=data_dir,
            token=token,
            faults=faults,
            upload_url_ttl_s=upload_url_ttl_s,
            download_url_ttl_s=download_url_ttl_s,
            site_id=site_id,
            strict_webhook_urls=strict_webhook_urls,
            webhook_retry_base_s=webhook_retry_base_s,
        )
    )
    try:
        yield server
    finally:
        await anyio.to_thread.run_sync(server.stop)


def start_server(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: str | Path | None = None,
    token: str | None = None,
    faults: Faults | str | None = None,
    upload_url_ttl_s: float = 3600,
    download_url_ttl_s: float = 900,
    site_id: str | None = None,
    strict_webhook_urls: bool = False,
    webhook_retry_base_s: float = 5.0,
) -> EmulatorServer:
    """Start the emulator synchronously (same options as :func:`serve`).

    Returns once it accepts connections; call ``.stop()`` (or use it as a ``with`` block) after.
    """
    from ._server import start_server as _start

    return _start(
        host=host,
        port=port,
        data_dir=data_dir,
        token=token,
        faults=faults,
        upload_url_ttl_s=upload_url_ttl_s,
        download_url_ttl_s=download_url_ttl_s,
        site_id=site_id,
        strict_webhook_urls=strict_webhook_urls,
        webhook_retry_base_s=webhook_retry_base_s,
    )


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
