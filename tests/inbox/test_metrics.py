"""The response-time histogram: observed once per reply, from the customer's post to the send, per channel and clock kind."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import Kind, ReplyTarget
from inbox.metrics import RESPONSE_BUCKETS, Metrics
from inbox.service import Inbox
from inbox.store.models import Item, Reply, ReplyStatus
from tests.conftest import FakeClock, thread_of
from tests.inbox.pipeline.test_actions import jsonl_connector
from tests.inbox.pipeline.test_ingest import SOURCE, item

HISTOGRAM = "inbox_response_time_seconds"


def observed(metrics: Metrics, channel: str, clock_kind: str) -> tuple[float | None, float | None]:
    """(count, sum) of the histogram for one label pair; (None, None) when never observed."""
    labels = {"channel": channel, "clock_kind": clock_kind}
    return (
        metrics.registry.get_sample_value(f"{HISTOGRAM}_count", labels),
        metrics.registry.get_sample_value(f"{HISTOGRAM}_sum", labels),
    )


def bucket(metrics: Metrics, channel: str, clock_kind: str, le: float) -> float | None:
    labels = {"channel": channel, "clock_kind": clock_kind, "le": str(float(le))}
    return metrics.registry.get_sample_value(f"{HISTOGRAM}_bucket", labels)


async def test_first_and_next_response_times_are_observed_from_the_post_to_the_send(
    inbox_factory, engine, clock, tmp_path
):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    assert inbox.actions.metrics is inbox.metrics  # the service hands its metrics to the actions
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=12)])
    thread = await thread_of(engine, "1")
    clock.advance(minutes=13)  # the customer has waited 25 minutes when the agent answers
    assert (await inbox.actions.reply(thread, "Sorry! Checking now.", "ana")).status == "sent"
    assert observed(inbox.metrics, "x", "first_response") == (1.0, 25 * 60)
    assert (
        bucket(inbox.metrics, "x", "first_response", 1200) == 0
        and bucket(inbox.metrics, "x", "first_response", 1800) == 1
    )

    # A second click on the same message sends nothing, so observes nothing.
    assert (await inbox.actions.reply(thread, "Sorry! Checking now.", "ben")).status == "duplicate"
    assert observed(inbox.metrics, "x", "first_response") == (1.0, 25 * 60)

    # The customer writes again: the next-response clock starts at their new post.
    clock.advance(hours=1)
    await inbox.ingestor.ingest(SOURCE, [item("2", clock, minutes_ago=2, thread_id="1")])
    clock.advance(hours=3)
    assert (await inbox.actions.reply(thread, "It left the warehouse today.", "ana")).status == "sent"
    assert observed(inbox.metrics, "x", "next_response") == (1.0, 3 * 3600 + 120)
    assert bucket(inbox.metrics, "x", "next_response", 3 * 3600) is None  # not a bucket bound
    assert (
        bucket(inbox.metrics, "x", "next_response", 2 * 3600) == 0
        and bucket(inbox.metrics, "x", "next_response", 4 * 3600) == 1
    )
    assert observed(inbox.metrics, "x", "first_response")[0] == 1.0


async def sent_before_a_crash(
    inbox: Inbox, engine: AsyncEngine, clock: FakeClock, external_id: str
) -> tuple[int, int, int]:
    """A reply recorded and sent, the process dead before marking it sent: (thread id, item id, reply id)."""
    thread = await thread_of(engine, external_id)
    async with engine.begin() as conn:
        item_id = (await conn.execute(sa.select(Item.id).where(Item.external_id == external_id))).scalar_one()
        reply_id = (
            await conn.execute(
                sa.insert(Reply)
                .values(
                    thread_id=thread,
                    item_id=item_id,
                    cycle=1,
                    text="On its way.",
                    agent="ana",
                    status=ReplyStatus.PENDING,
                    created_at=clock.now,
                )
                .returning(Reply.id)
            )
        ).scalar_one()
    target = ReplyTarget(
        external_id=external_id, thread_id=external_id, kind=Kind.MENTION, author_handle="bob", reply_to={}
    )
    await inbox.connectors["acme-x"].reply(target, "On its way.")
    return thread, item_id, reply_id


async def test_a_reply_finished_after_a_crash_is_observed_once(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, minutes_ago=5)])
    await sent_before_a_crash(inbox, engine, clock, "1")
    clock.advance(minutes=2)
    assert await inbox.actions.recover() == 1
    assert observed(inbox.metrics, "x", "first_response") == (1.0, 7 * 60)
    assert await inbox.actions.recover() == 0
    assert observed(inbox.metrics, "x", "first_response") == (1.0, 7 * 60)


def test_buckets_resolve_the_30_minute_sla_and_reach_days_for_reviews():
    minutes = [b / 60 for b in RESPONSE_BUCKETS]
    assert {20, 30} <= set(minutes)  # the default warning and breach
    assert max(RESPONSE_BUCKETS) >= 7 * 24 * 3600 and list(RESPONSE_BUCKETS) == sorted(RESPONSE_BUCKETS)
