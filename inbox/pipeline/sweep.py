"""The SLA sweep: announces each warning and each breach once, whichever worker runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.pipeline.csat import CsatAsker
from inbox.store import clocks
from inbox.store.models import utcnow

log = logging.getLogger("inbox.sweep")  # the logger name users filter on, unchanged by the move into inbox.pipeline


@dataclass(slots=True)
class SweepResult:
    """Threads newly warned about and newly breached in one sweep."""

    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)
    csat_asked: int = 0


class SlaSweep:
    """Moves running clocks to warned or breached and records one event per step."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], datetime] = utcnow,
        *,
        on_event: Callable[[], None] = lambda: None,
        csat: CsatAsker | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_event = on_event  # told when alerts were recorded, so the outbox delivers them now
        self.csat = csat  # sends the CSAT questions that are due, when [csat] is on

    async def run(self) -> SweepResult:
        """One sweep at the current time."""
        now = self.clock()
        result = SweepResult()
        result.warned, result.breached = await clocks.announce_due(self.engine, now)
        if result.warned or result.breached:
            self.on_event()
            log.info("SLA sweep: %d warning(s), %d breach(es)", len(result.warned), len(result.breached))
        if self.csat is not None:
            result.csat_asked = await self.csat.run()
        return result
