"""Team leads' report over 1,000,000 conversations: the real query, beside a plain COUNT(*) of the same rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.bench.core import Figure, Report, Series, scratch_store, under, write_series
from inbox.store import reports
from inbox.store.models import Thread

CONVERSATIONS, QUICK_CONVERSATIONS = 1_000_000, 100_000
RUNS, QUICK_RUNS = 5, 3
GOAL_S = 2.0
SPACING_S = 2  # seconds between two generated conversations: 1,000,000 span about 23 days
CUSTOMERS = 10_000


async def run(
    url: str, *, quick: bool, console: Console, conversations: int | None = None, runs: int | None = None
) -> Report:
    """Benchmark `report` on the store at `url`."""
    count = conversations or (QUICK_CONVERSATIONS if quick else CONVERSATIONS)
    runs = runs or (QUICK_RUNS if quick else RUNS)
    report = Report()
    async with scratch_store(url, "report") as scratch:
        now = datetime.now(UTC).replace(microsecond=0)
        engine = scratch.engine()
        await generate(engine, count, now, console)
        scope = reports.Scope(start=now - timedelta(days=365), end=now, now=now)
        with console.status(f"report: {runs} timed runs of each query…"):
            counted, total = await _timed(runs, lambda: _count(engine, scope))
            figures: dict[str | None, float] = {}
            for by in (None, "channel", "day"):

                def query(by: str | None = by) -> Awaitable[list[reports.Figures]]:
                    return reports.figures(engine, scope, by)

                figures[by], rows = await _timed(runs, query)
                if by is None and rows[0].conversations != count:
                    raise AssertionError(f"the report counted {rows[0].conversations:,}, not {count:,}")
    if total != count:
        raise AssertionError(f"COUNT(*) found {total:,} conversations, not {count:,}")
    store = "PostgreSQL" if scratch.dialect == "postgresql" else "SQLite"
    what = f"{store}, {count:,} conversations"
    baseline = "COUNT(*) of the same rows"
    report.add(
        Figure(
            "report", f"total row, {what}", figures[None], "s", counted, baseline, under(figures[None], GOAL_S, "s")
        ),
        Figure("report", f"by channel, {what}", figures["channel"], "s", counted, baseline),
        Figure("report", f"by day, {what}", figures["day"], "s", counted, baseline),
    )
    report.note(
        f"report: the median of {runs} runs of each query (after one untimed run), over conversations started in the "
        "last year: every one of them, 5% still open, 5% closed without a reply, a CSAT question for one in ten"
    )
    return report


async def _count(engine: AsyncEngine, scope: reports.Scope) -> int:
    """The baseline: how many conversations started in the window, and nothing else."""
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(Thread.opened_at >= scope.start, Thread.opened_at < scope.end)
        return int((await conn.execute(query)).scalar_one())


async def _timed(runs: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """The median seconds of `runs` runs of `work` after an untimed one, and what it returned."""
    result = await work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def generate(engine: AsyncEngine, count: int, now: datetime, console: Console) -> None:
    """`count` conversations with their customers and CSAT questions, written by the database itself.

    Conversation i started `i * SPACING_S` seconds before `now` on one of three channels; one in twenty is still
    open, one in twenty was closed without a reply, the others were answered 0 to 60 minutes after the post (a
    30-minute target). Some had next responses met or missed; one in ten was asked the CSAT question.
    """
    dialect = engine.dialect.name
    base: Any = now.replace(tzinfo=None)
    base = base if dialect == "postgresql" else base.strftime("%Y-%m-%d %H:%M:%S")
    back = f"(i * {SPACING_S} + 60)"
    answered = "i % 20 > 1"

    def at(offset: str) -> str:
        """The time `now - back + offset seconds`, as each dialect stores a naive UTC datetime."""
        if dialect == "postgresql":
            return f"(CAST(:base AS timestamp) + ((({offset}) - {back}) * interval '1 second'))"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :base, (({offset}) - {back}) || ' seconds') || '.000000')"

    reply = "(i % 97) * 37"
    tables: Series = [
        (
            "customer",
            CUSTOMERS,
            {
                "id": "i",
                "channel": "'x'",
                "handle": "'user' || i",
                "first_seen_at": at("0"),
                "last_seen_at": at("0"),
            },
        ),
        (
            "thread",
            count,
            {
                "id": "i",
                "connector": "'bench-' || (i % 5)",
                "channel": "CASE i % 3 WHEN 0 THEN 'x' WHEN 1 THEN 'mastodon' ELSE 'google_reviews' END",
                "external_id": "'t' || i",
                "customer_id": f"1 + i % {CUSTOMERS}",
                "kind": "'mention'",
                "status": "CASE WHEN i % 20 = 0 THEN 'new' WHEN i % 20 = 1 THEN 'resolved' ELSE 'replied' END",
                "priority": "i % 4",
                "opened_at": at("0"),
                "last_customer_at": at("0"),
                "cycle": "1",
                "clock_kind": "'first_response'",
                "clock_start": at("0"),
                "warn_at": at("1200"),
                "due_at": at("1800"),
                "sla_stage": "CASE WHEN i % 20 = 0 THEN 2 ELSE 3 END",
                "responded_at": f"CASE WHEN {answered} THEN {at(reply)} END",
                "first_response_at": f"CASE WHEN {answered} THEN {at(reply)} END",
                "resolved_at": f"CASE WHEN i % 20 = 1 THEN {at('600')} END",
                "updated_at": at("0"),
                "window_stage": "0",
                "first_due_at": at("1800"),
                "sla_target_minutes": "30",
                "next_met": "CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END",
                "next_missed": "CASE WHEN i % 11 = 0 THEN 1 ELSE 0 END",
            },
        ),
        (
            "csat_question",
            count // 10,
            {
                "id": "i",
                "thread_id": "i * 10",
                "connector": "'bench-0'",
                "channel": "'x'",
                "language": "'en'",
                "ask_at": at("3600"),
                "status": "CASE i % 3 WHEN 0 THEN 'answered' WHEN 1 THEN 'closed' ELSE 'sent' END",
                "attempts": "1",
                "sent_at": at("3600"),
                "score": "CASE WHEN i % 3 = 0 THEN 1 + i % 5 END",
                "created_at": at("3600"),
            },
        ),
    ]
    await write_series(engine, tables, {"base": base}, console, f"report: writing {count:,} conversations")
    async with engine.begin() as conn:
        # Statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` would gather them after a load like this.
        await conn.execute(sa.text("ANALYZE"))


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_report.py`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Callable[[Any], dict[str, Any]]:
        parser.add_argument(
            "--conversations",
            type=int,
            help=f"conversations (default {CONVERSATIONS:,}; --quick {QUICK_CONVERSATIONS:,})",
        )
        parser.add_argument("--runs", type=int, help=f"timed runs of each query (default {RUNS}; --quick {QUICK_RUNS})")
        return lambda args: {"conversations": args.conversations, "runs": args.runs}

    script(run, __doc__ or "", options, argv, both_stores=True)
