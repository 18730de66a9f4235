"""The x connector against a local X API v2 over real HTTP: the contract, the recorded payloads, DMs, threads and limits."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.connector import AuthError, Kind, PermanentError, RawItem, ReplyTarget, TransientError
from inbox.connectors.kit.xapi import weighted_length
from inbox.connectors.x import XConnector, XCursor, XSettings
from inbox.fakes.x import (
    ACCESS_TOKEN,
    ACCESS_TOKEN_SECRET,
    BEARER_TOKEN,
    CONSUMER_KEY,
    CONSUMER_SECRET,
    RECORDED_MENTIONS,
    TWEEPY_DEV,
    TWITTER,
    XFake,
    snowflake_time,
)
from inbox.pipeline.actions import ActionError
from inbox.store.cursors import load_cursor
from inbox.store.models import Item, Thread
from tests.conftest import close_connectors
from tests.connectors.contract import ConnectorContract

NAME = "acme-x"


def config(fake: XFake, **extra: Any) -> dict[str, Any]:
    """A `[[connectors]]` table for the fake's brand account."""
    table: dict[str, Any] = {
        "name": NAME,
        "type": "x",
        "api_url": fake.base_url,
        "bearer_token": BEARER_TOKEN,
        "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET,
        "access_token": ACCESS_TOKEN,
        "access_token_secret": ACCESS_TOKEN_SECRET,
        "user_id": fake.brand["id"],
    }
    table.update(extra)
    return table


@pytest.fixture
def fake(x_fake: XFake) -> XFake:
    return x_fake


@pytest.fixture
def connector_config(fake: XFake) -> dict[str, Any]:
    return config(fake)


@pytest.fixture
async def connector(fake: XFake) -> AsyncIterator[XConnector]:
    conn = XConnector(XSettings.model_validate(config(fake)))
    yield conn
    await conn.close()


async def fetch_all(connector: XConnector, cursor: XCursor | None = None) -> tuple[list[RawItem], XCursor | None, int]:
    items: list[RawItem] = []
    last, pages = cursor, 0
    async for page in connector.fetch(cursor):
        items += page.items
        last = page.cursor or last
        pages += 1
    return items, last, pages


class TestXContract(ConnectorContract):
    """The shared scenarios over X."""

    name = NAME


async def test_recorded_mentions_page_maps_to_raw_items() -> None:
    fake = XFake(brand=TWITTER)
    fake.load_recorded_mentions()
    await fake.start()
    connector = XConnector(
        XSettings.model_validate({**config(fake), "user_id": TWITTER["id"], "first_poll_hours": 24 * 365 * 10})
    )
    try:
        items, cursor, _ = await fetch_all(connector)
    finally:
        await connector.close()
        await fake.close()
    newest, oldest = (post["id"] for post in RECORDED_MENTIONS["data"])
    assert [i.external_id for i in items] == [newest, oldest]  # newest first, as recorded
    assert [i.text for i in items] == [post["text"] for post in RECORDED_MENTIONS["data"]]
    assert items[1].text.startswith(".@Twitter #PBS says we aren\u2019t getting")
    first = items[0]
    # The platform's clock: the post's created_at (its snowflake time), seconds before the cassette's Date header.
    assert first.posted_at == datetime(2022, 10, 7, 23, 7, 22, 646000, tzinfo=UTC)
    assert abs(first.posted_at - snowflake_time(newest)) < timedelta(milliseconds=1)
    assert (first.kind, first.author_handle, first.author_name) == (Kind.MENTION, "dsa_member", "DSA member")
    assert first.url == f"https://x.com/dsa_member/status/{newest}"
    assert first.thread_id == "1578519883393372160:1463276403553046530"  # the conversation it replies in, per customer
    assert items[1].thread_id == f"{oldest}:1296179286101311489"  # starts its own conversation
    assert first.reply_to["in_reply_to_tweet_id"] == newest
    assert not (first.from_brand or first.is_repost)
    assert cursor is not None and cursor.since_id == RECORDED_MENTIONS["meta"]["newest_id"]


async def test_the_recorded_page_as_is_lacks_the_fields_we_ask_for_and_is_skipped_item_by_item(
    connector: XConnector, caplog: Any
) -> None:
    # The cassette's request asked for no fields: each post lacks author and time, so each is skipped, loudly.
    with caplog.at_level(logging.WARNING):
        items = [connector._tweet_item(post, {}, TWEEPY_DEV["id"]) for post in RECORDED_MENTIONS["data"]]
    assert items == [None, None]
    assert [r.getMessage() for r in caplog.records] == [
        f"{NAME}: skipped mention '{post['id']}': missing author_id" for post in RECORDED_MENTIONS["data"]
    ]


async def test_a_dm_arrives_and_is_answered_by_dm(fake: XFake, inbox_factory: Any, engine: Any) -> None:
    inbox = inbox_factory(connectors=[config(fake)])
    dm = fake.add_dm("my card was charged twice", author="dana", minutes_ago=3)
    await inbox.pollers[NAME].poll_once()
    async with engine.connect() as conn:
        item = (await conn.execute(sa.select(Item).where(Item.external_id == dm))).one()
        thread = (await conn.execute(sa.select(Thread).where(Thread.id == item.thread_id))).one()
    conversation = "-".join(sorted((TWEEPY_DEV["id"], fake.user("dana")["id"]), key=int))  # one-to-one: lower id first
    assert (item.kind, item.author_handle, thread.external_id) == ("dm", "dana", conversation)
    assert item.reply_to == {"dm_conversation_id": conversation, "sender_id": fake.user("dana")["id"]}
    outcome = await inbox.actions.reply(item.thread_id, "So sorry, Dana: the second charge is refunded.", "ana")
    assert outcome.status == "sent" and outcome.url == f"https://x.com/messages/{conversation}"
    assert fake.replies_by_kind["tweet"] == []
    [sent] = fake.replies_by_kind["dm"]
    assert (sent.target, sent.text, outcome.external_id) == (
        conversation,
        "So sorry, Dana: the second charge is refunded.",
        sent.details["id"],
    )
    # Our DM now sits in the DM events too: it is the brand's, not a new item.
    result = await inbox.pollers[NAME].poll_once()
    assert (result.error, result.stored) == (None, 0)
    await close_connectors(inbox)


async def test_a_dm_the_brand_answered_on_x_is_marked_answered_even_across_pages(
    fake: XFake, inbox_factory: Any, engine: Any
) -> None:
    dana = fake.user("dana")
    conversation = "-".join(sorted((TWEEPY_DEV["id"], dana["id"]), key=int))
    answered = fake.add_dm("is the shop open on Sunday?", author="dana", minutes_ago=50)
    fake.dm(TWEEPY_DEV["id"], conversation, "Yes, 10 to 4!", fake.now - timedelta(minutes=45))  # sent from the X app
    waiting = fake.add_dm("and on Monday?", author="dana", minutes_ago=10)
    others = [fake.add_dm(f"hello {n}", author=f"other{n}", minutes_ago=9 - n) for n in range(4)]
    connector = XConnector(XSettings.model_validate(config(fake, page_size=5)))
    try:
        items, _, pages = await fetch_all(connector)
    finally:
        await connector.close()
    by_id = {i.external_id: i for i in items}
    assert (
        pages == 3
    )  # mentions, then DMs over two pages: the brand's DM on the first, the one it answers on the second
    assert by_id[answered].answered_at == fake.now.replace(microsecond=0) - timedelta(minutes=45)
    assert [by_id[i].answered_at for i in (waiting, *others)] == [None] * 5

    inbox = inbox_factory(connectors=[config(fake, page_size=5)])
    await inbox.pollers[NAME].poll_once()
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Thread).where(Thread.external_id == conversation))).one()
    # The brand answered the first DM; the second waits, on the next-response clock.
    assert (thread.status, thread.clock_kind, thread.clock_start) == ("new", "next_response", by_id[waiting].posted_at)
    assert thread.first_response_at == by_id[answered].answered_at
    await close_connectors(inbox)


async def test_dms_take_long_replies_posts_do_not(fake: XFake, inbox_factory: Any, engine: Any) -> None:
    inbox = inbox_factory(connectors=[config(fake)])
    dm = fake.add_dm("how do I return this?", author="dana", minutes_ago=3)
    post = fake.add_customer_post("how do I return this?", author="eric", minutes_ago=3)
    await inbox.pollers[NAME].poll_once()
    long_answer = "Here is how returns work. " * 20  # 520 characters
    async with engine.connect() as conn:
        threads = dict((await conn.execute(sa.select(Item.external_id, Item.thread_id))).all())
    assert (await inbox.actions.reply(threads[dm], long_answer, "ana")).status == "sent"
    with pytest.raises(ActionError, match="allows 280"):
        await inbox.actions.reply(threads[post], long_answer, "ana")
    await close_connectors(inbox)


async def test_a_dm_reply_sent_before_a_crash_is_found_not_resent(fake: XFake, connector: XConnector) -> None:
    dm = fake.add_dm("where is my refund?", author="omar")
    items, _, _ = await fetch_all(connector)
    [item] = [i for i in items if i.external_id == dm]
    target = ReplyTarget(item.external_id, item.thread_id or "", Kind.DM, item.author_handle, item.reply_to)
    assert await connector.find_reply(target, "On its way, Omar!") is None
    fake.add_existing_reply(dm, "On its way, Omar!")
    found = await connector.find_reply(target, "On its way, Omar!")
    assert found is not None and found.external_id == fake.dm_events[-1]["id"]


async def test_retweets_and_the_brands_own_posts_are_flagged_not_items(fake: XFake, connector: XConnector) -> None:
    own, retweet = fake.add_brand_post("Winter sale!")
    customer = fake.add_customer_post("is the sale online too?", author="ioana")
    items, _, _ = await fetch_all(connector)
    flags = {i.external_id: (i.from_brand, i.is_repost) for i in items}
    assert flags == {own: (True, False), retweet: (False, True), customer: (False, False)}


async def test_a_reply_we_sent_that_names_the_brand_comes_back_flagged_from_brand(
    fake: XFake, connector: XConnector
) -> None:
    target = fake.add_customer_post("hello?", author="lee")
    items, cursor, _ = await fetch_all(connector)
    [item] = items
    sent = await connector.reply(
        ReplyTarget(target, item.thread_id or "", Kind.MENTION, "lee", item.reply_to), "Hi Lee, @TweepyDev here!"
    )
    items, _, _ = await fetch_all(connector, cursor)
    assert [(i.external_id, i.from_brand) for i in items] == [(sent.external_id, True)]


async def test_conversation_id_joins_a_follow_up_and_other_customers_get_their_own_thread(
    fake: XFake, inbox_factory: Any, engine: Any
) -> None:
    inbox = inbox_factory(connectors=[config(fake)])
    first = fake.add_customer_post("my parcel is late", author="maria", minutes_ago=9)
    await inbox.pollers[NAME].poll_once()
    follow = fake.add_customer_post("any news?", author="maria", minutes_ago=5, reply_to=first)
    other = fake.add_customer_post("same here!", author="joao", minutes_ago=4, reply_to=follow)
    await inbox.pollers[NAME].poll_once()
    async with engine.connect() as conn:
        threads = dict((await conn.execute(sa.select(Item.external_id, Item.thread_id))).all())
        keys = dict((await conn.execute(sa.select(Thread.id, Thread.external_id))).all())
    assert threads[first] == threads[follow] != threads[other]
    maria, joao = fake.user("maria")["id"], fake.user("joao")["id"]
    assert {keys[threads[first]], keys[threads[other]]} == {f"{first}:{maria}", f"{first}:{joao}"}
    await close_connectors(inbox)


async def test_429_waits_until_the_reset_x_sends(fake: XFake, inbox_factory: Any) -> None:
    inbox = inbox_factory(connectors=[config(fake)])
    fake.add_customer_post("hello", author="a")
    fake.faults.append(fake.fault_rate_limited(reset_in=600))
    started = time.monotonic()
    result = await inbox.pollers[NAME].poll_once()
    assert time.monotonic() - started < 5  # the core waits between polls; the connector never sleeps
    # The reset plus a second or two of jitter (X rounds its reset to the second).
    assert result.error is not None and "429" in result.error and 590 <= result.delay <= 603
    assert (await inbox.pollers[NAME].poll_once()).stored == 1
    await close_connectors(inbox)


async def test_a_spent_window_stops_before_asking_for_a_429(fake: XFake, connector: XConnector) -> None:
    fake.add_customer_post("one", author="a")
    fake.exhaust("mentions", reset_in=300)
    await fetch_all(connector)  # this answer says: 0 left until the reset
    asked = len(fake.fetch_requests())
    with pytest.raises(TransientError) as caught:
        await fetch_all(connector)
    assert len(fake.fetch_requests()) == asked  # nothing sent
    assert caught.value.retry_after is not None and 290 <= caught.value.retry_after <= 300


async def test_a_burst_over_many_pages_commits_the_cursor_only_on_the_last_page(
    fake: XFake, connector: XConnector
) -> None:
    ids = [fake.add_customer_post(f"burst {n}", author=f"u{n}", minutes_ago=30 - n / 10) for n in range(250)]
    cursors = [page.cursor async for page in connector.fetch(None)]
    assert len(cursors) == 4  # 3 pages of mentions, 1 of DMs
    assert cursors[:2] == [None, None] and cursors[2] is not None and cursors[2].since_id == max(ids, key=int)
    requests = [r for r in fake.fetch_requests() if r.path.endswith("/mentions")]
    assert [r.query.get("max_results") for r in requests] == ["100"] * 3
    assert "pagination_token" not in requests[0].query and all("pagination_token" in r.query for r in requests[1:])


async def test_the_first_poll_reaches_back_first_poll_hours_and_later_polls_keep_that_bound(
    fake: XFake, connector: XConnector
) -> None:
    old = fake.add_customer_post("from last week", author="old", minutes_ago=7 * 24 * 60)
    old_dm = fake.add_dm("old DM", author="old", minutes_ago=7 * 24 * 60)
    items, cursor, _ = await fetch_all(connector)
    assert items == [] and cursor is not None and cursor.since_id is None and cursor.start_time is not None
    recent = fake.add_customer_post("today", author="new", minutes_ago=1)
    items, cursor, _ = await fetch_all(connector, cursor)
    assert [i.external_id for i in items] == [recent] and old not in {i.external_id for i in items}
    assert cursor is not None and cursor.since_id == recent and old_dm not in {i.external_id for i in items}


async def test_dms_page_back_to_the_last_seen_event(fake: XFake, connector: XConnector) -> None:
    first = [fake.add_dm(f"dm {n}", author=f"d{n}", minutes_ago=60 - n / 10) for n in range(130)]
    items, cursor, _ = await fetch_all(connector)
    assert {i.external_id for i in items} == set(first)
    assert cursor is not None and cursor.dm_since_id == max(first, key=int)
    later = fake.add_dm("one more", author="d1", minutes_ago=0.5)
    dm_requests = len([r for r in fake.requests if r.path == "/2/dm_events"])
    items, cursor, _ = await fetch_all(connector, cursor)
    assert [i.external_id for i in items] == [later]
    # The newest page already reaches the last seen id: no paging back through the 130 old ones.
    assert len([r for r in fake.requests if r.path == "/2/dm_events"]) == dm_requests + 1


async def test_dms_off_reads_mentions_only(fake: XFake) -> None:
    connector = XConnector(XSettings.model_validate(config(fake, dms=False)))
    fake.add_dm("hello", author="x")
    try:
        items, _, _ = await fetch_all(connector)
    finally:
        await connector.close()
    assert items == [] and not [r for r in fake.requests if r.path == "/2/dm_events"]


async def test_without_user_id_the_account_is_looked_up_once(fake: XFake) -> None:
    table = config(fake)
    del table["user_id"]
    connector = XConnector(XSettings.model_validate(table))
    customer = fake.add_customer_post("hi", author="a")
    try:
        items, cursor, _ = await fetch_all(connector)
        await fetch_all(connector, cursor)
    finally:
        await connector.close()
    assert [i.external_id for i in items] == [customer]
    assert [r.path for r in fake.requests].count("/2/users/me") == 1


async def test_reads_use_the_bearer_token_and_writes_a_signed_user_context(fake: XFake, connector: XConnector) -> None:
    target = fake.add_customer_post("hi", author="a")
    items, _, _ = await fetch_all(connector)
    await connector.reply(ReplyTarget(target, items[0].thread_id or "", Kind.MENTION, "a", items[0].reply_to), "Hello!")
    schemes = {(r.method, r.path): r.headers["Authorization"].split(" ")[0] for r in fake.requests}
    assert schemes[("GET", f"/2/users/{TWEEPY_DEV['id']}/mentions")] == "Bearer"
    assert schemes[("GET", "/2/dm_events")] == "OAuth"  # X has no app-only access to DMs
    assert schemes[("POST", "/2/tweets")] == "OAuth"  # the fake checked the signature against api.twitter.com


async def test_without_a_bearer_token_reads_go_as_the_user(fake: XFake) -> None:
    table = config(fake)
    del table["bearer_token"]
    connector = XConnector(XSettings.model_validate(table))
    fake.add_customer_post("hi", author="a")
    try:
        items, _, _ = await fetch_all(connector)
    finally:
        await connector.close()
    assert len(items) == 1
    assert {r.headers["Authorization"].split(" ")[0] for r in fake.requests} == {"OAuth"}


async def test_a_wrong_consumer_secret_fails_the_signature_and_is_an_auth_error(fake: XFake) -> None:
    connector = XConnector(XSettings.model_validate(config(fake, consumer_secret="not-the-secret")))
    try:
        with pytest.raises(AuthError, match="401"):
            await connector.check()
    finally:
        await connector.close()


async def test_check_names_the_account_and_refuses_a_user_id_of_another_account(
    fake: XFake, connector: XConnector
) -> None:
    assert await connector.check() == (
        "@TweepyDev (Tweepy Testing), user id 1072250532645998596; reading mentions and DMs with the app bearer token"
    )
    other = XConnector(XSettings.model_validate(config(fake, user_id=783214)))
    try:
        with pytest.raises(PermanentError, match="not the account these tokens belong to"):
            await other.check()
    finally:
        await other.close()


async def test_a_reply_x_would_count_too_long_is_refused_before_sending(fake: XFake, connector: XConnector) -> None:
    target = fake.add_customer_post("日本に発送しますか?", author="yuki")
    items, _, _ = await fetch_all(connector)
    text = "はい、発送します。" * 16  # 144 characters, 288 as X counts them
    assert len(text) <= 280 and weighted_length(text) == 288
    with pytest.raises(PermanentError, match="X counts this reply as 288 characters"):
        await connector.reply(
            ReplyTarget(target, items[0].thread_id or "", Kind.MENTION, "yuki", items[0].reply_to), text
        )
    assert fake.replies == []


def test_weighted_length_counts_links_as_23_and_emoji_as_2() -> None:
    assert weighted_length("Track it at https://example.com/orders/12345678901234567890 thanks") == len(
        "Track it at "
    ) + 23 + len(" thanks")
    assert weighted_length("Merci ❤️") == 6 + 2
    assert weighted_length("’quotes’ and “these”") == len("’quotes’ and “these”")


async def test_x_refusing_a_reply_is_a_permanent_error_with_its_reason(fake: XFake, connector: XConnector) -> None:
    target = fake.add_customer_post("hi", author="a")
    items, _, _ = await fetch_all(connector)
    reply_target = ReplyTarget(target, items[0].thread_id or "", Kind.MENTION, "a", items[0].reply_to)
    await connector.reply(reply_target, "Hello!")
    with pytest.raises(PermanentError, match="duplicate content"):
        # X answers a second identical reply with 403: our find_reply exists so this never happens.
        await connector.reply(reply_target, "Hello!")


async def test_a_page_of_html_is_an_unexpected_shape(fake: XFake, connector: XConnector) -> None:
    fake.html_pages = 1
    with pytest.raises(PermanentError, match="not JSON"):
        await fetch_all(connector)


async def test_api_url_with_a_path_prefix_is_kept(fake: XFake) -> None:
    connector = XConnector(XSettings.model_validate(config(fake, api_url=fake.base_url + "/x-proxy/")))
    try:
        with pytest.raises(PermanentError, match="404"):
            await connector.check()
    finally:
        await connector.close()
    assert fake.requests[-1].path == "/x-proxy/2/users/me"


def test_settings_take_a_numeric_user_id_and_keep_secrets_secret(fake: XFake) -> None:
    settings = XSettings.model_validate(config(fake, user_id=783214))
    assert settings.user_id == "783214"
    assert CONSUMER_SECRET not in repr(settings) and ACCESS_TOKEN_SECRET not in str(settings.model_dump())
    for bad in ({"user_id": "@TweepyDev"}, {"api_url": "api.twitter.com"}, {"page_size": 500}):
        with pytest.raises(ValueError):
            XSettings.model_validate(config(fake, **bad))


async def test_no_secret_reaches_the_log_even_at_debug(fake: XFake, connector: XConnector, caplog: Any) -> None:
    fake.add_customer_post("hi", author="a")
    with caplog.at_level(logging.DEBUG):
        await fetch_all(connector)
    assert caplog.records and not any(
        secret in caplog.text for secret in (BEARER_TOKEN, CONSUMER_SECRET, ACCESS_TOKEN_SECRET, ACCESS_TOKEN)
    )


async def test_poll_stores_items_with_the_posts_time(fake: XFake, inbox_factory: Any, engine: Any, clock: Any) -> None:
    inbox = inbox_factory(connectors=[config(fake)])
    mention = fake.add_customer_post("where is order 1234?", author="ann", minutes_ago=12)
    await inbox.pollers[NAME].poll_once()
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Item).where(Item.external_id == mention))).one()
    assert row.text == "@TweepyDev where is order 1234?" and row.channel == "x"
    assert abs(row.posted_at.replace(tzinfo=UTC) - (clock.now - timedelta(minutes=12))) < timedelta(seconds=1)
    assert (await load_cursor(engine, NAME))["since_id"] == mention
    await close_connectors(inbox)


def test_registered_under_its_type() -> None:
    from inbox.connectors import connector_class

    assert connector_class("x") is XConnector
