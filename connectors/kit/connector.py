"""The base of a connector built on the kit's HTTP clients: closing it closes every client it holds."""

from __future__ import annotations

from datetime import datetime, timedelta

from inbox.connector import CHANNELS, C, Clock, Connector, RateBudget, S, wall_clock
from inbox.connectors.kit.http import LibraryTransport, VendorClient


class HttpConnector(Connector[S, C]):
    """A connector holding kit HTTP clients (`VendorClient`, `LibraryTransport`) as attributes."""

    def __init__(self, settings: S, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        # The channel's reply limit, unless the account has its own (a Mastodon instance's, X Premium's).
        channel = CHANNELS.get(self.channel)
        self.max_reply_chars = getattr(settings, "max_reply_chars", channel.reply_limit if channel else None)

    @property
    def streaming(self) -> bool:
        """True when the connector's settings take `stream` and it is on (the platform also pushes items)."""
        return bool(getattr(self.settings, "stream", False))

    def first_poll_start(self) -> datetime:
        """How far back a fetch without a cursor reaches: `first_poll_hours` (a setting every polled connector takes) ago."""
        return self.clock() - timedelta(hours=getattr(self.settings, "first_poll_hours", 0))

    def poll_budgets(self) -> list[RateBudget]:
        """Each client's budget, and of a library's transport the budgets of the endpoints polls read."""
        budgets = super().poll_budgets()
        for value in list(vars(self).values()):
            if isinstance(value, LibraryTransport):
                budgets += value.poll_budgets()
        return budgets

    async def close(self) -> None:
        """Close the HTTP session of every client the connector holds."""
        for value in list(vars(self).values()):
            if isinstance(value, VendorClient | LibraryTransport):
                await value.close()
