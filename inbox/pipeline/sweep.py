"""The SLA sweep: announces each warning and each breach, and each reply window closing, once, whichever worker runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.pipeline.csat import CsatAsker
from inbox.store import clocks
from inbox.store.models import utcnow

log = logging.getLogger("inbox.sweep")  # the logger name users filter on, unchanged by the move into inbox.pipeline
# How long before a platform's reply window closes leads are warned ([sla] reply_window_warn_minutes).
DEFAULT_WINDOW_LEAD = timedelta(hours=2)


@dataclass(slots=True)
class SweepResult:
    """Threads newly warned about and newly breached in one sweep."""

    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)
    window_warned: list[int] = field(default_factory=list)  # reply windows closing within the lead time
    window_closed: list[int] = field(default_factory=list)
    csat_asked: int = 0


class SlaSweep:
    """Moves running clocks to warned or breached and records one event per step."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], datetime] = utcnow,
        *,
        on_event: Callable[[], None] = lambda: None,
        window_lead: timedelta = DEFAULT_WINDOW_LEAD,
        csat: CsatAsker | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.window_lead = window_lead  # leads are warned this long before a platform's reply window closes
        self.on_event = on_event  # told when alerts were recorded, so the outbox delivers them now
        self.csat = csat  # sends the CSAT questions that are due, when [csat] is on

    async def run(self) -> SweepResult:
        """One sweep at the current time."""
        now = self.clock()
        result = SweepResult()
        result.warned, result.breached = await clocks.announce_due(self.engine, now)
        result.window_warned, result.window_closed = await clocks.announce_windows(self.engine, now, self.window_lead)
        if result.warned or result.breached or result.window_warned or result.window_closed:
            self.on_event()
            log.info(
                "SLA sweep: %d warning(s), %d breach(es); %d reply window(s) closing soon, %d closed",
                len(result.warned),
                len(result.breached),
                len(result.window_warned),
                len(result.window_closed),
            )
        if self.csat is not None:
            result.csat_asked = await self.csat.run()
        return result
