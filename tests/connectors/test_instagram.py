"""The instagram connector against a local Instagram Graph API: the contract, then webhooks (comments, mentions,
DMs and their echoes), polling of recent media's comments, and replies (comment replies, DMs, private replies)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from inbox.connector import AuthError, ItemUpdate, Kind, PermanentError, ReplyTarget
from inbox.connectors.instagram import InstagramConnector, InstagramSettings
from inbox.connectors.kit.meta_social import PRIVATE
from inbox.fakes.data import payload
from inbox.fakes.instagram import APP_SECRET, IG_USER_ID, TOKEN, VERIFY_TOKEN, InstagramFake
from tests.connectors.contract import ConnectorLevel, fetch_all, target_of
from tests.connectors.helpers import signed_push

NAME = "acme-instagram"


@pytest.fixture
async def fake(clock: Any) -> AsyncIterator[InstagramFake]:
    server = InstagramFake()
    server.clock = lambda: clock.now
    await server.start()
    yield server
    await server.close()


def instagram_config(fake: InstagramFake, **extra: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "instagram",
        "api_url": fake.base_url,
        "ig_user_id": IG_USER_ID,
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        **extra,
    }


@pytest.fixture
def connector_config(fake: InstagramFake) -> dict[str, Any]:
    return instagram_config(fake)


@pytest.fixture
async def instagram(fake: InstagramFake, clock: Any) -> AsyncIterator[InstagramConnector]:
    connector = InstagramConnector(InstagramSettings.model_validate(instagram_config(fake)), clock=clock)
    yield connector
    await connector.close()


class TestInstagramContract(ConnectorLevel):
    """The shared connector-level scenarios over the Instagram fake (comments on the account's media)."""

    name = NAME


def test_the_default_host_is_instagrams_and_names_its_permissions():
    settings = InstagramSettings.model_validate(
        {
            "name": NAME,
            "type": "instagram",
            "ig_user_id": IG_USER_ID,
            "access_token": TOKEN,
            "app_secret": APP_SECRET,
            "verify_token": VERIFY_TOKEN,
        }
    )
    connector = InstagramConnector(settings)
    assert connector.graph.base_url == "https://graph.instagram.com"
    assert connector.needs_comments == "instagram_business_manage_comments"
    on_facebook = InstagramConnector(settings.model_copy(update={"api_url": "https://graph.facebook.com"}))
    assert (on_facebook.needs_comments, on_facebook.messaging.needs) == (
        "instagram_manage_comments",
        "instagram_manage_messages",
    )


def test_recorded_comments_and_replies_become_items(fake, instagram):
    [item] = signed_push(fake, instagram, payload("instagram", "instagram_comment.json")).items
    assert (item.external_id, item.kind, item.author_handle, item.text, item.thread_id) == (
        "17865799348089039",
        Kind.COMMENT,
        "camille.mtn",
        "Vous livrez en Roumanie ?",
        "17865799348089039",
    )
    assert item.posted_at.timestamp() == 1733000000  # the entry's time: the comment carries none
    assert [m.name for m in item.reply_modes] == [PRIVATE]
    [reply] = signed_push(fake, instagram, payload("instagram", "instagram_comment_reply_to_comment.json")).items
    assert reply.thread_id == "17865799348089039" == reply.reply_to["reply_on"]


def test_own_comments_and_dm_echoes_are_skipped(fake, instagram):
    own = payload("instagram", "instagram_comment.json")
    own["entry"][0]["changes"][0]["value"]["from"] = {"id": IG_USER_ID, "username": "acme.store"}
    assert signed_push(fake, instagram, own).items == []
    assert signed_push(fake, instagram, payload("instagram", "instagram_message_echo.json")).items == []
    recorded = payload("instagram", "instagram_message.json")
    # Chatwoot's recorded event writes times as ISO 8601 (Meta sends epoch numbers): the envelope takes numbers only,
    # the event's own time is read either way.
    recorded["entry"][0]["time"] = 1631082844
    [dm] = signed_push(fake, instagram, recorded).items
    assert (dm.kind, dm.author_handle, dm.external_id, dm.text) == (
        Kind.DM,
        "Sender-id-1",
        "message-id-1",
        "This is the first message from the customer",
    )
    assert dm.posted_at.isoformat() == "2021-09-08T06:34:04+00:00"


async def test_a_mention_is_fetched_by_the_next_poll_and_answered_on_the_mentions_edge(fake, instagram):
    comment, media = fake.add_mention("@acme.store vous êtes ouverts dimanche ?")
    assert signed_push(fake, instagram, fake.mention_delivery(comment)).items == []
    items, _ = await fetch_all(instagram)
    [mention] = [i for i in items if i.kind == Kind.MENTION]
    assert (mention.external_id, mention.author_handle, mention.reply_modes) == (comment, "ioana.pop", [])
    await instagram.reply(target_of(mention), "Oui, de 10 h à 18 h !")
    [sent] = fake.replies
    assert (sent.target, sent.details["path"], sent.details["media_id"]) == (
        comment,
        f"/v21.0/{IG_USER_ID}/mentions",
        media,
    )
    again, _ = await fetch_all(instagram)
    assert [i for i in again if i.kind == Kind.MENTION] == []


async def test_a_comment_pushed_and_polled_is_one_id_and_replies_are_polled_too(fake, instagram):
    first = fake.add_comment("Livrez-vous à Cluj ?", minutes_ago=3)
    answer = fake.add_comment("et à Iași ?", minutes_ago=2, reply_to=first)
    [pushed] = signed_push(fake, instagram, fake.comment_delivery(first)).items
    items, _ = await fetch_all(instagram)
    by_id = {i.external_id: i for i in items}
    assert set(by_id) == {first, answer} and by_id[first].text == pushed.text
    assert by_id[answer].thread_id == first


async def test_replies_dms_and_private_replies_go_to_their_endpoints_once(fake, instagram, clock):
    comment = fake.add_comment("Mon colis ?")
    [item] = signed_push(fake, instagram, fake.comment_delivery(comment)).items
    await instagram.reply(target_of(item), "Nous regardons !")
    private = ReplyTarget(comment, comment, Kind.COMMENT, item.author_handle, item.reply_to, mode=PRIVATE)
    await instagram.reply(private, "Votre numéro de commande ?")
    mid = fake.add_message("igsid1", "bonjour", minutes_ago=60 * 30)
    [dm] = signed_push(fake, instagram, fake.message_delivery(mid)).items
    windows = {
        "window_closes_at": dm.posted_at + timedelta(hours=24),
        "extended_window_closes_at": dm.posted_at + timedelta(days=7),
    }
    target = ReplyTarget(mid, "dm:igsid1", Kind.DM, "igsid1", dm.reply_to, **windows)
    await instagram.reply(target, "Bonjour !")
    assert [(r.target, r.details["path"]) for r in fake.replies] == [
        (comment, f"/v21.0/{comment}/replies"),
        (comment, f"/v21.0/{IG_USER_ID}/messages"),
        ("igsid1", f"/v21.0/{IG_USER_ID}/messages"),
    ]
    assert [s["recipient"] for s in fake.sends] == [{"comment_id": comment}, {"id": "igsid1"}]
    assert (fake.sends[1]["messaging_type"], fake.sends[1]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")
    with pytest.raises(PermanentError):
        await instagram.reply(private, "encore")
    assert await instagram.find_reply(target_of(item), "Nous regardons !") is not None
    assert await instagram.find_reply(target, "Bonjour !") is not None


async def test_check_names_the_missing_comments_permission(fake, instagram):
    assert "@acme.store" in await instagram.check()
    fake.add_comment("hello")
    from inbox.fakes.vendor import Fault

    fake.faults.extend(
        [Fault(200, {}, '{"id": "1"}'), Fault(200, {}, '{"data": [{"id": "9"}]}'), fake.fault_permission()]
    )
    with pytest.raises(AuthError, match="instagram_business_manage_comments"):
        await instagram.check()


def test_an_unsent_dm_marks_the_stored_message_removed(fake, instagram):
    # Instagram's messaging webhook marks a message the customer unsent with `message.is_deleted` (Meta's
    # Instagram messaging webhook reference); the shape is instagram_message.json's with that message.
    delivery = payload("instagram", "instagram_message.json")
    delivery["entry"][0]["time"] = 1631082844  # as Meta sends it (the recording writes ISO 8601)
    delivery["entry"][0]["messaging"][0]["message"] = {"mid": "message-id-1", "is_deleted": True}
    unsent = signed_push(fake, instagram, delivery)
    assert unsent.items == [] and unsent.updates == [ItemUpdate("message-id-1", removed=True)]
