"""The GDPR end to end on both stores: two customers through the real pipeline and Slack, export one, forget one.

The erased customer's unique words and name must be gone from the store's bytes (the SQLite file, every table
of PostgreSQL) and from every Slack message once the outbox ran; the other customer is untouched; the numbers
team leads read stay the same.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from inbox.fakes.slack import FakeSlack, Fault
from inbox.pipeline import privacy
from inbox.pipeline.privacy import CustomerRef, NoSuchCustomer
from inbox.reports import CSV_COLUMNS, build_report, conversation_rows, parse_window, report_json, report_zone
from inbox.reports.figures import csv_record
from inbox.slack import blocks
from inbox.store import privacy as store_privacy
from inbox.store.models import CsatQuestion, Customer, Erasure, Event, EventKind, Item, Reply, SlackPost, Thread
from tests.slack.conftest import LEADS, TRIAGE, Harness, HarnessFactory

# The erased customer's words, name and handle: unique strings to look for in every byte afterwards.
DANA_TEXT = "Zebraquartz parcel never arrived, order 5501"
DANA_FOLLOW = "Still no Zebraquartz parcel, and the app crashes"
DANA_NAME = "Dana Vexlomir"
DANA = "Dana_Vexlomir"  # stored as the customer dana_vexlomir: found however the admin types it
BOB_TEXT = "Kumquatine invoice shows a double charge"
BOB = "bob_kumquatine"
CSAT = {"enabled": True, "ask_after_minutes": 30, "answer_hours": 48}
ERASED = [DANA_TEXT.split()[0], "Vexlomir", "vexlomir"]  # none of these may be found anywhere afterwards


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> Harness:
    """An inbox with Slack on, CSAT on, and a jsonl connector standing in for X."""
    return await harness_factory(tables={"csat": CSAT})


async def conversations(h: Harness) -> dict[str, list[int]]:
    """Two customers through the pipeline: Dana's answered, resolved and rated conversation and her open breached
    one with a follow-up; Bob's answered and resolved one. Slack shows them all."""
    dana_1 = await h.customer_says("d1", DANA_TEXT, handle=DANA, name=DANA_NAME, thread_id="t-d1")
    bob_1 = await h.customer_says("b1", BOB_TEXT, handle=BOB, name="Bob Kumquatine", thread_id="t-b1")
    await h.dispatch()
    h.clock.advance(minutes=4)
    await h.inbox.actions.assign(dana_1, "UAGENT001")
    assert (await h.inbox.actions.reply(dana_1, f"Sorry {DANA_NAME}, we resend it", "UAGENT001")).status == "sent"
    assert (await h.inbox.actions.reply(bob_1, "Refund on its way, Bob", "UAGENT002")).status == "sent"
    await h.inbox.actions.resolve(dana_1, "UAGENT001")
    await h.inbox.actions.resolve(bob_1, "UAGENT002")
    await h.dispatch()
    h.clock.advance(minutes=31)
    await h.inbox.sweep.run()  # the CSAT questions go out
    await h.customer_says("d2", "5", handle=DANA, name=DANA_NAME, minutes_ago=0, thread_id="t-d1")
    await h.customer_says("b2", "2", handle=BOB, name="Bob Kumquatine", minutes_ago=0, thread_id="t-b1")
    dana_2 = await h.customer_says(
        "d3", DANA_FOLLOW, handle=DANA, name=DANA_NAME, kind="dm", minutes_ago=0, thread_id="t-d2"
    )
    await h.dispatch()
    await h.customer_says(
        "d4", f"{DANA_FOLLOW}!!", handle=DANA, name=DANA_NAME, kind="dm", minutes_ago=0, thread_id="t-d2"
    )
    for _ in range(4):  # Dana's second conversation waits past its warning and deadline
        h.clock.advance(minutes=10)
        await h.inbox.sweep.run()
        await h.dispatch()
    return {"dana": sorted({dana_1, dana_2}), "bob": [bob_1]}


async def numbers(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """What team leads read, per conversation and item: times, SLA state, intent, language, priority, stars, CSAT."""
    async with engine.connect() as conn:
        threads = await conn.execute(
            sa.select(
                Thread.id,
                Thread.channel,
                Thread.kind,
                Thread.status,
                Thread.assignee,
                Thread.priority,
                Thread.opened_at,
                Thread.first_response_at,
                Thread.responded_at,
                Thread.resolved_at,
                Thread.clock_start,
                Thread.due_at,
                Thread.sla_stage,
                Thread.cycle,
                Thread.rating_before,
                Thread.rating_after,
                CsatQuestion.score,
                CsatQuestion.status,
            )
            .outerjoin(CsatQuestion, CsatQuestion.thread_id == Thread.id)
            .order_by(Thread.id)
        )
        items = await conn.execute(
            sa.select(
                Item.id,
                Item.thread_id,
                Item.customer_id,
                Item.posted_at,
                Item.language,
                Item.sentiment,
                Item.intent,
                Item.priority,
                Item.rating,
            ).order_by(Item.id)
        )
        replies = await conn.execute(
            sa.select(Reply.thread_id, Reply.agent, Reply.status, Reply.created_at, Reply.sent_at).order_by(Reply.id)
        )
        return [tuple(r) for r in [*threads, *items, *replies]]


async def report(h: Harness) -> dict[str, Any]:
    """`inbox report`'s figures as of now, in JSON per grouping, and its per-conversation rows without the customer."""
    settings, now = h.inbox.settings, h.clock.now
    window = parse_window(now, report_zone(settings), since="30d")
    groupings = (None, "channel", "agent", "intent", "language", "priority", "day")
    customer = CSV_COLUMNS.index("customer")
    return {
        "json": [report_json(await build_report(h.inbox.engine, settings, window, by, now)) for by in groupings],
        "rows": [
            [v for i, v in enumerate(csv_record(r)) if i != customer]
            for r in await conversation_rows(h.inbox.engine, settings, window, now)
        ],
    }


async def store_bytes(engine: AsyncEngine, url: str, schema: str | None = None) -> bytes:
    """Every byte the store holds: the SQLite file and its WAL, or a COPY of every PostgreSQL table."""
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    dump = io.BytesIO()
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for table in SQLModel.metadata.sorted_tables:
            await raw.copy_from_table(table.name, schema_name=schema or "public", output=dump)
    return dump.getvalue()


def slack_bytes(fake: FakeSlack) -> str:
    """Every message the fake Slack holds now, in every channel."""
    return json.dumps(fake.messages, ensure_ascii=False)


async def test_export_holds_everything_of_one_customer_and_nothing_of_the_other(harness: Harness):
    ids = await conversations(harness)

    document = await privacy.export(harness.inbox.engine, [CustomerRef("x", DANA)])

    text = json.dumps(document, ensure_ascii=False)
    [dana] = document["customers"]
    assert (dana["channel"], dana["handle"], dana["display_name"]) == ("x", DANA.lower(), DANA_NAME)
    assert [c["id"] for c in dana["conversations"]] == ids["dana"]
    first, second = dana["conversations"]
    assert [i["text"] for i in first["items"]] == [DANA_TEXT, "5"]
    assert [i["text"] for i in second["items"]] == [DANA_FOLLOW, f"{DANA_FOLLOW}!!"]
    assert first["items"][0]["intent"] == "delivery" and first["items"][0]["language"] == "en"
    assert first["items"][0]["posted_at"].endswith("+00:00") and first["items"][0]["suggestion"]
    assert [(r["text"], r["agent"], r["status"]) for r in first["replies"]] == [
        (f"Sorry {DANA_NAME}, we resend it", "UAGENT001", "sent")
    ]
    assert first["csat"]["score"] == 5 and first["csat"]["question"]
    assert [(a["action"], a["agent"]) for a in first["assignments"]] == [
        ("assigned", "UAGENT001"),
        ("resolved", "UAGENT001"),
    ]
    assert {m["what"] for m in first["slack_messages"]} == {"triage", "post"}
    assert all(m["channel"] and m["ts"] for m in first["slack_messages"])
    # Nothing of Bob's.
    assert BOB not in text and "Kumquatine" not in text and "Refund on its way" not in text

    # The same person on several channels: --customer repeats; one unknown is an error naming it.
    both = await privacy.export(harness.inbox.engine, [CustomerRef("x", DANA), CustomerRef("x", f"@{BOB}")])
    assert [c["handle"] for c in both["customers"]] == [DANA.lower(), BOB]
    typed = await privacy.export(harness.inbox.engine, [CustomerRef("x", "@DANA_vexlomir")])
    assert typed["customers"] == document["customers"]
    with pytest.raises(NoSuchCustomer, match="x:nobody"):
        await privacy.export(harness.inbox.engine, [CustomerRef("x", DANA), CustomerRef("x", "nobody")])
    with pytest.raises(NoSuchCustomer, match="mastodon:Dana_Vexlomir"):
        await privacy.export(harness.inbox.engine, [CustomerRef("mastodon", DANA)])


async def test_forget_erases_the_customer_everywhere_and_keeps_the_numbers(harness: Harness, store):
    engine, url, schema = store
    ids = await conversations(harness)
    before = await numbers(engine)
    figures = await report(harness)
    assert figures["json"][0]["rows"][0]["conversations"] == 3 and len(figures["rows"]) == 3
    held_before = await store_bytes(engine, url, schema)
    shown_before = slack_bytes(harness.fake)
    for word in ERASED:  # the test can fail: each word is there before (Slack shows the handle as written)
        assert word.encode() in held_before and (word.islower() or word in shown_before), word
    bob_messages = [m for m in harness.fake.posted(TRIAGE) if BOB in json.dumps(m)]
    assert bob_messages

    plan = await privacy.plan_forget(engine, [CustomerRef("x", DANA)])
    assert plan.held.threads == 2 and plan.held.items == 4 and plan.held.replies == 1 and plan.held.csat == 1
    assert plan.held.slack_messages >= 5  # two triage messages, the reply note, the follow-up, the SLA alerts
    done = await privacy.forget(engine, plan, by="dpo-admin", now=harness.clock.now)
    assert done == plan.held
    await harness.dispatch()

    held_after = await store_bytes(engine, url, schema)
    shown_after = slack_bytes(harness.fake)
    for word in ERASED:
        assert word.encode() not in held_after, f"{word} still in the store"
        assert word not in shown_after, f"{word} still in Slack"
    assert "Sorry Dana" not in shown_after and DANA_FOLLOW.split(",")[0] not in shown_after
    # Bob is untouched, in the store and in Slack.
    assert BOB_TEXT.encode() in held_after and BOB.encode() in held_after
    assert [m for m in harness.fake.posted(TRIAGE) if BOB in json.dumps(m)] == bob_messages
    # Dana's messages now say what happened, once each.
    notes = [
        m for channel in (TRIAGE, LEADS) for m in harness.fake.posted(channel) if m["text"] in blocks.ERASED.values()
    ]
    assert len(notes) == plan.held.slack_messages
    assert await store_privacy.erasures_pending(engine, ids["dana"]) == 0

    # The numbers are the same, and so is every figure of `inbox report`.
    assert await numbers(engine) == before
    assert await report(harness) == figures
    # The record of the erasure says when, how much and by whom, never whom.
    async with engine.connect() as conn:
        [record] = list(await conn.execute(sa.select(Erasure)))
    assert (record.reason, record.by, record.customers, record.threads, record.items) == (
        "request",
        "dpo-admin",
        1,
        2,
        4,
    )

    # Time passes: the open erased conversation's later SLA changes never redraw its message.
    updates = len(harness.fake.called("chat.update"))
    harness.clock.advance(hours=3)
    await harness.inbox.sweep.run()
    await harness.dispatch()
    assert len(harness.fake.called("chat.update")) == updates
    for word in ERASED:
        assert word not in slack_bytes(harness.fake)


async def test_a_later_item_from_the_same_handle_is_a_new_customer(harness: Harness):
    ids = await conversations(harness)
    plan = await privacy.plan_forget(harness.inbox.engine, [CustomerRef("x", DANA)])
    await privacy.forget(harness.inbox.engine, plan, by="dpo", now=harness.clock.now)
    [pseudonym] = plan.customers.values()

    with pytest.raises(NoSuchCustomer):
        await privacy.export(harness.inbox.engine, [CustomerRef("x", DANA)])
    erased = await privacy.export(harness.inbox.engine, [CustomerRef("x", pseudonym)])
    [customer] = erased["customers"]
    assert customer["display_name"] is None and customer["erased_at"]
    assert {i["author_handle"] for c in customer["conversations"] for i in c["items"]} == {pseudonym}
    assert {i["text"] for c in customer["conversations"] for i in c["items"]} == {""}

    thread = await harness.customer_says(
        "d9", "Hello again", handle=DANA, name=DANA_NAME, kind="dm", minutes_ago=0, thread_id="t-d2"
    )
    assert thread not in ids["dana"]
    async with harness.inbox.engine.connect() as conn:
        customers = list(await conn.execute(sa.select(Customer.handle).where(Customer.channel == "x")))
    assert sorted(c.handle for c in customers) == sorted([DANA.lower(), BOB, pseudonym])
    again = await privacy.export(harness.inbox.engine, [CustomerRef("x", DANA)])
    assert [c["id"] for c in again["customers"][0]["conversations"]] == [thread]


async def test_erased_messages_delete_removes_them_from_slack_once_even_after_a_lost_answer(harness: Harness):
    harness.inbox.slack.notifier.settings = harness.inbox.settings.slack.model_copy(
        update={"erased_messages": "delete"}
    )
    ids = await conversations(harness)
    plan = await privacy.plan_forget(harness.inbox.engine, [CustomerRef("x", DANA)])
    await privacy.forget(harness.inbox.engine, plan, by="dpo", now=harness.clock.now)
    # Slack deletes the first message but its answer is lost: the erasure is retried later, and goes on from there.
    harness.fake.fail("chat.delete", Fault(200, {"ok": False, "error": "internal_error"}, happen=True))
    await harness.dispatch()
    assert await store_privacy.erasures_pending(harness.inbox.engine, ids["dana"]) == 1
    harness.clock.advance(minutes=5)
    await harness.dispatch()
    assert await store_privacy.erasures_pending(harness.inbox.engine, ids["dana"]) == 0
    assert len(harness.fake.called("chat.delete")) == plan.held.slack_messages  # each deleted once
    for word in ERASED:
        assert word not in slack_bytes(harness.fake)
    assert any(BOB in json.dumps(m) for m in harness.fake.posted(TRIAGE))


async def test_an_alert_post_whose_outcome_is_unknown_does_not_hold_back_the_other_edits(harness: Harness):
    engine, clock = harness.inbox.engine, harness.clock
    ids = await conversations(harness)
    # An SLA alert in the leads' channel whose post began a moment ago and whose answer never came (a crash).
    async with engine.begin() as conn:
        event_id = (
            await conn.execute(
                sa.insert(Event)
                .values(
                    kind=EventKind.SLA_WARNING,
                    thread_id=ids["dana"][1],
                    payload={"cycle": 1},
                    created_at=clock.now,
                    done_at=clock.now,
                    attempts=0,
                )
                .returning(Event.id)
            )
        ).scalar_one()
        await conn.execute(sa.insert(SlackPost).values(event_id=event_id, channel=LEADS, ts=None, created_at=clock.now))
    plan = await privacy.plan_forget(engine, [CustomerRef("x", DANA)])
    await privacy.forget(engine, plan, by="dpo", now=clock.now)
    await harness.dispatch()
    for word in ERASED:  # every message Slack holds is edited already
        assert word not in slack_bytes(harness.fake)
    assert await store_privacy.erasures_pending(engine, ids["dana"]) == 1  # the unknown one is looked for again
    clock.advance(minutes=5)  # long past any post in flight: it never happened
    await harness.dispatch()
    assert await store_privacy.erasures_pending(engine, ids["dana"]) == 0
