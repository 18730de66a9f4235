"""The reports page over a year of conversations: GET /reports (every query, the charts, the HTML) over real HTTP.

Generated conversations (each with its customer, opening item and, nine in ten, a reply by one of 12 agents after 1
to 90 minutes), 300 a day for a year (30 a day with --quick), then the page fetched through a signed link for the
last 7 days, 30 days and the whole year. Baselines, same run, same rows: a `COUNT(*)` of the year's conversations,
and the one total row of `inbox report` (the query the page runs once per grouping). Goal: the year under 2 s.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import ClientSession
from rich.console import Console

from inbox import connectors as registry
from inbox.bench.core import Figure, Report, scratch_store, under
from inbox.reports.links import LINK_LIFETIME, signer_for
from inbox.reports.overview import headline
from inbox.reports.window import parse_window, report_zone
from inbox.server import start_server
from inbox.service import Inbox
from inbox.settings import parse_config
from inbox.store.models import Customer, Item, Reply, Thread

PER_DAY, QUICK_PER_DAY = 300, 30
RUNS, QUICK_RUNS = 3, 2
GOAL_S = 2.0
WINDOWS = ("7d", "30d", "365d")
CHANNELS = ("x", "mastodon", "facebook", "google_reviews", "whatsapp")
AGENTS = tuple(f"U{n:08d}" for n in range(12))
CHUNK = 5_000


def _rows(start: datetime, days: int, per_day: int) -> tuple[list[dict[str, Any]], ...]:
    rng = random.Random(13)
    customers, threads, items, replies = [], [], [], []
    n = 0
    for day in range(days):
        for _ in range(per_day):
            n += 1
            # Busier in office hours: most posts between 08:00 and 20:00.
            hour = rng.choice(range(8, 20)) if rng.random() < 0.8 else rng.randrange(24)
            opened = start + timedelta(days=day, hours=hour, minutes=rng.randrange(60))
            channel = rng.choice(CHANNELS)
            due = opened + timedelta(minutes=30)
            answered = rng.random() < 0.9
            waited = rng.choice((rng.uniform(1, 30), rng.uniform(1, 30), rng.uniform(30, 90)))
            responded = opened + timedelta(minutes=waited) if answered else None
            customers.append(
                {"id": n, "channel": channel, "handle": f"c{n}", "first_seen_at": opened, "last_seen_at": opened}
            )
            threads.append(
                {
                    "id": n,
                    "connector": channel,
                    "channel": channel,
                    "external_id": str(n),
                    "customer_id": n,
                    "kind": "mention",
                    "status": "resolved" if answered else "new",
                    "priority": rng.randrange(3),
                    "opened_at": opened,
                    "last_customer_at": opened,
                    "cycle": 1,
                    "clock_kind": "first_response",
                    "clock_start": opened,
                    "warn_at": opened + timedelta(minutes=20),
                    "due_at": due,
                    "first_due_at": due,
                    "sla_target_minutes": 30.0,
                    "sla_stage": None if answered else 2,
                    "responded_at": responded,
                    "first_response_at": responded,
                    "resolved_at": responded,
                    "updated_at": responded or opened,
                    "window_stage": 0,
                    "next_met": 0,
                    "next_missed": 0,
                }
            )
            items.append(
                {
                    "id": n,
                    "connector": channel,
                    "channel": channel,
                    "external_id": str(n),
                    "thread_id": n,
                    "customer_id": n,
                    "kind": "mention",
                    "author_handle": f"c{n}",
                    "text": "Where is my parcel?",
                    "posted_at": opened,
                    "ingested_at": opened,
                    "language": rng.choice(("en", "fr", "ro")),
                    "sentiment": "negative",
                    "intent": rng.choice(("delivery", "billing", "question")),
                    "priority": 1,
                    "suggestion": "",
                    "suggestion_truncated": False,
                    "reply_to": {},
                    "reply_modes": [],
                }
            )
            if responded is not None:
                replies.append(
                    {
                        "thread_id": n,
                        "item_id": n,
                        "cycle": 1,
                        "mode": "reply",
                        "text": "On it.",
                        "agent": rng.choice(AGENTS),
                        "status": "sent",
                        "created_at": responded,
                        "sent_at": responded,
                    }
                )
    return customers, threads, items, replies


async def fill(engine: Any, start: datetime, days: int, per_day: int) -> int:
    """Write `per_day` generated conversations a day for `days` days from `start`; their number."""
    rows = _rows(start, days, per_day)
    for model, values in zip((Customer, Thread, Item, Reply), rows, strict=True):
        for offset in range(0, len(values), CHUNK):
            async with engine.begin() as conn:
                await conn.execute(sa.insert(model.__table__), values[offset : offset + CHUNK])
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # The generated ids were given explicitly: move the sequences past them.
            for name in ("customer", "thread", "item"):
                await conn.execute(sa.text(f"SELECT setval('{name}_id_seq', (SELECT max(id) FROM {name}))"))
        await conn.execute(sa.text("ANALYZE"))
    return len(rows[1])


async def run(
    url: str, *, quick: bool, console: Console, per_day: int | None = None, runs: int | None = None
) -> Report:
    """Benchmark 7 on the store at `url`."""
    per_day = per_day or (QUICK_PER_DAY if quick else PER_DAY)
    runs = runs or (QUICK_RUNS if quick else RUNS)
    now = datetime.now(UTC).replace(microsecond=0)
    report = Report()
    async with scratch_store(url, "page") as scratch:
        engine = scratch.engine()
        with console.status(f"page: generating {per_day * 365:,} conversations over a year…"):
            count = await fill(engine, now - timedelta(days=365), 365, per_day)
        config = {
            "slack": {
                "bot_token": "xoxb-bench",
                "signing_secret": "bench",
                "triage_channel": "C1",
                "leads_channel": "C2",
            },
            "server": {"host": "127.0.0.1", "port": 0, "public_url": "http://bench.invalid"},
        }
        settings = parse_config(config, env={}, types=registry)
        inbox = Inbox(settings, engine, clock=lambda: now)
        site = await start_server(inbox, "127.0.0.1", 0)
        signer = signer_for(settings)
        assert signer is not None
        pages: dict[str, list[float]] = {}
        counted: list[float] = []
        total: list[float] = []
        year = parse_window(now, report_zone(settings), since="365d")
        try:
            with console.status(f"page: {runs} fetches of each window…"):
                async with ClientSession() as http:
                    for since in WINDOWS:
                        link = signer.sign("/reports", {"since": since}, now + LINK_LIFETIME)
                        link = link.replace("http://bench.invalid", f"http://127.0.0.1:{site.port}")
                        for _ in range(runs):
                            began = time.perf_counter()
                            async with http.get(link) as response:
                                body = await response.text()
                                if response.status != 200:
                                    raise RuntimeError(f"GET /reports answered {response.status}: {body[:200]}")
                            pages.setdefault(since, []).append(time.perf_counter() - began)
                for _ in range(runs):
                    began = time.perf_counter()
                    async with engine.connect() as conn:
                        query = sa.select(sa.func.count()).select_from(Thread)
                        await conn.execute(query.where(Thread.opened_at >= year.start, Thread.opened_at < year.end))
                    counted.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    await headline(engine, settings, year, now)
                    total.append(time.perf_counter() - began)
        finally:
            await site.runner.cleanup()
            await engine.dispose()
    store = "PostgreSQL" if scratch.dialect == "postgresql" else "SQLite"
    base = statistics.median(counted)
    for since in WINDOWS:
        value = statistics.median(pages[since])
        goal = under(value, GOAL_S, "s") if since == "365d" else None
        report.add(Figure("page", f"GET /reports, last {since}", value, "s", base, "COUNT(*) of a year", goal))
    total_s = statistics.median(total)
    report.add(Figure("page", "report total row, a year", total_s, "s", base, "COUNT(*) of a year"))
    report.note(
        f"page: {store}, {count:,} conversations over a year, medians of {runs} runs; the page asks the report's "
        "query once per grouping (total, day, channel, agent, hour of the week), so its time follows that query's"
    )
    return report
