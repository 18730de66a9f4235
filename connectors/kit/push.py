"""Connectors the platform only pushes to: nothing to poll, so no cursor and a fetch that finds nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

from pydantic import BaseModel

from inbox.connector import C, Page, S
from inbox.connectors.kit.connector import HttpConnector


class NoCursor(BaseModel):
    """Nothing is polled, so nothing marks where a poll stopped."""


class PushOnly(HttpConnector[S, C]):
    """A connector whose items only arrive at /webhooks/NAME: the poller never calls it (`pushes`), a fetch finds none.

    Its class also implements `PushReceiver` (verify, parse); `no_polling` says why it is never polled.
    """

    pushes: ClassVar[bool] = True

    async def fetch(self, cursor: C | None) -> AsyncIterator[Page[C]]:
        """Nothing to poll: the platform only pushes."""
        pages: tuple[Page[C], ...] = ()
        for page in pages:  # none: the loop only makes this an async generator
            yield page
