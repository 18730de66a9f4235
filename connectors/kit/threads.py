"""Which conversation a post belongs to, remembered for the posts mapped and the replies sent."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

V = TypeVar("V")
# Posts remembered with their thread, so a reply chain inside one burst costs no extra call.
THREAD_CACHE = 10_000


class ThreadCache(Generic[V]):
    """A bounded map from a post's id to what is known of its thread; the least recently remembered go first."""

    def __init__(self, size: int = THREAD_CACHE) -> None:
        self.size = size
        self._known: OrderedDict[str, V] = OrderedDict()

    def __contains__(self, post_id: object) -> bool:
        return post_id in self._known

    def __getitem__(self, post_id: str) -> V:
        return self._known[post_id]

    def remember(self, post_id: str, known: V) -> None:
        """Keep what is known of this post's thread."""
        self._known[post_id] = known
        self._known.move_to_end(post_id)
        while len(self._known) > self.size:
            self._known.popitem(last=False)

    async def thread_of(self, post_id: str, parent: str | None, own: V, find: Callable[[], Awaitable[V]]) -> V:
        """A post's thread, remembered: `own` when it answers nothing, its parent's when known, else what `find` says."""
        thread = own if parent is None else self._known[parent] if parent in self._known else await find()
        self.remember(post_id, thread)
        return thread


class CustomerThreads(ThreadCache[tuple[str, str]]):
    """Conversations per customer: post -> (its conversation, the customer's id). A post joins its parent's
    conversation only when the parent is that same customer's, or the brand's reply to them."""

    async def conversation_of(
        self,
        post: str,
        customer: str,
        parent: str | None,
        brand: str,
        ancestors: Callable[[], AsyncIterator[tuple[str, str]]],
    ) -> str:
        """The customer's topmost post in the unbroken chain of their posts and the brand's replies; remembered.

        `ancestors` gives (post, author) from the parent up, read only when the parent is not remembered.
        """
        if parent is None:
            thread = post
        elif parent in self:
            known, whose = self[parent]
            thread = known if whose == customer else post
        else:
            thread = await self._walk(post, customer, brand, ancestors())
        self.remember(post, (thread, customer))
        return thread

    async def _walk(self, post: str, customer: str, brand: str, ancestors: AsyncIterator[tuple[str, str]]) -> str:
        root = post
        async for ancestor, author in ancestors:
            if ancestor in self:
                known, whose = self[ancestor]
                return known if whose == customer else root
            if author != brand:
                if author != customer:
                    break  # someone else's talk: the conversation with us starts below it
                root = ancestor
        return root
