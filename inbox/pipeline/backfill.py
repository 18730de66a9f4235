"""Backfill: a connector's history since a moment in the past, through the same connector and ingest, live cursor untouched.

A backfill builds its own copy of the connector with `first_poll_hours` set to the duration asked for, so every
platform connector reaches back its usual way, and stores what it fetches as history (see `Ingestor.ingest`):
items already stored count as known, clocks whose deadline passed before now are stored breached, and threads
the platform shows answered are stored with their clock stopped and not announced. Page cursors are kept in
memory only, to resume after a transient error; the live cursor of `inbox run` is never read or written.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from inbox.connector import (
    AuthError,
    Connector,
    ConnectorSettings,
    ConnectorTypes,
    PermanentError,
    RateLimited,
    TransientError,
)
from inbox.pipeline.ingest import Ingestor, Source
from inbox.pipeline.poller import backoff
from inbox.pipeline.ratelimit import RESET_JITTER
from inbox.settings import Settings
from inbox.store.models import utcnow

log = logging.getLogger("inbox.backfill")  # the logger name users filter on, unchanged by the move into inbox.pipeline

# The setting through which a platform connector reaches back when it starts without a cursor.
REACH = "first_poll_hours"
MAX_SINCE = timedelta(days=3650)
# Transient failures in a row (without a page stored in between) before a backfill gives up.
MAX_ATTEMPTS = 6
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"(\d{1,7})([mhdw])")


class BackfillError(Exception):
    """A backfill that cannot start or cannot go on; the message says why and what to do."""


def parse_duration(text: str) -> timedelta:
    """'30m', '12h', '2d' or '1w' as a timedelta; BackfillError saying what is accepted otherwise."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise BackfillError(f"--since {text!r} is not a duration: write a number and a unit, e.g. 30m, 12h, 2d or 1w")
    duration = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not timedelta(0) < duration <= MAX_SINCE:
        raise BackfillError(f"--since {text!r}: the duration must be more than 0 and at most {MAX_SINCE.days} days")
    return duration


def describe(duration: timedelta) -> str:
    """A duration the way `--since` takes it: 2d, 36h, 90m."""
    minutes = int(duration.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes >= size and minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def connector_settings(settings: Settings, name: str, types: ConnectorTypes) -> ConnectorSettings:
    """The named connector's settings when a backfill can run on it; BackfillError saying why not otherwise."""
    found = next((c for c in settings.connectors if c.name == name), None)
    if found is None:
        names = ", ".join(c.name for c in settings.connectors)
        raise BackfillError(
            f"no connector named {name!r} in the config"
            + (f"; configured: {names}" if names else " (it has no connectors)")
        )
    if not found.enabled:
        raise BackfillError(f"connector {name!r} is disabled (enabled = false): enable it before backfilling it")
    if types.connector_class(found.type).pushes:
        raise BackfillError(f"connector {name!r} ({found.type}) receives pushed items: it has no history to fetch")
    if REACH not in type(found).model_fields:
        raise BackfillError(
            f"connector {name!r} ({found.type}) cannot reach back in time (no {REACH} setting): it has no history to fetch"
        )
    return found


@dataclass(slots=True)
class BackfillProgress:
    """What a backfill has done so far; the final one is its summary."""

    connector: str
    type: str
    since: timedelta  # as asked
    reach: timedelta  # as far back as the platform lists, at most `since`
    started_at: datetime
    pages: int = 0
    fetched: int = 0
    stored: int = 0
    known: int = 0
    skipped: int = 0
    new_threads: int = 0
    answered: int = 0
    overdue: int = 0
    retries: int = 0
    waiting: float = 0.0  # seconds of the wait before the next retry; 0 while fetching
    last_error: str | None = None

    @property
    def horizon(self) -> datetime:
        """The oldest moment the backfill reaches."""
        return self.started_at - self.reach

    @property
    def note(self) -> str | None:
        """Why the backfill reaches less far back than asked, if it does."""
        if self.reach < self.since:
            return f"{self.type} lists only the last {describe(self.reach)}: the backfill reaches back {describe(self.reach)}, not {describe(self.since)}"
        return None


Report = Callable[[BackfillProgress], None]


class Backfill:
    """Fetches one connector's history once and stores it as history; retries transient errors like a poll would."""

    def __init__(
        self,
        settings: ConnectorSettings,
        ingestor: Ingestor,
        since: timedelta,
        *,
        types: ConnectorTypes,
        report: Report | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
        max_attempts: int = MAX_ATTEMPTS,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.types = types
        self.ingestor = ingestor
        self.report = report or (lambda progress: None)
        self.sleep = sleep
        self.jitter = jitter
        self.max_attempts = max_attempts
        # Connectors reach back from the wall clock, so the horizon is kept on it too.
        self.wall = wall
        window = types.connector_class(settings.type).history_window
        reach = min(since, window) if window is not None else since
        self.progress = BackfillProgress(settings.name, settings.type, since, reach, wall())

    async def run(self) -> BackfillProgress:
        """Fetch and store everything back to the horizon; BackfillError when credentials fail or retries run out."""
        progress = self.progress
        if progress.note:
            log.warning("%s: %s", progress.connector, progress.note)
        resume: BaseModel | None = None
        failures = 0
        while True:
            connector = self._connector()
            try:
                source = Source.of(connector)
                self.report(progress)
                async for page in connector.fetch(resume):
                    result = await self.ingestor.ingest(source, page.items, history=True)
                    progress.pages += 1
                    progress.fetched += len(page.items)
                    progress.stored += result.stored
                    progress.known += result.duplicates
                    progress.skipped += result.skipped
                    progress.new_threads += result.new_threads
                    progress.answered += result.answered
                    progress.overdue += result.overdue
                    # A page cursor says "safe to resume after this page": where a retry starts, never saved.
                    resume = page.cursor or resume
                    failures = 0
                    self.report(progress)
                return progress
            except TransientError as exc:
                progress.last_error = str(exc)
                if isinstance(exc, RateLimited) and exc.retry_after:
                    # Not a failure: the vendor said when its window opens again (X's every 15 minutes), and the
                    # history is worth the wait; Ctrl-C stops it like any other wait.
                    delay = exc.retry_after + self.jitter(*RESET_JITTER)
                else:
                    failures += 1
                    if failures >= self.max_attempts:
                        raise BackfillError(
                            f"{progress.connector}: gave up after {failures} failed attempts in a row: {exc}. "
                            "What is stored stays stored; run the same backfill again later to go on."
                        ) from exc
                    delay = backoff(failures, exc.retry_after, self.jitter)
                log.warning("%s: backfill interrupted (%s); retrying in %.0f s", progress.connector, exc, delay)
                progress.retries += 1
                progress.waiting = delay
                self.report(progress)
                await self.sleep(delay)
                progress.waiting = 0.0
            except AuthError as exc:
                raise BackfillError(
                    f"{progress.connector}: credentials refused: {exc}. Fix them (`inbox check` tries them), then run the backfill again."
                ) from exc
            except PermanentError as exc:
                raise BackfillError(f"{progress.connector}: {exc}. What is stored stays stored.") from exc
            finally:
                await connector.close()

    def _connector(self) -> Connector[Any, Any]:
        # Reach back to the same horizon on every attempt, however long a retry waited.
        hours = (self.wall() - self.progress.horizon).total_seconds() / 3600
        return self.types.build(self.settings.model_copy(update={REACH: hours}))
