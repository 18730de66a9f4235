"""The weekly digest's ledger: a week's row is claimed before its post and completed after, so it goes out once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import ReportDigest
from inbox.store.sqlutil import insert_for


@dataclass(frozen=True, slots=True)
class DigestClaim:
    """This worker may post the week's digest; `retaken`: an earlier attempt ran out, its outcome unknown."""

    week: str
    title: str
    retaken: bool
    first_claimed_at: datetime


async def claim(
    engine: AsyncEngine, week: str, channel: str, title: str, worker: str, now: datetime, until: datetime
) -> DigestClaim | None:
    """Claim the week's digest until `until`; None when it was posted, or another worker's claim still holds."""
    async with engine.begin() as conn:
        inserted = await conn.execute(
            insert_for(conn, ReportDigest)
            .values(
                week=week,
                channel=channel,
                title=title,
                claimed_by=worker,
                claimed_until=until,
                attempts=1,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["week"])
        )
        if inserted.rowcount:
            return DigestClaim(week, title, retaken=False, first_claimed_at=now)
        # Taken over only when unposted and its claim ran out: one UPDATE, so two workers cannot both win it.
        retaken = await conn.execute(
            sa.update(ReportDigest)
            .where(ReportDigest.week == week, ReportDigest.posted_at.is_(None), ReportDigest.claimed_until <= now)
            .values(claimed_by=worker, claimed_until=until, attempts=ReportDigest.attempts + 1)
            .returning(ReportDigest.title, ReportDigest.created_at)
        )
        row = retaken.one_or_none()
    return None if row is None else DigestClaim(week, row.title, retaken=True, first_claimed_at=row.created_at)


async def posted(engine: AsyncEngine, week: str, ts: str | None, file_id: str | None, now: datetime) -> None:
    """Record the week's digest as posted (its message ts and chart file, when known)."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(ReportDigest)
            .where(ReportDigest.week == week)
            .values(ts=ts, file_id=file_id, posted_at=now, claimed_until=None)
        )


async def failed(engine: AsyncEngine, week: str, worker: str, retry_at: datetime) -> None:
    """Slack said plainly the post did not happen: free the claim at `retry_at` (nothing to look for then)."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(ReportDigest)
            .where(ReportDigest.week == week, ReportDigest.claimed_by == worker, ReportDigest.posted_at.is_(None))
            .values(claimed_until=retry_at)
        )
