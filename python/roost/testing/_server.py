"""Running the emulator: the ASGI app, a uvicorn server on a background thread, and its handle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from ._emulator import DEFAULT_SITE_ID, Emulator, StorageRecord
from ._faults import Faults
from ._jsonutil import sha256_hex
from ._options import EmulatorOptions
from ._storage import STORAGE_PREFIX, StorageApp
from ._webhooks import Dispatcher
from .routes import api_routes

__all__ = ["EmulatorServer", "build_app", "start_server"]

logger = logging.getLogger("roost.testing")

Scope = MutableMapping[str, Any]


def build_app(emu: Emulator, started: threading.Event | None = None) -> Any:
    """The emulator's ASGI application (API routes, storage, and the webhook dispatcher)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        dispatcher = Dispatcher(emu)
        task = asyncio.create_task(dispatcher.run())
        if started is not None:
            started.set()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    api = Starlette(
        routes=api_routes(emu),
        lifespan=lifespan,
    )
    storage = StorageApp(emu)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).startswith(STORAGE_PREFIX):
            await storage(scope, receive, send)
            return
        await api(scope, receive, send)

    return app


class EmulatorServer:
    """A running emulator. ``url``, ``token`` and ``site_id`` are what a client needs."""

    def __init__(
        self,
        emu: Emulator,
        server: uvicorn.Server,
        thread: threading.Thread,
        url: str,
        tempdir: tempfile.TemporaryDirectory[str] | None,
    ) -> None:
        self.emu = emu
        self._server = server
        self._thread = thread
        self.url = url
        self._tempdir = tempdir
        self._stopped = False

    # -- what clients need ---------------------------------------------------------------

    @property
    def token(self) -> str:
        """An ``owk_test_`` key with every scope, for the emulator's superadmin owner."""
        return self.emu.token

    @property
    def site_id(self) -> str:
        return self.emu.site_id

    @property
    def user_id(self) -> str:
        return self.emu.user_id

    @property
    def id_token(self) -> str:
        """A bearer the emulator treats as a Firebase ID token (needed by ``/api/keys``)."""
        return self.emu.id_token

    @property
    def data_dir(self) -> Path:
        return self.emu.data_dir

    @property
    def faults(self) -> Faults:
        return self.emu.faults

    def headers(self, token: str | None = None) -> dict[str, str]:
        """``Authorization`` and ``Roost-Version`` headers for a plain HTTP client."""
        return {"Authorization": f"Bearer {token or self.token}", "Roost-Version": "2026-04-22"}

    # -- test helpers --------------------------------------------------------------------

    def set_faults(self, faults: Faults | str | None) -> None:
        """Swap the fault configuration of the running server (dice are re-seeded)."""
        from ._faults import Dice, Throttle

        parsed = Faults.coerce(faults)
        self.emu.faults = parsed
        self.emu.api_dice = Dice(parsed.seed, 1)
        self.emu.storage_dice = Dice(parsed.seed, 2)
        self.emu.throttle = Throttle(parsed.storage_bandwidth_mbps)

    def mint_key(
        self,
        *,
        scopes: list[dict[str, Any]] | None = None,
        environment: str = "test",
        expires_in_s: float | None = 90 * 24 * 3600,
        expires_at_ms: int | None = None,
        user_id: str | None = None,
        name: str = "emulator key",
    ) -> str:
        """A new raw key. ``scopes`` default to everything; ``expires_at_ms`` in the past = expired."""
        return self.emu.mint_key(
            scopes=scopes,
            environment=environment,
            expires_in_s=expires_in_s,
            expires_at_ms=expires_at_ms,
            user_id=user_id,
            name=name,
        )

    def add_user(self, uid: str, *, role: str = "member", sites: list[str] | None = None) -> None:
        self.emu.add_user(uid, role=role, sites=sites if sites is not None else [self.site_id])

    def add_site(self, site_id: str, *, name: str | None = None, owner: str | None = None) -> None:
        self.emu.add_site(site_id, name=name, owner=owner)
        user = self.emu.user(owner or self.user_id)
        if user is not None and site_id not in (user.get("sites") or []):
            user["sites"] = [*(user.get("sites") or []), site_id]
            self.emu.store.put("user", "", str(user["uid"]), user)

    def add_machine(self, machine_id: str, *, site_id: str | None = None, online: bool = True) -> None:
        self.emu.add_machine(site_id or self.site_id, machine_id, online=online)

    def set_roost_enabled(self, enabled: bool, *, site_id: str | None = None) -> None:
        """Flip the site's kill switch (``roostEnabled``)."""
        site = self.emu.site(site_id or self.site_id)
        if site is None:
            raise KeyError(site_id or self.site_id)
        site["roostEnabled"] = enabled
        self.emu.store.put("site", "", str(site["id"]), site)

    def put_chunk(self, data: bytes, *, site_id: str | None = None) -> str:
        """Store ``data`` as a chunk directly (bypassing HTTP); returns its hash."""
        digest = sha256_hex(data)
        self.emu.chunks.write_bytes(site_id or self.site_id, digest, data)
        return digest

    def has_chunk(self, digest: str, *, site_id: str | None = None) -> bool:
        return self.emu.chunks.exists(site_id or self.site_id, digest)

    def chunk_path(self, digest: str, *, site_id: str | None = None) -> Path:
        return self.emu.chunks.path(site_id or self.site_id, digest)

    def delete_chunk(self, digest: str, *, site_id: str | None = None) -> bool:
        """Remove a stored chunk, as if storage lost it. ``True`` when it existed."""
        return self.emu.chunks.delete(site_id or self.site_id, digest)

    def stored_chunks(self, *, site_id: str | None = None) -> list[str]:
        """The hashes of every chunk the site's storage holds, sorted."""
        return self.emu.chunks.hashes(site_id or self.site_id)

    def forget_chunks(self, digests: Iterable[str] | None = None, *, site_id: str | None = None) -> list[str]:
        """Make storage lose chunk objects, as a real bucket can (lifecycle rule, operator, restore).

        ``digests=None`` forgets every chunk of the site. Versions that reference a forgotten chunk
        stay, and the next publish naming it answers 412 ``precondition_failed`` with
        ``missingChunks``, as the real server does; ``/api/chunks/check`` reports it missing. This
        is the hook for proving that a client-side "already stored" ledger cannot publish a version
        with missing chunks. Returns the hashes that were actually removed, sorted.
        """
        site = site_id or self.site_id
        wanted = self.emu.chunks.hashes(site) if digests is None else sorted(set(digests))
        return [digest for digest in wanted if self.emu.chunks.delete(site, digest)]

    @property
    def storage_requests(self) -> list[StorageRecord]:
        """Every request that reached ``/storage/`` (method, path, lower-cased headers, outcome)."""
        with self.emu._records_lock:
            return list(self.emu.storage_records)

    def clear_storage_requests(self) -> None:
        with self.emu._records_lock:
            self.emu.storage_records.clear()

    @property
    def api_calls(self) -> int:
        """How many ``/api/`` requests reached the server (faulted ones included)."""
        return self.emu.api_calls

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self.emu.close()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    def __enter__(self) -> EmulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmulatorServer(url={self.url!r}, site_id={self.site_id!r})"


def start_server(options: EmulatorOptions) -> EmulatorServer:
    """Start the emulator on a background thread and return once it accepts connections."""
    host, port, startup_timeout_s = options.host, options.port, options.startup_timeout_s
    tempdir: tempfile.TemporaryDirectory[str] | None = None
    if options.data_dir is None:
        tempdir = tempfile.TemporaryDirectory(prefix="roost-emulator-")
        root = Path(tempdir.name)
    else:
        root = Path(options.data_dir).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
    # the data dir holds the token, the presign secret and every stored object: owner-only
    root.chmod(0o700)
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every keep-alive response body waits ~40 ms for a delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        if tempdir is not None:
            tempdir.cleanup()
        raise
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    if url_host in ("0.0.0.0", "[::]"):
        url_host = "127.0.0.1"
    url = f"http://{url_host}:{bound_port}"
    try:
        emu = _make_emulator(root, url, options)
        emu.bootstrap(options.token)
    except BaseException:
        sock.close()
        if tempdir is not None:
            tempdir.cleanup()
        raise
    started = threading.Event()
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from ._storage_fast import front_protocol

    config = uvicorn.Config(
        build_app(emu, started),
        http=front_protocol(emu, AutoHTTPProtocol),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:
            failure.append(exc)
            started.set()
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"roost-emulator:{bound_port}", daemon=True)
    thread.start()
    if not started.wait(startup_timeout_s) or failure:
        server.should_exit = True
        thread.join(timeout=5)
        emu.close()
        if tempdir is not None:
            tempdir.cleanup()
        if failure:
            raise RuntimeError("roost emulator failed to start") from failure[0]
        raise RuntimeError("roost emulator did not start in time")
    deadline = time.monotonic() + startup_timeout_s
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    return EmulatorServer(emu, server, thread, url, tempdir)


def _make_emulator(root: Path, url: str, options: EmulatorOptions) -> Emulator:
    stored_site: str | None = None
    meta_path = root / "meta.sqlite3"
    if options.site_id is None and meta_path.exists():
        from ._store import Store

        probe = Store(meta_path)
        try:
            stored_site = probe.meta_get("site_id")
        finally:
            probe.close()
    resolved_site = options.site_id or stored_site or DEFAULT_SITE_ID
    emu = Emulator(options, root, resolved_site, url)
    emu.store.meta_set("site_id", resolved_site)
    return emu


@contextlib.contextmanager
def running(**overrides: Any) -> Iterator[EmulatorServer]:
    server = start_server(EmulatorOptions.build(**overrides))
    try:
        yield server
    finally:
        server.stop()
