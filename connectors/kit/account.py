"""The brand's own account on a platform: configured, or looked up once; a check refuses another account's credentials."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from inbox.connector import PermanentError


class Account(Protocol):
    """What the kit reads of an account: its id on the platform."""

    @property
    def id(self) -> str:
        """The platform's id of the account."""
        ...


A = TypeVar("A", bound=Account)


class OwnAccount(Generic[A]):
    """The id of the account replies are sent from (its posts are the brand's), and the check of the credentials."""

    def __init__(self, name: str, key: str, configured: str | None, lookup: Callable[[], Awaitable[A]]) -> None:
        self.name = name
        self.key = key  # the setting that names the account
        self.configured = configured
        self._lookup = lookup
        self._id = configured

    async def id(self) -> str:
        """The account's id: the configured one, or looked up on first use."""
        if self._id is None:
            self._id = (await self._lookup()).id
        return self._id

    async def check(self, other: Callable[[A], str] | None = None) -> A:
        """The account the credentials belong to; a configured id of another account is refused (with `other(account)`)."""
        account = await self._lookup()
        if self.configured and self.configured != (found := account.id):
            why = other(account) if other else f"the token belongs to account {found}, not {self.key} {self.configured}"
            raise PermanentError(f"{self.name}: {why}")
        self._id = account.id
        return account
