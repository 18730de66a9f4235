"""Retention on both stores with an injected clock: what is resolved longer ago than text_days loses its texts and
names, the numbers stay; `inbox run` runs it daily. And what an erasure leaves in the store's other tables."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from inbox.pipeline import privacy
from inbox.pipeline.actions import ActionError
from inbox.pipeline.privacy import parse_customer
from inbox.service import Runner
from inbox.store import items
from inbox.store import privacy as store_privacy
from inbox.store.models import Customer, Erasure, Event, EventKind, Item, Thread
from tests.conftest import STORES, FakeClock, Recorder
from tests.slack.test_privacy import numbers


def say(feed: Path, external_id: str, text: str, handle: str, clock: FakeClock) -> None:
    record = {
        "id": external_id,
        "text": text,
        "posted_at": clock.now.isoformat(),
        "author": {"handle": handle, "name": handle.title()},
        "thread_id": f"t-{external_id}",
    }
    with feed.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


async def thread_of(engine: Any, external_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(
                    Thread.id, Thread.customer_id, Thread.erased_at, Item.text, Item.author_handle, Item.author_name
                )
                .join(Item, Item.thread_id == Thread.id)
                .where(Item.external_id == external_id)
            )
        ).one()


async def handle_of(engine: Any, customer_id: int) -> tuple[str, str | None]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Customer).where(Customer.id == customer_id))).one()
        return row.handle, row.display_name


async def test_retention_erases_what_was_resolved_longer_ago_and_keeps_the_numbers(
    inbox_factory, engine, clock: FakeClock, tmp_path
):
    feed = tmp_path / "x.jsonl"
    feed.touch()
    recorder = Recorder()
    inbox = inbox_factory(
        recorder,
        connectors=[{"name": "feed", "type": "jsonl", "path": str(feed), "channel": "x"}],
        retention={"text_days": 30},
    )
    start = clock.now
    say(feed, "a1", "first parcel is late", "ana", clock)
    say(feed, "b1", "my app crashes", "ben", clock)
    await inbox.pollers["feed"].poll_once()
    first = (await thread_of(engine, "a1")).id
    clock.advance(minutes=5)
    await inbox.actions.reply(first, "Sorry Ana", "agent")
    await inbox.actions.resolve(first, "agent")
    clock.advance(days=20)
    say(feed, "a2", "second parcel is late too", "ana", clock)
    await inbox.pollers["feed"].poll_once()
    second = (await thread_of(engine, "a2")).id
    await inbox.actions.reply(second, "Sorry again Ana", "agent")
    await inbox.actions.resolve(second, "agent")
    before = await numbers(engine)
    ana = (await thread_of(engine, "a1")).customer_id

    # 30 days after the first resolution, not yet: nothing is due.
    clock.now = start + timedelta(days=30)
    assert (await inbox.retention.plan()).thread_ids == []
    # A day later the first conversation is due; Ana keeps her name (her second conversation is still kept).
    clock.advance(days=1)
    plan = await inbox.retention.plan()
    assert plan.thread_ids == [first] and plan.customers == {}
    assert (plan.held.items, plan.held.replies) == (1, 1)
    done = await inbox.retention.run()
    assert done.threads == 1
    row = await thread_of(engine, "a1")
    assert (row.text, row.author_handle, row.author_name) == ("", "erased", None) and row.erased_at == clock.now
    assert (await thread_of(engine, "a2")).text == "second parcel is late too"
    assert await handle_of(engine, ana) == ("ana", "Ana")
    assert (await inbox.retention.plan()).thread_ids == []  # erased once

    # Twenty days later the second is due too: Ana has nothing left, her name goes, a pseudonym instead.
    clock.advance(days=20)
    plan = await inbox.retention.plan()
    assert plan.thread_ids == [second] and list(plan.customers) == [ana]
    await inbox.retention.run()
    handle, name = await handle_of(engine, ana)
    assert handle.startswith("erased-") and name is None
    assert (await thread_of(engine, "a2")).author_handle == handle
    # Ben's conversation is open: never erased, however old.
    assert (await thread_of(engine, "b1")).text == "my app crashes"
    assert await numbers(engine) == before

    # The outbox is told, once per conversation, and nothing announced shows an erased text.
    await inbox.outbox.dispatch()
    erased = [n for n in recorder.notices if n.kind == EventKind.ERASED]
    assert sorted(n.thread.thread_id for n in erased if n.thread) == [first, second]
    assert all(n.thread and n.thread.text == "" and n.thread.erased for n in erased)


async def test_retention_off_erases_nothing_and_inbox_run_schedules_it_only_when_on(inbox_factory, engine, clock):
    off = inbox_factory()
    assert not off.retention.enabled and (await off.retention.plan()).thread_ids == []
    assert await off.retention.run() == (await off.retention.plan()).held
    on = inbox_factory(retention={"text_days": 7})
    for inbox, scheduled in ((off, False), (on, True)):
        runner = Runner(inbox, outbox_seconds=3600)
        await runner.start()
        try:
            assert (runner.scheduler.get_job("retention") is not None) is scheduled
            if scheduled:
                job = runner.scheduler.get_job("retention")
                assert job.trigger.interval == timedelta(days=1)
        finally:
            await runner.stop(grace=0.1)


async def test_an_erasure_keeps_event_payloads_free_of_platform_errors(inbox_factory, engine, clock, tmp_path):
    feed = tmp_path / "x.jsonl"
    feed.touch()
    inbox = inbox_factory(connectors=[{"name": "feed", "type": "jsonl", "path": str(feed), "channel": "x"}])
    say(feed, "c1", "refund please", "cora", clock)
    await inbox.pollers["feed"].poll_once()
    thread = (await thread_of(engine, "c1")).id
    async with engine.begin() as conn:  # as a platform's delivery report records it: its reason quotes the reply
        await conn.execute(
            sa.insert(Event).values(
                kind=EventKind.REPLY_FAILED,
                thread_id=thread,
                payload={"agent": "ana", "error": "could not deliver 'refund please, Cora'"},
                created_at=clock.now,
                attempts=0,
                last_error="Slack said: refund please, Cora",
            )
        )
    plan = await privacy.plan_forget(engine, [parse_customer("x:@cora")])
    await privacy.forget(engine, plan, by="dpo", now=clock.now)
    async with engine.connect() as conn:
        rows = list(await conn.execute(sa.select(Event.payload, Event.last_error).where(Event.thread_id == thread)))
    assert "Cora" not in repr(rows) and {"agent": "ana"} in [r.payload for r in rows]

    # After the erasure, the platform reporting the item edited or its author's name brings nothing back,
    # and nothing can be sent to the conversation.
    assert (
        await items.apply_updates(engine, "feed", [("c1", "refund please, Cora", False, "Cora Name")], clock.now) == 0
    )
    row = await thread_of(engine, "c1")
    assert (row.text, row.author_name) == ("", None)
    with pytest.raises(ActionError, match="erased"):
        await inbox.actions.reply(thread, "Hello Cora", "ana")


async def test_retention_erases_a_backlog_batch_by_batch(
    inbox_factory, engine, clock: FakeClock, tmp_path, monkeypatch
):
    monkeypatch.setattr(privacy, "RETENTION_BATCH", 1)
    feed = tmp_path / "x.jsonl"
    feed.touch()
    inbox = inbox_factory(
        connectors=[{"name": "feed", "type": "jsonl", "path": str(feed), "channel": "x"}], retention={"text_days": 30}
    )
    for external_id, handle in (("e1", "eve"), ("f1", "finn"), ("f2", "finn")):
        say(feed, external_id, f"late parcel for {handle}", handle, clock)
    await inbox.pollers["feed"].poll_once()
    for external_id in ("e1", "f1", "f2"):
        await inbox.actions.resolve((await thread_of(engine, external_id)).id, "agent")
    clock.advance(days=31)
    done = await inbox.retention.run()
    assert (done.threads, done.items, done.customers) == (3, 3, 2)
    for external_id in ("e1", "f1", "f2"):
        row = await thread_of(engine, external_id)
        assert row.text == "" and row.author_handle.startswith("erased-")
    async with engine.connect() as conn:
        records = [(r.threads, r.customers) for r in await conn.execute(sa.select(Erasure).order_by(Erasure.id))]
    assert records == [(1, 0), (1, 0), (1, 0), (0, 2)]


def test_every_table_of_the_store_is_in_the_privacy_inventory():
    """A new table must say, in docs/privacy.md, what customer data it holds and how an erasure handles it."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "privacy.md").read_text(encoding="utf-8")
    missing = [
        t.name for t in SQLModel.metadata.sorted_tables if f"| `{t.name}`" not in page and f", `{t.name}`" not in page
    ]
    assert missing == []


# PostgreSQL only: SQLite has one writer at a time, so an ingest and an erasure cannot interleave there.
@pytest.mark.parametrize("store", [STORES[1]], indirect=True)
async def test_an_item_added_while_forget_waits_for_its_conversation_is_erased_too(
    inbox_factory, store, clock: FakeClock, tmp_path
):
    engine, _url, _schema = store
    feed = tmp_path / "x.jsonl"
    feed.touch()
    inbox = inbox_factory(connectors=[{"name": "feed", "type": "jsonl", "path": str(feed), "channel": "x"}])
    say(feed, "r1", "my order is late", "rita", clock)
    await inbox.pollers["feed"].poll_once()
    first = await thread_of(engine, "r1")
    plan = await privacy.plan_forget(engine, [parse_customer("x:rita")])
    # Ingest has locked the conversation and added a message to it, not yet committed, when forget starts.
    async with engine.connect() as ingest:
        await ingest.execute(sa.select(Thread.id).where(Thread.id == first.id).with_for_update())
        async with engine.connect() as conn:
            item = dict((await conn.execute(sa.select(Item).where(Item.external_id == "r1"))).one()._mapping)
        item.update(id=None, external_id="r2", text="Ritavelle says: still nothing")
        await ingest.execute(sa.insert(Item).values(**{k: v for k, v in item.items() if k != "id"}))
        erasing = asyncio.create_task(privacy.forget(engine, plan, by="dpo", now=clock.now))
        async with asyncio.timeout(60):  # until the erasure waits for the conversation's lock
            while True:
                async with engine.connect() as conn:
                    waiting = await conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%thread%'"
                        )
                    )
                    if waiting.scalar_one():
                        break
                await asyncio.sleep(0.05)
        await ingest.commit()
    await erasing
    async with engine.connect() as conn:
        texts = list((await conn.execute(sa.select(Item.text).where(Item.thread_id == first.id))).scalars())
    assert texts == ["", ""]


def say_in(feed: Path, external_id: str, text: str, handle: str, clock: FakeClock, thread: str) -> None:
    """A message in the conversation `thread` (another customer's post, or a reopened one)."""
    record = {
        "id": external_id,
        "text": text,
        "posted_at": clock.now.isoformat(),
        "author": {"handle": handle, "name": handle.title()},
        "thread_id": thread,
    }
    with feed.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


async def test_several_customers_in_one_conversation_and_retention_rechecking(
    inbox_factory, engine, clock: FakeClock, tmp_path
):
    feed = tmp_path / "x.jsonl"
    feed.touch()
    inbox = inbox_factory(
        connectors=[{"name": "feed", "type": "jsonl", "path": str(feed), "channel": "x"}], retention={"text_days": 30}
    )
    # Ana's post, commented on by Ben; Ben's own conversation, resolved long ago; Cai's, resolved then reopened.
    say_in(feed, "a1", "Anatext my parcel", "ana", clock, "t-a")
    say_in(feed, "b1", "Bentext same here", "ben", clock, "t-a")
    say_in(feed, "b2", "Bentext billing", "ben", clock, "t-b")
    say_in(feed, "c1", "Caitext where is it", "cai", clock, "t-c")
    await inbox.pollers["feed"].poll_once()
    ana_thread, ben_thread, cai_thread = [(await thread_of(engine, i)).id for i in ("a1", "b2", "c1")]
    assert (await thread_of(engine, "b1")).id == ana_thread
    await inbox.actions.resolve(ben_thread, "agent")
    await inbox.actions.resolve(cai_thread, "agent")

    # Export Ben: his comment in Ana's conversation, never Ana's words.
    document = await privacy.export(engine, [parse_customer("x:ben")])
    text = json.dumps(document)
    assert "Bentext same here" in text and "Bentext billing" in text and "Anatext" not in text and '"ana"' not in text
    # Retention: Cai writes again while the run is under way (its list was read before): Cai is not erased.
    clock.advance(days=31)
    stale = await privacy.Retention(engine, 30, clock).plan()
    assert sorted(stale.thread_ids) == sorted([ben_thread, cai_thread])
    say_in(feed, "c2", "Caitext again", "cai", clock, "t-c")
    await inbox.pollers["feed"].poll_once()
    await store_privacy.erase(
        engine,
        customers={},
        thread_ids=[cai_thread],
        now=clock.now,
        reason="retention",
        by="retention",
        due_before=clock.now - timedelta(days=30),
    )
    assert (await thread_of(engine, "c1")).text == "Caitext where is it"
    assert (await inbox.retention.plan()).thread_ids == [ben_thread]
    # Ben has no conversation of his own left: retention renames him, and leaves Ana's open conversation alone.
    await inbox.retention.run()
    assert (await thread_of(engine, "a1")).text == "Anatext my parcel" and (
        await thread_of(engine, "a1")
    ).erased_at is None
    assert (await thread_of(engine, "b2")).text == ""
    assert (await thread_of(engine, "b1")).text == "Bentext same here"  # retention erases conversations, not people
    assert (await handle_of(engine, (await thread_of(engine, "b2")).customer_id))[0].startswith("erased-")

    # Forget Ana's commenter Dov: his comment goes, Ana's conversation stays hers.
    say_in(feed, "d1", "Dovtext me too", "dov", clock, "t-a")
    await inbox.pollers["feed"].poll_once()
    plan = await privacy.plan_forget(engine, [parse_customer("x:dov")])
    await privacy.forget(engine, plan, by="dpo", now=clock.now)
    assert (await thread_of(engine, "d1")).text == "" and (await thread_of(engine, "a1")).text == "Anatext my parcel"
    assert (await thread_of(engine, "a1")).erased_at is None
