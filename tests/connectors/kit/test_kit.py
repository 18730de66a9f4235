"""The kit's small shared pieces: the reply comparer, the thread cache, tokens, parsing, the channel registry."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field, SecretStr

from inbox.connector import (
    CHANNELS,
    AuthError,
    Connector,
    ConnectorSettings,
    Kind,
    PermanentError,
    RateBudget,
    RateLimited,
    display_name,
    generic_arguments,
    reply_limit,
)
from inbox.connectors.kit.auth import BearerToken
from inbox.connectors.kit.http import HeaderBudget
from inbox.connectors.kit.paging import paged
from inbox.connectors.kit.parse import (
    Digits,
    Entries,
    Id,
    Number,
    OptionalText,
    Text,
    Timestamp,
    ZonedTimestamp,
    one_of,
    or_empty,
    valid,
)
from inbox.connectors.kit.text import same_reply
from inbox.connectors.kit.threads import ThreadCache


@pytest.mark.parametrize(
    ("posted", "sent"),
    [
        ("@maria Thanks, it ships today", "Thanks, it ships today"),  # X and Mastodon address the reply
        ("@ana@mastodon.social  Thanks,\n it ships today", "Thanks, it ships today"),  # re-wrapped, remote handle
        ("Tracking: https://t.co/abc123 &amp; more", "Tracking: https://example.com/track/1 & more"),  # t.co, entities
    ],
)
def test_a_reply_as_the_platform_shows_it_is_ours(posted: str, sent: str) -> None:
    assert same_reply(posted, sent)


@pytest.mark.parametrize(
    ("posted", "sent"), [("Thanks, it ships tomorrow", "Thanks, it ships today"), (None, "x"), (42, "42")]
)
def test_another_text_is_not_ours(posted: Any, sent: str) -> None:
    assert not same_reply(posted, sent)


def test_the_thread_cache_forgets_the_least_recently_remembered() -> None:
    cache: ThreadCache[str] = ThreadCache(size=2)
    cache.remember("a", "t1")
    cache.remember("b", "t1")
    cache.remember("a", "t1")  # remembered again: now the newest
    cache.remember("c", "t2")
    assert "b" not in cache and cache["a"] == "t1" and cache["c"] == "t2"


async def test_a_token_is_renewed_a_minute_before_it_expires_and_after_a_refusal() -> None:
    now = [0.0]
    granted: list[str] = []

    async def renew() -> tuple[str, float]:
        granted.append(f"t{len(granted) + 1}")
        return granted[-1], 3600

    token = BearerToken(renew=renew, clock=lambda: now[0])
    assert await token.value() == "t1"
    now[0] = 3539
    assert await token.value() == "t1"
    now[0] = 3541
    assert await token.value() == "t2"
    assert await BearerToken(SecretStr("fixed")).value() == "fixed"
    with pytest.raises(AuthError):
        await BearerToken().value()


def test_vendor_payload_types_refuse_what_a_vendor_should_not_send() -> None:
    class Post(BaseModel):
        id: Id
        at: ZonedTimestamp
        seen: Timestamp | None = None

    assert one_of(Post, {"id": 7, "at": "2026-11-23T09:59:00.000Z"}) == Post(id="7", at="2026-11-23T09:59:00Z")
    for bad in (
        {"id": True, "at": "2026-11-23T09:59:00Z"},
        {"id": "1", "at": "2026-11-23T09:59:00"},
        {"id": "1", "at": 5},
        {"id": "1", "at": "0001-01-01T00:00:00+01:00"},
    ):
        assert isinstance(one_of(Post, bad), str)


def test_budgets_read_vendor_headers_and_refuse_when_spent() -> None:
    budget = HeaderBudget()
    budget.update({"x-ratelimit-remaining": "0.0", "x-ratelimit-reset": "120"}, now=1000.0)
    assert isinstance(budget, RateBudget) and (budget.remaining, budget.reset_at) == (0.0, 1120.0)
    with pytest.raises(RateLimited) as limited:
        budget.check(1000.0)
    assert limited.value.retry_after == 120.0
    budget.check(1121.0)  # past the reset: allowed


def test_the_channel_registry_answers_for_every_channel() -> None:
    assert display_name("app_store") == "the App Store" and display_name("shop") == "shop"
    assert (reply_limit("x"), reply_limit("x", Kind.DM), reply_limit("trustpilot"), reply_limit("nowhere")) == (
        280,
        10_000,
        None,
        None,
    )
    assert (reply_limit("bluesky"), reply_limit("bluesky", Kind.DM), display_name("bluesky")) == (300, 1000, "Bluesky")
    # One channel per platform connector; `jsonl` and `webhook` stand for one of them.
    from inbox.connectors import REGISTRY

    assert set(CHANNELS) == set(REGISTRY) - {"jsonl", "webhook"}


def test_a_connector_declares_its_settings_and_cursor_once_as_type_arguments() -> None:
    class Settings(ConnectorSettings):
        pass

    class Cursor(BaseModel):
        pass

    class Base(Connector[Settings, Cursor]):
        type = "mastodon"

    class Later(Base):
        pass

    assert (Later.settings_model, Later.cursor_model, Base.channel) == (Settings, Cursor, "mastodon")
    assert generic_arguments(Later, Connector) == (Settings, Cursor)


async def test_paging_stops_at_the_last_page_and_refuses_a_token_that_comes_back() -> None:
    tokens = {None: "a", "a": "b", "b": None}
    pages = [(page, last) async for page, last in paged("listing", _answer(tokens), lambda page: tokens[page])]
    assert pages == [(None, False), ("a", False), ("b", True)]
    looping = {None: "a", "a": "a"}
    with pytest.raises(PermanentError, match="loop detected"):
        [page async for page in paged("listing", _answer(looping), lambda page: looping[page])]


def _answer(tokens: dict[str | None, str | None]) -> Any:
    async def request(token: str | None) -> str | None:
        assert token in tokens
        return token

    return request


def test_an_entry_that_does_not_fit_is_named_by_what_is_wrong(caplog: pytest.LogCaptureFixture) -> None:
    class Mention(BaseModel):
        id: Digits
        author_id: Text
        created_at: ZonedTimestamp

    assert valid(Mention, {"id": "17", "author_id": "3"}, "acme-x", "mention") is None
    assert valid(Mention, {"id": "x1", "author_id": 3, "created_at": 1}, "acme-x", "mention") is None
    assert [r.getMessage() for r in caplog.records] == [
        "acme-x: skipped mention '17': missing created_at",
        "acme-x: skipped mention 'x1': id: id 'x1' is not numeric",
    ]


def test_what_only_decorates_an_item_reads_as_absent_when_it_does_not_fit() -> None:
    class User(BaseModel):
        username: OptionalText = None
        listed: Entries = Field(default_factory=list)
        number: Number | None = None

    assert or_empty(User, {"username": 42, "listed": "no"}) == User()
    assert or_empty(User, "not an object") == User()
    assert or_empty(User, {"username": "ana", "listed": [1], "number": 2}) == User(
        username="ana", listed=[1], number=2.0
    )
    assert isinstance(one_of(User, {"number": "2"}), str) and isinstance(one_of(User, {"number": True}), str)


def test_numbered_pages_end_with_a_short_page() -> None:
    from inbox.connectors.kit.reviews import next_number

    first = ("/reviews", {"page": 1, "perPage": 2})
    assert next_number(first, "page", 2, 2) == ("/reviews", {"page": 2, "perPage": 2})
    assert next_number(first, "page", 1, 2) is None


def test_words_are_found_whole_in_any_case() -> None:
    from inbox.connectors.kit.text import any_word

    brand = any_word(["Acme", " acme shop ", "C++", "  "])
    assert brand is not None and any_word([" ", ""]) is None
    assert [bool(brand.search(t)) for t in ("I love ACME!", "acmes are birds", "we use c++ here", "xc++")] == [
        True,
        False,
        True,
        False,
    ]
