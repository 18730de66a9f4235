"""Work started after Slack was acknowledged, tracked so tests can await it and shutdown can finish it."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)


class Background:
    """A set of running tasks; each failure is logged, never lost silently."""

    def __init__(self, limit: int = 16, settle_seconds: float = 0.02, yield_seconds: float = 1.0) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        # A burst of clicks queues here instead of all running at once: acknowledgements of the
        # clicks still arriving keep the event loop, and the store sees a few writers, not hundreds.
        self._slots = asyncio.Semaphore(limit)
        # Queued work also waits (up to `yield_seconds`) while requests keep arriving, until none came for
        # `settle_seconds`: Slack's 3-second deadline is on the acknowledgement, not on the work behind it.
        self._answering = 0
        self._answered = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._settle_seconds = settle_seconds
        self._yield_seconds = yield_seconds

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Around the handling of one Slack request: queued work waits until requests stop arriving."""
        self._answering += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._answering -= 1
            self._answered += 1
            if self._answering == 0:
                asyncio.get_running_loop().call_later(self._settle_seconds, self._settled, self._answered)

    def _settled(self, answered: int) -> None:
        # Requests of a burst are each handled without a pause, so "none in flight" alone would let the work
        # run between every two of them: quiet only when none was answered since this timer was set.
        if self._answering == 0 and self._answered == answered:
            self._quiet.set()

    def spawn(self, work: Coroutine[Any, Any, None], name: str, *, urgent: bool = False) -> asyncio.Task[None]:
        """Run `work` after the current request has been answered; `urgent` work skips the queue."""
        task = asyncio.create_task(self._guard(work, name, urgent), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, work: Coroutine[Any, Any, None], name: str, urgent: bool) -> None:
        if urgent:
            await self._run(work, name)
            return
        async with self._slots:
            if not self._quiet.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._quiet.wait(), self._yield_seconds)
            await self._run(work, name)

    @staticmethod
    async def _run(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("Slack: %s failed", name)

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until every task (and any task they started) has finished."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)


def bolt_listener(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A bound method Bolt can call: it injects arguments by the names it reads, and `self` is not one."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        return await method(*args, **kwargs)

    # Bolt reads the parameters from inspect.signature, which honours __signature__; typeshed does not declare it
    # on functions.
    call.__signature__ = inspect.signature(method)  # type: ignore[attr-defined]
    call.__name__ = getattr(method, "__name__", "listener")
    return call
