"""`/inbox queue|stats|connectors` and the App Home: the same live dashboard."""

from __future__ import annotations

import json
from datetime import timedelta

from inbox.fakes import slack_payloads as payloads
from inbox.slack.dashboard import percentile, sla_stats
from tests.slack.conftest import AGENT, Harness


async def command(harness: Harness, text: str, user: str = AGENT) -> dict:
    body = payloads.slash(text, user=user, response_url=harness.fake.response_url())
    status, answer, _ = await harness.post(body, payloads.signed(body))
    assert (status, answer) == (200, "")
    await harness.slack.tasks.drain(5)
    return harness.fake.responses[-1]


def test_percentiles_are_nearest_rank():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert percentile(values, 0.9) == 9 and percentile(values, 0.5) == 5 and percentile([7], 0.9) == 7


async def answered(harness: Harness, external_id: str, minutes_ago: float) -> None:
    thread = await harness.customer_says(external_id, handle=f"c{external_id}", minutes_ago=minutes_ago)
    assert (await harness.inbox.actions.reply(thread, "Thanks, on it.", AGENT)).status == "sent"


async def test_stats_give_todays_attainment_median_and_p90_per_channel(harness: Harness):
    for external_id, waited in [("1", 5), ("2", 10), ("3", 45), ("4", 20)]:
        await answered(harness, external_id, waited)
    await harness.customer_says("5", handle="c5", minutes_ago=3)  # no response yet: not counted
    stats = await sla_stats(harness.inbox.engine, harness.inbox.policies, harness.clock.now)
    assert (stats.responses, stats.within_target) == (4, 3)
    [x] = stats.channels
    assert (x.channel, x.median_minutes, x.p90_minutes) == ("x", 15, 45)
    tomorrow = await sla_stats(harness.inbox.engine, harness.inbox.policies, harness.clock.now + timedelta(days=1))
    assert tomorrow.responses == 0

    answer = await command(harness, "stats")
    shown = json.dumps(answer["blocks"])
    assert answer["response_type"] == "ephemeral"
    assert (
        "*75%* of first responses within target (3 of 4)" in shown
        and "median 15 min" in shown
        and "p90 45 min" in shown
    )


async def test_queue_lists_open_conversations_most_urgent_first(harness: Harness):
    await harness.customer_says("1", "thanks a lot, lovely service", handle="calm", minutes_ago=2)
    await harness.customer_says("2", "<!channel> where is my parcel", handle="late", minutes_ago=25)
    answer = await command(harness, "queue")
    shown = json.dumps(answer["blocks"])
    assert "Open queue (2)" in shown
    assert shown.index("@late") < shown.index("@calm")  # the warning first
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown


async def test_connectors_and_help(harness: Harness):
    answer = await command(harness, "connectors")
    assert "acme-x" in json.dumps(answer["blocks"])
    answer = await command(harness, "whatever")
    assert "/inbox queue" in answer["text"]


async def test_the_app_home_shows_the_dashboard(harness: Harness):
    await answered(harness, "1", 5)
    await harness.customer_says("2", handle="waiting")
    status, _, _ = await harness.send_event(
        {"type": "app_home_opened", "user": AGENT, "channel": "D0001", "tab": "home"}
    )
    assert status == 200
    await harness.slack.tasks.drain(5)
    [published] = harness.fake.called("views.publish")
    assert published["user_id"] == AGENT and published["view"]["type"] == "home"
    shown = json.dumps(published["view"]["blocks"])
    assert "SLA today" in shown and "Connectors" in shown and "Open queue (1)" in shown and "@waiting" in shown


async def test_guests_do_not_see_the_dashboard(harness: Harness):
    harness.fake.users["UGUEST001"] = {"is_ultra_restricted": True}
    answer = await command(harness, "queue", user="UGUEST001")
    assert "Guests cannot" in answer["text"] and "blocks" not in answer
