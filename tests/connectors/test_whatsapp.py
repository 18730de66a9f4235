"""The whatsapp connector against the local Cloud API fake: signed webhooks in through the real server, replies
out (text inside the 24-hour window, a template after it), statuses of our replies stored.

Payload shapes: inbox/fakes/data/whatsapp/SOURCE.md (Meta's webhook and send examples, captured deliveries).
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

from inbox.connector import AuthError, DeliveryState, Kind, PermanentError
from inbox.connectors.kit.meta import MissingPermission
from inbox.fakes.data import payload
from inbox.fakes.whatsapp import WhatsAppFake
from inbox.pipeline.poller import PollResult
from inbox.server import build_app
from inbox.store.models import Event, EventKind, Item, Pushed, Reply, ReplyStatus
from tests.conftest import close_connectors
from tests.connectors.contract import ConnectorContract, target_of
from tests.connectors.test_contract_builtin import NOT_FOR_FILES_OR_PUSHES, NOT_FOR_PUSHES

APP_SECRET = "wa-app-secret-0123456789"


@pytest.fixture(autouse=True)
def _triage_ready(triager):
    # `inbox run` loads the language models at start; a test's first push must not wait for them.
    triager.warm_up()


VERIFY_TOKEN = "wa-verify-token-0123456789"


def config(fake: WhatsAppFake, **extra: Any) -> dict[str, Any]:
    return {
        "name": "acme-wa",
        "type": "whatsapp",
        "api_url": fake.base_url,
        "phone_number_id": fake.phone_number_id,
        "access_token": fake.token,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "templates": {"fr": "suivi_conversation", "en_US": "follow_up_en"},
        **extra,
    }


@pytest.fixture
async def fake():
    fake = await WhatsAppFake(app_secret=APP_SECRET).start()
    yield fake
    await fake.close()


@pytest.fixture
def connector_config(fake: WhatsAppFake) -> dict[str, Any]:
    return config(fake)


class MetaPusher:
    """Delivers what the fake has pending as Meta does: signed webhook POSTs to the inbox's server, over a socket;
    then waits until the kept bodies are ingested."""

    def __init__(self, fake: WhatsAppFake, url: str, inbox: Any) -> None:
        self.fake, self.url, self.inbox = fake, url, inbox

    async def poll_once(self) -> PollResult:
        before = copy.copy(await self.inbox.pushes.settle())
        pages = 0
        for delivery in self.fake.take_deliveries():
            answer = await self.fake.deliver(self.url, delivery)
            assert answer.status == 200 and json.loads(answer.text)["kept"], answer.text
            pages += 1
        after = await self.inbox.pushes.settle()
        return PollResult(after.stored - before.stored, pages, 0.0, duplicates=after.duplicates - before.duplicates)


class TestWhatsAppContract(ConnectorContract):
    name = "acme-wa"

    @pytest.fixture
    async def poller(self, inbox: Any, fake: WhatsAppFake):
        async with TestServer(build_app(inbox)) as server:
            yield MetaPusher(fake, str(server.make_url("/webhooks/acme-wa")), inbox)

    async def test_incremental_poll_fetches_only_what_is_new(self, fake, poller, engine):
        # Meta delivers at least once: a delivery repeated is stored once.
        first = fake.add_customer_post("first", author="a")
        [delivery] = fake.take_deliveries()
        assert (await fake.deliver(poller.url, delivery)).status == 200
        await poller.inbox.pushes.settle()
        fake.pending_changes.append(delivery["entry"][0]["changes"][0])
        new = [fake.add_customer_post(f"new {n}", author=f"b{n}", minutes_ago=0.5) for n in range(2)]
        result = await poller.poll_once()
        assert (result.stored, result.duplicates) == (2, 1)
        assert await self.stored(engine) == sorted([first, *new])


# WhatsApp lists nothing (no fetch) and cannot look up a sent message (no find_reply): a send whose answer was lost
# is sent again by reply recovery. Those scenarios have no counterpart here; they are removed, not skipped.
for _name in (*NOT_FOR_FILES_OR_PUSHES, *NOT_FOR_PUSHES, "test_reply_after_a_crash_is_not_sent_twice"):
    if _name != "test_check_tries_the_credentials":
        setattr(TestWhatsAppContract, _name, None)


# --- the connector alone ----------------------------------------------------------------------------------------


@pytest.fixture
async def connector(fake, clock):
    from inbox import connectors as registry

    settings = registry.settings_model_for("whatsapp")
    assert settings is not None
    made = registry.connector_class("whatsapp")(settings.model_validate(config(fake)), clock=clock)
    yield made
    await made.close()


def recorded(name: str, phone_number_id: str) -> bytes:
    """A recorded delivery, aimed at the fake's phone number (the recordings carry their own ids)."""
    data = payload("whatsapp", name)
    for entry in data["entry"]:
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = phone_number_id
    return json.dumps(data).encode()


def test_a_recorded_text_message_becomes_a_dm_with_the_profile_name(connector, fake):
    push = connector.parse(recorded("whatsapp_text.json", fake.phone_number_id))
    [item] = push.items
    assert (item.external_id, item.text, item.kind) == ("ABGGFlA5Fpa", "this is a text message", Kind.DM)
    assert (item.author_handle, item.author_name, item.thread_id) == ("16315551181", "test user name", "16315551181")
    assert item.posted_at.timestamp() == 1504902988 and item.reply_to["to"] == "16315551181"


def test_media_comes_as_a_link_with_its_caption(connector, fake):
    data = json.loads(recorded("whatsapp_image_with_caption.json", fake.phone_number_id))
    data["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = "1750857384"
    [item] = connector.parse(json.dumps(data).encode()).items
    assert item.text == "This is a caption\n[image]"
    assert item.url == f"{fake.base_url}/v21.0/2754859441498128"


def test_statuses_become_delivery_reports(connector, fake):
    states = []
    for name in ("sent", "delivered", "read", "failed"):
        push = connector.parse(recorded(f"whatsapp_status_{name}.json", fake.phone_number_id))
        assert push.items == []
        states += push.deliveries
    assert [d.state for d in states] == [
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.READ,
        DeliveryState.FAILED,
    ]
    assert "131047" in (states[-1].error or "") and "24 hours" in (states[-1].error or "")


def test_another_numbers_events_and_account_errors_are_logged_not_stored(connector, caplog):
    with caplog.at_level(logging.WARNING):
        other = connector.parse(recorded("whatsapp_text.json", "999"))
        errors = connector.parse(recorded("whatsapp_webhook_errors.json", connector.settings.phone_number_id))
    assert other.items == [] and errors.items == [] and errors.deliveries == []
    assert any("another phone number" in r.getMessage() for r in caplog.records)
    assert any("130429" in r.getMessage() and "Rate limit hit" in r.getMessage() for r in caplog.records)


def test_a_broken_message_is_refused_the_others_kept(connector, fake):
    fake.add_customer_post("fine", author="33600000001")
    fake.add_broken_item()
    [delivery] = fake.take_deliveries()
    push = connector.parse(json.dumps(delivery).encode())
    assert [i.text for i in push.items] == ["fine"] and list(push.refused) == [1]
    assert push.problems == ["messages[1]: missing from"]


async def test_a_reply_inside_the_window_is_one_text_to_the_customer(connector, fake):
    wamid = fake.add_customer_post("Bonjour, ma commande ?", author="33612345678", minutes_ago=60)
    [item] = connector.parse(json.dumps(fake.take_deliveries()[0]).encode()).items
    sent = await connector.reply(target_of(item), "Bonjour, elle part demain.")
    [call] = fake.calls_to("POST", f"{fake.phone_number_id}/messages")
    assert call.token == fake.token and call.path == f"/v21.0/{fake.phone_number_id}/messages"
    assert call.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "33612345678",
        "type": "text",
        "text": {"preview_url": False, "body": "Bonjour, elle part demain."},
    }
    assert sent.external_id == fake.replies[0].details["id"] and fake.replies[0].target == wamid
    assert target_of(item).window_closes_at is None  # the connector reads the window from the message's own time


async def test_after_the_window_the_template_for_the_customers_language_goes_out(connector, fake, clock):
    fake.add_customer_post("Bonjour ?", author="33612345678", minutes_ago=25 * 60)
    [item] = connector.parse(json.dumps(fake.take_deliveries()[0]).encode()).items
    target = target_of(item)
    french = type(target)(**{**{f: getattr(target, f) for f in target.__dataclass_fields__}, "language": "fr"})
    note = connector.after_window(Kind.DM, "fr")
    assert note is not None and "window closed" in note and "suivi_conversation" in note and "(fr)" in note
    await connector.reply(french, "Bonjour, elle part demain.")
    [call] = fake.calls_to("POST", f"{fake.phone_number_id}/messages")
    assert call.body["type"] == "template" and call.body["to"] == "33612345678"
    assert call.body["template"] == {"name": "suivi_conversation", "language": {"code": "fr"}}
    # A regional template serves its language: en → en_US.
    english = type(target)(**{**{f: getattr(target, f) for f in target.__dataclass_fields__}, "language": "en"})
    await connector.reply(english, "Hello")
    assert fake.sent[-1]["template"]["language"] == {"code": "en_US"}


async def test_after_the_window_without_a_template_the_send_is_refused_before_any_call(connector, fake):
    fake.add_customer_post("Buna ziua", author="40712345678", minutes_ago=30 * 60)
    [item] = connector.parse(json.dumps(fake.take_deliveries()[0]).encode()).items
    target = target_of(item)
    romanian = type(target)(**{**{f: getattr(target, f) for f in target.__dataclass_fields__}, "language": "ro"})
    assert connector.after_window(Kind.DM, "ro") is None  # so the inbox refuses the send in Slack
    with pytest.raises(PermanentError, match=r"24-hour WhatsApp window closed.*language ro.*en_US, fr"):
        await connector.reply(romanian, "Buna ziua")
    assert fake.calls_to("POST", f"{fake.phone_number_id}/messages") == []


async def test_check_reads_the_number_and_names_a_missing_permission(connector, fake):
    assert "Acme Support" in await connector.check() and "nothing to poll" in await connector.check()
    assert fake.calls[-1].query == {"fields": "display_phone_number,verified_name"}
    fake.faults.append(fake.fault_permission())
    with pytest.raises(MissingPermission, match="whatsapp_business_messaging"):
        await connector.check()
    fake.faults.append(fake.fault_unauthorized())
    with pytest.raises(AuthError):
        await connector.check()


# --- through the real server ------------------------------------------------------------------------------------


@pytest.fixture
async def served(inbox_factory, fake):
    inbox = inbox_factory(connectors=[config(fake)])
    async with TestServer(build_app(inbox)) as server:
        yield inbox, str(server.make_url("/webhooks/acme-wa"))
    await inbox.close()


async def stored_ids(engine) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(sa.select(Item.external_id))).scalars())


@pytest.mark.parametrize("signature", [None, "", "sha256=deadbeef", "wrong secret"])
async def test_a_missing_or_wrong_signature_is_401_and_nothing_stored(served, fake, engine, signature):
    _, url = served
    fake.add_customer_post("hello", author="33611111111")
    [delivery] = fake.take_deliveries()
    if signature == "wrong secret":
        answer = await fake.deliver(url, delivery, secret="another-app-secret-0123")
    else:
        answer = await fake.deliver(url, delivery, signature=signature)
    assert answer.status == 401
    await served[0].pushes.settle()
    assert await stored_ids(engine) == []
    assert (await fake.deliver(url, delivery)).status == 200
    await served[0].pushes.settle()
    assert len(await stored_ids(engine)) == 1


async def test_the_handshake_echoes_the_challenge_for_the_right_token_only(served, fake):
    _, url = served
    right = await fake.verify_subscription(url, VERIFY_TOKEN, challenge="1158201444")
    assert (right.status, right.text) == (200, "1158201444") and right.headers["Content-Type"].startswith("text/plain")
    assert (await fake.verify_subscription(url, "not-the-verify-token-0000")).status == 403


async def test_a_delivery_of_statuses_only_is_acknowledged_and_a_failed_reply_stored(served, fake, engine, clock):
    inbox, url = served
    fake.add_customer_post("Where is my parcel?", author="33622222222", minutes_ago=5)
    for delivery in fake.take_deliveries():
        assert (await fake.deliver(url, delivery)).status == 200
    await inbox.pushes.settle()
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Item.thread_id))).scalar_one()
    outcome = await inbox.actions.reply(thread, "It ships today.", "ana")
    assert outcome.status == "sent"
    wamid = outcome.external_id
    fake.pending_changes.clear()
    for state in ("delivered", "sent", "failed", "read"):  # out of order, as Meta may deliver them
        fake.pending_changes.append(fake.status_change(wamid, state, "33622222222", error=131026))
    for delivery in fake.take_deliveries():
        answer = await fake.deliver(url, delivery)
        assert answer.status == 200 and json.loads(answer.text)["deliveries"] == 1
    assert (await inbox.pushes.settle()).failed_replies == 1
    async with engine.connect() as conn:
        reply = (await conn.execute(sa.select(Reply))).one()
        events = (
            await conn.execute(sa.select(Event.kind, Event.payload).where(Event.kind == EventKind.REPLY_FAILED))
        ).all()
    assert (reply.status, reply.delivery) == (ReplyStatus.FAILED, "failed") and "131026" in reply.error
    assert [(e.kind, e.payload["reply_id"]) for e in events] == [(EventKind.REPLY_FAILED, reply.id)]
    # The failed reply may be sent again (the customer is still waiting).
    clock.advance(minutes=1)
    again = await inbox.actions.reply(thread, "It ships today (resent).", "ana")
    assert again.status == "sent" and len(fake.replies) == 2


async def test_healthz_says_there_is_nothing_to_poll(served, fake):
    inbox, url = served
    import aiohttp

    async with aiohttp.ClientSession() as http, http.get(url.replace("/webhooks/acme-wa", "/healthz")) as response:
        body = await response.json()
    entry = body["connectors"]["acme-wa"]
    assert entry["type"] == "whatsapp" and entry["polling"].startswith("nothing to poll")
    assert "acme-wa" not in inbox.pollers


def test_reply_limit_and_window_come_from_the_channel_registry(connector):
    from inbox.connector import CHANNELS, display_name, reply_limit

    assert display_name("whatsapp") == "WhatsApp" and reply_limit("whatsapp", Kind.DM) == 4096
    assert (
        CHANNELS["whatsapp"].reply_windows[Kind.DM].standard == timedelta(hours=24)
        and connector.reply_limit(Kind.DM) == 4096
    )


async def test_a_delivery_kept_by_a_worker_that_died_is_ingested_by_another(inbox_factory, fake, engine, clock):
    from inbox.store import pushes

    fake.add_customer_post("Bonjour ?", author="33633333333")
    [delivery] = fake.take_deliveries()
    # Kept and answered 200 by a worker that stopped before ingesting it (and whose claim has run out).
    await pushes.add(engine, [("acme-wa", json.dumps(delivery))], clock.now)
    async with engine.begin() as conn:
        await conn.execute(sa.update(Pushed).values(claimed_by="dead-worker", claimed_until=clock.now))
    clock.advance(seconds=1)
    other = inbox_factory(connectors=[config(fake)])
    try:
        intake = await other.pushes.ingest()
        assert (intake.bodies, intake.stored) == (1, 1)
        assert await pushes.waiting(engine) == 0 and len(await stored_ids(engine)) == 1
        assert (await other.pushes.ingest()).bodies == 0
    finally:
        await close_connectors(other)
