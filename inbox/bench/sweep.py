"""SLA sweep time over a big store: the real SlaSweep, its plan, and the same sweep with the index unusable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.bench.core import Figure, Goal, Report, Scratch, Series, percentile, scratch_store, under, write_series
from inbox.pipeline.sweep import SlaSweep
from inbox.store.models import Thread

ITEMS, QUICK_ITEMS = 1_000_000, 100_000
OPEN_SHARE = 100  # one thread in a hundred is open: 10,000 of 1,000,000
RUNS, QUICK_RUNS = 20, 10
STEP = timedelta(seconds=15)  # the default [sla] check_seconds: each timed run is the next scheduled sweep
INDEXES = ("ix_thread_sla_due", "ix_thread_sla_warn")  # the breach step reads one, the warning step the other
GOAL_MS = 50.0
# The SLA the generated clocks follow: the default policy (warn at 20 minutes, due at 30).
WARN_S, DUE_S = 20 * 60, 30 * 60


@dataclass(slots=True)
class Sweeps:
    """Timings (ms) of repeated sweeps, what they announced, and the plan of the statements they ran."""

    times: list[float] = field(default_factory=list)
    warned: int = 0
    breached: int = 0
    plan: str = ""


async def run(url: str, *, quick: bool, console: Console, items: int | None = None, runs: int | None = None) -> Report:
    """Benchmark 2 on the store at `url`."""
    count = items or (QUICK_ITEMS if quick else ITEMS)
    runs = runs or (QUICK_RUNS if quick else RUNS)
    opened = count // OPEN_SHARE
    report = Report()
    async with scratch_store(url, "sweep") as scratch:
        start = datetime.now(UTC).replace(microsecond=0)
        engine = scratch.engine()
        await generate(engine, count, start, console)
        size = await _size_mb(scratch, engine)
        clock = _Clock(start)
        with console.status(f"sweep: {runs} sweeps with the index, then {runs} with it unusable…"):
            indexed = await _sweeps(engine, clock, runs)
            async with _index_unusable(scratch) as plain:
                scanned = await _sweeps(plain, clock, runs)
    store = "PostgreSQL" if scratch.dialect == "postgresql" else "SQLite"
    what = f"{store}, {count:,} items, {opened:,} open"
    p95, p95_scan = percentile(indexed.times, 95), percentile(scanned.times, 95)
    # Either index may serve either step (PostgreSQL may read the warning step through ix_thread_sla_due too).
    uses_index = any(name in indexed.plan for name in INDEXES) and not _scans(indexed.plan)
    report.add(
        Figure(
            "sweep",
            f"p50, {what}",
            percentile(indexed.times, 50),
            "ms",
            percentile(scanned.times, 50),
            "index unusable",
        ),
        Figure("sweep", f"p95, {what}", p95, "ms", p95_scan, "index unusable", under(p95, GOAL_MS, "ms")),
        Figure(
            "sweep",
            "plan",
            _short(indexed.plan),
            baseline=_short(scanned.plan),
            baseline_name="index unusable",
            goal=Goal("partial indexes, no scan", uses_index),
        ),
    )
    report.note(
        f"sweep: {runs} timed sweeps each way, the clock {STEP.seconds} s further each time (the default check "
        f"interval); per sweep {indexed.warned / runs:.0f} warning(s) and {indexed.breached / runs:.0f} breach(es) "
        f"recorded with the index, {scanned.warned / runs:.0f} and {scanned.breached / runs:.0f} without."
    )
    report.note(f"sweep: the scratch store held {size:,.0f} MB with the {count:,} items, their threads and customers")
    report.note(f"sweep plan with the index: {indexed.plan}")
    report.note(f"sweep plan without it: {scanned.plan}")
    return report


class _Clock:
    """The sweep's injected clock, moved one check interval per timed run."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _sweeps(engine: AsyncEngine, clock: _Clock, runs: int) -> Sweeps:
    """One untimed warm-up sweep, `runs` timed ones, then one more at the same time whose statements are explained."""
    sweep = SlaSweep(engine, clock)
    await sweep.run()
    result = Sweeps()
    for _ in range(runs):
        clock.now += STEP
        started = time.perf_counter()
        done = await sweep.run()
        result.times.append((time.perf_counter() - started) * 1000)
        result.warned += len(done.warned)
        result.breached += len(done.breached)
    statements: list[tuple[str, Any]] = []
    with _recorded(engine, statements):
        await sweep.run()
    result.plan = await _explain(engine, [s for s in statements if s[0].lstrip().upper().startswith("UPDATE")])
    return result


@contextmanager
def _recorded(engine: AsyncEngine, into: list[tuple[str, Any]]) -> Iterator[None]:
    """Record the SQL an engine sends while inside, as the driver receives it."""

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        into.append((statement, parameters))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", listen)
    try:
        yield
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", listen)


async def _explain(engine: AsyncEngine, statements: list[tuple[str, Any]]) -> str:
    """The plan of each statement the sweep ran, with the parameters it ran with."""
    plans = []
    async with engine.connect() as conn:
        for statement, parameters in statements:
            if conn.dialect.name == "sqlite":
                rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plans.append("; ".join(r[-1] for r in rows))
            else:
                rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                plans.append(" / ".join(" ".join(r[0].replace("->", "").split()) for r in rows if "cost=" in r[0]))
        await conn.rollback()
    return " | ".join(plans)


def _scans(plan: str) -> bool:
    return "Seq Scan" in plan or "SCAN thread" in plan


def _short(plan: str) -> str:
    """How the first statement reads the table: what the table column shows."""
    steps = [s.split(" (cost=")[0].strip() for s in plan.split(" | ")[0].replace(" / ", "; ").split("; ")]
    return " / ".join(s for s in steps if s and not s.startswith("Update on"))


@asynccontextmanager
async def _index_unusable(scratch: Scratch) -> AsyncIterator[AsyncEngine]:
    """An engine on the same store whose sweep cannot use the partial index (PostgreSQL: planner settings;
    SQLite, which has no such switch: the index dropped, and made again on the way out)."""
    if scratch.dialect == "postgresql":
        yield scratch.engine(
            connect_args={
                "server_settings": {
                    "enable_indexscan": "off",
                    "enable_bitmapscan": "off",
                    "enable_indexonlyscan": "off",
                }
            }
        )
        return
    indexes = [i for i in Thread.__table__.indexes if i.name in INDEXES]
    engine = scratch.engine()
    async with engine.begin() as conn:
        for index in indexes:
            await conn.run_sync(index.drop)
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            for index in indexes:
                await conn.run_sync(index.create)


async def generate(engine: AsyncEngine, count: int, start: datetime, console: Console) -> None:
    """`count` threads of one item each and their customers, written by the database itself.

    One thread in OPEN_SHARE has a running clock, started in the last 30 minutes (so some are warned already,
    none breached), as a sweep at `start` would leave them; the rest were answered, up to ~80 days before.
    """
    customers = max(1, count // 4)
    dialect = engine.dialect.name
    base: Any = start.replace(tzinfo=None)
    base = base if dialect == "postgresql" else base.strftime("%Y-%m-%d %H:%M:%S")
    opened = count // OPEN_SHARE
    # Seconds before `start` that each thread's clock started.
    back = (
        f"(CASE WHEN i % {OPEN_SHARE} = 0 THEN ((i / {OPEN_SHARE} - 1) * {DUE_S - 1}) / {opened} ELSE i * 7 + 3600 END)"
    )
    is_open = f"i % {OPEN_SHARE} = 0"

    def at(offset: str) -> str:
        """The time `start - back + offset seconds`, as each dialect stores a naive UTC datetime."""
        if dialect == "postgresql":
            return f"(CAST(:base AS timestamp) + ((({offset}) - {back}) * interval '1 second'))"
        return f"(strftime('%Y-%m-%d %H:%M:%S', :base, (({offset}) - {back}) || ' seconds') || '.000000')"

    tables: Series = [
        (
            "customer",
            customers,
            {
                "id": "i",
                "channel": "'x'",
                "handle": "'user' || i",
                "display_name": "NULL",
                "first_seen_at": at("0"),
                "last_seen_at": at("0"),
            },
        ),
        (
            "thread",
            count,
            {
                "id": "i",
                "connector": "'bench-' || (i % 10)",
                "channel": "'x'",
                "external_id": "'t' || i",
                "customer_id": f"1 + i % {customers}",
                "kind": "'mention'",
                "status": f"CASE WHEN {is_open} THEN 'new' ELSE 'replied' END",
                "assignee": "NULL",
                "priority": "1",
                "opened_at": at("0"),
                "last_customer_at": at("0"),
                "cycle": "1",
                "clock_kind": "'first_response'",
                "clock_start": at("0"),
                "warn_at": at(str(WARN_S)),
                "due_at": at(str(DUE_S)),
                "sla_stage": f"CASE WHEN {is_open} THEN (CASE WHEN {back} >= {WARN_S} THEN 1 ELSE 0 END) ELSE 3 END",
                "responded_at": f"CASE WHEN {is_open} THEN NULL ELSE {at('600')} END",
                "first_response_at": f"CASE WHEN {is_open} THEN NULL ELSE {at('600')} END",
                "resolved_at": "NULL",
                "updated_at": at("0"),
            },
        ),
        (
            "item",
            count,
            {
                "id": "i",
                "connector": "'bench-' || (i % 10)",
                "channel": "'x'",
                "external_id": "'i' || i",
                "thread_id": "i",
                "customer_id": f"1 + i % {customers}",
                "kind": "'mention'",
                "author_handle": f"'user' || (1 + i % {customers})",
                "author_name": "NULL",
                "text": "'Where is my order ' || i || '? It should have been here on Monday.'",
                "url": "NULL",
                "rating": "NULL",
                "posted_at": at("0"),
                "ingested_at": at("5"),
                "language": "'en'",
                "sentiment": "'negative'",
                "intent": "'delivery'",
                "priority": "1",
                "suggestion": "''",
                "suggestion_template": "NULL",
                "suggestion_truncated": "false",
                "reply_to": "CAST('{}' AS json)" if dialect == "postgresql" else "'{}'",
            },
        ),
    ]
    await write_series(
        engine, tables, {"base": base}, console, f"sweep: writing {count:,} items, their threads and customers"
    )
    if dialect == "postgresql":
        async with engine.begin() as conn:
            for table in ("customer", "thread", "item"):
                await conn.execute(
                    sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
            # Autovacuum gathers these statistics soon after a load like this; the planner needs them.
            await conn.execute(sa.text("ANALYZE customer, thread, item"))


async def _size_mb(scratch: Scratch, engine: AsyncEngine) -> float:
    """How much room the generated store takes: the SQLite file (and its WAL), or the tables with their indexes."""
    if scratch.dialect == "sqlite":
        path = Path(make_url(scratch.url).database or "")
        return sum(f.stat().st_size for f in path.parent.glob(f"{path.name}*")) / 1e6
    async with engine.connect() as conn:
        total = await conn.execute(
            sa.text(
                "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        )
        return float(total.scalar_one() or 0) / 1e6


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_sweep.py`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Callable[[Any], dict[str, Any]]:
        parser.add_argument("--items", type=int, help=f"stored items (default {ITEMS:,}; --quick {QUICK_ITEMS:,})")
        parser.add_argument("--runs", type=int, help=f"timed sweeps each way (default {RUNS}; --quick {QUICK_RUNS})")
        return lambda args: {"items": args.items, "runs": args.runs}

    script(run, __doc__ or "", options, argv)
