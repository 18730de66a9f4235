"""Test helpers for connector tests that go through the store: an Inbox builder fixture and stored items."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.connector import Kind, ReplyTarget
from inbox.fakes.meta import GraphFake
from inbox.store.models import Item
from tests.conftest import close_connectors, thread_of


@pytest.fixture
async def build(
    inbox_factory: Callable[..., Any], connector_config: dict[str, Any]
) -> AsyncIterator[Callable[..., Any]]:
    """Build an Inbox with the test's connector (keys overridden by keyword); its sessions are closed afterwards."""
    made: list[Any] = []

    def make(**overrides: Any) -> Any:
        inbox = inbox_factory(connectors=[{**connector_config, **overrides}])
        made.append(inbox)
        return inbox

    yield make
    for inbox in made:
        await close_connectors(inbox)


async def items_of(engine: Any, connector: str) -> dict[str, Any]:
    """The connector's stored items by external id."""
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(Item).where(Item.connector == connector))
        return {r.external_id: r for r in rows}


async def answered_first_post(inbox: Any, fake: Any, engine: Any, name: str, answer: str) -> tuple[int, dict[str, Any]]:
    """A customer's post polled in and answered by an agent, then the connector closed as its process stops.

    Returns the thread and the details the platform's fake recorded of our reply.
    """
    first = fake.add_customer_post("my parcel is late", author="maria", minutes_ago=10)
    await inbox.pollers[name].poll_once()
    thread = await thread_of(engine, first)
    await inbox.actions.reply(thread, answer, "ana")
    await inbox.connectors[name].close()
    return thread, fake.replies[-1].details


async def poll_in_a_new_process(inbox_factory: Callable[..., Any], connector_config: dict[str, Any]) -> None:
    """One poll by a freshly built inbox (nothing cached), its sessions closed after."""
    inbox = inbox_factory(connectors=[connector_config])
    try:
        await inbox.pollers[connector_config["name"]].poll_once()
    finally:
        await close_connectors(inbox)


def review_target(review_id: str) -> ReplyTarget:
    """Where a reply to the review `review_id` goes."""
    return ReplyTarget(
        external_id=review_id,
        thread_id=review_id,
        kind=Kind.REVIEW,
        author_handle="x",
        reply_to={"review_id": review_id},
    )


def signed_push(fake: GraphFake, connector: Any, delivery: Any) -> Any:
    """A Meta delivery signed as the fake's app would sign it, checked and parsed by the connector."""
    body, headers = fake.signed(delivery)
    assert connector.verify(body, headers)
    return connector.parse(body)
