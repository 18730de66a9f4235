"""Rate limits are not failures: wait for the vendor's reset, pace polls by the budget it announces, and call a
connector unhealthy only when it stays rate limited longer than the SLA can bear."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from inbox.connector import RateBudget
from inbox.metrics import Metrics

log = logging.getLogger("inbox.ratelimit")  # the logger name users filter on, unchanged by the move into inbox.pipeline

# A second or two past the vendor's reset: X rounds its reset to the second, and its clock is not ours.
RESET_JITTER = (1.0, 2.0)
# A connector refused for longer than this is unhealthy: its items would be too late for a 30-minute SLA. A single
# long wait is not enough: X's windows last 15 minutes, and a restart may find one spent by its predecessor.
TOLERATED = timedelta(minutes=10)
# With no reset from the vendor: the poll interval, doubling from 30 s after a few refusals, up to X's 15-minute window.
NO_RESET_FIRST = 30.0
NO_RESET_MAX = 900.0
# No wait is longer than this, whatever the vendor says (a reset in milliseconds read as seconds would be centuries;
# a day's Retry-After would hide the connector for a day): the poll after it asks again, and a vendor that still
# refuses then has refused for longer than is tolerated, which makes the connector unhealthy.
MAX_WAIT = NO_RESET_MAX


class RateLimits:
    """One connector's rate-limit state: refused since when and until when, and whether its polls are paced.

    `since` and `until` are on the poller's (injectable) clock; budgets' resets are the vendor's epoch
    seconds, compared with `wall`, the clock the HTTP clients stamped them with.
    """

    def __init__(
        self,
        name: str,
        poll_seconds: float,
        *,
        jitter: Callable[[float, float], float],
        metrics: Metrics | None = None,
        wall: Callable[[], float] = time.time,
        tolerated: timedelta = TOLERATED,
    ) -> None:
        self.name = name
        self.poll_seconds = poll_seconds
        self.jitter = jitter
        self.metrics = metrics
        self.wall = wall
        self.tolerated = tolerated
        self.since: datetime | None = None
        self.until: datetime | None = None
        self.last: datetime | None = None
        self.refusals = 0
        self.paced = False

    @property
    def lasted(self) -> timedelta:
        """How long the connector has been refused: from the first refusal in a row to the latest."""
        if self.since is None or self.last is None:
            return timedelta(0)
        return self.last - self.since

    def refused(self, now: datetime, retry_after: float | None) -> float:
        """The vendor refused a poll for its rate limit: seconds until the next try (its reset plus a second or two)."""
        self.refusals += 1
        if self.since is None:
            self.since = now
        self.last = now
        if retry_after is not None and retry_after > 0:
            wait = min(MAX_WAIT, retry_after) + self.jitter(*RESET_JITTER)
        else:
            # No reset (or one already past, which says nothing): a modest backoff, never sooner than a normal poll.
            wait = max(self.poll_seconds, min(NO_RESET_MAX, NO_RESET_FIRST * 2 ** (self.refusals - 1)))
            wait += self.jitter(*RESET_JITTER)
        self.until = now + timedelta(seconds=wait)
        if self.refusals == 1:
            log.info("rate limited by the vendor; next poll after its reset, in %.0f s (not a failure)", wait)
        else:
            log.debug("rate limited again (%d in a row, %.0f s so far)", self.refusals, self.lasted.total_seconds())
        if self.metrics:
            self.metrics.rate_limited.labels(self.name).inc()
            self.metrics.rate_limited_until.labels(self.name).set(self.until.timestamp())
        return wait

    def too_long(self) -> bool:
        """True when the refusals in a row have lasted longer than the SLA can bear."""
        return self.lasted > self.tolerated

    def describe(self, reason: str) -> str:
        """The health reason for a rate limit that lasts too long."""
        minutes = self.lasted.total_seconds() / 60
        return f"rate limited by the vendor for {minutes:.0f} min (more than {self.tolerated.total_seconds() / 60:.0f}): {reason}"

    def passed(self) -> None:
        """A poll went through: the rate limit, if any, is over."""
        if self.since is not None:
            log.info("the vendor's rate limit is over after %d refused poll(s)", self.refusals)
        self.since = self.until = self.last = None
        self.refusals = 0
        if self.metrics:
            self.metrics.rate_limited_until.labels(self.name).set(0)

    def pace(self, delay: float, budgets: Iterable[RateBudget]) -> float:
        """The wait before the next poll: `delay`, or longer when a budget the vendor announces would not last until its reset."""
        now = self.wall()
        paced: tuple[float, float, float] | None = None  # (wait, remaining, seconds to reset) of the tightest budget
        for budget in budgets:
            if budget.remaining is None or budget.reset_at is None or budget.reset_at <= now:
                continue
            window = budget.reset_at - now
            # One request per poll and budget (a poll from the cursor reads one page): the remaining
            # requests spread evenly over the window; none left: wait for the reset.
            if budget.remaining >= 1:
                wait = min(MAX_WAIT, window / budget.remaining)
            else:
                wait = min(MAX_WAIT, window) + self.jitter(*RESET_JITTER)
            if wait > delay and (paced is None or wait > paced[0]):
                paced = (wait, budget.remaining, window)
        if paced is None:
            if self.paced:
                log.info(
                    "the vendor's rate budget lasts at the configured interval again: polling every %.0f s",
                    self.poll_seconds,
                )
            self.paced = False
            return delay
        wait, remaining, window = paced
        if not self.paced:
            # Said once, when pacing starts, not on every poll.
            log.info(
                "the vendor allows %.0f more request(s) until its reset in %.0f s: polls spaced to every %.0f s "
                "(configured: %.0f s) until the budget lasts again",
                remaining,
                window,
                wait,
                self.poll_seconds,
            )
        self.paced = True
        return wait
