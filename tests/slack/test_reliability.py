"""Slack rate limits, outages, lost answers and restarts lose no post and duplicate none."""

from __future__ import annotations

import sqlalchemy as sa

from inbox.fakes.slack import Fault
from inbox.store.models import Event, SlackMessage
from tests.slack.conftest import LEADS, TRIAGE, Harness


async def pending(harness: Harness) -> int:
    async with harness.inbox.engine.connect() as conn:
        return (
            await conn.execute(sa.select(sa.func.count()).select_from(Event).where(Event.done_at.is_(None)))
        ).scalar_one()


def statuses(harness: Harness, method: str) -> list[int]:
    return [c.status for c in harness.fake.calls if c.method == method]


async def test_a_429_is_waited_out_as_slack_asks_then_posted_once(harness: Harness, quick_rate_limit_waits):
    harness.fake.fail("chat.postMessage")  # 429, Retry-After: 1, once
    await harness.customer_says("1")
    assert await harness.dispatch() == 1
    assert statuses(harness, "chat.postMessage") == [429, 200]
    assert len(quick_rate_limit_waits) == 1 and 1 <= quick_rate_limit_waits[0] < 2  # Retry-After honoured
    assert len(harness.fake.posted(TRIAGE)) == 1 and await pending(harness) == 0


async def test_rate_limited_beyond_the_clients_retries_waits_in_the_outbox(harness: Harness):
    await harness.customer_says("1")
    harness.fake.fail("chat.postMessage", times=3)
    assert await harness.dispatch() == 0
    assert await pending(harness) == 1 and harness.fake.posted(TRIAGE) == []
    harness.clock.advance(minutes=1)
    assert await harness.dispatch() == 1
    assert len(harness.fake.posted(TRIAGE)) == 1


async def test_an_outage_then_recovery_posts_once_and_keeps_the_order(harness: Harness):
    thread = await harness.customer_says("1")
    harness.fake.down = True
    await harness.inbox.actions.assign(thread, "UAGENT001")  # a later event of the same thread waits behind the post
    for _ in range(3):
        assert await harness.dispatch() == 0
        harness.clock.advance(seconds=30)
    harness.fake.down = False
    harness.clock.advance(minutes=2)
    assert await harness.dispatch() == 2
    [message] = harness.fake.posted(TRIAGE)
    assert "Assigned to <@UAGENT001>" in str(message["blocks"])
    assert await pending(harness) == 0


async def test_a_post_whose_answer_was_lost_is_found_not_repeated(harness: Harness):
    harness.fake.fail("chat.postMessage", Fault(500, {"ok": False, "error": "internal_error"}, happen=True))
    thread = await harness.customer_says("1")
    assert await harness.dispatch() == 0
    assert len(harness.fake.posted(TRIAGE)) == 1  # Slack has it; we never heard
    harness.clock.advance(seconds=10)
    assert await harness.dispatch() == 1
    assert len(harness.fake.posted(TRIAGE)) == 1
    async with harness.inbox.engine.connect() as conn:
        ts = (await conn.execute(sa.select(SlackMessage.ts).where(SlackMessage.thread_id == thread))).scalar_one()
    assert ts == harness.fake.posted(TRIAGE)[0]["ts"]
    assert harness.fake.called("conversations.history")


async def test_a_lost_post_is_found_in_a_busy_channel_past_the_first_page(harness: Harness):
    harness.fake.fail("chat.postMessage", Fault(500, {"ok": False, "error": "internal_error"}, happen=True))
    await harness.customer_says("1")
    assert await harness.dispatch() == 0
    for n in range(2100):  # people and other apps keep posting in the triage channel
        harness.fake._chat_postMessage({"channel": TRIAGE, "text": f"someone else's message {n}"})
    harness.clock.advance(seconds=10)
    assert await harness.dispatch() == 1
    assert len([m for m in harness.fake.posted(TRIAGE) if m.get("metadata")]) == 1
    assert len(harness.fake.called("conversations.history")) == 3  # 999 + 999 + the page holding ours


async def test_a_dropped_connection_is_retried_by_the_client(harness: Harness):
    harness.fake.fail("chat.postMessage", Fault(disconnect=True))
    await harness.customer_says("1")
    assert await harness.dispatch() == 1
    assert len(harness.fake.posted(TRIAGE)) == 1


async def test_an_alert_rate_limited_for_long_is_posted_once_later(harness: Harness):
    await harness.customer_says("1", minutes_ago=31)
    await harness.dispatch()
    await harness.inbox.sweep.run()
    harness.fake.fail("chat.postMessage", times=3)
    assert await harness.dispatch() == 0
    harness.clock.advance(minutes=1)
    await harness.inbox.sweep.run()
    assert await harness.dispatch() == 1
    assert len(harness.fake.posted(LEADS)) == 1


async def test_a_restart_with_a_pending_post_posts_it_once(harness_factory):
    first: Harness = await harness_factory()
    first.fake.down = True
    await first.customer_says("1")
    assert await first.dispatch() == 0
    await first.close()
    first.fake.down = False
    first.clock.advance(minutes=2)

    second: Harness = await harness_factory()  # a new process on the same store
    assert await second.dispatch() == 1
    assert len(second.fake.posted(TRIAGE)) == 1
    assert await second.dispatch() == 0
