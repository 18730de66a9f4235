"""Team leads and admins: SLA warning and breach once each, connector health once per change."""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa

from inbox.store.models import Event, EventKind
from tests.slack.conftest import ADMIN, AGENT, LEADS, TRIAGE, Harness


async def test_one_warning_and_one_breach_per_clock_with_permalink_wait_and_assignee(harness_factory, caplog):
    harness: Harness = await harness_factory(leads_group="SLEADS001")
    thread = await harness.customer_says("1", minutes_ago=1)
    await harness.dispatch()
    await harness.click(thread, "inbox_assign")
    await harness.settle()
    permalink = f"https://acme.slack.com/archives/{TRIAGE}/p{harness.triage_message(thread)['ts'].replace('.', '')}"

    with caplog.at_level(logging.WARNING, logger="inbox.escalations"):
        for _ in range(3):  # time passes; the sweep and the outbox run again and again
            harness.clock.advance(minutes=10)
            await harness.inbox.sweep.run()
            await harness.dispatch()
    [warning, breach] = harness.fake.posted(LEADS)
    assert "SLA warning" in warning["text"] and "SLA breach" in breach["text"]
    warning_line = warning["blocks"][0]["text"]["text"]
    assert f"<{permalink}|X mention from @bob>" in warning_line and "waited *21 min*" in warning_line
    assert f"Assignee: <@{AGENT}>" in warning_line and "subteam" not in warning_line
    breach_line = breach["blocks"][0]["text"]["text"]
    assert "waited *31 min*" in breach_line and "<!subteam^SLEADS001>" in breach_line
    assert "breached" in json.dumps(harness.triage_message(thread)["blocks"])
    assert [r.getMessage()[:11] for r in caplog.records] == ["SLA warning", "SLA BREACH:"]

    harness.clock.advance(minutes=30)
    await harness.inbox.sweep.run()
    await harness.dispatch()
    assert len(harness.fake.posted(LEADS)) == 2


async def test_a_breach_for_an_unassigned_thread_says_nobody(harness: Harness):
    thread = await harness.customer_says("1", minutes_ago=31)
    await harness.inbox.sweep.run()
    await harness.dispatch()
    [breach] = harness.fake.posted(LEADS)
    assert (
        "Assignee: nobody" in breach["blocks"][0]["text"]["text"]
        and "waited *31 min*" in breach["blocks"][0]["text"]["text"]
    )
    assert "breached" in json.dumps(harness.triage_message(thread)["blocks"])


async def health_event(harness: Harness, healthy: bool, reason: str | None) -> None:
    async with harness.inbox.engine.begin() as conn:
        await conn.execute(
            sa.insert(Event).values(
                kind=EventKind.CONNECTOR_HEALTH,
                payload={"connector": "acme-x", "healthy": healthy, "reason": reason},
                created_at=harness.clock.now,
                attempts=0,
            )
        )


async def test_connector_health_changes_are_announced_once_in_the_admin_channel(harness_factory):
    harness: Harness = await harness_factory(admin_channel=ADMIN)
    await health_event(harness, False, "credentials refused: <!channel> token revoked")
    await harness.dispatch()
    await harness.dispatch()
    await health_event(harness, True, None)
    await harness.dispatch()
    down, up = harness.fake.posted(ADMIN)
    assert "acme-x* is unhealthy" in down["blocks"][0]["text"]["text"]
    assert "<!channel>" not in json.dumps(down) and "&lt;!channel&gt;" in json.dumps(down)
    assert "healthy again" in up["text"]
    assert harness.fake.posted(LEADS) == []


async def test_without_an_admin_channel_health_goes_to_the_leads(harness: Harness):
    await health_event(harness, False, "3 failures in a row")
    await harness.dispatch()
    [notice] = harness.fake.posted(LEADS)
    assert "unhealthy" in notice["text"]
