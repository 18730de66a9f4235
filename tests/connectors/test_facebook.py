"""The facebook connector against a local Graph API: the contract, then webhooks (feed add/edited/remove, echoes,
the Page's own comments), polling (paging, the watermark) and the Send API by window, at connector level."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from rich.console import Console

from inbox.checks import run_checks
from inbox.connector import STANDARD_MODE, AuthError, ItemUpdate, Kind, PermanentError, ReplyTarget
from inbox.connectors.facebook import FacebookConnector, FacebookSettings
from inbox.connectors.kit.meta import sign
from inbox.connectors.kit.meta_social import PRIVATE
from inbox.fakes.data import payload
from inbox.fakes.facebook import APP_SECRET, PAGE_ID, TOKEN, VERIFY_TOKEN, FacebookFake
from inbox.fakes.vendor import Fault
from inbox.settings import ConfigError
from tests.conftest import make_settings
from tests.connectors.contract import ConnectorLevel, fetch_all, target_of
from tests.connectors.helpers import signed_push

NAME = "acme-facebook"


@pytest.fixture
async def fake(clock: Any) -> AsyncIterator[FacebookFake]:
    server = FacebookFake()
    server.clock = lambda: clock.now
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def connector_config(fake: FacebookFake) -> dict[str, Any]:
    return facebook_config(fake)


def facebook_config(fake: FacebookFake, **extra: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "facebook",
        "api_url": fake.base_url,
        "page_id": PAGE_ID,
        "page_access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        **extra,
    }


@pytest.fixture
async def facebook(fake: FacebookFake, clock: Any) -> AsyncIterator[FacebookConnector]:
    connector = FacebookConnector(FacebookSettings.model_validate(facebook_config(fake)), clock=clock)
    yield connector
    await connector.close()


class TestFacebookContract(ConnectorLevel):
    """The shared connector-level scenarios over the Graph fake (comments on the Page's post)."""

    name = NAME


def push(connector: FacebookConnector, delivery: Any) -> Any:
    # The signature needs only the app secret, which every fake shares: one that is not serving signs as well.
    return signed_push(FacebookFake(), connector, delivery)


# -- webhooks -------------------------------------------------------------------------------------------------------


def test_recorded_feed_comment_add_becomes_a_comment_with_a_private_reply(facebook, clock):
    delivery = payload("facebook", "facebook_feed_comment_add.json")
    [item] = push(facebook, delivery).items
    assert (item.external_id, item.kind, item.author_handle, item.author_name) == (
        "122131676912594941_1213590066999999",
        Kind.COMMENT,
        "6543210987654321",
        "Camille Martin",
    )
    assert item.text == "Bonjour, ma commande n'est toujours pas arrivée"
    assert item.posted_at.timestamp() == 1742667604 and item.thread_id == item.external_id
    [mode] = item.reply_modes
    assert (mode.name, mode.label, mode.closes_at) == (PRIVATE, "Send privately", item.posted_at + timedelta(days=7))


def test_the_pages_own_comment_and_other_feed_events_are_not_items_and_a_removal_marks_the_item(facebook):
    assert push(facebook, payload("facebook", "facebook_feed_comment_add_by_page.json")).items == []
    removed = push(facebook, payload("facebook", "facebook_feed_comment_remove.json"))
    assert removed.items == [] and removed.refused == {}
    assert removed.updates == [ItemUpdate("122131676912594941_1213590066999999", removed=True)]
    reaction = payload("facebook", "facebook_feed_comment_add.json")
    reaction["entry"][0]["changes"][0]["value"].update(item="reaction", verb="add")
    assert push(facebook, reaction).items == [] and push(facebook, reaction).updates == []


def test_an_edit_is_the_same_item_and_updates_its_text(facebook):
    [added] = push(facebook, payload("facebook", "facebook_feed_comment_add.json")).items
    edit = push(facebook, payload("facebook", "facebook_feed_comment_edited.json"))
    [edited] = edit.items  # an edit of a comment the inbox missed is still stored
    assert edited.external_id == added.external_id and "(n° 4512)" in edited.text
    assert edit.updates == [ItemUpdate(added.external_id, text=edited.text)]


def test_a_messenger_edit_updates_the_message_text(facebook):
    # The `message_edits` event as Meta's reference shows it (developers.facebook.com/documentation/business-messaging/
    # messenger-platform/webhooks/webhook-events/message-edits), ids from messenger_message.json.
    delivery = payload("facebook", "messenger_message.json")
    event = delivery["entry"][0]["messaging"][0]
    mid = event.pop("message")["mid"]
    event["message_edit"] = {"mid": mid, "text": "Finalement c'est la commande 4513", "num_edit": 1}
    edit = push(facebook, delivery)
    assert edit.items == [] and edit.updates == [ItemUpdate(mid, text="Finalement c'est la commande 4513")]


def test_a_reply_comment_joins_the_top_level_comments_thread(facebook):
    delivery = payload("facebook", "facebook_feed_comment_add.json")
    value = delivery["entry"][0]["changes"][0]["value"]
    value.update(comment_id="122131676912594941_1213590067000009", parent_id="122131676912594941_1213590066999999")
    [item] = push(facebook, delivery).items
    assert item.thread_id == "122131676912594941_1213590066999999" == item.reply_to["reply_on"]


def test_messenger_messages_are_dms_and_echoes_are_never_items(facebook, clock):
    [item] = push(facebook, payload("facebook", "messenger_message.json")).items
    assert (item.external_id, item.kind, item.author_handle, item.text) == (
        "mid.1457764197618:41d102a3e1ae206a38",
        Kind.DM,
        "<PSID>",
        "hello, world!",
    )
    assert item.posted_at.timestamp() == 1458692752.478 and item.reply_window_closes_at is None  # the registry's
    assert push(facebook, payload("facebook", "messenger_echo.json")).items == []
    # The older layout (sender = the user, is_echo set) is still an echo.
    echo = payload("facebook", "messenger_echo.json")
    echo["entry"][0]["messaging"][0]["sender"] = {"id": "USER_ID"}
    assert push(facebook, echo).items == []
    older = push(facebook, payload("facebook", "messenger_message_hackage.json"))
    assert [i.author_handle for i in older.items] == ["USER_ID"]


def test_a_misshapen_event_is_refused_by_position_and_the_rest_kept(facebook):
    delivery = payload("facebook", "facebook_feed_comment_add.json")
    broken = {"field": "feed", "value": {"item": "comment", "verb": "add", "comment_id": "1_2"}}
    delivery["entry"][0]["changes"].insert(0, broken)
    read = push(facebook, delivery)
    assert [i.external_id for i in read.items] == ["122131676912594941_1213590066999999"]
    assert list(read.refused) == [0] and read.problems[0].startswith("events[0]: ")


def test_without_the_human_agent_permission_a_dm_window_is_24_hours(fake, clock):
    settings = FacebookSettings.model_validate(facebook_config(fake, human_agent=False))
    connector = FacebookConnector(settings, clock=clock)
    [item] = push(connector, payload("facebook", "messenger_message.json")).items
    assert item.reply_window_closes_at == item.posted_at + timedelta(hours=24)
    assert item.extended_window_closes_at is None


def test_the_signature_is_required():
    body = b'{"object": "page", "entry": []}'
    connector = FacebookConnector(
        FacebookSettings.model_validate(facebook_config_stub()),
    )
    assert connector.verify(body, {"X-Hub-Signature-256": sign(APP_SECRET, body)})
    assert not connector.verify(body, {"X-Hub-Signature-256": sign("another-secret-0123456789", body)})
    assert not connector.verify(body, {})
    assert (
        connector.handshake({"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": VERIFY_TOKEN}).text
        == "42"
    )
    assert (
        connector.handshake({"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "x" * 20}).status
        == 403
    )


def facebook_config_stub() -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "facebook",
        "page_id": PAGE_ID,
        "page_access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
    }


# -- polling --------------------------------------------------------------------------------------------------------


async def test_a_comment_seen_by_webhook_and_by_poll_has_the_same_id(fake, facebook):
    comment = fake.add_comment("Vous livrez en Roumanie ?")
    [pushed] = push(facebook, fake.comment_delivery(comment)).items
    polled, _ = await fetch_all(facebook)
    assert [i.external_id for i in polled] == [pushed.external_id] == [comment]
    assert polled[0].thread_id == pushed.thread_id and polled[0].text == pushed.text


async def test_polls_walk_posts_comments_and_conversations_by_their_cursors(fake, facebook, clock):
    posts = [fake.add_post(f"post {n}", days_ago=(n + 1) / 10) for n in range(30)]  # two pages of posts
    comments = [fake.add_comment(f"comment {n}", post=posts[n % 30], minutes_ago=70 - n) for n in range(60)]
    messages = [fake.add_message(f"psid{n}", f"message {n}", minutes_ago=30 - n / 2) for n in range(30)]
    many = [fake.add_message("psid-chatty", f"again {n}", minutes_ago=20 - n / 4) for n in range(40)]
    items, cursor = await fetch_all(facebook)
    assert sorted(i.external_id for i in items) == sorted(comments + messages + many)
    assert {i.kind for i in items if i.external_id in messages} == {Kind.DM}
    post_pages = [c for c in fake.calls if c.path.endswith(f"{PAGE_ID}/posts")]
    assert [c.query.get("after") for c in post_pages] == [None, "25"]
    assert any(c.path.endswith("t_psid-chatty/messages") for c in fake.calls)  # the conversation's next page
    # From the cursor (five minutes before the last poll: what Meta lists late is still found): only what is new;
    # posts nobody commented on since are not asked for their comments.
    clock.advance(minutes=10)
    later = fake.add_comment("still there?", minutes_ago=0)
    fake.calls.clear()
    again, _ = await fetch_all(facebook, cursor)
    assert [i.external_id for i in again] == [later]
    assert len([c for c in fake.calls if c.path.endswith("/comments")]) == 1


async def test_the_pages_own_comments_and_messages_are_not_polled_as_items(fake, facebook):
    fake.add_brand_post("Merci à tous !")
    fake.add_message("psid1", "bonjour")
    await facebook.reply(
        ReplyTarget("m", "dm:psid1", Kind.DM, "psid1", {"psid": "psid1"}, window_closes_at=None), "Bonjour !"
    )
    items, _ = await fetch_all(facebook)
    assert [i.text for i in items] == ["bonjour"]


# -- replies --------------------------------------------------------------------------------------------------------


def dm_target(psid: str, at: Any, **windows: Any) -> ReplyTarget:
    return ReplyTarget("m_1", f"dm:{psid}", Kind.DM, psid, {"psid": psid, "at": at.timestamp()}, **windows)


async def test_messenger_replies_respond_inside_24_hours_then_use_the_human_agent_tag(fake, facebook, clock):
    fake.add_message("psid1", "où est ma commande ?", minutes_ago=0)
    now = clock.now
    windows = {"window_closes_at": now + timedelta(hours=24), "extended_window_closes_at": now + timedelta(days=7)}
    await facebook.reply(dm_target("psid1", now, **windows), "Bonjour, nous regardons.")
    clock.advance(hours=30)
    await facebook.reply(dm_target("psid1", now, **windows), "Votre colis est parti.")
    assert [(s["messaging_type"], s.get("tag"), s["recipient"]) for s in fake.sends] == [
        ("RESPONSE", None, {"id": "psid1"}),
        ("MESSAGE_TAG", "HUMAN_AGENT", {"id": "psid1"}),
    ]
    assert all(r.details["path"] == f"/v21.0/{PAGE_ID}/messages" for r in fake.replies)
    clock.advance(days=7)
    with pytest.raises(PermanentError, match="window"):
        await facebook.reply(dm_target("psid1", now, **windows), "Trop tard")
    assert len(fake.sends) == 2


async def test_meta_refuses_a_tagless_send_after_24_hours(fake, facebook, clock):
    fake.add_message("psid1", "allô ?", minutes_ago=60 * 25)
    target = dm_target("psid1", clock.now, window_closes_at=clock.now + timedelta(hours=1))  # a wrong window
    with pytest.raises(PermanentError, match="reply window"):
        await facebook.reply(target, "Bonjour")


async def test_a_comment_reply_and_a_private_reply_land_once_each(fake, facebook, clock):
    comment = fake.add_comment("Mon colis est cassé")
    [item] = push(facebook, fake.comment_delivery(comment)).items
    await facebook.reply(target_of(item), "Désolés ! Nous vous écrivons en privé.")
    private = ReplyTarget(
        item.external_id, item.thread_id or "", item.kind, item.author_handle, item.reply_to, mode=PRIVATE
    )
    await facebook.reply(private, "Pouvez-vous nous donner votre numéro de commande ?")
    assert [(r.target, r.details["path"]) for r in fake.replies] == [
        (comment, f"/v21.0/{comment}/comments"),
        (comment, f"/v21.0/{PAGE_ID}/messages"),
    ]
    assert fake.sends == [
        {
            "recipient": {"comment_id": comment},
            "message": {"text": "Pouvez-vous nous donner votre numéro de commande ?"},
        }
    ]
    with pytest.raises(PermanentError):  # Meta takes one private reply per comment
        await facebook.reply(private, "Encore ?")


async def test_find_reply_finds_the_pages_comment_and_message_after_a_crash(fake, facebook, clock):
    comment = fake.add_comment("Toujours rien")
    [item] = push(facebook, fake.comment_delivery(comment)).items
    assert await facebook.find_reply(target_of(item), "On s'en occupe") is None
    fake.add_existing_reply(comment, "On s'en occupe")
    assert (await facebook.find_reply(target_of(item), "On s'en occupe")) is not None
    mid = fake.add_message("psid9", "bonjour", minutes_ago=1)
    [dm] = push(facebook, fake.message_delivery(mid)).items
    target = target_of(dm)
    assert target.mode == STANDARD_MODE and await facebook.find_reply(target, "Bonjour !") is None
    await facebook.reply(target, "Bonjour !")
    assert (await facebook.find_reply(target, "Bonjour !")) is not None


async def test_check_names_the_missing_permission(fake, facebook):
    assert "Acme Store" in await facebook.check()
    fake.faults.append(Fault(200, {}, '{"id": "1", "name": "x"}'))  # the Page is read, its posts are not
    fake.faults.append(fake.fault_permission())
    with pytest.raises(AuthError, match="pages_read_engagement"):
        await facebook.check()
    fake.faults.append(fake.fault_permission("pages_messaging"))
    with pytest.raises(AuthError, match="lacks the permission pages_messaging"):
        await facebook.check()


async def test_a_broken_comment_is_logged_with_the_connector_name(fake, facebook, caplog):
    fake.add_broken_item()
    with caplog.at_level(logging.WARNING):
        items, _ = await fetch_all(facebook)
    assert items == [] and any(r.getMessage().startswith(f"{NAME}: skipped comment") for r in caplog.records)


async def test_inbox_check_names_the_permission_messenger_needs(fake, tmp_path):
    settings = make_settings(tmp_path, connectors=[facebook_config(fake)])
    page = Fault(200, {}, json.dumps({"id": PAGE_ID, "name": "Acme Store"}))
    fake.faults.extend([page, Fault(200, {}, '{"data": []}'), fake.fault_permission()])  # Meta names no permission
    out = io.StringIO()
    assert await run_checks(settings, Console(file=out, width=400)) == 1
    [line] = [line for line in out.getvalue().splitlines() if NAME in line]
    assert "FAIL" in line and "lacks the permission pages_messaging" in line
    out = io.StringIO()
    assert await run_checks(settings, Console(file=out, width=400)) == 0
    assert "Page Acme Store (448242228374517)" in out.getvalue()


def test_a_broken_config_names_every_problem_by_key_path(tmp_path):
    broken = {**facebook_config_stub(), "page_id": "my-page", "app_secret": "short", "page_size": 500}
    del broken["verify_token"]
    with pytest.raises(ConfigError) as refused:
        make_settings(tmp_path, connectors=[broken])
    problems = "\n".join(refused.value.problems)
    for key in ("page_id", "app_secret", "verify_token", "page_size"):
        assert f"connectors[{NAME}].{key}" in problems, problems
    assert "short" not in problems.replace("shorter", "")  # the secret itself is never echoed
