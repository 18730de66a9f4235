"""WhatsApp end to end: a signed Meta delivery into the running server, the triage message in the fake Slack, Send
clicked there, exactly one message out to the Cloud API fake; a failed status of that reply shown in Slack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from inbox.fakes.whatsapp import WhatsAppFake
from inbox.store.models import Item, Status, Thread
from inbox.triage import Triager
from tests.conftest import FakeClock, close_connectors
from tests.slack.conftest import TRIAGE, Harness, HarnessFactory

APP_SECRET = "wa-app-secret-0123456789"
CUSTOMER = "33612345678"


@pytest.fixture
def clock() -> FakeClock:
    # The connector reads the 24-hour window from the wall clock, as `inbox run` does.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def whatsapp(clock: FakeClock) -> AsyncIterator[WhatsAppFake]:
    fake = await WhatsAppFake(app_secret=APP_SECRET).start()
    fake.now = clock.now
    yield fake
    await fake.close()


@pytest.fixture
async def harness(harness_factory: HarnessFactory, triager: Triager, whatsapp: WhatsAppFake) -> AsyncIterator[Harness]:
    triager.warm_up()  # as `inbox run` does at start: the first delivery's triage must not load the models
    harness = await harness_factory(
        connectors=[
            {
                "name": "acme-wa",
                "type": "whatsapp",
                "api_url": whatsapp.base_url,
                "phone_number_id": whatsapp.phone_number_id,
                "access_token": whatsapp.token,
                "app_secret": APP_SECRET,
                "verify_token": "wa-verify-token-0123456789",
            }
        ]
    )
    yield harness
    await harness.inbox.pushes.close()
    await close_connectors(harness.inbox)


async def deliver_all(harness: Harness, fake: WhatsAppFake) -> None:
    for delivery in fake.take_deliveries():
        answer = await fake.deliver(f"{harness.url}/webhooks/acme-wa", delivery)
        assert answer.status == 200, answer.text
    await harness.inbox.pushes.settle()
    await harness.dispatch()


async def thread_of(harness: Harness, external_id: str) -> int:
    async with harness.inbox.engine.connect() as conn:
        return (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == external_id))).scalar_one()


async def test_a_message_in_send_clicked_one_text_out_to_the_customer(harness: Harness, whatsapp: WhatsAppFake):
    wamid = whatsapp.add_customer_post("Bonjour, où est ma commande 4411 ?", author=CUSTOMER, minutes_ago=3)
    await deliver_all(harness, whatsapp)
    thread = await thread_of(harness, wamid)
    shown = json.dumps(harness.triage_message(thread)["blocks"], ensure_ascii=False)
    assert "où est ma commande 4411" in shown and "WhatsApp" in shown and f"@{CUSTOMER}" in shown

    value = harness.value_of(thread)
    for _ in range(2):  # a double click (the second on the message as it was) sends once
        status, _, _ = await harness.click(thread, "inbox_send", value=value)
        assert status == 200
        await harness.settle()

    sends = whatsapp.calls_to("POST", f"{whatsapp.phone_number_id}/messages")
    assert len(sends) == 1
    [send] = sends
    assert send.path == f"/v21.0/{whatsapp.phone_number_id}/messages" and send.token == whatsapp.token
    assert (send.body["messaging_product"], send.body["to"], send.body["type"]) == ("whatsapp", CUSTOMER, "text")
    assert send.body["text"]["body"] and whatsapp.replies[0].target == wamid


async def test_a_reply_reported_failed_is_shown_in_slack_and_may_be_sent_again(
    harness: Harness, whatsapp: WhatsAppFake
):
    wamid = whatsapp.add_customer_post("Mon colis est abîmé", author=CUSTOMER, minutes_ago=3)
    await deliver_all(harness, whatsapp)
    thread = await thread_of(harness, wamid)
    status, _, _ = await harness.click(thread, "inbox_send")
    assert status == 200
    await harness.settle()
    sent = whatsapp.replies[0].details["id"]
    whatsapp.pending_changes.clear()
    whatsapp.pending_changes.append(whatsapp.status_change(sent, "failed", CUSTOMER, error=131026))
    await deliver_all(harness, whatsapp)

    message = json.dumps(harness.triage_message(thread)["blocks"], ensure_ascii=False)
    assert "did not deliver the reply" in message and "131026" in message
    notes = [
        m for m in harness.fake.posted(TRIAGE) if m.get("thread_ts") and "did not deliver your reply" in json.dumps(m)
    ]
    assert len(notes) == 1
    async with harness.inbox.engine.connect() as conn:
        assert (await conn.execute(sa.select(Thread.status).where(Thread.id == thread))).scalar_one() != Status.REPLIED
    # The buttons are back: Send delivers it again, once.
    status, _, _ = await harness.click(thread, "inbox_send")
    assert status == 200
    await harness.settle()
    assert len(whatsapp.calls_to("POST", f"{whatsapp.phone_number_id}/messages")) == 2
