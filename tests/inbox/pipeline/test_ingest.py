"""Ingest on both stores: stored once, threads and customers joined, cursor committed with the items."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from inbox.connector import Kind, RawItem
from inbox.pipeline.ingest import Source
from inbox.sla import SlaState
from inbox.store.clocks import STOPPED
from inbox.store.cursors import load_cursor
from inbox.store.models import Customer, Event, Item, Status, Thread
from inbox.views import open_queue
from tests.conftest import FakeClock

SOURCE = Source(name="acme-x", channel="x", max_reply_chars=280, own_handles=frozenset({"acme"}))


class Cursor(BaseModel):
    since_id: str


def item(external_id: str, clock: FakeClock, minutes_ago: float = 1, **kw: object) -> RawItem:
    values: dict = {
        "external_id": external_id,
        "text": "@acme where is my order #12345? it's late",
        "posted_at": clock.now - timedelta(minutes=minutes_ago),
        "kind": Kind.MENTION,
        "author_handle": "bob",
        "author_name": "Bob",
    }
    values.update(kw)
    return RawItem(**values)


async def count(engine, table) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()


async def test_same_item_twice_is_stored_once(inbox_factory, engine, clock):
    inbox = inbox_factory()
    first = await inbox.ingestor.ingest(SOURCE, [item("1", clock), item("2", clock, author_handle="eve")])
    again = await inbox.ingestor.ingest(SOURCE, [item("2", clock), item("1", clock), item("1", clock)])
    assert (first.stored, first.duplicates) == (2, 0)
    assert (again.stored, again.duplicates) == (0, 3)
    assert await count(engine, Item) == 2
    assert await count(engine, Event) == 2  # one "new thread" each, none for the duplicates


async def test_two_workers_ingesting_the_same_page_store_it_once(inbox_factory, engine, clock):
    workers = [inbox_factory(), inbox_factory()]
    page = [item(str(i), clock, author_handle=f"user{i % 7}") for i in range(60)]
    results = await asyncio.gather(*(w.ingestor.ingest(SOURCE, list(page)) for w in workers))
    assert sum(r.stored for r in results) == 60
    assert await count(engine, Item) == 60
    assert await count(engine, Customer) == 7


async def test_connectors_sharing_customers_ingest_side_by_side_without_deadlocks(inbox_factory, engine, clock):
    """Two accounts mentioned by the same people: their pages upsert the same customers, in opposite orders here."""
    inbox = inbox_factory()
    one, other = SOURCE, Source(name="acme-x-support", channel="x", max_reply_chars=280)
    people = [f"fan{n:03d}" for n in range(300)]
    for round_ in range(4):
        pages = [
            [item(f"{round_}-{n}", clock, author_handle=h) for n, h in enumerate(people)],
            [item(f"{round_}-{n}", clock, author_handle=h) for n, h in enumerate(reversed(people))],
        ]
        results = await asyncio.gather(inbox.ingestor.ingest(one, pages[0]), inbox.ingestor.ingest(other, pages[1]))
        assert [r.stored for r in results] == [300, 300]
    assert await count(engine, Customer) == 300 and await count(engine, Item) == 2400


async def test_cursor_is_saved_with_the_items(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item("10", clock)], Cursor(since_id="10"))
    assert await load_cursor(engine, "acme-x") == {"since_id": "10"}
    await inbox.ingestor.ingest(SOURCE, [], Cursor(since_id="11"))
    assert await load_cursor(engine, "acme-x") == {"since_id": "11"}


async def test_brand_posts_reposts_and_broken_items_are_not_items(inbox_factory, engine, clock):
    inbox = inbox_factory()
    result = await inbox.ingestor.ingest(
        SOURCE,
        [
            item("1", clock, author_handle="@ACME"),  # the brand's own account, any case
            item("2", clock, from_brand=True),
            item("3", clock, is_repost=True),
            item("", clock),  # no id
            item("5", clock, author_handle="  "),
            item("6", clock),
        ],
    )
    assert (result.stored, result.skipped) == (1, 5)
    assert await count(engine, Item) == 1


async def test_follow_up_joins_the_thread_and_later_starts_the_next_response_clock(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=10, thread_id="conv-1")])
    early = await inbox.ingestor.ingest(SOURCE, [item("2", clock, minutes_ago=5, thread_id="conv-1")])
    assert (early.new_threads, early.follow_ups) == (0, 1)
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Thread))).one()
    # A follow-up before our reply does not restart the customer's clock.
    assert thread.clock_start == clock.now - timedelta(minutes=10)
    assert thread.cycle == 1

    async with engine.begin() as conn:
        await conn.execute(sa.update(Thread).values(status=Status.REPLIED, responded_at=clock.now, sla_stage=STOPPED))
    clock.advance(minutes=3)
    await inbox.ingestor.ingest(SOURCE, [item("3", clock, minutes_ago=1, thread_id="conv-1")])
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Thread))).one()
        threads = (await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one()
    assert threads == 1
    assert (thread.cycle, thread.clock_kind, thread.status) == (2, "next_response", Status.NEW)
    assert thread.clock_start == clock.now - timedelta(minutes=1)
    assert thread.due_at == thread.clock_start + timedelta(minutes=30)
    assert thread.sla_stage == SlaState.OK


async def test_customer_is_one_person_across_connectors(inbox_factory, engine, clock):
    inbox = inbox_factory()
    other = Source(name="acme-support-x", channel="x")
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, author_handle="Bob")])
    await inbox.ingestor.ingest(other, [item("1", clock, author_handle="@bob")])
    async with engine.connect() as conn:
        customers = (await conn.execute(sa.select(Customer.handle))).scalars().all()
        items = (await conn.execute(sa.select(Item.customer_id))).scalars().all()
    assert customers == ["bob"]
    assert len(items) == 2 and len(set(items)) == 1


async def test_a_known_customer_keeps_a_new_name_and_is_seen_to_the_hour(inbox_factory, engine, clock):
    inbox = inbox_factory()

    async def customer() -> tuple[str | None, object]:
        async with engine.connect() as conn:
            return tuple((await conn.execute(sa.select(Customer.display_name, Customer.last_seen_at))).one())

    first_seen = clock.now
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    clock.advance(minutes=20)
    await inbox.ingestor.ingest(SOURCE, [item("2", clock, author_name=None)])
    assert await customer() == ("Bob", first_seen), "no name is not a new name; seen within the hour"
    await inbox.ingestor.ingest(SOURCE, [item("3", clock, author_name="Bob Smith")])
    assert await customer() == ("Bob Smith", clock.now)
    clock.advance(minutes=61)
    await inbox.ingestor.ingest(SOURCE, [item("4", clock)])
    assert await customer() == ("Bob", clock.now)
    assert await count(engine, Customer) == 1


async def test_clock_starts_at_the_platform_time_and_future_times_are_clamped(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(
        SOURCE,
        [item("old", clock, minutes_ago=31), item("future", clock, minutes_ago=-60, author_handle="eve")],
    )
    async with engine.connect() as conn:
        rows = {r.external_id: r for r in await conn.execute(sa.select(Thread))}
    assert rows["old"].clock_start == clock.now - timedelta(minutes=31)
    assert rows["old"].due_at == clock.now - timedelta(minutes=1)
    assert rows["future"].clock_start == clock.now


async def test_item_is_triaged_with_a_suggestion_that_fits_the_channel(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(
        SOURCE,
        [item("1", clock, text="Ma commande n'est toujours pas arrivée, je suis furieux !", author_name="Claire")],
    )
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Item))).one()
    assert (row.language, row.intent, row.sentiment) == ("fr", "delivery", "negative")
    assert "Claire" in row.suggestion and len(row.suggestion) <= 280


async def test_null_bytes_and_huge_text_are_stored(inbox_factory, engine, clock):
    inbox = inbox_factory()
    text = "broken\x00text " + "é" * 100_000
    result = await inbox.ingestor.ingest(SOURCE, [item("1", clock, text=text)])
    assert result.stored == 1
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(Item.text))).scalar_one()
    assert "\x00" not in stored and stored.startswith("brokentext")


async def test_null_bytes_and_lone_surrogates_in_any_field_never_fail_the_page(inbox_factory, engine, clock):
    inbox = inbox_factory()
    hostile = "a\x00b\ud800c"
    result = await inbox.ingestor.ingest(
        SOURCE,
        [
            item(
                f"id{hostile}",
                clock,
                text=hostile,
                author_handle=f"h{hostile}",
                author_name=hostile,
                thread_id=f"t{hostile}",
                url=f"https://x.com/{hostile}",
            ),
            item("plain", clock, author_handle="eve"),
        ],
    )
    assert (result.stored, result.skipped) == (2, 0)
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Item).where(Item.external_id != "plain"))).one()
    assert (row.external_id, row.text, row.author_handle) == ("idab?c", "ab?c", "hab?c")


async def threads_by_key(engine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return {t.external_id: t for t in await conn.execute(sa.select(Thread))}


async def announced(engine) -> list[tuple[str, str]]:
    """(event kind, thread key) of every event, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Event.kind, Thread.external_id).join(Thread, Thread.id == Event.thread_id).order_by(Event.id)
        )
        return [(kind, key) for kind, key in rows]


async def test_an_item_the_platform_shows_answered_is_stored_with_its_clock_stopped(inbox_factory, engine, clock):
    inbox = inbox_factory()
    posted, answered = clock.now - timedelta(hours=3), clock.now - timedelta(hours=2)
    result = await inbox.ingestor.ingest(
        SOURCE,
        [
            item("review", clock, minutes_ago=180, answered_at=answered, author_handle="ann"),
            item("open", clock, minutes_ago=180, author_handle="ben"),
        ],
    )
    assert (result.stored, result.answered, result.overdue) == (2, 1, 0)
    threads = await threads_by_key(engine)
    review = threads["review"]
    assert (review.status, review.sla_stage, review.clock_kind) == (Status.REPLIED, STOPPED, "first_response")
    assert (review.clock_start, review.responded_at, review.first_response_at) == (posted, answered, answered)
    assert (threads["open"].status, threads["open"].sla_stage) == (Status.NEW, SlaState.OK)
    # A live poll still announces it (every new item reaches the triage channel), but the sweep never warns about it.
    assert await announced(engine) == [("new_thread", "review"), ("new_thread", "open")]
    swept = await inbox.sweep.run()
    assert (swept.warned, swept.breached) == ([], [threads["open"].id])


async def test_history_past_its_deadline_is_stored_breached_and_answered_history_is_not_announced(
    inbox_factory, engine, clock
):
    inbox = inbox_factory()
    result = await inbox.ingestor.ingest(
        SOURCE,
        [
            item("expired", clock, minutes_ago=600, author_handle="ann"),
            item(
                "answered", clock, minutes_ago=700, answered_at=clock.now - timedelta(minutes=650), author_handle="ben"
            ),
            item("late", clock, minutes_ago=25, author_handle="cat"),  # past its warning, not yet due
            item("recent", clock, minutes_ago=2, author_handle="dan"),
        ],
        history=True,
    )
    assert (result.stored, result.new_threads, result.answered, result.overdue) == (4, 4, 1, 1)
    threads = await threads_by_key(engine)
    assert {k: (t.status, t.sla_stage) for k, t in threads.items()} == {
        "expired": (Status.NEW, SlaState.BREACHED),  # open, shown as breached in the queue, nothing left to announce
        "answered": (Status.REPLIED, STOPPED),
        "late": (Status.NEW, SlaState.OK),
        "recent": (Status.NEW, SlaState.OK),
    }
    # Unanswered history still reaches the triage channel (someone has to answer it); answered history does not.
    assert sorted(await announced(engine)) == [
        ("new_thread", "expired"),
        ("new_thread", "late"),
        ("new_thread", "recent"),
    ]
    views = {v.thread_id: v for v in await open_queue(engine, inbox.policies, clock.now)}
    assert views[threads["expired"].id].clock.state == SlaState.BREACHED and threads["answered"].id not in views

    first = await inbox.sweep.run()
    assert (first.warned, first.breached) == ([threads["late"].id], [])
    clock.advance(minutes=20)
    second = await inbox.sweep.run()
    assert (second.warned, second.breached) == ([threads["recent"].id], [threads["late"].id])
    clock.advance(minutes=10)
    assert (await inbox.sweep.run()).breached == [threads["recent"].id]


async def test_a_live_poll_still_announces_an_expired_clock(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item("expired", clock, minutes_ago=600)])
    assert (await threads_by_key(engine))["expired"].sla_stage == SlaState.OK
    assert len((await inbox.sweep.run()).breached) == 1


async def test_an_answer_seen_with_later_messages_leaves_the_next_response_clock_running(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(
        SOURCE,
        [
            item("a1", clock, minutes_ago=50, thread_id="dm-1", answered_at=clock.now - timedelta(minutes=45)),
            item("a2", clock, minutes_ago=10, thread_id="dm-1"),
        ],
    )
    thread = (await threads_by_key(engine))["dm-1"]
    assert (thread.status, thread.sla_stage, thread.cycle, thread.clock_kind) == (
        Status.NEW,
        SlaState.OK,
        1,
        "next_response",
    )
    assert (thread.clock_start, thread.first_response_at, thread.responded_at) == (
        clock.now - timedelta(minutes=10),
        clock.now - timedelta(minutes=45),
        None,
    )


async def test_a_follow_up_answered_on_the_platform_stops_the_running_clock(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=40, thread_id="dm-1")])
    answer = clock.now - timedelta(minutes=5)
    await inbox.ingestor.ingest(SOURCE, [item("2", clock, minutes_ago=8, thread_id="dm-1", answered_at=answer)])
    thread = (await threads_by_key(engine))["dm-1"]
    assert (thread.status, thread.sla_stage, thread.responded_at, thread.first_response_at) == (
        Status.REPLIED,
        STOPPED,
        answer,
        answer,
    )
    assert (thread.cycle, thread.clock_start) == (1, clock.now - timedelta(minutes=40))
    # Answered after everything, a later item on the platform that is answered too does not reopen it.
    await inbox.ingestor.ingest(
        SOURCE, [item("3", clock, minutes_ago=2, thread_id="dm-1", answered_at=clock.now - timedelta(minutes=1))]
    )
    assert (await threads_by_key(engine))["dm-1"].sla_stage == STOPPED
    # An unanswered one does: the next-response clock starts at it.
    await inbox.ingestor.ingest(SOURCE, [item("4", clock, minutes_ago=0.5, thread_id="dm-1")])
    thread = (await threads_by_key(engine))["dm-1"]
    assert (thread.status, thread.sla_stage, thread.cycle, thread.clock_kind) == (
        Status.NEW,
        SlaState.OK,
        2,
        "next_response",
    )
    assert (thread.clock_start, thread.first_response_at) == (clock.now - timedelta(minutes=0.5), answer)


async def test_answer_times_are_read_as_utc_and_kept_between_the_post_and_now(inbox_factory, engine, clock, caplog):
    inbox = inbox_factory()
    naive = (clock.now - timedelta(minutes=20)).replace(tzinfo=None)
    await inbox.ingestor.ingest(
        SOURCE,
        [
            item("naive", clock, minutes_ago=30, answered_at=naive, author_handle="a"),
            item("early", clock, minutes_ago=30, answered_at=clock.now - timedelta(days=1), author_handle="b"),
            item("future", clock, minutes_ago=30, answered_at=clock.now + timedelta(days=1), author_handle="c"),
            item("nonsense", clock, minutes_ago=30, answered_at="yesterday", author_handle="d"),
        ],
    )
    threads = await threads_by_key(engine)
    assert threads["naive"].responded_at == clock.now - timedelta(minutes=20)
    assert threads["early"].responded_at == clock.now - timedelta(minutes=30)  # not before the customer wrote
    assert threads["future"].responded_at == clock.now
    assert (threads["nonsense"].sla_stage, threads["nonsense"].responded_at) == (SlaState.OK, None)
    assert any("answered_at 'yesterday' is not a usable time" in r.getMessage() for r in caplog.records)
