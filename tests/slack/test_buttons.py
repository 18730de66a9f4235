"""Agents in Slack: one triage message per thread, buttons that act once, refusals, signatures."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import sqlalchemy as sa

from inbox.connector import Kind, RawItem
from inbox.fakes import slack_payloads as payloads
from inbox.fakes.slack import Fault
from inbox.pipeline.ingest import Source
from inbox.store.models import SlackMessage, Status, Thread
from tests.slack.conftest import AGENT, TRIAGE, Harness


def texts(message: dict) -> str:
    """Every text in a message's blocks, joined, for assertions about what is shown."""
    return json.dumps(message["blocks"], ensure_ascii=False)


async def status_of(harness: Harness, thread_id: int) -> tuple[str, str | None]:
    async with harness.inbox.engine.connect() as conn:
        row = (await conn.execute(sa.select(Thread.status, Thread.assignee).where(Thread.id == thread_id))).one()
    return row.status, row.assignee


async def test_a_new_thread_is_posted_once_with_its_triage_and_four_buttons(harness: Harness):
    thread = await harness.customer_says("1", "Where is my order #12345? It is late!", rating=2)
    await harness.dispatch()
    await harness.dispatch()  # nothing left: the event was delivered once
    [message] = harness.fake.posted(TRIAGE)
    shown = texts(message)
    assert "Where is my order #12345? It is late!" in shown and "@bob (Bob)" in shown
    assert "delivery" in shown and "priority" in shown and "min left" in shown and "★★☆☆☆" in shown
    assert "Hi Bob" in shown  # the suggestion
    buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["action_id"] for b in buttons] == ["inbox_send", "inbox_edit", "inbox_assign", "inbox_resolve"]
    assert {b["value"] for b in buttons} == {harness.value_of(thread)} and harness.value_of(thread).startswith(
        f"{thread}:"
    )
    assert "Where is my order" not in message["text"]  # the notification never carries the customer's words
    async with harness.inbox.engine.connect() as conn:
        assert (await conn.execute(sa.select(SlackMessage.ts))).scalar_one() == message["ts"]


async def test_a_conversation_answered_on_the_platform_is_shown_answered_without_buttons(harness: Harness):
    clock = harness.clock
    review = RawItem(
        "r1",
        "Lovely shop",
        clock.now - timedelta(hours=3),
        Kind.REVIEW,
        "Ann",
        rating=5,
        answered_at=clock.now - timedelta(hours=2),
    )
    await harness.inbox.ingestor.ingest(Source.of(harness.inbox.connectors["acme-x"]), [review])
    await harness.dispatch()
    [message] = harness.fake.posted(TRIAGE)
    assert "Answered on X at" in texts(message) and "outside this inbox" in texts(message)
    assert not any(b["type"] == "actions" for b in message["blocks"])  # nothing left to do


async def test_click_to_reply_end_to_end(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    status, body, _seconds = await harness.click(thread, "inbox_send")
    assert status == 200 and body == ""
    await harness.settle()
    [reply] = harness.replies()
    assert reply["in_reply_to"] == "1" and reply["text"].startswith("Hi Bob")
    message = harness.triage_message(thread)
    assert f"Replied by <@{AGENT}>" in texts(message) and reply["text"] in texts(message)
    assert not any(b["type"] == "actions" for b in message["blocks"])  # nothing left to click
    [note] = harness.fake.posted(TRIAGE, in_thread=True)
    assert note["thread_ts"] == message["ts"] and reply["text"] in texts(note)
    assert harness.fake.called("chat.update")  # the same message, updated in place
    assert len(harness.fake.posted(TRIAGE, in_thread=False)) == 1


async def test_a_double_click_and_a_second_agent_send_one_reply(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    results = await asyncio.gather(
        harness.click(thread, "inbox_send"),
        harness.click(thread, "inbox_send"),
        harness.click(thread, "inbox_send", user="UAGENT002"),
    )
    assert [r[0] for r in results] == [200, 200, 200]
    await harness.settle()
    assert len(harness.replies()) == 1
    told = harness.ephemerals(AGENT) + harness.ephemerals("UAGENT002")
    assert len(told) == 2 and all("already answered" in t for t in told)


async def test_assign_and_resolve_update_the_message(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    await harness.click(thread, "inbox_assign")
    await harness.settle()
    assert await status_of(harness, thread) == (Status.ASSIGNED, AGENT)
    assert f"Assigned to <@{AGENT}>" in texts(harness.triage_message(thread))
    await harness.click(thread, "inbox_resolve", user="UAGENT002")
    await harness.settle()
    assert (await status_of(harness, thread))[0] == Status.RESOLVED
    shown = texts(harness.triage_message(thread))
    assert "Resolved by <@UAGENT002>" in shown and "clock stopped" in shown
    assert harness.replies() == []
    assert len(harness.fake.posted(TRIAGE, in_thread=False)) == 1


async def test_people_outside_the_allowed_list_are_refused_and_nothing_happens(harness_factory):
    harness: Harness = await harness_factory(allowed_users=[AGENT])
    thread = await harness.customer_says("1")
    await harness.dispatch()
    for action in ("inbox_send", "inbox_assign", "inbox_resolve", "inbox_edit"):
        assert (await harness.click(thread, action, user="UINTRUDER"))[0] == 200
    await harness.settle()
    assert harness.replies() == [] and await status_of(harness, thread) == (Status.NEW, None)
    assert not harness.fake.called("views.open")
    refusals = harness.ephemerals("UINTRUDER")
    assert len(refusals) == 4 and all("not one of this inbox's agents" in r for r in refusals)


async def test_a_user_group_grants_access(harness_factory):
    harness: Harness = await harness_factory(allowed_group="SAGENTS1")
    harness.fake.groups["SAGENTS1"] = ["UGROUPIE1"]
    thread = await harness.customer_says("1")
    await harness.dispatch()
    await harness.click(thread, "inbox_assign", user="UOTHER001")
    await harness.click(thread, "inbox_assign", user="UGROUPIE1")
    await harness.settle()
    assert await status_of(harness, thread) == (Status.ASSIGNED, "UGROUPIE1")
    assert harness.ephemerals("UOTHER001")


async def test_guests_and_other_workspaces_are_refused_when_anyone_may_act(harness: Harness):
    harness.fake.users["UGUEST001"] = {"is_restricted": True}
    harness.fake.users["UEXTERNAL"] = {"team_id": "TOTHERORG"}
    thread = await harness.customer_says("1")
    await harness.dispatch()
    await harness.click(thread, "inbox_send", user="UGUEST001")
    await harness.click(thread, "inbox_send", user="UEXTERNAL")
    await harness.settle()
    assert harness.replies() == []
    assert "Guests cannot act" in harness.ephemerals("UGUEST001")[0]
    assert "members of this workspace" in harness.ephemerals("UEXTERNAL")[0]


async def test_missing_forged_and_stale_signatures_get_401_and_do_nothing(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    body = harness.click_body(thread, "inbox_send")
    calls_before = len(harness.fake.calls)
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    forged = payloads.signed(body, secret="not-the-secret")
    stale = payloads.signed(body, timestamp=int(time.time()) - 6 * 60)
    tampered = payloads.signed(body)
    for headers, sent in [
        (unsigned, body),
        (forged, body),
        (stale, body),
        (tampered, body.replace("inbox_send", "inbox_resolve")),
    ]:
        status, _, _ = await harness.post(sent, headers)
        assert status == 401
    await harness.settle()
    assert harness.replies() == [] and await status_of(harness, thread) == (Status.NEW, None)
    assert len(harness.fake.calls) == calls_before


async def test_a_request_slack_retries_is_done_once(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    message = harness.triage_message(thread)
    payload = payloads.block_action(
        "inbox_assign",
        harness.value_of(thread),
        user=AGENT,
        channel=TRIAGE,
        message_ts=message["ts"],
        response_url=harness.fake.response_url(),
    )
    body = payloads.form(payload)
    assert (await harness.post(body, payloads.signed(body)))[0] == 200
    retry = {**payloads.signed(body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await harness.post(body, retry))[0] == 200
    await harness.settle()
    async with harness.inbox.engine.connect() as conn:
        assigned = (await conn.execute(sa.text("SELECT count(*) FROM event WHERE kind = 'assigned'"))).scalar_one()
    assert assigned == 1


async def test_a_button_drawn_before_a_follow_up_sends_nothing(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    old_value = harness.value_of(thread)
    await harness.customer_says("2", "Hello?? Anyone there?", thread_id="1")
    status, _, _ = await harness.click(thread, "inbox_send", value=old_value)
    assert status == 200
    await harness.settle()
    assert harness.replies() == []
    assert "wrote again" in harness.ephemerals()[0]


async def test_a_follow_up_goes_in_the_slack_thread_and_the_message_is_redrawn(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    await harness.click(thread, "inbox_send")
    await harness.settle()
    harness.clock.advance(minutes=5)
    assert await harness.customer_says("2", "Thanks, but it still has not arrived", thread_id="1") == thread
    await harness.dispatch()
    parent = harness.triage_message(thread)
    follow_ups = [m for m in harness.fake.posted(TRIAGE, in_thread=True) if "Follow-up" in m["text"]]
    assert len(follow_ups) == 1 and follow_ups[0]["thread_ts"] == parent["ts"]
    assert "still has not arrived" in texts(follow_ups[0])
    assert "Next response" in texts(parent) and any(b["type"] == "actions" for b in parent["blocks"])
    assert len(harness.fake.posted(TRIAGE, in_thread=False)) == 1


async def test_a_reply_the_platform_refuses_comes_back_to_the_agent_and_the_item_stays_open(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    harness.inbox.connectors["acme-x"].replies_path = harness.folder / "no-such-folder" / "replies.jsonl"  # type: ignore[attr-defined]
    await harness.click(thread, "inbox_send")
    await harness.settle()
    [told] = harness.ephemerals()
    assert told.startswith("Not sent:") and "refused the reply" in told and "stays open" in told
    assert (await status_of(harness, thread))[0] == Status.NEW
    assert any(b["type"] == "actions" for b in harness.triage_message(thread)["blocks"])


async def test_slack_cannot_take_the_ephemeral_message_the_work_still_counts(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    await harness.click(thread, "inbox_send")
    harness.fake.fail("chat.postEphemeral", Fault(200, {"ok": False, "error": "channel_not_found"}))
    await harness.click(thread, "inbox_send")
    await harness.settle()
    assert len(harness.replies()) == 1
