"""The mastodon connector against a local Mastodon: the contract, plus paging, threads, visibility and streaming."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.connector import AuthError, Kind, PermanentError, ReplyTarget, TransientError
from inbox.connectors.mastodon import MastodonConnector, MastodonCursor, MastodonSettings, html_to_text
from inbox.fakes.mastodon import BRAND_ID, RECORDED_DIRECT, RECORDED_MENTION, TOKEN, MastodonFake
from inbox.fakes.vendor import Fault
from inbox.pipeline.ingest import Source
from inbox.store.cursors import load_cursor
from inbox.store.models import Item
from tests.conftest import thread_of
from tests.connectors.contract import ConnectorContract, fetch_all
from tests.connectors.helpers import answered_first_post, poll_in_a_new_process

NAME = "mastodon-test"


@pytest.fixture
async def fake() -> AsyncIterator[MastodonFake]:
    server = await MastodonFake().start()
    yield server
    await server.close()


@pytest.fixture
def connector_config(fake: MastodonFake) -> dict[str, Any]:
    return {"name": NAME, "type": "mastodon", "api_url": fake.base_url, "access_token": TOKEN, "poll_seconds": 30}


def connector_for(fake: MastodonFake, **extra: Any) -> MastodonConnector:
    return MastodonConnector(MastodonSettings(name=NAME, api_url=fake.base_url, access_token=TOKEN, **extra))


class TestMastodonContract(ConnectorContract):
    """The shared scenarios over the Mastodon fake."""

    name = NAME


# -- mapping of recorded payloads -----------------------------------------------------------------------------------


def test_html_is_stripped_to_text_with_line_breaks():
    assert html_to_text(RECORDED_MENTION["status"]["content"]) == "@mastodonpy_test hello!"
    content = "<p>Order <b>#123</b> &amp; &lt;box&gt;<br>still late<br/>help</p><p>second &#39;para&#39;</p>"
    assert html_to_text(content) == "Order #123 & <box>\nstill late\nhelp\n\nsecond 'para'"
    # Mastodon hides parts of long links in spans; the text keeps the whole link.
    link = (
        '<p><a href="https://example.com/a/very/long/path"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.com/a/very</span><span class="invisible">/long/path</span></a></p>'
    )
    assert html_to_text(link) == "https://example.com/a/very/long/path"


async def test_recorded_mention_and_direct_message_map_to_items(fake):
    fake.add_recorded(RECORDED_MENTION)
    fake.add_recorded(RECORDED_DIRECT)
    connector = connector_for(fake, account_id="999", first_poll_hours=24 * 365 * 10)
    try:
        items, cursor = await fetch_all(connector)
    finally:
        await connector.close()
    by_id = {i.external_id: i for i in items}
    mention = by_id["117020577157693549"]
    assert (mention.kind, mention.author_handle, mention.author_name, mention.text) == (
        Kind.MENTION,
        "admin",
        None,
        "@mastodonpy_test hello!",
    )
    assert mention.posted_at == datetime(
        2026, 8, 1, 13, 51, 42, 823000, tzinfo=UTC
    )  # the status's time, not the notification's
    assert mention.url == "http://localhost:3000/@admin/117020577157693549"
    assert mention.thread_id == "117020577157693549"
    assert mention.reply_to == {"visibility": "public", "acct": "admin", "account_id": "117020565693913441"}
    direct = by_id["116275331587890092"]
    assert direct.kind == Kind.DM and direct.author_handle == "latencyobs@icosahedron.website"
    assert direct.author_name == "latency observer" and direct.reply_to["visibility"] == "direct"
    assert direct.text.startswith(
        "@halcy@mastodon.social @halcy@glitch.social @halcy@hachyderm.io ____________LATENCYPING"
    )
    assert cursor == MastodonCursor(notification_id="547915300")


async def test_deleted_statuses_other_types_and_boosts_are_not_items(fake, caplog):
    fake.add_recorded({**RECORDED_MENTION, "id": "30", "status": None})  # the mentioning status was deleted
    fake.add_recorded({**RECORDED_MENTION, "id": "31", "type": "favourite"})  # a server that ignores types[]
    boost = {**RECORDED_MENTION["status"], "id": "117020577157699999", "reblog": RECORDED_MENTION["status"]}
    fake.add_recorded({**RECORDED_MENTION, "id": "32", "status": boost})
    fake.add_customer_post("a real one")
    connector = connector_for(fake, account_id="999", first_poll_hours=24 * 365 * 10)
    try:
        items, cursor = await fetch_all(connector)
    finally:
        await connector.close()
    assert [i.text for i in items if not i.is_repost] == ["@acme a real one"]
    assert [i.external_id for i in items if i.is_repost] == ["117020577157699999"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert cursor is not None and int(cursor.notification_id) > 32


# -- paging -----------------------------------------------------------------------------------------------------------


async def test_incremental_polls_page_forward_with_min_id_from_the_cursor(fake):
    connector = connector_for(fake)
    try:
        fake.add_customer_post("before", minutes_ago=30)
        _, cursor = await fetch_all(connector)
        assert cursor is not None
        start = cursor.notification_id
        burst = [fake.add_customer_post(f"burst {n}", author=f"u{n}", minutes_ago=20 - n / 10) for n in range(95)]
        fake.requests.clear()
        pages = [page async for page in connector.fetch(cursor)]
    finally:
        await connector.close()
    queries = [r.query for r in fake.fetch_requests()]
    assert next(q.get("min_id") for q in queries) == start and all("since_id" not in q for q in queries)
    assert all(q.getall("types[]") == ["mention"] and q["limit"] == "40" for q in queries)
    # Every page is the block right after the previous one, so each carries a cursor the next request starts from.
    assert [len(p.items) for p in pages] == [40, 40, 15]
    assert [q["min_id"] for q in queries[1:]] == [p.cursor.notification_id for p in pages]
    assert [i.external_id for p in pages for i in p.items] == burst  # oldest first, nothing missed
    assert pages[-1].cursor == MastodonCursor(notification_id=fake.notifications[-1]["id"])


async def test_first_poll_walks_back_only_as_far_as_the_backfill_window(fake):
    fake.add_customer_post("last week", minutes_ago=7 * 24 * 60)
    recent = [fake.add_customer_post(f"recent {n}", minutes_ago=100 - n) for n in range(50)]
    connector = connector_for(fake, first_poll_hours=24)
    try:
        pages = [page async for page in connector.fetch(None)]
    finally:
        await connector.close()
    assert sorted(i.external_id for p in pages for i in p.items) == sorted(recent)
    assert [p.cursor for p in pages[:-1]] == [None] * (len(pages) - 1)  # only the end of a backward walk is safe
    assert pages[-1].cursor == MastodonCursor(notification_id=fake.notifications[-1]["id"])
    assert next(r.query.get("max_id") for r in fake.fetch_requests()) is None


async def test_a_page_of_the_wrong_shape_keeps_the_cursor(fake):
    fake.add_customer_post("one")
    connector = connector_for(fake)
    try:
        _, cursor = await fetch_all(connector)
        fake.wrong_shape = 1
        with pytest.raises(PermanentError, match="expected a JSON array"):
            await fetch_all(connector, cursor)
    finally:
        await connector.close()


# -- threads ----------------------------------------------------------------------------------------------------------


async def test_a_follow_up_to_our_reply_joins_the_thread_after_a_restart(fake, inbox_factory, connector_config, engine):
    inbox = inbox_factory(connectors=[connector_config])
    thread_id, our_reply = await answered_first_post(
        inbox, fake, engine, NAME, "Sorry! Could you DM us the order number?"
    )
    follow = fake.add_customer_post("it is 1234", author="maria", minutes_ago=1, reply_to=our_reply["id"])
    other = fake.add_customer_post("unrelated question", author="maria", minutes_ago=0.5)
    # A new process: nothing cached, so the thread comes from the status context.
    await poll_in_a_new_process(inbox_factory, connector_config)
    assert await thread_of(engine, follow) == thread_id
    assert await thread_of(engine, other) != thread_id
    assert any(r.path.endswith(f"/statuses/{follow}/context") for r in fake.requests)


async def test_a_mention_inside_someone_elses_conversation_starts_its_own_thread(fake):
    first = fake.add_customer_post("first", author="bob", minutes_ago=9)
    # Bob's friend answers without mentioning us; then Bob mentions us below that.
    friend = fake._customer("friend")
    aside = fake._status(friend, "@bob me too", fake.now - timedelta(minutes=8), parent=first)
    later = fake.add_customer_post("@friend ask them", author="bob", minutes_ago=7, reply_to=aside["id"])
    connector = connector_for(fake)
    try:
        items, _ = await fetch_all(connector)
    finally:
        await connector.close()
    assert {i.external_id: i.thread_id for i in items}[later] == later


# -- replies ----------------------------------------------------------------------------------------------------------


async def test_a_reply_to_a_direct_message_stays_direct_and_mentions_the_customer(fake):
    dm = fake.add_customer_post("my card was charged twice", author="zoe", visibility="direct")
    public = fake.add_customer_post("do you ship to Peru?", author="luis")
    connector = connector_for(fake)
    try:
        items, _ = await fetch_all(connector)
        targets = {i.external_id: target_of(i) for i in items}
        assert {i.external_id: i.kind for i in items} == {dm: Kind.DM, public: Kind.MENTION}
        sent = await connector.reply(targets[dm], "Sorry Zoe, refund on its way.")
        await connector.reply(targets[public], "Yes we do!")
    finally:
        await connector.close()
    assert sent.external_id == fake.replies[0].details["id"] and sent.url
    assert [(r.target, r.details["status"], r.details["visibility"]) for r in fake.replies] == [
        (dm, "@zoe Sorry Zoe, refund on its way.", "direct"),
        (public, "@luis Yes we do!", "public"),
    ]
    assert all(r.details["idempotency_key"] for r in fake.replies)


async def test_a_resent_reply_is_absorbed_by_the_idempotency_key(fake):
    fake.add_customer_post("hello")
    connector = connector_for(fake)
    try:
        items, _ = await fetch_all(connector)
        first = await connector.reply(target_of(items[0]), "Hi!")
        again = await connector.reply(target_of(items[0]), "Hi!")
    finally:
        await connector.close()
    assert first == again and len(fake.replies) == 1


async def test_a_reply_too_long_with_its_mention_is_refused_before_sending(fake):
    fake.add_customer_post("hello", author="averyveryverylonghandle")
    connector = connector_for(fake)
    try:
        items, _ = await fetch_all(connector)
        with pytest.raises(PermanentError, match="mastodon allows 500"):
            await connector.reply(target_of(items[0]), "x" * 490)
    finally:
        await connector.close()
    assert fake.replies == []


async def test_find_reply_only_accepts_our_own_status_with_the_same_text(fake):
    target = fake.add_customer_post("hello", author="kim")
    fake.add_existing_reply(target, "Thanks, looking into it")
    stranger = fake._customer("stranger")
    fake._status(stranger, "@kim Thanks, looking into it", datetime.now(UTC), parent=target)  # same words, not ours
    fake.add_existing_reply(target, "Many thanks, looking into it")
    connector = connector_for(fake)
    try:
        items, _ = await fetch_all(connector)
        found = await connector.find_reply(target_of(items[0]), "Thanks, looking into it")
        assert await connector.find_reply(target_of(items[0]), "Something else") is None
    finally:
        await connector.close()
    assert found is not None and fake.statuses[found.external_id]["account"]["id"] == BRAND_ID


async def test_check_names_the_account(fake):
    connector = connector_for(fake)
    try:
        assert (await connector.check()).startswith("@acme on 127.0.0.1")
    finally:
        await connector.close()
    wrong = connector_for(fake, account_id="42")
    try:
        with pytest.raises(PermanentError, match="not account_id 42"):
            await wrong.check()
    finally:
        await wrong.close()


# -- streaming --------------------------------------------------------------------------------------------------------


async def test_the_stream_hands_mentions_over_and_polling_catches_what_it_missed(
    fake, inbox_factory, connector_config, engine
):
    inbox = inbox_factory(connectors=[{**connector_config, "stream": True}])
    connector = inbox.connectors[NAME]
    assert connector.streaming
    await inbox.pollers[NAME].poll_once()  # the cursor starts here
    live = fake.add_customer_post("is the shop open?", author="ana", minutes_ago=0.2)
    notification = fake.notification_for(live)
    data = json.dumps(notification)
    fake.push(":thump\n\n")
    fake.push_event("update", notification["status"])  # home timeline noise
    fake.push_event("notification", {**notification, "id": "1", "type": "favourite"})
    fake.push(f"event: notification\ndata: {data[:50]}")  # one event split across chunks
    fake.push(f"{data[50:]}\r\n\r\n")
    fake.push_event("notification", "{not json")
    fake.push(None)  # the instance drops the connection
    pages = [page async for page in connector.stream()]
    assert [[i.external_id for i in p.items] for p in pages] == [[live]]
    assert all(p.cursor is None for p in pages)  # a streamed id says nothing about what came before it
    for page in pages:
        await inbox.ingestor.ingest(Source.of(connector), page.items, page.cursor)
    assert live in await stored(engine)
    missed = fake.add_customer_post("hello? anyone?", author="ana", minutes_ago=0.1)
    result = await inbox.pollers[NAME].poll_once()
    assert (result.stored, result.duplicates) == (1, 1) and missed in await stored(engine)
    assert (await load_cursor(engine, NAME))["notification_id"] == fake.notifications[-1]["id"]
    await connector.close()


async def test_a_refused_or_silent_stream_raises_for_the_core_to_reconnect(fake):
    connector = connector_for(fake, stream=True, stream_idle_seconds=0.2)
    try:
        fake.stream_failure = Fault(401, {}, '{"error":"The access token is invalid"}')
        with pytest.raises(AuthError):
            [page async for page in connector.stream()]
        fake.stream_failure = Fault(502, {}, "<html>Bad Gateway</html>")
        with pytest.raises(TransientError):
            [page async for page in connector.stream()]
        fake.stream_failure = None
        with pytest.raises(TransientError, match="dropped"):
            [page async for page in connector.stream()]  # no heartbeat for longer than stream_idle_seconds
    finally:
        await connector.close()


# -- helpers ----------------------------------------------------------------------------------------------------------


def target_of(item: Any) -> ReplyTarget:
    return ReplyTarget(
        item.external_id, item.thread_id or item.external_id, item.kind, item.author_handle, item.reply_to
    )


async def stored(engine: Any) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(Item.external_id).where(Item.connector == NAME))).scalars())
