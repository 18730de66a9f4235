"""Bluesky end to end: a mention in the local PDS reaches Slack, Send posts one reply in the thread, a restart reuses the session.

The inbox runs with Slack on against the fake Slack, and a `bluesky` connector against the PDS + chat fake (real HTTP
both ways); the poller, the store, the outbox and the buttons are the real ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.fakes.bluesky import APP_PASSWORD, HANDLE, BlueskyFake
from inbox.store.models import Item
from tests.slack.conftest import AGENT, TRIAGE, Harness

NAME = "acme-bsky"


@pytest.fixture
async def pds() -> AsyncIterator[BlueskyFake]:
    server = await BlueskyFake().start()
    yield server
    await server.close()


@pytest.fixture
def start(clock, fake_slack, pds, harness_factory) -> Any:
    """Start an inbox with Slack and the bluesky connector; call again for a restart (a new process, same store)."""
    # The service builds connectors on the wall clock, and the PDS dates tokens by its own `now`: keep them together.
    clock.now = datetime.now(UTC).replace(microsecond=0)
    pds.now = clock.now
    config = {"name": NAME, "type": "bluesky", "api_url": pds.base_url, "handle": HANDLE, "app_password": APP_PASSWORD}
    return lambda: harness_factory(connectors=[config])


async def poll(harness: Harness, external_id: str) -> int:
    """One poll of the bluesky connector; the stored item's thread."""
    result = await harness.inbox.pollers[NAME].poll_once()
    assert result.error is None, result.error
    await harness.dispatch()
    async with harness.inbox.engine.connect() as conn:
        return (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == external_id))).scalar_one()


async def test_a_mention_is_answered_once_in_its_thread_and_a_restart_neither_logs_in_nor_replies_again(start, pds):
    harness: Harness = await start()
    root = pds.add_customer_post("ma commande #4512 n'est pas arrivée", author="camille", minutes_ago=20, langs=["fr"])
    first = await poll(harness, root)
    await harness.click(first, "inbox_send")
    await harness.settle()
    follow = pds.add_customer_post("toujours rien reçu", author="camille", reply_to=pds.replies[0].details["uri"])
    thread = await poll(harness, follow)
    assert thread == first  # the follow-up under our reply joins the conversation
    button = harness.value_of(thread)  # as drawn before the reply: a stale button clicked after the restart
    status, _, _ = await harness.click(thread, "inbox_send")
    assert status == 200
    await harness.settle()
    posts = [r for r in pds.requests if r.path == "/xrpc/com.atproto.repo.createRecord"]
    assert len(posts) == 2 and pds.calls["com.atproto.repo.createRecord"] == 2
    answer = pds.replies[1]
    assert (answer.target, answer.details["root"]) == (follow, root)  # parent: the follow-up; root: the first post
    assert "Replied by" in str(harness.triage_message(thread)["blocks"])
    assert pds.calls["com.atproto.server.createSession"] == 1

    # A restart: a new process on the same store finds the session in the cursor store, and the button sends nothing.
    again: Harness = await start()
    later = pds.add_customer_post("merci !", author="ioana")
    await poll(again, later)
    await again.click(thread, "inbox_send", value=button)
    await again.settle()
    assert pds.calls["com.atproto.server.createSession"] == 1
    assert pds.calls["com.atproto.repo.createRecord"] == 2
    assert any("already answered" in t for t in again.ephemerals(AGENT))


async def test_a_dm_is_answered_with_send_message_in_its_conversation(start, pds):
    harness: Harness = await start()
    message = pds.add_dm("Bonjour, un souci avec ma commande", author="camille", minutes_ago=5)
    thread = await poll(harness, message)
    shown = str(harness.triage_message(thread)["blocks"])
    assert "Bonjour, un souci avec ma commande" in shown and "Bluesky" in shown
    await harness.click(thread, "inbox_send")
    await harness.settle()
    [sent] = pds.replies
    assert sent.target == pds.convo_of(message) and pds.calls["chat.bsky.convo.sendMessage"] == 1
    assert pds.calls["com.atproto.repo.createRecord"] == 0
    assert len(harness.fake.posted(TRIAGE, in_thread=False)) == 1


async def test_without_dm_access_healthz_says_so_and_the_connector_stays_healthy(start, pds):
    pds.dm_access = False
    harness: Harness = await start()
    post = pds.add_customer_post("hello?")
    pds.add_dm("a DM it cannot read")
    await poll(harness, post)
    async with harness.http.get(f"{harness.url}/healthz") as response:
        body = await response.json()
    connector = body["connectors"][NAME]
    assert connector["healthy"] is True and connector["notes"] and "DMs are off" in connector["notes"][0]
