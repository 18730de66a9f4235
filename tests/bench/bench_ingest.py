"""Ingest throughput: the whole pipeline (normalise, dedup, triage, store) beside a raw insert of the same rows.

Run: python tests/bench/bench_ingest.py [--items 20000] [--page 100] [--postgresql URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from inbox.settings import parse_config
from inbox.connector import Kind, RawItem
from inbox.db import create_engine, migrate
from inbox.ingest import Source
from inbox.models import Customer, Event, Item, Thread
from inbox.service import Inbox

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


async def open_store(url: str | None, folder: Path, label: str) -> tuple[sa.ext.asyncio.AsyncEngine, str | None]:
    if url is None:
        engine = create_engine(f"sqlite:///{folder / f'{label}.db'}")
        await migrate(engine)
        return engine, None
    schema = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engine = create_engine(url, schema=schema)
    await migrate(engine)
    return engine, schema


async def drop(url: str | None, schema: str | None) -> None:
    if url and schema:
        admin = create_engine(url)
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def bench_store(url: str | None, count: int, page: int, folder: Path) -> dict[str, float]:
    """Pipeline vs raw insert on one store kind."""
    now = datetime.now(UTC)
    items = make_items(count, now)
    pipeline_engine, schema_a = await open_store(url, folder, "pipeline")
    inbox = Inbox(parse_config({"triage": {"brand": "Acme"}}, env={}), pipeline_engine, notifiers=[])
    inbox.triager.classify("warm up the language models")
    source = Source(name="bench", channel="x", max_reply_chars=280)
    started = time.perf_counter()
    for start in range(0, count, page):
        await inbox.ingestor.ingest(source, items[start : start + page])
    # A second pass of the same items: all duplicates, as when two polls overlap.
    pipeline = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, count, page):
        await inbox.ingestor.ingest(source, items[start : start + page])
    duplicates = time.perf_counter() - started

    async with pipeline_engine.connect() as conn:
        tables = {}
        for table in (Customer, Thread, Item, Event):
            tables[table] = [dict(r._mapping) for r in await conn.execute(sa.select(table).order_by(table.__table__.c[list(table.__table__.primary_key.columns)[0].name]))]
    stored = len(tables[Item])
    raw_engine, schema_b = await open_store(url, folder, "raw")
    started = time.perf_counter()
    # The same rows, in the same page size and one transaction per page, with no pipeline work.
    for table in (Customer, Thread):
        async with raw_engine.begin() as conn:
            await conn.execute(sa.insert(table), tables[table])
    events_by_page: dict[int, list[dict[str, object]]] = {}
    for event in tables[Event]:
        events_by_page.setdefault((event["item_id"] - 1) // page, []).append(event)
    for start in range(0, stored, page):
        async with raw_engine.begin() as conn:
            await conn.execute(sa.insert(Item), tables[Item][start : start + page])
            await conn.execute(sa.insert(Event), events_by_page.get(start // page, []))
    raw = time.perf_counter() - started
    await inbox.close()
    await raw_engine.dispose()
    await drop(url, schema_a)
    await drop(url, schema_b)
    return {"items": stored, "pipeline_s": pipeline, "raw_s": raw, "dup_s": duplicates}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--page", type=int, default=100)
    parser.add_argument("--postgresql", metavar="URL", help="also measure on this PostgreSQL database")
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"Ingest throughput, {args.items:,} items in pages of {args.page}")
    for column in ("store", "pipeline items/s", "raw insert items/s", "pipeline / raw time", "re-poll (all duplicates) items/s"):
        table.add_column(column, justify="right")
    stores = [("SQLite", None)] + ([("PostgreSQL", args.postgresql)] if args.postgresql else [])
    with tempfile.TemporaryDirectory() as tmp:
        for label, url in stores:
            with console.status(f"measuring {label}…"):
                r = await bench_store(url, args.items, args.page, Path(tmp))
            table.add_row(
                label,
                f"{r['items'] / r['pipeline_s']:,.0f}",
                f"{r['items'] / r['raw_s']:,.0f}",
                f"{r['pipeline_s'] / r['raw_s']:.2f}x",
                f"{args.items / r['dup_s']:,.0f}",
            )
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
