"""The SLA sweep: announces each warning and each breach once, whichever worker runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.models import Event, EventKind, SlaStage, Thread, utcnow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SweepResult:
    """Threads newly warned about and newly breached in one sweep."""

    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)


class SlaSweep:
    """Moves running clocks to warned or breached and records one event per step."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    async def run(self) -> SweepResult:
        """One sweep at the current time."""
        now = self.clock()
        result = SweepResult()
        # `sla_stage < 2` and `warn_at <= now` match the partial index, so only running clocks are read.
        due = sa.and_(Thread.sla_stage < SlaStage.BREACHED, Thread.warn_at <= now)
        async with self.engine.begin() as conn:
            # The conditional UPDATE is the claim: a second sweep, here or on another worker, matches nothing.
            breached = await conn.execute(
                sa.update(Thread)
                .where(due, Thread.due_at <= now)
                .values(sla_stage=SlaStage.BREACHED, updated_at=now)
                .returning(Thread.id, Thread.cycle)
            )
            result.breached = await _record(conn, EventKind.SLA_BREACH, breached.all(), now)
            warned = await conn.execute(
                sa.update(Thread)
                .where(due, Thread.sla_stage < SlaStage.WARNED, Thread.due_at > now)
                .values(sla_stage=SlaStage.WARNED, updated_at=now)
                .returning(Thread.id, Thread.cycle)
            )
            result.warned = await _record(conn, EventKind.SLA_WARNING, warned.all(), now)
        if result.warned or result.breached:
            log.info("SLA sweep: %d warning(s), %d breach(es)", len(result.warned), len(result.breached))
        return result


async def _record(conn: sa.ext.asyncio.AsyncConnection, kind: EventKind, rows: list[sa.Row], now: datetime) -> list[int]:
    if rows:
        await conn.execute(
            sa.insert(Event),
            [{"kind": kind, "thread_id": r.id, "payload": {"cycle": r.cycle}, "created_at": now, "attempts": 0} for r in rows],
        )
    return sorted(r.id for r in rows)
