"""Structured-concurrency helpers for the push stages: a failing-fast crew, a byte budget, emit()."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskGroup

from .types import ProgressCallback, PushProgressEvent

__all__ = ["ByteBudget", "Crew", "Emitter", "crew"]

T = TypeVar("T")


class Crew:
    """The tasks of one stage, in one anyio task group.

    The first task to fail records its exception and cancels the others; :func:`crew` re-raises
    that exception alone once every task has finished, so callers see e.g. a plain
    ``ChunkSourceChangedError`` rather than an ``ExceptionGroup``. Cancellation from outside
    propagates as usual.
    """

    __slots__ = ("_group", "error")

    def __init__(self, group: TaskGroup) -> None:
        self._group = group
        self.error: Exception | None = None

    def spawn(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._group.start_soon(self._guarded, func, args)

    def fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self._group.cancel_scope.cancel()

    async def _guarded(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            await func(*args)
        except Exception as error:  # recorded, re-raised by crew()
            self.fail(error)


@asynccontextmanager
async def crew() -> AsyncIterator[Crew]:
    """``async with crew() as c: c.spawn(...)``; the body itself should only spawn."""
    async with anyio.create_task_group() as group:
        tasks = Crew(group)
        try:
            yield tasks
        except Exception as error:  # the body failed: stop the tasks, raise below
            tasks.fail(error)
    if tasks.error is not None:
        raise tasks.error


class ByteBudget:
    """Bytes of chunk data allowed in memory at once, for ONE acquiring task (the dispatcher).

    ``acquire`` waits until ``size`` bytes are free (a request larger than the whole budget waits
    for an empty budget); ``release`` may be called from any task.
    """

    __slots__ = ("_freed", "available", "capacity", "peak_in_use")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError(f"byte budget must be positive, got {capacity}")
        self.capacity = capacity
        self.available = capacity
        self.peak_in_use = 0
        self._freed = anyio.Event()

    def _cost(self, size: int) -> int:
        return min(max(size, 0), self.capacity)

    async def acquire(self, size: int) -> None:
        cost = self._cost(size)
        while self.available < cost:
            self._freed = anyio.Event()
            await self._freed.wait()
        self.available -= cost
        self.peak_in_use = max(self.peak_in_use, self.capacity - self.available)

    def release(self, size: int) -> None:
        self.available += self._cost(size)
        self._freed.set()


class Emitter:
    """The one place progress events leave the engine.

    Events are delivered strictly in the order they were handed over, one at a time: a sync
    callback is called, an async one awaited, before the next event is delivered. An exception
    raised by the callback propagates to the caller (and so out of ``push()``).

    ``await emit(event)`` delivers in turn; :meth:`deliver` is the per-file fast path: with no
    earlier event still being delivered it calls the callback at once and returns None unless
    the callback returned an awaitable (20,000 ``hash`` events of a re-push cost 1-2 us each
    so, where a task switch and an event object each cost ~10 us).
    """

    __slots__ = ("_abandoned", "_callback", "_issued", "_serving", "_turn")

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._issued = 0
        self._serving = 0
        self._abandoned: set[int] = set()
        self._turn: anyio.Event | None = None  # made by the first waiter, set by _advance

    @property
    def active(self) -> bool:
        return self._callback is not None

    def deliver(self, event: PushProgressEvent) -> Awaitable[None] | None:
        """Deliver ``event`` now if it is its turn and the callback is sync; else an awaitable
        that the caller must await (it delivers the event, in turn)."""
        callback = self._callback
        if callback is None:
            return None
        if self._serving != self._issued:
            return self(event)
        self._issued += 1
        try:
            result = callback(event)
        except BaseException:
            self._advance()
            raise
        if result is not None and inspect.isawaitable(result):
            return self._settle(result)
        self._advance()
        return None

    async def _settle(self, result: Awaitable[Any]) -> None:
        try:
            await result
        finally:
            self._advance()

    async def __call__(self, event: PushProgressEvent) -> None:
        callback = self._callback
        if callback is None:
            return
        ticket = self._issued  # taken before the first await: call order is delivery order
        self._issued += 1
        try:
            while self._serving != ticket:
                if self._turn is None:
                    self._turn = anyio.Event()
                await self._turn.wait()
        except BaseException:
            self._abandon(ticket)
            raise
        try:
            result = callback(event)
            if result is not None and inspect.isawaitable(result):
                await result
        finally:
            self._advance()

    def _abandon(self, ticket: int) -> None:
        if self._serving == ticket:
            self._advance()
        else:
            self._abandoned.add(ticket)

    def _advance(self) -> None:
        self._serving += 1
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.set()
