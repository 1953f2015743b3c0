"""Handles on a push or pull running in the background, for UIs that poll instead of block."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

from .._pull.types import PullProgressEvent, PullResult
from .._push.types import PushProgressEvent, PushResult
from ._runner import Runner

__all__ = ["OperationHandle", "PullHandle", "PushHandle"]

E = TypeVar("E")
R = TypeVar("R")


class OperationHandle(Generic[E, R]):
    """A long operation running on the client's loop: poll :meth:`done` and :attr:`latest`.

    ``run(record)`` is the operation; it calls ``record(event)`` for each progress event.
    """

    def __init__(self, runner: Runner, run: Callable[[Callable[[E], None]], Awaitable[R]]) -> None:
        self._runner = runner
        self._run = run
        self._latest: E | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False
        self._future: concurrent.futures.Future[R] = runner.spawn(self._main)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<{type(self).__name__} {state} latest={self._latest!r}>"

    async def _main(self) -> R:
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._cancel_requested:
                scope.cancel()
            return await self._run(self._record)
        raise concurrent.futures.CancelledError(f"{type(self).__name__}: cancelled")

    def _record(self, event: E) -> None:
        self._latest = event

    @property
    def latest(self) -> E | None:
        """The last progress event seen (``None`` before the first one)."""
        return self._latest

    def done(self) -> bool:
        """Whether the operation has finished: succeeded, failed or been cancelled."""
        return self._future.done()

    def result(self, timeout: float | None = None) -> R:
        """Block until the operation ends (at most ``timeout`` seconds) and return its result.

        Raises the operation's own error, ``concurrent.futures.CancelledError`` after
        :meth:`cancel`, or ``TimeoutError`` when ``timeout`` passes first (the operation goes on).
        """
        return self._future.result(timeout)

    def cancel(self) -> bool:
        """Stop the operation and wait until it has wound down (files closed, tasks ended).

        A push cancelled before its publish step publishes nothing. Returns ``False`` when the
        operation had already finished.
        """
        if self._future.done():
            return False
        self._cancel_requested = True
        if not self._runner.closed:
            self._runner.call_sync(self._cancel_in_loop)
        concurrent.futures.wait([self._future])
        return True

    def _cancel_in_loop(self) -> None:
        # Runs on the loop thread, like _main, so the scope cannot appear in between.
        if self._scope is not None:
            self._scope.cancel()


class PushHandle(OperationHandle[PushProgressEvent, PushResult]):
    """``client.roosts.start_push(...)``: a push running in the background."""


class PullHandle(OperationHandle[PullProgressEvent, PullResult]):
    """``client.roosts.start_pull(...)``: a pull running in the background."""
