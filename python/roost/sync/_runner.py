"""A private event loop on a helper thread, and the two ways blocking code crosses into it.

The loop lives on its own thread (anyio's blocking portal), so the blocking client also works
from a thread whose own event loop is already running (TouchDesigner, Jupyter), where
``asyncio.run()`` raises.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import anyio
from anyio.abc import ObjectSendStream
from anyio.from_thread import BlockingPortal, start_blocking_portal

T = TypeVar("T")


class Runner:
    """Owns the helper thread; every call from the user's thread goes through it."""

    def __init__(self) -> None:
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal()
        self._portal: BlockingPortal | None = self._portal_cm.__enter__()

    @property
    def portal(self) -> BlockingPortal:
        if self._portal is None:
            raise RuntimeError("roost.sync: the client is closed")
        return self._portal

    @property
    def closed(self) -> bool:
        return self._portal is None

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Await ``func()`` on the loop and block for the result."""
        return self.portal.call(func)

    def call_sync(self, func: Callable[[], T]) -> T:
        """Run the plain function ``func`` on the loop thread and block for the result."""
        return self.portal.call(func)

    def spawn(self, func: Callable[[], Awaitable[T]]) -> Future[T]:
        """Start ``func`` on the loop and return at once."""
        return self.portal.start_task_soon(func)

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        """A blocking iterator over ``source``.

        One task on the loop drives ``source`` from start to end, because an async generator may
        hold a cancel scope or task group across its ``yield`` and those must stay in one task.
        Items cross through an unbuffered stream, so the source runs at most one item ahead.
        Leaving the loop early closes the source (its ``finally`` blocks run) before returning.
        """
        send, receive = self.call_sync(lambda: anyio.create_memory_object_stream[T](0))
        finished = threading.Event()
        driver = self.spawn(lambda: _drive(source, send, finished))
        try:
            while True:
                try:
                    item: T = self.call(receive.receive)
                except anyio.EndOfStream:
                    break
                yield item
            driver.result()
        finally:
            if not driver.done():
                driver.cancel()  # cancels the driver's await; its finally closes the source
            if not self.closed:
                finished.wait()

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread (idempotent)."""
        portal, self._portal = self._portal, None
        if portal is None:
            return
        with contextlib.suppress(RuntimeError):
            portal.call(portal.stop, True)
        self._portal_cm.__exit__(None, None, None)


async def _drive(source: AsyncIterator[T], send: ObjectSendStream[T], finished: threading.Event) -> None:
    try:
        async with send:
            async for item in source:
                await send.send(item)
    finally:
        try:
            close: Any = getattr(source, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
        finally:
            finished.set()
