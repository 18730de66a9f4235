"""Ingest throughput: the whole pipeline (normalise, dedup, triage, store) beside a raw insert of the same rows."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import connectors as registry
from inbox.bench.core import Figure, Goal, Report, scratch_store
from inbox.connector import Kind, RawItem
from inbox.pipeline.ingest import Source
from inbox.service import Inbox
from inbox.settings import parse_config
from inbox.store.models import Customer, Event, Item, Thread

ITEMS, QUICK_ITEMS, PAGE = 20_000, 2_000, 100
# Issue 14: at least 5,000 items/s on SQLite, and at least half the raw insert's rate on both stores.
GOAL_SQLITE, GOAL_RATIO = 5_000, 0.5

TEXTS = [
    "@acme ma commande {n} n'est toujours pas arrivée, c'est inadmissible",
    "Bonjour, est-ce que vous livrez en Belgique ? Merci d'avance",
    "On m'a débité deux fois pour la commande {n}, je veux un remboursement",
    "Super service, livraison rapide, merci beaucoup !",
    "@acme comanda {n} nu a ajuns nici azi, ce se întâmplă?",
    "Am fost taxat de două ori, vreau banii înapoi pentru {n}",
    "Mulțumesc pentru ajutor, sunteți super!",
    "Aveți produsul în stoc în mărimea M?",
    "@acme my order {n} still hasn't arrived, this is ridiculous",
    "do you ship to Ireland? can't find it on the site",
    "charged twice for order {n}, need a refund asap",
    "your app keeps crashing since the update, useless",
    "thanks so much, great service! 🙌",
    "🔥 Make $5000/week from home!!! DM me 👉 bit.ly/{n}",
    "Mi pedido {n} no ha llegado todavía",
    "Meine Bestellung {n} ist noch nicht angekommen",
]


def make_items(count: int, now: datetime, seed: int = 7) -> list[RawItem]:
    """Realistic, varied items: several languages, some follow-ups in threads, some repeats."""
    rng = random.Random(seed)
    items = []
    for i in range(count):
        thread = f"t{i - 1}" if i and rng.random() < 0.1 else None
        items.append(
            RawItem(
                external_id=f"{i}",
                text=rng.choice(TEXTS).format(n=rng.randint(10000, 99999)),
                posted_at=now - timedelta(seconds=rng.randint(0, 3600)),
                kind=Kind.MENTION,
                author_handle=f"user{rng.randint(0, count // 3)}",
                author_name="Customer",
                thread_id=thread or f"t{i}",
            )
        )
    return items


@dataclass(frozen=True, slots=True)
class IngestTimes:
    """Seconds for the pipeline, for the raw insert of what it stored, and for a re-poll of the same items."""

    items: int
    pipeline: float
    raw: float
    duplicates: float


async def measure(url: str, count: int, page: int) -> IngestTimes:
    """Pipeline vs raw insert on the store at `url` (each in a scratch store of its own)."""
    items = make_items(count, datetime.now(UTC))
    async with scratch_store(url, "ingest") as scratch:
        inbox = Inbox(
            parse_config({"triage": {"brand": "Acme"}}, env={}, types=registry), scratch.engine(), notifiers=[]
        )
        inbox.triager.warm_up()  # as `inbox run` does at start: the models load before the first poll
        source = Source(name="bench", channel="x", max_reply_chars=280)
        started = time.perf_counter()
        for start in range(0, count, page):
            await inbox.ingestor.ingest(source, items[start : start + page])
        pipeline = time.perf_counter() - started
        # A second pass of the same items: all duplicates, as when two polls overlap.
        started = time.perf_counter()
        for start in range(0, count, page):
            await inbox.ingestor.ingest(source, items[start : start + page])
        duplicates = time.perf_counter() - started
        tables = await _rows(inbox.engine)
        await inbox.close()
    async with scratch_store(url, "raw") as scratch:
        raw = await _raw_insert(scratch.engine(), tables, page)
    return IngestTimes(len(tables[Item]), pipeline, raw, duplicates)


async def _rows(engine: AsyncEngine) -> dict[Any, list[dict[str, Any]]]:
    """Every row the pipeline wrote, in primary-key order."""
    tables: dict[Any, list[dict[str, Any]]] = {}
    async with engine.connect() as conn:
        for table in (Customer, Thread, Item, Event):
            key = next(iter(table.__table__.primary_key.columns))
            written = [
                column for column in table.__table__.columns if column.computed is None
            ]  # the store computes the rest
            rows = await conn.execute(sa.select(*written).order_by(key))
            tables[table] = [dict(r._mapping) for r in rows]  # noqa: SLF001 - SQLAlchemy's public mapping view of a Row
    return tables


async def _raw_insert(engine: AsyncEngine, tables: dict[Any, list[dict[str, Any]]], page: int) -> float:
    """The same rows, in the same page size and one transaction per page, with no pipeline work."""
    started = time.perf_counter()
    for table in (Customer, Thread):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(table), tables[table])
    events_by_page: dict[int, list[dict[str, Any]]] = {}
    for event in tables[Event]:
        events_by_page.setdefault((event["item_id"] - 1) // page, []).append(event)
    for start in range(0, len(tables[Item]), page):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(Item), tables[Item][start : start + page])
            if events_by_page.get(start // page):
                await conn.execute(sa.insert(Event), events_by_page[start // page])
    return time.perf_counter() - started


def figures(store: str, times: IngestTimes, count: int) -> list[Figure]:
    """The table rows for one store."""
    pipeline = times.items / times.pipeline
    ratio = times.raw / times.pipeline
    if store == "SQLite":
        goal = Goal(f">= {GOAL_SQLITE:,} items/s, >= {GOAL_RATIO}x", pipeline >= GOAL_SQLITE and ratio >= GOAL_RATIO)
    else:
        goal = Goal(f">= {GOAL_RATIO}x", ratio >= GOAL_RATIO)
    return [
        Figure(
            "ingest",
            f"{store}: pipeline, {count:,} items",
            pipeline,
            "items/s",
            times.items / times.raw,
            "raw insert of the same rows",
            goal,
        ),
        Figure(
            "ingest", f"{store}: re-poll, all duplicates", count / times.duplicates, "items/s", pipeline, "first pass"
        ),
    ]


async def run(url: str, *, quick: bool, console: Console, items: int | None = None, page: int = PAGE) -> Report:
    """Benchmark 1 (one worker) on the store at `url`."""
    count = items or (QUICK_ITEMS if quick else ITEMS)
    store = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    report = Report()
    with console.status(f"ingest: {count:,} items through the pipeline on {store}, then the raw insert…"):
        times = await measure(url, count, page)
    report.add(*figures(store, times, count))
    report.note(
        f"ingest: pages of {page} items, one transaction each; the raw insert writes the rows the pipeline "
        "stored (customers, threads, items, events) with no lookup, triage or rendering."
    )
    return report


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_ingest.py`: SQLite, and PostgreSQL with --postgresql."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Any:
        parser.add_argument("--items", type=int, help=f"items to ingest (default {ITEMS:,}; --quick {QUICK_ITEMS:,})")
        parser.add_argument("--page", type=int, default=PAGE, help="items per page, as a poll hands them over")
        return lambda args: {"items": args.items, "page": args.page}

    script(run, __doc__ or "", options, argv, both_stores=True)
