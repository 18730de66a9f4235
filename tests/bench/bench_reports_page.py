"""The reports page over a year of conversations: GET /reports (every query and the charts) beside a plain COUNT(*).

Run: python tests/bench/bench_reports_page.py [--per-day 300] [--runs 5] [--postgresql URL]
Goal: the page in under 2 s on this machine. Baselines, same run, same rows: `SELECT COUNT(*)` of the window's
conversations, and the one total row of `inbox report` (the figures without the groupings, charts and HTML).
The store is a scratch SQLite file (or a scratch schema on PostgreSQL), filled with generated conversations: each
with its customer, its opening item, and (nine in ten) a reply by one of 12 agents after 1 to 90 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import ClientSession

from inbox.reports.links import LINK_LIFETIME, signer_for
from inbox.reports.overview import headline
from inbox.reports.window import parse_window, report_zone
from inbox.server import start_server
from inbox.service import Inbox
from inbox.settings import parse_config
from inbox.store.db import create_engine, migrate
from inbox.store.models import Customer, Item, Reply, Thread

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
    tables = (Customer, Thread, Item, Reply)
    rows = _rows(start, days, per_day)
    for table, values in zip(tables, rows, strict=True):
        for offset in range(0, len(values), CHUNK):
            async with engine.begin() as conn:
                await conn.execute(sa.insert(table.__table__), values[offset : offset + CHUNK])
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("ANALYZE"))
            # The generated ids were given explicitly: move the sequences past them.
            for table in ("customer", "thread", "item"):
                await conn.execute(sa.text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))"))
        else:
            await conn.execute(sa.text("ANALYZE"))
    return len(rows[1])


def _ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"


async def main(per_day: int, runs: int, pg_url: str | None) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=365)
    folder = Path(tempfile.mkdtemp(prefix="inbox-bench-reports-"))
    schema = None
    if pg_url:
        schema = f"inbox_bench_reports_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg_url)
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine = create_engine(pg_url, schema=schema)
        url = pg_url
    else:
        url = f"sqlite:///{folder / 'bench.db'}"
        engine = create_engine(url)
    try:
        await migrate(engine)
        began = time.perf_counter()
        count = await fill(engine, start, 365, per_day)
        print(
            f"generated {count:,} conversations over 365 days in {time.perf_counter() - began:.0f} s ({url.split(':')[0]})"
        )
        config = {
            "database": {"url": url},
            "slack": {
                "bot_token": "xoxb-bench",
                "signing_secret": "bench",
                "triage_channel": "C1",
                "leads_channel": "C2",
            },
            "server": {"host": "127.0.0.1", "port": 0, "public_url": "http://bench.invalid"},
        }
        from inbox import connectors as registry

        settings = parse_config(config, env={}, types=registry)
        inbox = Inbox(settings, engine, clock=lambda: now)
        site = await start_server(inbox, "127.0.0.1", 0)
        signer = signer_for(settings)
        assert signer is not None
        link = signer.sign("/reports", {"since": "365d"}, now + LINK_LIFETIME).replace(
            "http://bench.invalid", f"http://127.0.0.1:{site.port}"
        )
        window = parse_window(now, report_zone(settings), since="365d")
        page, counted, total = [], [], []
        async with ClientSession() as http:
            for _ in range(runs):
                began = time.perf_counter()
                async with http.get(link) as response:
                    body = await response.text()
                    assert response.status == 200, body[:500]
                page.append(time.perf_counter() - began)
                began = time.perf_counter()
                async with engine.connect() as conn:
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(Thread)
                        .where(Thread.opened_at >= window.start, Thread.opened_at < window.end)
                    )
                counted.append(time.perf_counter() - began)
                began = time.perf_counter()
                await headline(engine, settings, window, now)
                total.append(time.perf_counter() - began)
        await site.runner.cleanup()
        print(f"page size: {len(body) / 1024:.0f} KiB, {body.count('<svg')} charts")
        print(f"GET /reports, a year ({runs} runs): {_ms(page)}")
        print(f"baseline COUNT(*) of the same conversations: {_ms(counted)}")
        print(f"baseline inbox report's total row: {_ms(total)}")
        print(f"goal: under 2 s: {'met' if statistics.median(page) < 2 else 'NOT met'}")
    finally:
        await engine.dispose()
        if schema is not None and pg_url:
            async with admin.begin() as conn:
                await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=300, help="conversations a day (default 300: ~110,000 a year)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgresql", metavar="URL", help="a PostgreSQL URL (a scratch schema is made and dropped)")
    args = parser.parse_args()
    asyncio.run(main(args.per_day, args.runs, args.postgresql))
