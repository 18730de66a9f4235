"""The brand's own account on a platform: configured, or looked up once; a check refuses another account's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from inbox.connector import PermanentError

A = TypeVar("A")


class OwnAccount(Generic[A]):
    """The id of the account replies are sent from (its posts are the brand's), and the check of the credentials."""

    def __init__(self, configured: str | None, lookup: Callable[[], Awaitable[A]], id_of: Callable[[A], str]) -> None:
        self.configured = configured
        self._lookup = lookup
        self._id_of = id_of
        self._id = configured

    async def id(self) -> str:
        """The account's id: the configured one, or looked up on first use."""
        if self._id is None:
            self._id = self._id_of(await self._lookup())
        return self._id

    async def check(self, other: Callable[[A], str]) -> A:
        """The account the credentials belong to; a configured id of another account is refused with `other(account)`."""
        account = await self._lookup()
        if self.configured and self.configured != self._id_of(account):
            raise PermanentError(other(account))
        self._id = self._id_of(account)
        return account
