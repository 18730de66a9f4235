"""The pagination guard: a page token seen twice is a loop, and a poll reads a bounded number of pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from inbox.connector import PermanentError

MAX_PAGES = 200
P = TypeVar("P")


class PageGuard:
    """Refuses a page token already seen, and runaway paging."""

    def __init__(self, what: str, max_pages: int = MAX_PAGES) -> None:
        self.what = what
        self.max_pages = max_pages
        self.seen: set[str] = set()

    def next(self, token: str | None) -> str | None:
        """Accept the next page token (None ends paging)."""
        if token is None:
            return None
        if token in self.seen:
            raise PermanentError(f"{self.what}: loop detected in pagination (token {token[:40]!r} came back)")
        if len(self.seen) >= self.max_pages:
            raise PermanentError(f"{self.what}: more than {self.max_pages} pages in one poll")
        self.seen.add(token)
        return token


async def paged(
    what: str, request: Callable[[str | None], Awaitable[P]], next_token: Callable[[P], str | None]
) -> AsyncIterator[tuple[P, bool]]:
    """Each page of a token-paged listing with whether it is the last; the caller may stop early, and then asks for no more."""
    guard = PageGuard(what)
    token: str | None = None
    while True:
        page = await request(token)
        following = next_token(page)
        yield page, following is None
        if following is None:
            return
        token = guard.next(following)
