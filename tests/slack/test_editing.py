"""Editing before sending: the modal, its template picker and limit, and `reply:` in the Slack thread."""

from __future__ import annotations

import json
from typing import Any

from inbox.fakes import slack_payloads as payloads
from inbox.store.models import Status
from tests.slack.conftest import AGENT, TRIAGE, Harness
from tests.slack.test_buttons import status_of


async def open_modal(harness: Harness, thread: int) -> dict[str, Any]:
    assert (await harness.click(thread, "inbox_edit"))[0] == 200
    await harness.slack.tasks.drain(5)
    [opened] = harness.fake.called("views.open")
    return harness.fake.views[sorted(harness.fake.views)[-1]] | {"trigger_id": opened["trigger_id"]}


def reply_box(view: dict[str, Any]) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id", "").startswith("reply_"))


async def submit(harness: Harness, view: dict[str, Any], text: str, *, user: str = AGENT) -> tuple[int, str]:
    block_id = reply_box(view)["block_id"]
    values = {block_id: {"inbox_reply_text": {"type": "plain_text_input", "value": text}}}
    body = payloads.form(payloads.view_submission(view, values, user=user))
    status, answer, _ = await harness.post(body, payloads.signed(body))
    return status, answer


async def test_edit_opens_a_modal_prefilled_and_submit_sends_the_edited_text(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    view = await open_modal(harness, thread)
    box = reply_box(view)["element"]
    assert box["initial_value"].startswith("Hi Bob") and box["max_length"] == 280  # X's limit
    assert "of 280 characters allowed on X" in str(view["blocks"])
    picker = next(b for b in view["blocks"] if b.get("block_id") == "template")["element"]
    assert picker["initial_option"]["value"] == "delivery.en"
    assert any(o["value"] == "billing.fr" for o in picker["options"])
    status, answer = await submit(harness, view, "Hi Bob, a courier is on the way today. Sorry!")
    assert (status, answer) == (200, "")
    await harness.settle()
    [reply] = harness.replies()
    assert reply["text"] == "Hi Bob, a courier is on the way today. Sorry!"
    assert "a courier is on the way" in str(harness.triage_message(thread)["blocks"])


async def test_choosing_a_template_replaces_the_text(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    view = await open_modal(harness, thread)
    body = payloads.form(payloads.modal_action(view, "inbox_template", "billing.fr", user=AGENT))
    assert (await harness.post(body, payloads.signed(body)))[0] == 200
    await harness.slack.tasks.drain(5)
    [update] = harness.fake.called("views.update")
    assert update["view_id"] == view["id"] and update["hash"] == view["hash"]
    new_box = reply_box(update["view"])
    assert new_box["block_id"] != reply_box(view)["block_id"]  # a new block id, so Slack shows the new text
    assert new_box["element"]["initial_value"].startswith("Bonjour Bob")


async def test_too_long_or_empty_keeps_the_modal_open_with_the_reason(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    view = await open_modal(harness, thread)
    status, answer = await submit(harness, view, "a" * 281)
    assert status == 200 and json.loads(answer)["response_action"] == "errors"
    assert "281 characters; X allows 280" in answer
    status, answer = await submit(harness, view, "   ")
    assert "The reply is empty" in answer
    await harness.settle()
    assert harness.replies() == [] and (await status_of(harness, thread))[0] == Status.NEW


async def test_a_submission_by_someone_not_allowed_sends_nothing(harness_factory):
    harness: Harness = await harness_factory(allowed_users=[AGENT])
    thread = await harness.customer_says("1")
    await harness.dispatch()
    view = await open_modal(harness, thread)
    await submit(harness, view, "Sneaky reply", user="UINTRUDER")
    await harness.settle()
    assert harness.replies() == [] and harness.ephemerals("UINTRUDER")


def thread_message(harness: Harness, thread_ts: str, text: str, *, user: str = AGENT) -> dict[str, Any]:
    return {
        "type": "message",
        "channel": TRIAGE,
        "user": user,
        "text": text,
        "ts": f"{thread_ts}1",
        "thread_ts": thread_ts,
        "channel_type": "channel",
    }


async def test_reply_prefix_in_the_slack_thread_sends_to_the_customer(harness: Harness):
    thread = await harness.customer_says("1")
    await harness.dispatch()
    parent = harness.triage_message(thread)["ts"]
    await harness.send_event(thread_message(harness, parent, "just a note for colleagues"))
    await harness.send_event(
        thread_message(harness, parent, "Reply: Sorry &amp; thanks, see <https://acme.example/track|tracking> &lt;3")
    )
    await harness.settle()
    [reply] = harness.replies()
    assert reply["text"] == "Sorry & thanks, see tracking (https://acme.example/track) <3"


async def test_a_retried_thread_event_sends_once_and_refusals_apply(harness_factory):
    harness: Harness = await harness_factory(allowed_users=[AGENT], reply_prefix="send:")
    thread = await harness.customer_says("1")
    await harness.dispatch()
    parent = harness.triage_message(thread)["ts"]
    await harness.send_event(thread_message(harness, parent, "send: not me", user="UINTRUDER"))
    event = thread_message(harness, parent, "send: On its way!")
    await harness.send_event(event, event_id="Ev0RETRY1")
    await harness.send_event(event, event_id="Ev0RETRY1", retry=1)
    await harness.settle()
    assert [r["text"] for r in harness.replies()] == ["On its way!"]
    assert harness.ephemerals() == []  # no "already answered" from a retry
    [refusal] = [c for c in harness.fake.called("chat.postEphemeral") if c["user"] == "UINTRUDER"]
    assert refusal["thread_ts"] == parent
