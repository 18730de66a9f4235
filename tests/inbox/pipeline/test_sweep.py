"""The SLA sweep: warnings and breaches from the platform timestamp, each recorded once."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from inbox.store.models import Event, EventKind
from tests.conftest import Recorder, thread_of
from tests.inbox.pipeline.test_ingest import SOURCE, item


async def alerts(engine) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Event.kind, Event.thread_id)
            .where(Event.kind.in_([EventKind.SLA_WARNING, EventKind.SLA_BREACH]))
            .order_by(Event.id)
        )
        return [(k, t) for k, t in rows]


async def test_warning_at_20_and_breach_at_30_minutes_after_the_post(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=19)])
    thread = await thread_of(engine, "1")
    assert (await inbox.sweep.run()).warned == []
    clock.advance(minutes=2)  # 21 minutes after the post
    assert (await inbox.sweep.run()).warned == [thread]
    clock.advance(minutes=8)  # 29
    assert (await inbox.sweep.run()).breached == []
    clock.advance(minutes=2)  # 31
    assert (await inbox.sweep.run()).breached == [thread]
    assert await alerts(engine) == [(EventKind.SLA_WARNING, thread), (EventKind.SLA_BREACH, thread)]


async def test_each_alert_is_recorded_once_over_many_sweeps(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item(str(i), clock, minutes_ago=i, author_handle=f"u{i}") for i in range(40)])
    for _ in range(50):
        await inbox.sweep.run()
        clock.advance(seconds=15)
    recorded = await alerts(engine)
    assert len(recorded) == len(set(recorded)), "an alert was recorded twice"
    # Independent model: sweeps see each item at ages i, i+0.25, ..., i+12.25 minutes.
    expected = []
    for i in range(40):
        ages = [i + 0.25 * k for k in range(50)]
        first_late = next((a for a in ages if a >= 20), None)
        if first_late is not None and first_late < 30:
            expected.append("warning")
        if any(a >= 30 for a in ages):
            expected.append("breach")
    kinds = [k for k, _ in recorded]
    assert kinds.count(EventKind.SLA_WARNING) == expected.count("warning")
    assert kinds.count(EventKind.SLA_BREACH) == expected.count("breach")


async def test_concurrent_sweeps_announce_once(inbox_factory, engine, clock):
    a, b = inbox_factory(), inbox_factory()
    await a.ingestor.ingest(SOURCE, [item(str(i), clock, minutes_ago=25, author_handle=f"u{i}") for i in range(30)])
    await asyncio.gather(*(x.sweep.run() for x in (a, b, a, b)))
    assert len(await alerts(engine)) == 30


async def test_an_item_ingested_late_is_breached_at_once_without_a_warning_first(inbox_factory, engine, clock):
    recorder = Recorder()
    inbox = inbox_factory(recorder)
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=31)])
    result = await inbox.sweep.run()
    assert (result.warned, len(result.breached)) == ([], 1)
    await inbox.outbox.dispatch()
    breach = next(n for n in recorder.notices if n.kind == EventKind.SLA_BREACH)
    assert breach.thread is not None and round(breach.thread.clock.minutes_waited) == 31


async def test_a_reply_stops_the_clock(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(
        connectors=[{"name": "acme-x", "type": "jsonl", "path": str(tmp_path / "x.jsonl"), "channel": "x"}]
    )
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=10)])
    await inbox.actions.reply(await thread_of(engine, "1"), "On it!", "ana")
    clock.advance(minutes=60)
    result = await inbox.sweep.run()
    assert (result.warned, result.breached) == ([], [])


async def test_per_channel_override(inbox_factory, engine, clock):
    inbox = inbox_factory(sla={"channels": {"x": {"first_response_minutes": 240, "warn_after_minutes": 180}}})
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=45)])
    assert (await inbox.sweep.run()).breached == []
    clock.advance(minutes=136)
    assert (await inbox.sweep.run()).warned != []


async def test_business_hours_push_a_night_post_to_the_morning(inbox_factory, engine, clock):
    hours = {"timezone": "Europe/Paris", "start": "09:00:00", "end": "18:00:00"}
    inbox = inbox_factory(sla={"channels": {"x": {"business_hours": hours}}})
    # 2026-11-24 is a Tuesday; 23:00 Paris is 22:00 UTC.
    clock.now = clock.now.replace(year=2026, month=11, day=24, hour=22, minute=0)
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=0)])
    clock.advance(hours=9)  # 08:00 Paris Wednesday: the clock has not run yet
    assert (await inbox.sweep.run()).warned == []
    clock.advance(minutes=81)  # 09:21 Paris
    assert len((await inbox.sweep.run()).warned) == 1
    clock.advance(minutes=9)  # 09:30 Paris: due
    assert len((await inbox.sweep.run()).breached) == 1
