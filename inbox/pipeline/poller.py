"""Polling one connector: cursor in, pages stored, errors turned into backoff and health."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import AuthError, Connector, PermanentError, RateLimited, TransientError
from inbox.logs import log_fields, redact
from inbox.metrics import Metrics
from inbox.pipeline.ingest import Ingestor, Source
from inbox.pipeline.ratelimit import RateLimits
from inbox.pipeline.workers import LeaseLost, Leases
from inbox.store import health
from inbox.store.cursors import load_cursor
from inbox.store.db import StoreUnavailable, describe_outage, is_outage
from inbox.store.models import utcnow

log = logging.getLogger("inbox.poller")  # the logger name users filter on, unchanged by the move into inbox.pipeline
_T = TypeVar("_T")

# Failures in a row before a flaky connector is called unhealthy (one blip is not news).
UNHEALTHY_AFTER = 3
MAX_BACKOFF = 900.0
# Revoked credentials will not fix themselves quickly; look again now and then, without hammering.
AUTH_RETRY = 900.0
# A poll that has not finished by then is abandoned (its stored pages stay stored) and retried later.
POLL_TIMEOUT = 300.0
# The store is not the connector's fault: while it is down, polls are retried at most this far apart, so
# every connector polls again soon after it comes back (from its saved cursor).
STORE_RETRY_MAX = 30.0


def backoff(
    failures: int, retry_after: float | None, jitter: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds to wait after `failures` transient failures in a row: exponential with jitter, never before the vendor's retry-after."""
    # Jitter so many workers recovering from one outage do not retry in step.
    ceiling = min(MAX_BACKOFF, 5.0 * 2 ** min(failures, 10))
    return max(jitter(ceiling / 2, ceiling), retry_after or 0.0)


def store_backoff(
    failures: int, poll_seconds: float, jitter: Callable[[float, float], float] = random.uniform
) -> float:
    """Seconds to wait after `failures` store errors in a row: from 2 s, doubling, never past the poll interval or 30 s."""
    ceiling = min(STORE_RETRY_MAX, poll_seconds, 2.0 * 2 ** min(failures, 10))
    return jitter(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did and when the next one should run."""

    stored: int
    pages: int
    delay: float
    error: str | None = None
    duplicates: int = 0
    store_down: bool = False  # the error was the store's, not the connector's


class Poller:
    """Owns a connector's schedule, retries, backoff and health; the connector only speaks its platform."""

    def __init__(
        self,
        connector: Connector[Any, Any],
        ingestor: Ingestor,
        *,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = utcnow,
        jitter: Callable[[float, float], float] = random.uniform,
        timeout: float = POLL_TIMEOUT,
        leases: Leases | None = None,
    ) -> None:
        self.connector = connector
        self.ingestor = ingestor
        self.engine: AsyncEngine = ingestor.engine
        self.source = Source.of(connector)
        self.metrics = metrics
        self.clock = clock
        self.jitter = jitter
        self.timeout = timeout
        self.leases = leases
        self.failures = 0
        self.store_failures = 0
        self.rate = RateLimits(connector.name, connector.settings.poll_seconds, jitter=jitter, metrics=metrics)

    @property
    def name(self) -> str:
        """The connector's configured name."""
        return self.connector.name

    @log_fields(connector="self.name")
    async def poll_once(self) -> PollResult:
        """Fetch every page newer than the saved cursor and store it; never raises a connector error."""
        started = time.perf_counter()
        stored = pages = duplicates = 0
        fence = partial(self.leases.fence, connector=self.name) if self.leases else None
        try:
            async with asyncio.timeout(self.timeout):
                cursor = await _store(self._cursor())
                async for page in self.connector.fetch(cursor):
                    result = await _store(self.ingestor.ingest(self.source, page.items, page.cursor, fence=fence))
                    stored += result.stored
                    duplicates += result.duplicates
                    pages += 1
        except LeaseLost:
            # Not a failure: the connector is another worker's now, and it resumes from the saved cursor.
            log.info("lease moved to another worker mid-poll; stopped after %d page(s)", pages)
            if self.metrics and stored:
                self.metrics.items_ingested.labels(self.name).inc(stored)
            return PollResult(stored, pages, self.connector.settings.poll_seconds, duplicates=duplicates)
        except StoreUnavailable as exc:
            return self._store_failed(str(exc), stored, pages)
        except TimeoutError:
            return await self._failed("timeout", f"no answer within {self.timeout:.0f} s", stored, pages)
        except RateLimited as exc:
            return await self._rate_limited(str(exc), exc.retry_after, stored, pages)
        except TransientError as exc:
            return await self._failed("transient", str(exc), stored, pages, retry_after=exc.retry_after)
        except AuthError as exc:
            return await self._failed("auth", f"credentials refused: {exc}", stored, pages, auth=True)
        except PermanentError as exc:
            return await self._failed("permanent", str(exc), stored, pages)
        except Exception as exc:
            log.exception("poll crashed")
            return await self._failed("crash", f"{type(exc).__name__}: {exc}", stored, pages)
        finally:
            if self.metrics:
                self.metrics.poll_seconds.labels(self.name).observe(time.perf_counter() - started)
        if self.metrics and stored:
            self.metrics.items_ingested.labels(self.name).inc(stored)
        if self.failures:
            log.info("polling works again after %d failure(s)", self.failures)
        self.failures = 0
        self.rate.passed()
        try:
            await _store(self._record(healthy=True, reason=None, stored=stored))
        except StoreUnavailable as exc:
            # The pages and the cursor are saved; only the health row is behind, and the next poll writes it.
            return self._store_failed(str(exc), stored, pages)
        self._store_back()
        poll = self.connector.settings.poll_seconds
        delay = self.rate.pace(poll * self.jitter(0.9, 1.1), self.connector.poll_budgets())
        return PollResult(stored, pages, delay, duplicates=duplicates)

    @log_fields(connector="self.name")
    async def follow_stream(self) -> None:
        """Ingest what the platform pushes until cancelled; after a drop, poll at once for what was missed."""
        failures = 0
        while True:
            cap = MAX_BACKOFF
            try:
                async for page in self.connector.stream():
                    result = await self.ingestor.ingest(self.source, page.items, page.cursor)
                    if self.metrics and result.stored:
                        self.metrics.items_ingested.labels(self.name).inc(result.stored)
                    failures = 0
                log.info("the stream ended; reconnecting")
            except AuthError as exc:
                # Polling reports the health; a stream cannot fix credentials by retrying.
                log.error("stream refused (%s); polling continues alone", exc)
                return
            except (TransientError, PermanentError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("stream dropped (%s); polling covers the gap while it reconnects", exc)
            except Exception as exc:
                failures += 1
                if is_outage(exc):
                    cap = STORE_RETRY_MAX  # back as soon as the store is
                if failures == 1:
                    reason = (
                        f"store error: {describe_outage(exc)}" if is_outage(exc) else f"{type(exc).__name__}: {exc}"
                    )
                    log.warning(
                        "stream stopped (%s); it reconnects, and polling covers the gap",
                        reason,
                        exc_info=None if is_outage(exc) else exc,
                    )
            try:
                await self.poll_once()
            except Exception:
                log.exception("catch-up poll after the stream stopped failed")
            await asyncio.sleep(self.jitter(0.5, 1.0) * min(cap, 2.0 ** min(failures, 10)))

    async def _cursor(self) -> Any:
        raw = await load_cursor(self.engine, self.name)
        if raw is None:
            return None
        try:
            return self.connector.cursor_model.model_validate(raw)
        except ValidationError as exc:
            raise PermanentError(f"saved cursor does not fit this connector: {exc.error_count()} problem(s)") from exc

    def _backoff(self, retry_after: float | None) -> float:
        return backoff(self.failures, retry_after, self.jitter)

    async def _failed(
        self, kind: str, reason: str, stored: int, pages: int, *, retry_after: float | None = None, auth: bool = False
    ) -> PollResult:
        self.failures += 1
        reason = redact(reason)  # it is logged, stored, shown on /healthz and posted to Slack
        delay = AUTH_RETRY if auth else self._backoff(retry_after)
        if self.metrics:
            self.metrics.poll_errors.labels(self.name, kind).inc()
            if stored:
                self.metrics.items_ingested.labels(self.name).inc(stored)
        if self.failures == 1:
            log.warning("poll failed (%s), next try in %.0f s: %s", kind, delay, reason)
        else:
            log.debug("poll failed again (%d in a row): %s", self.failures, reason)
        unhealthy = auth or self.failures >= UNHEALTHY_AFTER
        try:
            await _store(self._record(healthy=not unhealthy, reason=reason, stored=stored, failed=True))
        except StoreUnavailable as exc:
            # The count stays in memory and the health row is written at the next poll that reaches the store;
            # the next try keeps the connector's own backoff.
            store = self._store_failed(str(exc), stored, pages)
            return PollResult(stored, pages, delay, store.error, store_down=True)
        self._store_back()
        return PollResult(stored, pages, delay, reason)

    def _store_failed(self, reason: str, stored: int, pages: int) -> PollResult:
        """The store failed under this poll: no health change (not the connector's fault), a short capped retry."""
        self.store_failures += 1
        delay = store_backoff(self.store_failures, self.connector.settings.poll_seconds, self.jitter)
        if self.metrics:
            self.metrics.poll_errors.labels(self.name, "store").inc()
        if self.store_failures == 1:
            log.warning("poll stopped by the store (%s); retrying from the saved cursor in %.0f s", reason, delay)
        else:
            log.debug("poll stopped by the store again (%d in a row): %s", self.store_failures, reason)
        return PollResult(stored, pages, delay, reason, store_down=True)

    def _store_back(self) -> None:
        if self.store_failures:
            log.info(
                "the store answers again after %d stopped poll(s); polling resumed from the saved cursor",
                self.store_failures,
            )
        self.store_failures = 0

    async def _rate_limited(self, reason: str, retry_after: float | None, stored: int, pages: int) -> PollResult:
        """The vendor's rate limit refused the poll: wait for its reset; unhealthy only when that lasts too long."""
        reason = redact(reason)
        delay = self.rate.refused(self.clock(), retry_after)
        if self.metrics and stored:
            self.metrics.items_ingested.labels(self.name).inc(stored)
        try:
            if self.rate.too_long():
                # `_record` announces the change once: only the update that flips the health writes the event.
                await _store(self._record(healthy=False, reason=self.rate.describe(reason), stored=stored, failed=True))
            else:
                await _store(self._record_rate_limited(stored))
        except StoreUnavailable as exc:
            # The vendor's reset still decides the next try; the health row is written by a later poll.
            self._store_failed(str(exc), stored, pages)
            return PollResult(stored, pages, delay, reason, store_down=True)
        self._store_back()
        return PollResult(stored, pages, delay, reason)

    async def _record_rate_limited(self, stored: int) -> None:
        """A refused poll is no failure: its time and what it stored are kept, the health left as it was."""
        await health.record_rate_limited(self.engine, self.name, self.clock(), stored)

    async def _record(self, *, healthy: bool, reason: str | None, stored: int, failed: bool = False) -> None:
        flipped = await health.record_poll(
            self.engine,
            self.name,
            self.clock(),
            healthy=healthy,
            reason=reason,
            failures=self.failures,
            stored=stored,
            failed=failed,
        )
        # Only the worker whose write flipped the health logs it, so a change is told once.
        if flipped and healthy:
            log.info("connector is healthy again")
        elif flipped:
            log.error("connector is unhealthy: %s", reason)


async def _store(call: Awaitable[_T]) -> _T:
    """Await a store call; an outage becomes StoreUnavailable, so it is never taken for the connector's failure."""
    try:
        return await call
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_outage(exc):
            raise StoreUnavailable(f"store error: {describe_outage(exc)}") from exc
        raise
