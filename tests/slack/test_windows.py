"""Reply windows and reply modes in Slack: the window line kept true by chat.update, leads warned once, Send and
Edit refused with a private message once the window closed, and a private reply offered, sent once."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.slack.conftest import AGENT, LEADS, Harness
from tests.slack.test_editing import open_modal, submit


def window_line(harness: Harness, thread: int) -> str | None:
    for block in harness.triage_message(thread)["blocks"]:
        if block.get("block_id") == "reply_window":
            return str(block["text"]["text"])
    return None


def action_ids(harness: Harness, thread: int) -> list[str]:
    return [
        e["action_id"]
        for b in harness.triage_message(thread)["blocks"]
        for e in b.get("elements", [])
        if "action_id" in e
    ]


async def test_the_window_is_shown_warned_once_and_a_send_after_it_refused(harness: Harness):
    closes = harness.clock.now + timedelta(minutes=20)
    thread = await harness.customer_says("1", reply_window_closes_at=closes.isoformat())
    later = await harness.customer_says(
        "2", handle="eve", reply_window_closes_at=(closes + timedelta(hours=9)).isoformat()
    )
    await harness.dispatch()
    assert window_line(harness, thread) == ":hourglass_flowing_sand: X's reply window closes in 20 min"
    assert window_line(harness, later) is None  # its SLA deadline comes first
    # Within the lead (2 h by default): the leads are told once, however often the sweep runs.
    for _ in range(3):
        await harness.inbox.sweep.run()
        await harness.dispatch()
    [warning] = harness.fake.posted(LEADS)
    assert "Reply window closing" in warning["text"] and "X mention from @bob" in warning["blocks"][0]["text"]["text"]
    # It closes: the sweep marks it, and the same message is updated to say so.
    updates = len(harness.fake.called("chat.update"))
    harness.clock.advance(minutes=21)
    await harness.inbox.sweep.run()
    await harness.dispatch()
    assert len(harness.fake.called("chat.update")) > updates
    assert window_line(harness, thread) == ":no_entry: X's reply window closed 1 min ago: a reply can no longer be sent"
    posts = [m["text"] for m in harness.fake.posted(LEADS)]
    assert sum("Reply window closing" in t for t in posts) == 1  # no second window warning (SLA warnings came too)
    # Send and Edit: the agent is told, privately; nothing reaches the platform, no editor opens.
    for action in ("inbox_send", "inbox_edit"):
        assert (await harness.click(thread, action))[0] == 200
        await harness.settle()
    told = harness.ephemerals()
    assert len(told) == 2 and all(t.startswith("Not sent: X's reply window closed 1 min ago") for t in told), told
    assert harness.replies() == [] and harness.fake.called("views.open") == []
    # The other conversation's window is still open: it goes out.
    assert (await harness.click(later, "inbox_send"))[0] == 200
    await harness.settle()
    assert [r["in_reply_to"] for r in harness.replies()] == ["2"]


async def test_a_private_reply_is_offered_and_sent_once(harness: Harness):
    modes = [
        {"name": "private", "label": "Send privately", "closes_at": (harness.clock.now + timedelta(days=7)).isoformat()}
    ]
    thread = await harness.customer_says("1", reply_modes=modes)
    await harness.dispatch()
    ids = action_ids(harness, thread)
    assert {"inbox_send", "inbox_edit", "inbox_assign", "inbox_resolve", "inbox_send_private"} <= set(ids)
    value = harness.value_of(thread, "inbox_send_private")
    assert (await harness.click(thread, "inbox_send_private"))[0] == 200
    await harness.slack.tasks.drain(5)
    view = harness.fake.views[sorted(harness.fake.views)[-1]]
    assert view["title"]["text"] == "Send privately"
    assert (await submit(harness, view, "Hi Bob, we sent you the tracking link in private."))[0] == 200
    await harness.settle()
    # Clicked again from the message as it was drawn, and submitted: the platform takes one; none more is sent.
    assert (await harness.click(thread, "inbox_send_private", value=value))[0] == 200
    await harness.slack.tasks.drain(5)
    again = harness.fake.views[sorted(harness.fake.views)[-1]]
    assert (await submit(harness, again, "Once more"))[0] == 200
    await harness.settle()
    assert [(r["mode"], r["text"]) for r in harness.replies()] == [
        ("private", "Hi Bob, we sent you the tracking link in private.")
    ]
    assert any("already sent to this customer message" in t for t in harness.ephemerals(AGENT))


async def test_a_private_reply_after_its_window_is_refused_and_no_longer_offered(harness: Harness):
    modes = [
        {
            "name": "private",
            "label": "Send privately",
            "closes_at": (harness.clock.now + timedelta(hours=1)).isoformat(),
        }
    ]
    thread = await harness.customer_says("1", reply_modes=modes)
    await harness.dispatch()
    value = harness.value_of(thread, "inbox_send_private")
    harness.clock.advance(hours=2)
    assert (await harness.click(thread, "inbox_send_private", value=value))[0] == 200
    await harness.settle()
    assert any("“Send privately” was possible until" in t for t in harness.ephemerals())
    assert harness.fake.called("views.open") == [] and harness.replies() == []
    await harness.click(thread, "inbox_assign")  # any change redraws the message
    await harness.settle()
    assert "inbox_send_private" not in action_ids(harness, thread) and "inbox_send" in action_ids(harness, thread)
    assert "Send privately" not in json.dumps(harness.triage_message(thread)["blocks"])


async def test_a_modal_submission_carries_the_mode_it_was_opened_for(harness: Harness):
    # The ordinary editor still sends the ordinary reply.
    thread = await harness.customer_says("1")
    await harness.dispatch()
    view = await open_modal(harness, thread)
    assert json.loads(view["private_metadata"])["mode"] == "reply"
    assert (await submit(harness, view, "Hello Bob"))[0] == 200
    await harness.settle()
    assert [r["mode"] for r in harness.replies()] == ["reply"]


async def test_inbox_queue_in_slack_shows_the_window_when_nearer(harness: Harness):
    from tests.slack.test_dashboard import command

    await harness.customer_says(
        "1", handle="soon", reply_window_closes_at=(harness.clock.now + timedelta(minutes=9)).isoformat()
    )
    await harness.customer_says(
        "2", handle="later", reply_window_closes_at=(harness.clock.now + timedelta(hours=9)).isoformat()
    )
    shown = json.dumps((await command(harness, "queue"))["blocks"])
    assert shown.count("reply window closes in") == 1 and "X's reply window closes in 9 min" in shown
