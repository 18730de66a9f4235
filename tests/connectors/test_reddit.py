"""The reddit connector against a local Reddit: the contract, plus OAuth, listings, subreddits, threads and replies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from inbox.connector import AuthError, Kind, PermanentError, ReplyTarget, TransientError
from inbox.connectors.reddit import Mark, RedditConnector, RedditSettings
from inbox.fakes.reddit import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    RECORDED_COMMENT_REPLY,
    RECORDED_MENTION,
    RECORDED_MESSAGE,
    RECORDED_MESSAGE_REPLY,
    USER_AGENT,
    USERNAME,
    RedditFake,
)
from tests.conftest import thread_of
from tests.connectors.contract import ConnectorLevel, fetch_all
from tests.connectors.helpers import answered_first_post, poll_in_a_new_process

NAME = "reddit-test"


@pytest.fixture
async def fake() -> AsyncIterator[RedditFake]:
    server = await RedditFake().start()
    yield server
    await server.close()


@pytest.fixture
def connector_config(fake: RedditFake) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "reddit",
        "api_url": fake.base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
        "user_agent": USER_AGENT,
        "subreddits": ["acme"],
        "brand_terms": ["Acme"],
    }


def connector_for(fake: RedditFake, **extra: Any) -> RedditConnector:
    config = {
        "name": NAME,
        "api_url": fake.base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "username": USERNAME,
        "password": PASSWORD,
        "user_agent": USER_AGENT,
        **extra,
    }
    return RedditConnector(RedditSettings(**config))


class TestRedditContract(ConnectorLevel):
    """The shared scenarios over the Reddit fake (inbox plus r/acme)."""

    name = NAME


# -- OAuth ------------------------------------------------------------------------------------------------------------


async def test_password_grant_then_bearer_calls_with_the_user_agent(fake):
    connector = connector_for(fake)
    try:
        assert await connector.check() == f"u/{USERNAME} via {fake.base_url.split('//')[1]}"
        await fetch_all(connector)
    finally:
        await connector.close()
    assert fake.token_requests == [{"grant_type": "password", "username": USERNAME, "password": PASSWORD}]
    assert fake.user_agents == {USER_AGENT}
    assert all(r.query.get("raw_json") == "1" for r in fake.requests if r.path != "/api/v1/access_token")
    assert [r.headers["Authorization"] for r in fake.requests if r.path == "/message/inbox"] == ["bearer tok-1"]


async def test_an_expired_token_is_replaced_once_on_401(fake):
    connector = connector_for(fake)
    try:
        await connector.check()
        fake.expire_tokens()
        assert await connector.check()
    finally:
        await connector.close()
    assert len(fake.token_requests) == 2
    assert [r.path for r in fake.requests] == [
        "/api/v1/access_token",
        "/api/v1/me",
        "/api/v1/me",
        "/api/v1/access_token",
        "/api/v1/me",
    ]


async def test_a_token_is_renewed_before_it_expires(fake):
    fake.token_ttl = 3600
    connector = connector_for(fake)
    try:
        await connector.check()
        connector.client.clock = lambda: time.time() + 3590  # within a minute of expiry
        await connector.check()
    finally:
        await connector.close()
    assert len(fake.token_requests) == 2 and all(
        r.path != "/api/v1/me" or r.headers["Authorization"] for r in fake.requests
    )


async def test_wrong_password_and_revoked_app_are_auth_errors(fake):
    connector = connector_for(fake, password="wrong")
    try:
        with pytest.raises(AuthError, match="invalid_grant"):
            await connector.check()
    finally:
        await connector.close()
    fake.revoked = True
    connector = connector_for(fake)
    try:
        with pytest.raises(AuthError, match="401"):
            await connector.check()
    finally:
        await connector.close()


def test_hosts_default_to_reddit_and_follow_api_url_or_auth_url():
    base = {"name": NAME, "client_id": "c", "client_secret": "s", "username": "u", "password": "p", "user_agent": "ua"}
    plain = RedditConnector(RedditSettings(**base))
    assert (plain.client.base_url, plain.auth.base_url) == ("https://oauth.reddit.com", "https://www.reddit.com")
    proxied = RedditConnector(RedditSettings(**base, api_url="http://proxy:8080/"))
    assert (proxied.client.base_url, proxied.auth.base_url) == ("http://proxy:8080", "http://proxy:8080")
    split = RedditConnector(RedditSettings(**base, api_url="http://api.local", auth_url="http://auth.local"))
    assert (split.client.base_url, split.auth.base_url) == ("http://api.local", "http://auth.local")
    with pytest.raises(ValueError, match="brand_terms"):
        RedditSettings(**base, subreddits=["acme"])
    assert RedditSettings(**base, subreddits=["r/acme", "/r/AcmeHelp"], brand_terms=["Acme"]).subreddits == [
        "acme",
        "AcmeHelp",
    ]


# -- mapping ----------------------------------------------------------------------------------------------------------


async def test_recorded_inbox_things_map_to_items(fake):
    for thing in (RECORDED_MENTION, RECORDED_COMMENT_REPLY, RECORDED_MESSAGE_REPLY, RECORDED_MESSAGE):
        fake.add_recorded(thing)
    connector = connector_for(fake, first_poll_hours=24 * 365 * 10)
    try:
        items, cursor = await fetch_all(connector)
    finally:
        await connector.close()
    by_id = {i.external_id: i for i in items}
    mention = by_id["t1_ekftage"]
    assert (mention.kind, mention.author_handle, mention.thread_id) == (Kind.MENTION, "2Botter2Loop", "t1_ekftage")
    assert mention.text.startswith("Hello /u/<USERNAME>,\n\nYour [submission](https://redd.it/bb1sef)")
    assert mention.posted_at == datetime.fromtimestamp(RECORDED_MENTION["data"]["created_utc"], UTC)
    assert (
        mention.url
        == "https://www.reddit.com/r/RemovedByBotter/comments/bb24fw/slowly_slowly_bonk_ok_nvm/ekftage/?context=3"
    )
    reply = by_id["t1_myngt77"]
    # Its parent (our comment) is unknown to this fake, so it starts its own conversation.
    assert (reply.kind, reply.text, reply.thread_id) == (Kind.COMMENT, "Reply", "t1_myngt77")
    assert reply.reply_to["parent_id"] == "t1_mynfuan"
    pm_reply = by_id["t4_30rw8tw"]
    assert (pm_reply.kind, pm_reply.thread_id, pm_reply.text) == (Kind.DM, "t4_30ru7t9", "reply")
    first_pm = by_id["t4_42oz8wy"]
    assert (first_pm.thread_id, first_pm.text) == ("t4_42oz8wy", "[direct chat room]\n\nMessage")
    assert first_pm.url == "https://www.reddit.com/message/messages/42oz8wy"
    assert cursor is not None and cursor.marks["inbox"] == Mark(name="t4_42oz8wy", created_utc=1759948311.0)


async def test_subreddit_posts_and_comments_that_name_the_brand(fake):
    connector = connector_for(fake, subreddits=["acme", "shopping"], brand_terms=["Acme", "ACME Corp"])
    try:
        _, cursor = await fetch_all(connector)
        post = fake.add_subreddit_post("Acme lost my parcel", body="Ordered on Monday.", author="pat")
        fake.add_subreddit_post("acmeish is not us", author="pat")
        elsewhere = fake.add_subreddit_post("Best shops?", sub="shopping", author="kim")
        comment = fake.add_subreddit_comment("try ACME corp, they ship fast", on=elsewhere, author="lee")
        fake.add_subreddit_comment("no thanks", on=elsewhere, author="max")
        fake.add_subreddit_post("Acme in a subreddit we do not watch", sub="other")
        items, cursor = await fetch_all(connector, cursor)
        again, _ = await fetch_all(connector, cursor)
    finally:
        await connector.close()
    assert {i.external_id: (i.kind, i.text) for i in items} == {
        post: (Kind.MENTION, "Acme lost my parcel\n\nOrdered on Monday."),
        comment: (Kind.COMMENT, "try ACME corp, they ship fast"),
    }
    assert set(cursor.marks) == {"posts", "comments"} and again == []  # an empty inbox has no mark yet
    paths = {r.path for r in fake.fetch_requests()}
    assert {"/r/acme+shopping/new", "/r/acme+shopping/comments", "/message/inbox"} <= paths


async def test_a_burst_pages_back_with_after_until_the_mark(fake):
    connector = connector_for(fake)
    try:
        fake.add_customer_post("before", minutes_ago=30)
        _, cursor = await fetch_all(connector)
        burst = [fake.add_customer_post(f"burst {n}", author=f"u{n}", minutes_ago=20 - n / 20) for n in range(250)]
        fake.requests.clear()
        pages = [page async for page in connector.fetch(cursor)]
    finally:
        await connector.close()
    queries = [r.query for r in fake.fetch_requests()]
    assert [q.get("after") for q in queries] == [None, pages[0].items[0].external_id, pages[1].items[0].external_id]
    assert all(q["limit"] == "100" and q["mark"] == "false" for q in queries)
    assert [p.cursor for p in pages[:-1]] == [None] * (len(pages) - 1)  # only the end of the walk is a safe cursor
    assert sorted(i.external_id for p in pages for i in p.items) == sorted(burst)
    assert pages[-1].cursor.marks["inbox"].name == burst[-1]


async def test_a_deleted_mark_is_passed_by_time(fake):
    connector = connector_for(fake)
    try:
        old = fake.add_customer_post("old", minutes_ago=30)
        mark = fake.add_customer_post("the mark", minutes_ago=20)
        _, cursor = await fetch_all(connector)
        fake.inbox.remove(mark)  # the author deleted it
        new = fake.add_customer_post("new", minutes_ago=1)
        items, cursor = await fetch_all(connector, cursor)
    finally:
        await connector.close()
    assert [i.external_id for i in items] == [new] and old != new
    assert cursor.marks["inbox"].name == new


async def test_a_private_subreddit_is_a_permanent_error_not_bad_credentials(fake):
    fake.forbidden_subs.add("secret")
    connector = connector_for(fake, subreddits=["secret"], brand_terms=["Acme"])
    try:
        with pytest.raises(PermanentError, match="r/secret/new is not readable"):
            await fetch_all(connector)
        assert await connector.check()  # the account itself is fine
    finally:
        await connector.close()


# -- threads ----------------------------------------------------------------------------------------------------------


async def test_follow_ups_join_the_conversation_after_a_restart(fake, inbox_factory, connector_config, engine):
    inbox = inbox_factory(connectors=[connector_config])
    thread, our_first = await answered_first_post(inbox, fake, engine, NAME, "Sorry! What is the order number?")
    # The customer answers our comment (no mention: a comment_reply), we answer, she answers again.
    second = fake.add_customer_post("it is 1234", author="maria", minutes_ago=5, reply_to=our_first["name"])
    fake.add_existing_reply(second, "Thanks, checking")
    our_second = next(n for n, t in fake.things.items() if t["data"].get("parent_id") == second)
    third = fake.add_customer_post("any news?", author="maria", minutes_ago=1, reply_to=our_second)
    # Nothing cached: the chain is read with /api/info.
    await poll_in_a_new_process(inbox_factory, connector_config)
    assert await thread_of(engine, second) == thread and await thread_of(engine, third) == thread
    assert any(r.path == "/api/info" for r in fake.requests)


async def test_private_message_conversations_are_one_thread_and_replies_go_back_as_messages(fake):
    first = fake.add_private_message("I was charged twice", author="zoe", minutes_ago=10)
    connector = connector_for(fake)
    try:
        items, cursor = await fetch_all(connector)
        target = target_of(items[0])
        sent = await connector.reply(target, "Sorry Zoe, refunding now.")
        follow = fake.add_customer_post("thanks!", author="zoe", minutes_ago=0, reply_to=sent.external_id)
        more, _ = await fetch_all(connector, cursor)
        found = await connector.find_reply(target, "Sorry Zoe, refunding now.")
        missing = await connector.find_reply(target, "something else")
    finally:
        await connector.close()
    assert items[0].kind == Kind.DM and items[0].text == "order problem\n\nI was charged twice"
    assert [(r.target, r.text, r.details["kind"], r.details["api_type"]) for r in fake.replies] == [
        (first, "Sorry Zoe, refunding now.", "t4", "json")
    ]
    assert [(i.external_id, i.thread_id) for i in more] == [(follow, first)]
    assert found == sent and missing is None


async def test_reply_refusals_map_to_errors(fake):
    fake.add_customer_post("hello")
    connector = connector_for(fake)
    try:
        items, _ = await fetch_all(connector)
        wait = "Looks like you've been doing that a lot. Take a break for 5 minutes before trying again."
        fake.comment_errors.append(["RATELIMIT", wait, "ratelimit"])
        with pytest.raises(TransientError) as limited:
            await connector.reply(target_of(items[0]), "hi")
        assert limited.value.retry_after == 300
        fake.comment_errors.append(["THREAD_LOCKED", "Comments are locked.", "parent"])
        with pytest.raises(PermanentError, match="THREAD_LOCKED"):
            await connector.reply(target_of(items[0]), "hi")
        gone = ReplyTarget("t1_zzzzzz", "t1_zzzzzz", Kind.COMMENT, "x", {})
        with pytest.raises(PermanentError, match="DELETED_COMMENT"):
            await connector.reply(gone, "hi")
    finally:
        await connector.close()
    assert fake.replies == []


# -- helpers ----------------------------------------------------------------------------------------------------------


def target_of(item: Any) -> ReplyTarget:
    return ReplyTarget(
        item.external_id, item.thread_id or item.external_id, item.kind, item.author_handle, item.reply_to
    )
