"""The bluesky connector against a local PDS and chat service: the contract, sessions, threads, facets, DMs, limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from inbox.checks import run_checks
from inbox.connector import AuthError, Kind, PermanentError, RateLimited, ReplyTarget
from inbox.connectors.bluesky import (
    NO_DMS,
    BlueskyConnector,
    BlueskyCursor,
    BlueskySettings,
    _posted_at,
    graphemes,
)
from inbox.fakes.bluesky import APP_PASSWORD, CHAT_PROXY, DID, HANDLE, RECORDED_NOTIFICATIONS, BlueskyFake
from tests.conftest import make_settings
from tests.connectors.contract import ConnectorLevel, fetch_all, target_of

NAME = "bluesky-test"


@pytest.fixture
async def fake() -> AsyncIterator[BlueskyFake]:
    server = await BlueskyFake().start()
    yield server
    await server.close()


@pytest.fixture
def connector_config(fake: BlueskyFake) -> dict[str, Any]:
    return {"name": NAME, "type": "bluesky", "api_url": fake.base_url, "handle": HANDLE, "app_password": APP_PASSWORD}


def connector_for(fake: BlueskyFake, clock: Any = None, **extra: Any) -> BlueskyConnector:
    settings = BlueskySettings(name=NAME, api_url=fake.base_url, handle=HANDLE, app_password=APP_PASSWORD, **extra)
    return BlueskyConnector(settings, clock=clock) if clock is not None else BlueskyConnector(settings)


class TestBlueskyLevel(ConnectorLevel):
    """The connector-level contract over the PDS fake."""

    name = NAME


# -- mapping of the recorded shapes ----------------------------------------------------------------------------------


async def test_recorded_mention_reply_and_quote_map_to_items(fake):
    for notification in RECORDED_NOTIFICATIONS["notifications"]:
        fake.add_recorded(notification)
    fake.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    connector = connector_for(fake, lambda: fake.now, first_poll_hours=24)
    try:
        items, cursor = await fetch_all(connector)
    finally:
        await connector.close()
    by_id = {i.external_id: i for i in items}
    assert len(by_id) == 3 and all(i.kind == Kind.MENTION and i.author_handle == "camille.bsky.social" for i in items)
    mention = by_id["at://did:plc:cust4n7xq2k3v5/app.bsky.feed.post/3lcmention111"]
    assert mention.text == "@acme.fr ma commande #4512 n'est pas arrivée 😡" and mention.author_name == "Camille"
    # The customer's time is the post's createdAt, not when the network indexed it.
    assert mention.posted_at == datetime(2026, 12, 1, 9, 14, 58, 123000, tzinfo=UTC)
    assert mention.url == "https://bsky.app/profile/did:plc:cust4n7xq2k3v5/post/3lcmention111"
    assert mention.reply_to["root"] == {"uri": mention.external_id, "cid": mention.reply_to["cid"]}
    assert mention.reply_to["langs"] == ["fr"]
    reply = by_id["at://did:plc:cust4n7xq2k3v5/app.bsky.feed.post/3lcreply2222"]
    # A reply under the brand's own post keeps that post as its root, and starts its own conversation with us.
    assert reply.reply_to["root"]["uri"] == "at://did:plc:brand2x6p5y7/app.bsky.feed.post/3lbrandroot22"
    assert reply.thread_id == reply.external_id
    assert [i.external_id for i in items] == sorted(by_id, key=lambda u: by_id[u].posted_at)  # oldest first
    assert cursor.notifications.at == datetime(2026, 12, 1, 9, 15, tzinfo=UTC)


def test_created_at_is_trusted_only_near_the_indexing_time():
    indexed = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert _posted_at(indexed - timedelta(seconds=3), indexed) == indexed - timedelta(seconds=3)
    assert _posted_at(indexed + timedelta(hours=2), indexed) == indexed  # a clock ahead: not the future
    assert _posted_at(indexed - timedelta(days=400), indexed) == indexed  # a backdated (imported) post


# -- sessions -----------------------------------------------------------------------------------------------------------


async def test_the_session_is_created_once_refreshed_on_expiry_and_reused_after_a_restart(fake, clock):
    fake.now = clock.now
    fake.add_customer_post("first", minutes_ago=5)
    connector = connector_for(fake, clock)
    try:
        _, cursor = await fetch_all(connector)
        assert [page async for page in connector.fetch(cursor)] == []  # nothing new: not even a cursor to write
        assert fake.calls["com.atproto.server.createSession"] == 1
        # Two hours on, the access token is near its end: atproto refreshes it (the refresh token rotates).
        clock.advance(hours=2)
        fake.now = clock.now
        later = fake.add_customer_post("later")
        items, cursor = await fetch_all(connector, cursor)
        assert [i.external_id for i in items] == [later]
        assert fake.calls["com.atproto.server.refreshSession"] == 1
        assert fake.calls["com.atproto.server.createSession"] == 1
    finally:
        await connector.close()
    assert cursor.session and "eyJ" not in cursor.session  # sealed: no token readable in the store
    restarted = connector_for(fake, clock)
    try:
        assert [page async for page in restarted.fetch(cursor)] == []  # the stored session, as stored
        newest = fake.add_customer_post("after the restart")
        items, _ = await fetch_all(restarted, cursor)
    finally:
        await restarted.close()
    assert [i.external_id for i in items] == [newest]
    assert fake.calls["com.atproto.server.createSession"] == 1  # the stored session was reused


async def test_a_session_sealed_with_another_app_password_is_not_used(fake, clock):
    fake.now = clock.now
    connector = connector_for(fake, clock)
    try:
        _, cursor = await fetch_all(connector)
    finally:
        await connector.close()
    other = BlueskyConnector(
        BlueskySettings(name=NAME, api_url=fake.base_url, handle=HANDLE, app_password=APP_PASSWORD + "-new"),
        clock=clock,
    )
    try:
        with pytest.raises(AuthError, match="Invalid identifier or password"):
            await fetch_all(other, cursor)
    finally:
        await other.close()


async def test_a_revoked_refresh_token_leads_to_one_new_login(fake, clock):
    fake.now = clock.now
    connector = connector_for(fake, clock)
    try:
        _, cursor = await fetch_all(connector)
        fake.access.clear()  # the PDS forgot the session (e.g. the account signed out everywhere)
        fake.refresh.clear()
        post = fake.add_customer_post("still there?")
        items, _ = await fetch_all(connector, cursor)
    finally:
        await connector.close()
    assert [i.external_id for i in items] == [post]
    assert fake.calls["com.atproto.server.createSession"] == 2


async def test_a_wrong_app_password_is_an_auth_error_naming_the_fix(fake):
    connector = BlueskyConnector(
        BlueskySettings(name=NAME, api_url=fake.base_url, handle=HANDLE, app_password="wrong-pass-word-0000")
    )
    try:
        with pytest.raises(AuthError) as refused:
            await connector.check()
    finally:
        await connector.close()
    assert "Invalid identifier or password" in str(refused.value) and "app password" in str(refused.value)
    assert "wrong-pass-word-0000" not in str(refused.value)


# -- threads and replies ------------------------------------------------------------------------------------------------


async def test_a_reply_carries_root_and_parent_refs_and_facets_with_byte_offsets(fake, clock):
    fake.now = clock.now
    first = fake.add_customer_post("ma commande est en retard", author="camille", langs=["fr"])
    connector = connector_for(fake, clock)
    try:
        items, cursor = await fetch_all(connector)
        ours = await connector.reply(target_of(items[0]), "Désolé ! Voir https://exemple.fr/suivi @camille.bsky.social")
        follow = fake.add_customer_post("toujours rien", author="camille", reply_to=ours.external_id)
        later, _ = await fetch_all(connector, cursor)
        answer = await connector.reply(target_of(later[0]), "On s'en occupe 🇫🇷")
    finally:
        await connector.close()
    first_reply, second_reply = fake.replies
    assert (first_reply.target, first_reply.details["root"]) == (first, first)
    assert first_reply.details["langs"] == ["fr"]
    text = first_reply.text.encode()
    link, mention = sorted(first_reply.details["facets"], key=lambda f: f["index"]["byteStart"])
    assert text[link["index"]["byteStart"] : link["index"]["byteEnd"]] == b"https://exemple.fr/suivi"
    assert link["features"][0]["uri"] == "https://exemple.fr/suivi"
    assert text[mention["index"]["byteStart"] : mention["index"]["byteEnd"]] == b"@camille.bsky.social"
    assert mention["features"][0]["did"] == "did:plc:camille"
    # The follow-up under our reply joins the first conversation; our answer keeps the thread's root.
    assert [i.thread_id for i in later] == [first] and later[0].external_id == follow
    assert (second_reply.target, second_reply.details["root"]) == (follow, first)
    assert answer.url and answer.url.startswith("https://bsky.app/profile/")


async def test_a_reply_under_a_strangers_post_starts_a_conversation_of_its_own(fake, clock):
    fake.now = clock.now
    stranger = fake.add_customer_post("hot take about acme", author="stranger", minutes_ago=10)
    fake.requests.clear()
    customer = fake.add_customer_post("same here, my order is lost", author="ioana", reply_to=stranger)
    connector = connector_for(fake, clock)
    try:
        items, _ = await fetch_all(connector)
    finally:
        await connector.close()
    assert {i.external_id: i.thread_id for i in items}[customer] == customer


async def test_replies_over_300_graphemes_are_refused_before_any_call_but_emoji_count_once(fake, clock):
    fake.now = clock.now
    post = fake.add_customer_post("hello")
    connector = connector_for(fake, clock)
    try:
        items, _ = await fetch_all(connector)
        with pytest.raises(PermanentError, match="301 graphemes"):
            await connector.reply(target_of(items[0]), "x" * 301)
        flags = "🇫🇷" * 300  # 600 code points, 300 graphemes, 2400 bytes
        assert graphemes(flags) == 300 and graphemes("👨‍👩‍👧 👍🏽 e\u0301 ș") == 7
        await connector.reply(target_of(items[0]), flags)
    finally:
        await connector.close()
    assert [r.target for r in fake.replies] == [post]


async def test_a_write_refused_by_the_rate_limit_is_rate_limited_with_the_reset(fake, clock):
    fake.now = clock.now
    fake.add_customer_post("hello")
    connector = connector_for(fake, clock)
    try:
        items, _ = await fetch_all(connector)
        fake.rate_remaining = 0  # the next answer announces the window spent
        await connector.check()
        with pytest.raises(RateLimited) as limited:
            await connector.reply(target_of(items[0]), "hi")
    finally:
        await connector.close()
    assert limited.value.retry_after is not None and 250 <= limited.value.retry_after <= 310
    assert fake.replies == []


# -- DMs --------------------------------------------------------------------------------------------------------------


async def test_dms_are_read_through_the_chat_proxy_and_answered_with_send_message(fake, clock):
    fake.now = clock.now
    message = fake.add_dm("Bonjour, un souci avec ma commande", author="camille", minutes_ago=3)
    convo = fake.convo_of(message)
    fake.add_existing_dm_reply(convo, "Merci de nous avoir écrit")  # ours: never an item
    connector = connector_for(fake, clock)
    try:
        items, cursor = await fetch_all(connector)
        [dm] = [i for i in items if i.kind == Kind.DM]
        assert (dm.external_id, dm.thread_id, dm.author_handle) == (message, f"convo:{convo}", "camille.bsky.social")
        assert dm.posted_at == clock.now - timedelta(minutes=3)
        assert await connector.find_reply(target_of(dm), "Nous regardons") is None
        sent = await connector.reply(target_of(dm), "Nous regardons")
        assert await connector.find_reply(target_of(dm), "Nous regardons") == sent
        again, _ = await fetch_all(connector, cursor)
    finally:
        await connector.close()
    assert [(r.target, r.text) for r in fake.replies] == [(convo, "Nous regardons")]
    assert again == []
    chat = [r for r in fake.requests if r.path.startswith("/xrpc/chat.bsky.")]
    assert chat and all(r.headers.get("atproto-proxy") == CHAT_PROXY for r in chat)


async def test_without_dm_access_it_says_so_once_and_keeps_polling_notifications(fake, clock, caplog):
    fake.dm_access = False
    fake.now = clock.now
    fake.add_dm("a DM nobody can read")
    post = fake.add_customer_post("a mention")
    connector = connector_for(fake, clock)
    try:
        with caplog.at_level(logging.WARNING):
            items, cursor = await fetch_all(connector)
            more = fake.add_customer_post("another")
            again, _ = await fetch_all(connector, cursor)
        detail = await connector.check()
    finally:
        await connector.close()
    assert [i.external_id for i in items] == [post] and [i.external_id for i in again] == [more]
    assert connector.notes() == [NO_DMS] and NO_DMS in detail
    assert len([r for r in caplog.records if "DMs are off" in r.getMessage()]) == 1
    assert fake.calls["chat.bsky.convo.listConvos"] == 1  # asked once, not at every poll


async def test_a_pds_without_the_chat_service_leaves_dms_off_and_mentions_polled(fake, clock):
    fake.chat_service = False
    fake.now = clock.now
    post = fake.add_customer_post("a mention")
    connector = connector_for(fake, clock)
    try:
        items, _ = await fetch_all(connector)
    finally:
        await connector.close()
    assert [i.external_id for i in items] == [post]
    assert connector.notes() and "does not serve the chat service" in connector.notes()[0]


async def test_a_mention_of_a_handle_that_does_not_resolve_stays_plain_text(fake, clock):
    fake.now = clock.now
    fake.add_customer_post("hello")
    connector = connector_for(fake, clock)
    try:
        items, _ = await fetch_all(connector)
        await connector.reply(target_of(items[0]), "Ask @nobody.example.com or see https://acme.example/help")
    finally:
        await connector.close()
    [sent] = fake.replies
    assert [f["features"][0]["$type"] for f in sent.details["facets"]] == ["app.bsky.richtext.facet#link"]


async def test_check_is_one_get_session_after_the_login(fake):
    connector = connector_for(fake)
    try:
        detail = await connector.check()
    finally:
        await connector.close()
    assert detail.startswith(f"@{HANDLE} ({DID})") and "DMs allowed" in detail
    calls = [r.path.rsplit("/", 1)[1] for r in fake.requests]
    assert calls == ["com.atproto.server.createSession", "com.atproto.server.getSession"]


def test_the_cursor_is_small_and_typed():
    cursor = BlueskyCursor.model_validate({"notifications": {"at": "2026-12-01T09:15:00Z", "ids": ["at://x"]}})
    assert cursor.model_dump(mode="json") == {
        "notifications": {"at": "2026-12-01T09:15:00Z", "ids": ["at://x"]},
        "messages": None,
        "session": None,
    }


async def test_a_dm_reply_target_without_a_conversation_is_refused(fake):
    connector = connector_for(fake)
    try:
        with pytest.raises(PermanentError, match="conversation"):
            await connector.reply(ReplyTarget("m1", "convo:x", Kind.DM, "bob", {}), "hi")
    finally:
        await connector.close()


@pytest.mark.parametrize(
    ("password", "dm_access", "expected"),
    [
        (APP_PASSWORD, True, ["ok", "DMs allowed"]),
        (APP_PASSWORD, False, ["ok", "DMs are off", "Allow access to your direct messages"]),
        ("wrong-pass-word-0000", True, ["FAIL", "Invalid identifier or password", "app_password"]),
    ],
)
async def test_inbox_check_says_whether_the_app_password_works_and_allows_dms(
    fake, tmp_path, password, dm_access, expected
):
    fake.dm_access = dm_access
    config = {"name": NAME, "type": "bluesky", "api_url": fake.base_url, "handle": HANDLE, "app_password": password}
    settings = make_settings(tmp_path, database={"url": f"sqlite:///{tmp_path / 'inbox.db'}"}, connectors=[config])
    out = StringIO()
    problems = await run_checks(settings, Console(file=out, width=500, color_system=None))
    row = next(line for line in out.getvalue().splitlines() if NAME in line)
    assert all(word in row for word in expected), row
    assert problems == (0 if password == APP_PASSWORD else 1)
    assert "wrong-pass-word-0000" not in out.getvalue()


async def test_a_broken_message_is_logged_and_skipped_the_rest_kept(fake, clock, caplog):
    fake.now = clock.now
    first = fake.add_dm("first", author="ana", minutes_ago=3)
    broken = fake.add_dm("broken", author="ana", minutes_ago=2)
    last = fake.add_dm("last", author="ana", minutes_ago=1)
    message = next(m for m in fake.messages[fake.convo_of(broken)] if m["id"] == broken)
    del message["sentAt"]
    connector = connector_for(fake, clock)
    try:
        with caplog.at_level(logging.WARNING):
            items, _ = await fetch_all(connector)
    finally:
        await connector.close()
    assert [i.external_id for i in items] == [first, last]
    assert any(f"skipped message '{broken}': missing sentAt" in r.getMessage() for r in caplog.records)


# -- the keyword watch (Jetstream) -------------------------------------------------------------------------------------


class Watch:
    """The connector's Jetstream stream, read in the background (as `inbox run` follows it)."""

    def __init__(self, connector: BlueskyConnector) -> None:
        self.connector = connector
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for page in self.connector.stream():
            for item in page.items:
                await self.items.put(item)

    async def next(self) -> Any:
        async with asyncio.timeout(30):
            return await self.items.get()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


async def until_connected(fake: BlueskyFake, connections: int) -> None:
    async with asyncio.timeout(30):
        while len(fake.jet_connections) < connections:
            await asyncio.sleep(0.02)


def watching(fake: BlueskyFake, *keywords: str) -> BlueskyConnector:
    return connector_for(fake, keywords=list(keywords), jetstream_url=fake.base_url.replace("http://", "ws://"))


async def test_the_keyword_watch_is_off_by_default(fake):
    connector = connector_for(fake)
    assert not connector.streaming and BlueskySettings(name=NAME, handle=HANDLE, app_password="x").keywords == []
    await connector.close()


async def test_posts_naming_the_brand_without_tagging_it_arrive_from_jetstream_and_are_answered(fake):
    connector = watching(fake, "Acme Shop", "acmeshop")
    assert connector.streaming
    watch = Watch(connector)
    try:
        await until_connected(fake, 1)
        assert fake.jet_connections[0] == {"wantedCollections": "app.bsky.feed.post"}
        await fake.add_watched_post("acmeshopping is a word we do not watch")
        unwatched = fake.jetstream[-1]
        own = {
            **unwatched["commit"],
            "rkey": "3lown",
            "record": {**unwatched["commit"]["record"], "text": "Acme Shop!"},
        }
        await fake.send_jetstream({**unwatched, "did": DID, "commit": own})  # the account's own post: never an item
        uri = await fake.add_watched_post("Has anyone tried the ACME SHOP hoodies? Mine shrank.", author="dana")
        item = await watch.next()
        assert (item.external_id, item.kind, item.author_handle, item.author_name) == (
            uri,
            Kind.MENTION,
            "dana.bsky.social",
            "Dana",
        )
        assert item.text == "Has anyone tried the ACME SHOP hoodies? Mine shrank." and watch.items.empty()
        await connector.reply(target_of(item), "Sorry about that, Dana: DM us your order number?")
        [reply] = fake.replies
        assert (reply.target, reply.details["root"]) == (uri, uri)
    finally:
        await watch.stop()
        await connector.close()


async def test_after_a_drop_the_watch_resumes_a_few_seconds_back_and_misses_nothing(fake):
    connector = watching(fake, "acme")
    watch = Watch(connector)
    try:
        await until_connected(fake, 1)
        first = await fake.add_watched_post("acme, where is my parcel?")
        assert (await watch.next()).external_id == first
        await fake.drop_jetstream()  # the stream ends; `inbox run` reconnects
        await watch.stop()
        missed = await fake.add_watched_post("acme never answers")  # sent while nobody listened
        watch = Watch(connector)
        await until_connected(fake, 2)
        assert int(fake.jet_connections[1]["cursor"]) == fake.jetstream[0]["time_us"] - 5_000_000
        # The rewind replays the first post too: the store keeps it once (same uri).
        assert [(await watch.next()).external_id, (await watch.next()).external_id] == [first, missed]
    finally:
        await watch.stop()
        await connector.close()
