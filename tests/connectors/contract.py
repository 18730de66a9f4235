"""The contract every connector passes, against a local fake of its vendor over real HTTP.

A vendor's test module subclasses `ConnectorContract` and provides two fixtures:
`fake` (a started `VendorFake`) and `connector_config` (the `[[connectors]]` table pointing at it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from inbox.connector import AuthError
from inbox.fakes.vendor import Fault, VendorFake
from inbox.store.cursors import load_cursor
from inbox.store.models import ConnectorHealth, Item, Reply, ReplyStatus, Thread
from tests.conftest import capture_context


async def fetch_all(connector: Any, cursor: Any = None) -> tuple[list[Any], Any]:
    """Every item one fetch yields, and the last cursor it offered (or the one it started from)."""
    items: list[Any] = []
    last = cursor
    async for page in connector.fetch(cursor):
        items += page.items
        last = page.cursor or last
    return items, last


class ConnectorContract:
    """The shared scenarios; subclass and provide `fake` and `connector_config` fixtures."""

    name: ClassVar[str] = "vendor"

    @pytest.fixture(autouse=True)
    def _vendor_time_is_the_test_clock(self, fake: VendorFake, clock: Any) -> None:
        # Posts are dated by the fake from `fake.now`; the inbox reads the same injected clock.
        fake.now = clock.now

    @pytest.fixture
    async def inbox(self, inbox_factory: Callable[..., Any], connector_config: dict[str, Any]) -> Any:
        inbox = inbox_factory(connectors=[connector_config])
        yield inbox
        for connector in inbox.connectors.values():
            await connector.close()

    @pytest.fixture
    def poller(self, inbox: Any) -> Any:
        return inbox.pollers[self.name]

    async def stored(self, engine: Any) -> list[str]:
        async with engine.connect() as conn:
            return sorted((await conn.execute(sa.select(Item.external_id).where(Item.connector == self.name))).scalars())

    async def health(self, engine: Any) -> Any:
        async with engine.connect() as conn:
            return (await conn.execute(sa.select(ConnectorHealth).where(ConnectorHealth.connector == self.name))).one()

    async def thread_of(self, engine: Any, external_id: str) -> int:
        async with engine.connect() as conn:
            return (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == external_id))).scalar_one()

    async def test_first_poll_stores_customer_items(self, fake, poller, engine):
        ids = [fake.add_customer_post(f"where is my order {n}?", author=f"cust{n}", minutes_ago=10 - n) for n in range(3)]
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
        ids = [fake.add_customer_post(f"dup {n}", author=f"u{n}", minutes_ago=10 - n / 10) for n in range(fake.page_size * 2 + 3)]
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
        """The 429 went through inbox.http as a rate limit: counted as one, not as a failed poll."""
        registry = poller.metrics.registry
        assert registry.get_sample_value("inbox_rate_limited_total", {"connector": self.name}) == 1
        assert registry.get_sample_value("inbox_poll_errors_total", {"connector": self.name, "kind": "transient"}) is None

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
        assert any(getattr(r, "connector", None) == self.name and "skip" in r.getMessage().lower() for r in caplog.records)

    async def test_reply_lands_where_the_customer_wrote(self, fake, inbox, poller, engine):
        target = fake.add_customer_post("do you ship to Ireland?", author="sean")
        await poller.poll_once()
        outcome = await inbox.actions.reply(await self.thread_of(engine, target), "Yes we do!", "ana")
        assert outcome.status == "sent"
        assert [(r.target, r.text) for r in fake.replies] == [(target, "Yes we do!")]

    async def test_reply_after_a_crash_is_not_sent_twice(self, fake, inbox, poller, engine, clock):
        sent, unsent = fake.add_customer_post("one", author="a"), fake.add_customer_post("two", author="b")
        await poller.poll_once()
        async with engine.begin() as conn:
            for external_id in (sent, unsent):
                row = (await conn.execute(sa.select(Item.id, Item.thread_id).where(Item.external_id == external_id))).one()
                await conn.execute(sa.insert(Reply).values(
                    thread_id=row.thread_id, item_id=row.id, cycle=1, text=f"Thanks {external_id}", agent="ana",
                    status=ReplyStatus.PENDING, created_at=clock.now))
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

    async def test_check_tries_the_credentials(self, fake, inbox):
        connector = inbox.connectors[self.name]
        assert await connector.check()
        fake.faults.append(fake.fault_unauthorized())
        with pytest.raises(AuthError):
            await connector.check()

    async def test_threads_join_follow_ups(self, fake, poller, engine):
        first = fake.add_customer_post("my parcel is late", author="maria", minutes_ago=5)
        await poller.poll_once()
        follow = fake.add_customer_post("any news?", author="maria", minutes_ago=1, reply_to=first)
        await poller.poll_once()
        assert await self.thread_of(engine, first) == await self.thread_of(engine, follow)
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one() == 1
