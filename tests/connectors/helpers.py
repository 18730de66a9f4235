"""Test helpers for connector tests that go through the store: an Inbox builder fixture and stored items."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.store.models import Item


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
        for connector in inbox.connectors.values():
            await connector.close()


async def items_of(engine: Any, connector: str) -> dict[str, Any]:
    """The connector's stored items by external id."""
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(Item).where(Item.connector == connector))
        return {r.external_id: r for r in rows}
