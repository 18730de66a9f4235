"""Is the service alive? The store's health (a cheap write probe plus the outcome of the service's own work)
and every loop's last round, for `/healthz`; each loop logs once when it starts failing and once on recovery."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.db import describe_outage, is_outage
from inbox.store.models import utcnow
from inbox.store.probes import probe

log = logging.getLogger("inbox.liveness")  # the logger name users filter on, unchanged by the move into inbox.pipeline

# /healthz is polled often: one probe serves every request within this many seconds.
PROBE_TTL = 1.0
# How long the probe waits for a lock (SQLite's busy wait, PostgreSQL's lock_timeout) before saying "down".
PROBE_WAIT = 1.0
# A store error seen in the service's own work counts until a later success, or for this long at most.
FAILURE_MEMORY = 30.0
# Seconds a loop's round may run past its planned start before the loop counts as stalled, unless told otherwise.
DEFAULT_BUDGET = 300.0


class StoreHealth:
    """Whether the store can be read and written now: a shared, cached probe, and what the service's own work saw."""

    def __init__(
        self, engine: AsyncEngine, *, monotonic: Callable[[], float] = time.monotonic, wait: float = PROBE_WAIT
    ) -> None:
        self.engine = engine
        self.monotonic = monotonic
        self.wait = wait
        self._probed_at: float | None = None
        self._probe_reason: str | None = None
        self._probing: asyncio.Task[str | None] | None = None
        self._failed_at: float | None = None
        self._failure: str | None = None
        self._down_since: float | None = None

    async def check(self) -> str | None:
        """None when the store answers reads and writes; else why not. Concurrent callers share one probe."""
        now = self.monotonic()
        if self._probed_at is None or now - self._probed_at > PROBE_TTL:
            if self._probing is None or self._probing.done():
                self._probing = asyncio.create_task(self._probe(), name="store-probe")
            # Shielded: a client hanging up must not cancel the probe other requests are waiting on.
            self._probe_reason = await asyncio.shield(self._probing)
            self._probed_at = self.monotonic()
        return self._probe_reason or self.recent_failure()

    def recent_failure(self) -> str | None:
        """The store error the service's own work saw last, unless a success came after it or it is old."""
        if self._failed_at is None or self.monotonic() - self._failed_at > FAILURE_MEMORY:
            return None
        return self._failure

    def known_down(self) -> str | None:
        """Why the store was down at the last probe, if that was within a probe's lifetime; asks nothing."""
        fresh = self._probed_at is not None and self.monotonic() - self._probed_at <= PROBE_TTL
        return self._probe_reason if fresh else None

    def failed(self, reason: BaseException | str) -> None:
        """The service's own work met a store error (the exception, or a line saying what it was)."""
        self._failed_at = self.monotonic()
        self._failure = reason if isinstance(reason, str) else f"store error: {describe_outage(reason)}"
        self._went_down(self._failure)

    def worked(self) -> None:
        """The service's own work read and wrote the store."""
        self._failed_at = self._failure = None
        self._came_back()

    async def _probe(self) -> str | None:
        try:
            await probe(self.engine, self.wait)
        except TimeoutError:
            reason = f"store did not answer within {3 * self.wait:.0f} s"
        except Exception as exc:  # noqa: BLE001 - whatever stops the probe, the store is not usable
            reason = f"store cannot be read or written: {describe_outage(exc)}"
        else:
            self._came_back()
            return None
        self._went_down(reason)
        return reason

    def _went_down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = self.monotonic()
            log.error("the store is unavailable: %s; pushes get 503 and every loop retries", reason)

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.info("the store is available again after %.0f s", self.monotonic() - self._down_since)
            self._down_since = None


@dataclass(slots=True)
class Loop:
    """One loop's state: when its next round must have finished, its last success, and its current failure."""

    name: str
    budget: float  # seconds a round may take beyond its planned start before the loop counts as stalled
    due: float
    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    reason: str | None = None
    failures: int = 0
    task: asyncio.Task[Any] | None = None


class Loops:
    """Every loop of `inbox run`: each round reports here; `/healthz` shows them and calls a stalled one a bug."""

    def __init__(
        self, *, clock: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.monotonic = monotonic
        self.loops: dict[str, Loop] = {}
        self.stopping = False

    def add(self, name: str, *, first_in: float, budget: float, task: asyncio.Task[Any] | None = None) -> Loop:
        """Register a loop whose first round starts within `first_in` seconds; `task` for a loop that runs as one task."""
        loop = Loop(name, budget, self.monotonic() + first_in + budget, task=task)
        self.loops[name] = loop
        return loop

    def ok(self, name: str, next_in: float) -> None:
        """A round finished well; the next one starts within `next_in` seconds."""
        loop = self._loop(name)
        loop.due = self.monotonic() + next_in + loop.budget
        loop.last_ok_at = self.clock()
        if loop.failing_since is not None:
            log.info("%s works again after %d failed round(s)", name, loop.failures)
        loop.failing_since, loop.reason, loop.failures = None, None, 0

    def failed(self, name: str, exc: BaseException | str, next_in: float, *, quiet: bool = False) -> None:
        """A round failed; the next one starts within `next_in` seconds. Logged at the first failure only."""
        loop = self._loop(name)
        loop.due = self.monotonic() + next_in + loop.budget
        loop.failures += 1
        store = not isinstance(exc, str) and is_outage(exc)
        loop.reason = (
            exc
            if isinstance(exc, str)
            else (f"store error: {describe_outage(exc)}" if store else f"{type(exc).__name__}: {exc}")
        )
        if loop.failing_since is None:
            loop.failing_since = self.clock()
            if quiet:
                pass
            elif store or isinstance(exc, str):
                log.warning(
                    "%s failed (%s); it retries in %.0f s and logs again when it works", name, loop.reason, next_in
                )
            else:
                log.error("%s failed; it retries in %.0f s and logs again when it works", name, next_in, exc_info=exc)

    def _loop(self, name: str) -> Loop:
        # A round of a loop never registered still counts (reporting must not be what breaks a loop).
        return self.loops.get(name) or self.add(name, first_in=0.0, budget=DEFAULT_BUDGET)

    def remove(self, name: str) -> None:
        """A loop that ended on purpose (a stream whose lease moved away)."""
        self.loops.pop(name, None)

    def stalled(self) -> list[str]:
        """Loops that ended, or have not finished a round long after they should have: each one is a bug."""
        if self.stopping:
            return []
        now = self.monotonic()
        return sorted(
            name for name, loop in self.loops.items() if (loop.task is not None and loop.task.done()) or now > loop.due
        )

    def report(self) -> dict[str, dict[str, Any]]:
        """For /healthz: each loop's last success, whether it is failing (and why) and whether it stalled."""
        stalled = set(self.stalled())
        return {
            name: {
                "ok": loop.failing_since is None and name not in stalled,
                "stalled": name in stalled,
                "last_ok_at": loop.last_ok_at.isoformat() if loop.last_ok_at else None,
                "failing_since": loop.failing_since.isoformat() if loop.failing_since else None,
                "reason": loop.reason,
            }
            for name, loop in sorted(self.loops.items())
        }
