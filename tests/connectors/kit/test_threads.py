"""Conversations per customer: a post joins its parent's conversation only when the parent is theirs or our answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from inbox.connectors.kit.threads import CustomerThreads

BRAND = "brand"


def chain(*posts: tuple[str, str]) -> tuple[list[int], Callable[[], AsyncIterator[tuple[str, str]]]]:
    """The ancestors `posts`, and a count of how often they were asked for."""
    asked: list[int] = []

    async def ancestors() -> AsyncIterator[tuple[str, str]]:
        asked.append(1)
        for post in posts:
            yield post

    return asked, ancestors


async def test_a_post_answering_nothing_starts_its_own_conversation():
    threads = CustomerThreads()
    asked, ancestors = chain()
    assert await threads.conversation_of("p1", "ana", None, BRAND, ancestors) == "p1"
    assert asked == [] and threads["p1"] == ("p1", "ana")


async def test_a_known_parent_is_joined_only_by_the_same_customer():
    threads = CustomerThreads()
    threads.remember("ours", ("p1", "ana"))  # our answer in ana's conversation
    asked, ancestors = chain()
    assert await threads.conversation_of("p2", "ana", "ours", BRAND, ancestors) == "p1"
    assert await threads.conversation_of("p3", "bob", "ours", BRAND, ancestors) == "p3"
    assert asked == []


async def test_ancestors_are_walked_up_through_the_customers_posts_and_ours_to_someone_elses():
    threads = CustomerThreads()
    asked, ancestors = chain(("ours", BRAND), ("a1", "ana"), ("c1", "carl"), ("a0", "ana"))
    assert await threads.conversation_of("a2", "ana", "ours", BRAND, ancestors) == "a1"
    assert asked == [1]


async def test_a_remembered_ancestor_ends_the_walk():
    threads = CustomerThreads()
    threads.remember("a1", ("a0", "ana"))
    _, ancestors = chain(("ours", BRAND), ("a1", "ana"))
    assert await threads.conversation_of("a2", "ana", "ours", BRAND, ancestors) == "a0"
    _, ancestors = chain(("b1", "bob"), ("a1", "ana"))
    assert await threads.conversation_of("b2", "bob", "b1", BRAND, ancestors) == "b1"
