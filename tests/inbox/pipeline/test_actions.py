"""Agent actions: assign, resolve, and replies sent exactly once, even across a crash."""

from __future__ import annotations

import asyncio
import json

import pytest
import sqlalchemy as sa

from inbox.connector import Kind, ReplyTarget
from inbox.pipeline.actions import ActionError
from inbox.store.models import EventKind, Item, Reply, ReplyStatus, Status, Thread
from tests.conftest import Recorder, insert_pending_reply, thread_of
from tests.inbox.pipeline.test_ingest import SOURCE, item


def jsonl_connector(tmp_path) -> dict:
    return {"name": "acme-x", "type": "jsonl", "path": str(tmp_path / "x.jsonl"), "channel": "x"}


def replies(tmp_path) -> list[dict]:
    path = tmp_path / "x.jsonl.replies.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_reply_goes_out_once_however_often_it_is_clicked(inbox_factory, engine, clock, tmp_path):
    recorder = Recorder()
    inbox = inbox_factory(recorder, connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=5)])
    thread = await thread_of(engine, "1")
    outcomes = await asyncio.gather(
        *(inbox.actions.reply(thread, "Sorry! Checking now.", f"agent{i}") for i in range(5))
    )
    assert sorted(o.status for o in outcomes) == ["duplicate"] * 4 + ["sent"]
    assert [r["in_reply_to"] for r in replies(tmp_path)] == ["1"]
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Thread))).one()
    assert row.status == Status.REPLIED and row.first_response_at == clock.now
    await inbox.outbox.dispatch()
    assert recorder.kinds().count(EventKind.REPLIED) == 1


async def test_reply_too_long_for_the_channel_is_refused_not_cut(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    with pytest.raises(ActionError, match="281 characters; x allows 280"):
        await inbox.actions.reply(await thread_of(engine, "1"), "a" * 281, "ana")
    assert replies(tmp_path) == []


async def test_a_failed_reply_can_be_retried(inbox_factory, engine, clock, tmp_path):
    settings = jsonl_connector(tmp_path)
    settings["replies_path"] = str(tmp_path / "missing-folder" / "replies.jsonl")
    inbox = inbox_factory(connectors=[settings])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    thread = await thread_of(engine, "1")
    with pytest.raises(ActionError, match="refused the reply"):
        await inbox.actions.reply(thread, "Hello", "ana")
    (tmp_path / "missing-folder").mkdir()
    assert (await inbox.actions.reply(thread, "Hello again", "ana")).status == "sent"


async def test_after_a_crash_between_record_and_send_the_reply_is_sent_once(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock), item("2", clock, author_handle="eve")])
    async with engine.begin() as conn:
        rows = (
            await conn.execute(sa.select(Item.id, Item.thread_id, Item.external_id).order_by(Item.external_id))
        ).all()
        # Both replies were recorded; the process died before sending the first, and after sending the second.
        for item_id, thread_id, external_id in rows:
            await insert_pending_reply(conn, thread_id, item_id, f"reply to {external_id}", clock.now)
    sent_before_crash = ReplyTarget(external_id="2", thread_id="2", kind=Kind.MENTION, author_handle="eve", reply_to={})
    await inbox.connectors["acme-x"].reply(sent_before_crash, "reply to 2")
    clock.advance(minutes=2)
    assert await inbox.actions.recover() == 2
    assert sorted(r["in_reply_to"] for r in replies(tmp_path)) == ["1", "2"]
    async with engine.connect() as conn:
        statuses = (await conn.execute(sa.select(Reply.status))).scalars().all()
    assert statuses == [ReplyStatus.SENT, ReplyStatus.SENT]
    assert await inbox.actions.recover() == 0


async def test_assign_and_resolve(inbox_factory, engine, clock, tmp_path):
    recorder = Recorder()
    inbox = inbox_factory(recorder)
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    thread = await thread_of(engine, "1")
    await inbox.actions.assign(thread, "U_ANA")
    await inbox.actions.resolve(thread, "U_ANA")
    await inbox.actions.resolve(thread, "U_BOB")  # already resolved: nothing more happens
    with pytest.raises(ActionError, match="already resolved"):
        await inbox.actions.assign(thread, "U_BOB")
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Thread))).one()
    assert (row.status, row.assignee) == (Status.RESOLVED, "U_ANA")
    await inbox.outbox.dispatch()
    assert recorder.kinds() == [EventKind.NEW_THREAD, EventKind.ASSIGNED, EventKind.RESOLVED]
    clock.advance(hours=2)
    assert (await inbox.sweep.run()).breached == []


async def test_unknown_thread(inbox_factory):
    with pytest.raises(ActionError, match="no conversation"):
        await inbox_factory().actions.assign(999, "U_ANA")
