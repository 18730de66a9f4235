"""Facebook and Instagram end to end: Meta-signed webhooks to the real server, the item in Slack, Send clicked, and
exactly one call on the right Graph endpoint with the right recipient (local Graph fakes, real HTTP)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.fakes import facebook as fb
from inbox.fakes import instagram as ig
from inbox.fakes.facebook import FacebookFake
from inbox.fakes.instagram import InstagramFake
from inbox.fakes.slack import FakeSlack
from inbox.store.models import Item
from inbox.triage import Triager
from tests.conftest import FakeClock
from tests.connectors.test_facebook import facebook_config
from tests.connectors.test_instagram import instagram_config
from tests.slack.conftest import TRIAGE, Harness, HarnessFactory, slack_config
from tests.slack.test_editing import submit

PSID = "6543210987654321"


async def started(fake: Any, clock: FakeClock) -> Any:
    """A Graph fake on the test's clock, started."""
    fake.clock = lambda: clock.now
    return await fake.start()


@pytest.fixture
async def facebook_fake(clock: FakeClock) -> AsyncIterator[FacebookFake]:
    fake = await started(FacebookFake(), clock)
    yield fake
    await fake.close()


@pytest.fixture
async def instagram_fake(clock: FakeClock) -> AsyncIterator[InstagramFake]:
    fake = await started(InstagramFake(), clock)
    yield fake
    await fake.close()


@pytest.fixture
async def harness(
    harness_factory: HarnessFactory,
    clock: FakeClock,
    triager: Triager,
    tmp_path: Path,
    fake_slack: FakeSlack,
    facebook_fake: FacebookFake,
    instagram_fake: InstagramFake,
) -> Harness:
    triager.warm_up()  # as `inbox run` does before it serves: a push is stored before its 200, within 5 s
    jsonl = slack_config(fake_slack, tmp_path)["connectors"]
    harness = await harness_factory(
        connectors=[*jsonl, facebook_config(facebook_fake), instagram_config(instagram_fake)]
    )
    for connector in harness.inbox.connectors.values():
        connector.clock = clock  # the platform's windows are read on the test's clock too
    return harness


async def pushed(harness: Harness, fake: Any, name: str, delivery: Any, external_id: str) -> int:
    """A signed delivery to /webhooks/NAME, answered 200, drawn in Slack; the item's thread id."""
    answer = await fake.deliver(f"{harness.url}/webhooks/{name}", delivery)
    assert answer.status == 200, answer.text
    await settled(harness)
    await harness.dispatch()
    async with harness.inbox.engine.connect() as conn:
        query = sa.select(Item.thread_id).where(Item.external_id == external_id)
        return (await conn.execute(query)).scalar_one()


async def settled(harness: Harness) -> None:
    """Wait for pushes stored before their 200 to be ingested (where the inbox keeps Meta's bodies first)."""
    keeper = getattr(harness.inbox, "pushes", None)  # the Meta branch's PushKeeper, once merged
    if keeper is not None:
        await keeper.settle()


async def send(harness: Harness, thread: int, *, clicks: int = 1) -> None:
    """Send clicked (again from the message as first drawn: a double click, or a click racing the update)."""
    value = harness.value_of(thread)
    for _ in range(clicks):
        assert (await harness.click(thread, "inbox_send", value=value))[0] == 200
        await harness.settle()


async def test_a_page_comment_is_answered_once_under_it(harness, facebook_fake):
    comment = facebook_fake.add_comment("Bonjour, ma commande n'est toujours pas arrivée", author=PSID)
    thread = await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.comment_delivery(comment), comment)
    assert "Facebook" in str(harness.triage_message(thread)["blocks"])
    await send(harness, thread, clicks=2)
    assert [(r.target, r.details["path"]) for r in facebook_fake.replies] == [(comment, f"/v21.0/{comment}/comments")]
    # The same comment polled later, and the Page's own reply delivered by webhook: nothing new in Slack.
    posted = len(harness.fake.posted(harness.inbox.settings.slack.triage_channel, in_thread=False))
    result = await harness.inbox.pollers["acme-facebook"].poll_once()
    assert result.error is None
    own = facebook_fake.replies[0].details["id"]
    assert (
        await facebook_fake.deliver(f"{harness.url}/webhooks/acme-facebook", facebook_fake.comment_delivery(own))
    ).status == 200
    await settled(harness)
    await harness.dispatch()
    assert len(harness.fake.posted(harness.inbox.settings.slack.triage_channel, in_thread=False)) == posted
    async with harness.inbox.engine.connect() as conn:
        stored = (await conn.execute(sa.select(Item.external_id).where(Item.connector == "acme-facebook"))).scalars()
        assert list(stored) == [comment]


async def test_send_privately_sends_one_private_reply_never_two(harness, facebook_fake):
    comment = facebook_fake.add_comment("Mon colis est arrivé cassé", author=PSID)
    thread = await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.comment_delivery(comment), comment)
    value = harness.value_of(thread, "inbox_send_private")
    for text in ("Pouvez-vous nous envoyer votre numéro de commande ?", "Encore une fois"):
        # The second time from the message as first drawn (the button is gone once the private reply went out).
        assert (await harness.click(thread, "inbox_send_private", value=value))[0] == 200
        await harness.slack.tasks.drain(5)
        view = harness.fake.views[sorted(harness.fake.views)[-1]]
        assert view["title"]["text"] == "Send privately"
        assert (await submit(harness, view, text))[0] == 200
        await harness.settle()
    assert facebook_fake.sends == [
        {
            "recipient": {"comment_id": comment},
            "message": {"text": "Pouvez-vous nous envoyer votre numéro de commande ?"},
        }
    ]
    assert [r.details["path"] for r in facebook_fake.replies] == [f"/v21.0/{fb.PAGE_ID}/messages"]
    assert any("already sent to this customer message" in t for t in harness.ephemerals())


async def test_a_messenger_message_is_answered_with_response_then_human_agent_then_refused(
    harness, facebook_fake, clock
):
    first = facebook_fake.add_message(PSID, "Bonjour, où en est ma commande 4512 ?", minutes_ago=1)
    thread = await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.message_delivery(first), first)
    await send(harness, thread)
    assert [(s["recipient"], s["messaging_type"], s.get("tag")) for s in facebook_fake.sends] == [
        ({"id": PSID}, "RESPONSE", None)
    ]
    # The customer writes again; the agent answers 30 hours later: only the Human Agent tag is allowed.
    again = facebook_fake.add_message(PSID, "Toujours rien reçu...", minutes_ago=0)
    assert await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.message_delivery(again), again) == thread
    clock.advance(hours=30)
    await send(harness, thread)
    assert [(s["messaging_type"], s.get("tag")) for s in facebook_fake.sends][1:] == [("MESSAGE_TAG", "HUMAN_AGENT")]
    # A third message, answered after 8 days: refused in Slack, nothing sent.
    third = facebook_fake.add_message(PSID, "Allô, vous êtes là ? Je n'ai toujours pas de réponse.", minutes_ago=0)
    await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.message_delivery(third), third)
    clock.advance(days=8)
    await send(harness, thread)
    assert len(facebook_fake.sends) == 2
    assert any(t.startswith("Not sent: Facebook's reply window closed") for t in harness.ephemerals())
    assert all(r.details["path"] == f"/v21.0/{fb.PAGE_ID}/messages" for r in facebook_fake.replies)


async def test_an_echo_is_never_an_item(harness, facebook_fake):
    answer = await facebook_fake.deliver(
        f"{harness.url}/webhooks/acme-facebook", facebook_fake.echo_delivery(PSID, "Merci !")
    )
    assert answer.status == 200
    await settled(harness)
    async with harness.inbox.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one() == 0


async def test_an_instagram_comment_is_answered_once_on_its_replies_edge(harness, instagram_fake):
    comment = instagram_fake.add_comment("Vous livrez en Roumanie ?")
    delivery = instagram_fake.comment_delivery(comment)
    thread = await pushed(harness, instagram_fake, "acme-instagram", delivery, comment)
    await send(harness, thread, clicks=2)
    assert [(r.target, r.details["path"]) for r in instagram_fake.replies] == [(comment, f"/v21.0/{comment}/replies")]


async def test_signatures_and_the_verification_handshake(harness, facebook_fake, instagram_fake):
    url = f"{harness.url}/webhooks/acme-facebook"
    delivery = facebook_fake.comment_delivery(facebook_fake.add_comment("Bonjour"))
    assert (await facebook_fake.deliver(url, delivery, secret="not-the-app-secret-0123")).status == 401
    assert (await facebook_fake.deliver(url, delivery, signature=None)).status == 401
    assert (await instagram_fake.deliver(url, delivery)).status == 401  # another app's secret
    async with harness.inbox.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one() == 0
    right = await facebook_fake.verify_subscription(url, fb.VERIFY_TOKEN, "1158201444")
    assert (right.status, right.text) == (200, "1158201444")
    assert (await facebook_fake.verify_subscription(url, "wrong-verify-token-0123")).status == 403
    ig_url = f"{harness.url}/webhooks/acme-instagram"
    assert (await instagram_fake.verify_subscription(ig_url, ig.VERIFY_TOKEN, "77")).text == "77"
    assert (await instagram_fake.verify_subscription(ig_url, fb.VERIFY_TOKEN)).status == 403


def customer_text(harness: Harness, thread: int) -> str:
    [text] = [
        b["text"]["text"] for b in harness.triage_message(thread)["blocks"] if b.get("block_id") == "customer_text"
    ]
    return str(text)


def suggestion(harness: Harness, thread: int) -> str:
    [text] = [b["text"]["text"] for b in harness.triage_message(thread)["blocks"] if b.get("block_id") == "suggestion"]
    return str(text)


def buttons(harness: Harness, thread: int) -> list[str]:
    return [
        e["action_id"]
        for b in harness.triage_message(thread)["blocks"]
        for e in b.get("elements", [])
        if "action_id" in e
    ]


async def test_an_edited_comment_is_redrawn_and_a_removed_one_is_never_answered(harness, facebook_fake):
    comment = facebook_fake.add_comment("Merci beaucoup, livraison super rapide !", author=PSID)
    url = f"{harness.url}/webhooks/acme-facebook"
    thread = await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.comment_delivery(comment), comment)
    first_drawn = harness.value_of(thread)
    first_suggestion = suggestion(harness, thread)
    # The customer edits the comment: the stored item takes the new text, is triaged again (the suggestion Send
    # would post answers the new text), and its Slack message is redrawn.
    # (A lost order: `delivery`. Not one that also asks for a refund, which a lead may file under `billing`.)
    edited = "Ma commande 4512 n'est jamais arrivée, le suivi ne bouge plus depuis 10 jours"
    facebook_fake.comments[-1]["message"] = edited
    assert (await facebook_fake.deliver(url, facebook_fake.comment_delivery(comment, "edited"))).status == 200
    await settled(harness)
    await harness.dispatch()
    assert customer_text(harness, thread) == edited
    async with harness.inbox.engine.connect() as conn:
        query = sa.select(Item.text, Item.intent).where(Item.external_id == comment)
        assert (await conn.execute(query)).all() == [(edited, "delivery")]
    assert suggestion(harness, thread) != first_suggestion
    notes = [json.dumps(m["blocks"]) for m in harness.fake.posted(TRIAGE, in_thread=True)]
    assert any("edited this on Facebook; it now says:" in n and "jamais arriv" in n for n in notes), notes
    # Then removes it: Slack says so, the send buttons go, and a click on the message as first drawn is refused.
    assert (await facebook_fake.deliver(url, facebook_fake.comment_delivery(comment, "remove"))).status == 200
    await settled(harness)
    await harness.dispatch()
    message = str(harness.triage_message(thread)["blocks"])
    assert "Removed by the customer on Facebook" in message
    notes = [json.dumps(m["blocks"]) for m in harness.fake.posted(TRIAGE, in_thread=True)]
    assert sum("removed this on Facebook" in n for n in notes) == 1
    assert "inbox_send" not in buttons(harness, thread) and "inbox_send_private" not in buttons(harness, thread)
    assert (await harness.click(thread, "inbox_send", value=first_drawn))[0] == 200
    await harness.settle()
    assert facebook_fake.replies == [] and facebook_fake.sends == []
    assert any("the customer removed this on Facebook" in t for t in harness.ephemerals())


async def test_a_messenger_senders_name_is_fetched_once_and_shown_in_slack(harness, facebook_fake):
    first = facebook_fake.add_message(PSID, "Bonjour, où en est ma commande 4512 ?", name="Luc Bernard")
    thread = await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.message_delivery(first), first)
    assert f"@{PSID} (Luc Bernard)" in str(harness.triage_message(thread)["blocks"])
    again = facebook_fake.add_message(PSID, "Toujours rien reçu...", minutes_ago=0)
    await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.message_delivery(again), again)
    # The User Profile API asked once for this sender (the webhook event carries only the PSID).
    assert [c.query["fields"] for c in facebook_fake.calls_to("GET", PSID)] == ["first_name,last_name"]


async def test_an_instagram_mention_is_fetched_right_after_its_delivery_and_answered(harness, instagram_fake):
    comment, _ = instagram_fake.add_mention("@acme.store vous livrez à Cluj ?", username="ioana.pop")
    delivery = instagram_fake.mention_delivery(comment)
    # No poll runs here: the text comes from the Graph call made once the delivery is stored.
    thread = await pushed(harness, instagram_fake, "acme-instagram", delivery, comment)
    assert "vous livrez à Cluj ?" in str(harness.triage_message(thread)["blocks"])
    await send(harness, thread)
    assert [r.details["path"] for r in instagram_fake.replies] == [f"/v21.0/{ig.IG_USER_ID}/mentions"]


async def test_a_profile_meta_refuses_leaves_the_psid_shown_and_the_message_stored(harness, facebook_fake):
    # The app lacks Business Asset User Profile Access: Meta refuses the profile (code 10), the message still arrives.
    facebook_fake.faults.append(facebook_fake.fault_permission())
    first = facebook_fake.add_message(PSID, "Bonjour, ma commande 4512 ?", name="Luc Bernard")
    thread = await pushed(harness, facebook_fake, "acme-facebook", facebook_fake.message_delivery(first), first)
    shown = str(harness.triage_message(thread)["blocks"])
    assert f"@{PSID}" in shown and "Luc Bernard" not in shown
