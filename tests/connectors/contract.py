"""The contract every connector passes, against a local fake of its vendor over real HTTP.

Two layers: `ConnectorLevel` talks to the connector alone (no store: fetch from a cursor, paging, the platform's
time, own posts, a broken entry, threads, reply and find_reply, credentials, the three error kinds, rate limits)
and every connector's test module subclasses it, so it runs once per connector. `ConnectorContract` adds the
scenarios through the store (poller, ingest, actions) on both stores; it runs for one connector of each shape:
social polled (x), streamed (mastodon), review (google_reviews), file (jsonl) and push (webhook). A test module
provides two fixtures: `fake` (a started `VendorFake`) and `connector_config` (the `[[connectors]]` table pointing at it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from inbox import connectors as registry
from inbox.connector import AuthError, PermanentError, RateLimited, RawItem, ReplyTarget, TransientError
from inbox.fakes.vendor import Fault, VendorFake
from inbox.store.cursors import load_cursor
from inbox.store.models import ConnectorHealth, Item, Reply, ReplyStatus, Thread
from tests.conftest import capture_context, close_connectors, thread_of


async def fetch_all(connector: Any, cursor: Any = None) -> tuple[list[Any], Any]:
    """Every item one fetch yields, and the last cursor it offered (or the one it started from)."""
    items: list[Any] = []
    last = cursor
    async for page in connector.fetch(cursor):
        items += page.items
        last = page.cursor or last
    return items, last


def target_of(item: RawItem) -> ReplyTarget:
    """The reply target the core would build from a fetched item."""
    return ReplyTarget(
        item.external_id, item.thread_id or item.external_id, item.kind, item.author_handle, item.reply_to
    )


class ConnectorLevel:
    """The connector alone against its fake, no store: what it fetches, sends and raises."""

    name: ClassVar[str] = "vendor"

    @pytest.fixture(autouse=True)
    def _vendor_time_is_the_test_clock(self, fake: VendorFake, clock: Any) -> None:
        # Posts are dated by the fake from `fake.now`; the inbox reads the same injected clock.
        fake.now = clock.now

    @pytest.fixture
    async def connector(self, connector_config: dict[str, Any], clock: Any) -> Any:
        settings = registry.settings_model_for(connector_config["type"])
        assert settings is not None
        connector = registry.connector_class(connector_config["type"])(
            settings.model_validate(connector_config), clock=clock
        )
        yield connector
        await connector.close()

    async def fetched(self, fake: Any, connector: Any, cursor: Any = None) -> tuple[list[RawItem], Any]:
        """Everything one fetch yields (the fake publishes what the test added first: a file is written)."""
        getattr(fake, "flush", lambda: None)()
        return await fetch_all(connector, cursor)

    async def test_level_a_fetch_from_the_cursor_yields_only_what_is_new(self, fake, connector):
        first = [
            fake.add_customer_post(f"where is my order {n}?", author=f"cust{n}", minutes_ago=10 - n) for n in range(2)
        ]
        items, cursor = await self.fetched(fake, connector)
        assert set(first) <= {i.external_id for i in items} and cursor is not None
        later = fake.add_customer_post("and now?", author="late", minutes_ago=0.5)
        again, _ = await self.fetched(fake, connector, cursor)
        assert [i.external_id for i in again] == [later]

    async def test_level_pages_end_with_a_safe_cursor(self, fake, connector):
        ids = [
            fake.add_customer_post(f"burst {n}", author=f"u{n}", minutes_ago=30 - n / 10)
            for n in range(fake.page_size * 2 + 3)
        ]
        getattr(fake, "flush", lambda: None)()
        pages = [page async for page in connector.fetch(None)]
        # A cursor comes after the last page with items: resuming from it skips nothing.
        with_items = [n for n, page in enumerate(pages) if page.items]
        with_cursor = [n for n, page in enumerate(pages) if page.cursor is not None]
        assert len(with_items) > 1 and with_cursor and with_cursor[-1] >= with_items[-1]
        assert sorted({i.external_id for page in pages for i in page.items}) == sorted(ids)

    async def test_level_own_posts_and_reposts_are_marked(self, fake, connector):
        ignored = set(fake.add_brand_post("Our winter sale starts today!"))
        items, _ = await self.fetched(fake, connector)
        own = connector.settings.own_handles
        # Marked by the connector (from_brand, is_repost) or left out; review sites show the brand by name (own_handles).
        assert all(i.from_brand or i.is_repost or i.author_handle in own for i in items if i.external_id in ignored)

    async def test_level_reply_lands_and_is_found_again(self, fake, connector):
        target = fake.add_customer_post("do you ship to Ireland?", author="sean")
        items, _ = await self.fetched(fake, connector)
        item = next(i for i in items if i.external_id == target)
        await connector.reply(target_of(item), "Yes we do!")
        assert [(r.target, r.text) for r in fake.replies] == [(target, "Yes we do!")]
        other = fake.add_customer_post("and to Romania?", author="ioana")
        items, _ = await self.fetched(fake, connector)
        fake.add_existing_reply(other, "Yes, there too.")
        assert (
            await connector.find_reply(target_of(next(i for i in items if i.external_id == other)), "Yes, there too.")
            is not None
        )

    async def test_level_items_carry_the_platforms_time(self, fake, connector):
        post = fake.add_customer_post("where is my order?", author="cust", minutes_ago=10)
        items, _ = await self.fetched(fake, connector)
        item = next(i for i in items if i.external_id == post)
        # The clock is the customer's: the platform's timestamp, not our poll time.
        assert "where is my order?" in item.text and item.author_handle
        assert abs((item.posted_at - (fake.now - timedelta(minutes=10))).total_seconds()) < 2

    async def test_level_a_broken_item_is_logged_and_skipped_the_rest_kept(self, fake, connector, caplog):
        fake.add_customer_post("first", author="a", minutes_ago=3)
        fake.add_broken_item()
        last = fake.add_customer_post("last", author="b", minutes_ago=1)
        with caplog.at_level(logging.WARNING):
            items, cursor = await self.fetched(fake, connector)
        assert last in {i.external_id for i in items} and cursor is not None
        assert any(
            r.getMessage().startswith(f"{connector.name}: ") and "skip" in r.getMessage().lower()
            for r in caplog.records
        )

    async def test_level_a_follow_up_joins_its_thread(self, fake, connector):
        first = fake.add_customer_post("my parcel is late", author="maria", minutes_ago=5)
        items, cursor = await self.fetched(fake, connector)
        follow = fake.add_customer_post("any news?", author="maria", minutes_ago=1, reply_to=first)
        later, _ = await self.fetched(fake, connector, cursor)
        thread = next(i.thread_id or i.external_id for i in items if i.external_id == first)
        assert [i.thread_id or i.external_id for i in later if i.external_id == follow] == [thread]

    async def test_check_tries_the_credentials(self, fake, connector):
        assert await connector.check()
        fake.faults.append(fake.fault_unauthorized())
        with pytest.raises(AuthError):
            await connector.check()

    async def test_level_the_three_error_kinds_and_rate_limits(self, fake, connector):
        fake.add_customer_post("hello", author="a")
        fake.faults.append(Fault(503, {}, "<html>Service Unavailable</html>"))
        with pytest.raises(TransientError) as failed:
            await fetch_all(connector)
        assert not isinstance(failed.value, RateLimited)
        fake.faults.append(fake.fault_rate_limited(reset_in=120))
        with pytest.raises(RateLimited) as limited:
            await fetch_all(connector)
        # With the vendor's reset (a rolling window, e.g. Apple's, has none): the wait until then.
        assert limited.value.retry_after is None or 110 <= limited.value.retry_after <= 130
        fake.malformed = 1
        with pytest.raises(PermanentError, match=r"(?i)malformed"):
            await fetch_all(connector)
        fake.wrong_shape = 1
        with pytest.raises(PermanentError):
            await fetch_all(connector)
        fake.faults.append(fake.fault_unauthorized())  # last: some fakes revoke the credentials for good
        with pytest.raises(AuthError):
            await fetch_all(connector)


class ConnectorContract(ConnectorLevel):
    """The scenarios through the store (poller, ingest, actions), for one connector of each shape; subclass and provide `fake` and `connector_config` fixtures."""

    @pytest.fixture
    async def inbox(self, inbox_factory: Callable[..., Any], connector_config: dict[str, Any]) -> Any:
        inbox = inbox_factory(connectors=[connector_config])
        yield inbox
        await close_connectors(inbox)

    @pytest.fixture
    def poller(self, inbox: Any) -> Any:
        return inbox.pollers[self.name]

    async def stored(self, engine: Any) -> list[str]:
        async with engine.connect() as conn:
            return sorted(
                (await conn.execute(sa.select(Item.external_id).where(Item.connector == self.name))).scalars()
            )

    async def health(self, engine: Any) -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(sa.select(ConnectorHealth).where(ConnectorHealth.connector == self.name))).one()

    async def test_first_poll_stores_customer_items(self, fake, poller, engine):
        ids = [
            fake.add_customer_post(f"where is my order {n}?", author=f"cust{n}", minutes_ago=10 - n) for n in range(3)
        ]
        result = await poller.poll_once()
        assert result.error is None and result.stored == 3
        assert await self.stored(engine) == sorted(ids)
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(Item).where(Item.external_id == ids[0]))).one()
        assert "where is my order 0?" in row.text and row.author_handle
        # The clock is the customer's: the platform's timestamp, not our poll time.
        assert abs((row.posted_at - (fake.now - timedelta(minutes=10))).total_seconds()) < 2

    async def test_incremental_poll_fetches_only_what_is_new(self, fake, poller, engine):
        fake.add_customer_post("first", author="a")
        await poller.poll_once()
        cursor = await load_cursor(engine, self.name)
        assert cursor is not None
        new = [fake.add_customer_post(f"new {n}", author=f"b{n}", minutes_ago=0.5) for n in range(2)]
        result = await poller.poll_once()
        assert (result.stored, result.duplicates) == (2, 0)
        assert set(new) <= set(await self.stored(engine))

    async def test_burst_of_500_is_fetched_across_pages(self, fake, poller, engine):
        fake.add_customer_post("before the burst", author="early", minutes_ago=30)
        await poller.poll_once()
        burst = [fake.add_customer_post(f"burst {n}", author=f"u{n % 50}", minutes_ago=20 - n / 30) for n in range(500)]
        result = await poller.poll_once()
        assert result.error is None
        assert result.pages > 1
        assert set(burst) <= set(await self.stored(engine))
        assert len(await self.stored(engine)) == 501

    async def test_an_item_on_two_pages_is_stored_once(self, fake, poller, engine):
        fake.duplicate_across_pages()
        ids = [
            fake.add_customer_post(f"dup {n}", author=f"u{n}", minutes_ago=10 - n / 10)
            for n in range(fake.page_size * 2 + 3)
        ]
        await poller.poll_once()
        await poller.poll_once()
        assert await self.stored(engine) == sorted(ids)

    async def test_rate_limit_waits_for_the_vendors_reset(self, fake, poller, engine):
        fake.faults.append(fake.fault_rate_limited(reset_in=120))
        fake.add_customer_post("hello", author="a")
        limited = await poller.poll_once()
        assert limited.error is not None and 110 <= limited.delay <= 130
        self.assert_rate_limited_not_failed(poller)
        assert (await self.health(engine)).healthy
        assert (await poller.poll_once()).stored == 1

    def assert_rate_limited_not_failed(self, poller: Any) -> None:
        """The 429 went through the kit's HTTP client as a rate limit: counted as one, not as a failed poll."""
        registry = poller.metrics.registry
        assert registry.get_sample_value("inbox_rate_limited_total", {"connector": self.name}) == 1
        assert (
            registry.get_sample_value("inbox_poll_errors_total", {"connector": self.name, "kind": "transient"}) is None
        )

    async def test_server_error_then_recovery(self, fake, poller, engine):
        fake.add_customer_post("hello", author="a")
        fake.faults.append(Fault(503, {}, "<html>Service Unavailable</html>"))
        failed = await poller.poll_once()
        assert failed.error is not None and failed.stored == 0
        assert (await self.health(engine)).healthy  # one blip is not news
        assert (await poller.poll_once()).stored == 1
        assert (await self.health(engine)).failures == 0

    async def test_unauthorized_marks_the_connector_unhealthy(self, fake, poller, engine):
        fake.faults.append(fake.fault_unauthorized())
        result = await poller.poll_once()
        assert result.error is not None and result.delay >= 900
        health = await self.health(engine)
        assert not health.healthy and "credentials refused" in health.reason

    async def test_malformed_body_is_skipped_and_the_cursor_kept(self, fake, poller, engine):
        fake.add_customer_post("one", author="a")
        await poller.poll_once()
        cursor = await load_cursor(engine, self.name)
        fake.malformed = 1
        later = fake.add_customer_post("two", author="b", minutes_ago=0.5)
        failed = await poller.poll_once()
        assert failed.error is not None and "malformed" in failed.error.lower()
        assert await load_cursor(engine, self.name) == cursor
        await poller.poll_once()
        assert later in await self.stored(engine)

    async def test_unexpected_shape_is_skipped_and_the_cursor_kept(self, fake, poller, engine):
        fake.add_customer_post("one", author="a")
        await poller.poll_once()
        cursor = await load_cursor(engine, self.name)
        fake.wrong_shape = 1
        failed = await poller.poll_once()
        assert failed.error is not None and failed.stored == 0
        assert await load_cursor(engine, self.name) == cursor

    async def test_a_broken_item_is_logged_and_skipped_the_rest_kept(self, fake, poller, engine, caplog):
        fake.add_customer_post("first", author="a", minutes_ago=3)
        fake.add_broken_item()
        last = fake.add_customer_post("last", author="b", minutes_ago=1)
        capture_context(caplog)
        with caplog.at_level(logging.WARNING):
            result = await poller.poll_once()
        assert result.error is None and last in await self.stored(engine)
        # The line names the connector: as its `connector` field (JSON key; the terminal shows it in front).
        assert any(
            getattr(r, "connector", None) == self.name and "skip" in r.getMessage().lower() for r in caplog.records
        )

    async def test_reply_lands_where_the_customer_wrote(self, fake, inbox, poller, engine):
        target = fake.add_customer_post("do you ship to Ireland?", author="sean")
        await poller.poll_once()
        outcome = await inbox.actions.reply(await thread_of(engine, target), "Yes we do!", "ana")
        assert outcome.status == "sent"
        assert [(r.target, r.text) for r in fake.replies] == [(target, "Yes we do!")]

    async def test_reply_after_a_crash_is_not_sent_twice(self, fake, inbox, poller, engine, clock):
        sent, unsent = fake.add_customer_post("one", author="a"), fake.add_customer_post("two", author="b")
        await poller.poll_once()
        async with engine.begin() as conn:
            for external_id in (sent, unsent):
                row = (
                    await conn.execute(sa.select(Item.id, Item.thread_id).where(Item.external_id == external_id))
                ).one()
                await conn.execute(
                    sa.insert(Reply).values(
                        thread_id=row.thread_id,
                        item_id=row.id,
                        cycle=1,
                        text=f"Thanks {external_id}",
                        agent="ana",
                        status=ReplyStatus.PENDING,
                        created_at=clock.now,
                    )
                )
        fake.add_existing_reply(sent, f"Thanks {sent}")
        before = len(fake.replies)
        clock.advance(minutes=2)
        assert await inbox.actions.recover() == 2
        assert [(r.target, r.text) for r in fake.replies[before:]] == [(unsent, f"Thanks {unsent}")]
        async with engine.connect() as conn:
            assert set((await conn.execute(sa.select(Reply.status))).scalars()) == {ReplyStatus.SENT}

    async def test_own_posts_and_reposts_are_ignored(self, fake, poller, engine):
        ignored = fake.add_brand_post("Our winter sale starts today!")
        customer = fake.add_customer_post("nice sale, do you ship to Romania?", author="ioana")
        await poller.poll_once()
        stored = await self.stored(engine)
        assert customer in stored and not set(ignored) & set(stored)

    async def test_threads_join_follow_ups(self, fake, poller, engine):
        first = fake.add_customer_post("my parcel is late", author="maria", minutes_ago=5)
        await poller.poll_once()
        follow = fake.add_customer_post("any news?", author="maria", minutes_ago=1, reply_to=first)
        await poller.poll_once()
        assert await thread_of(engine, first) == await thread_of(engine, follow)
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one() == 1
