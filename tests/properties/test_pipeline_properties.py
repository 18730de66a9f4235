"""Ingest, triage and templates on hostile input: no crash, each valid item stored once, cursor saved, skips logged."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import MAX_HANDLE, MAX_ID, MAX_NAME, MAX_TEXT, MAX_URL, Kind, RawItem
from inbox.pipeline.ingest import Source
from inbox.service import Inbox
from inbox.store.cursors import load_cursor
from inbox.store.models import Item
from inbox.templates import ReplyTemplates, reply_variables
from inbox.triage import Intent, Triager
from tests.conftest import FakeClock, capture_context
from tests.properties import any_text, hostile_text, odd_datetimes, representable

NOW = FakeClock().now
SOURCE = Source(name="props-x", channel="x", max_reply_chars=280, own_handles=frozenset({"acme"}))
# Unique ids across examples: the store is shared by all examples of one test.
_SERIAL = itertools.count()


class Cursor(BaseModel):
    """A connector cursor as ingest stores it."""

    since_id: str


@dataclass
class Spec:
    """One generated item and whether ingest must accept it."""

    raw: RawItem
    valid: bool
    expected_text: str | None


def _valid_shape(raw: RawItem) -> bool:
    """The documented validity rules, restated independently of inbox.pipeline.ingest."""
    return (
        isinstance(raw.external_id, str)
        and bool(raw.external_id.strip())
        and len(raw.external_id) <= 255
        and isinstance(raw.text, str)
        and isinstance(raw.author_handle, str)
        and bool(raw.author_handle.strip())
        and len(raw.author_handle) <= 255
        and (raw.thread_id is None or (isinstance(raw.thread_id, str) and len(raw.thread_id) <= 255))
        and isinstance(raw.posted_at, datetime)
        and representable(raw.posted_at)
    )


@st.composite
def raw_items(draw: st.DrawFn, serial: int, index: int) -> Spec:
    """A RawItem with hostile text and author, an odd timestamp, and sometimes a broken field."""
    external_id: Any = f"p{serial}-{index}-" + draw(hostile_text(2))[:40]
    broken = draw(
        st.sampled_from([None, None, None, "id", "long_id", "text", "author", "long_author", "thread", "time"])
    )
    text: Any = draw(any_text())
    author: Any = draw(st.one_of(st.sampled_from(["bob", "@Bob", "ana"]), any_text()))
    thread: Any = draw(st.one_of(st.none(), st.just(f"t{serial}-" + draw(hostile_text(2))[:40])))
    posted_at: Any = draw(odd_datetimes(NOW))
    if broken == "id":
        external_id = draw(st.sampled_from(["", None, 12345]))
    elif broken == "long_id":
        external_id = f"p{serial}-{index}-" + "x" * 300
    elif broken == "text":
        text = draw(st.sampled_from([None, 42, b"bytes"]))
    elif broken == "author":
        author = draw(st.sampled_from(["", "  \t", None, "\x00\x00"]))
    elif broken == "long_author":
        author = "h" * draw(st.integers(256, 5000))
    elif broken == "thread":
        thread = draw(st.sampled_from([123, "t" * 300]))
    elif broken == "time":
        posted_at = draw(st.sampled_from([None, "2026-11-23T10:00:00Z", 1700000000]))
    raw = RawItem(
        external_id=external_id,
        text=text,
        posted_at=posted_at,
        kind=draw(st.sampled_from(list(Kind))),
        author_handle=author,
        author_name=draw(st.one_of(st.none(), any_text())),
        thread_id=thread,
        url=draw(
            st.one_of(
                st.none(),
                hostile_text(2),
                st.integers(2000, 2_000_000).map(lambda n: ("https://x.example/" + "a" * n)[:n]),
            )
        ),
        rating=draw(st.one_of(st.none(), st.integers(-10, 10))),
    )
    # NUL is dropped from every string (PostgreSQL cannot store it); validity is judged after that.
    clean = replace(
        raw,
        **{
            k: v.replace("\x00", "")
            for k in ("external_id", "author_handle", "thread_id")
            if isinstance(v := getattr(raw, k), str)
        },
    )
    valid = _valid_shape(clean) and not _is_brand(clean)
    return Spec(raw, valid, text.replace("\x00", "").strip() if valid else None)


def _is_brand(raw: RawItem) -> bool:
    """The brand's own account (SOURCE.own_handles), however the handle is written."""
    return isinstance(raw.author_handle, str) and raw.author_handle.strip().lstrip("@").lower() in SOURCE.own_handles


@st.composite
def pages(draw: st.DrawFn) -> list[Spec]:
    """One to four items with ids unique to this example."""
    serial = next(_SERIAL)
    return [draw(raw_items(serial, i)) for i in range(draw(st.integers(1, 4)))]


async def stored_rows(engine: AsyncEngine, ids: list[str]) -> dict[str, Any]:
    """external_id -> the stored item's fields, for the given ids."""
    async with engine.connect() as conn:
        query = sa.select(Item.external_id, Item.text, Item.author_handle, Item.author_name, Item.url)
        rows = await conn.execute(query.where(Item.connector == SOURCE.name, Item.external_id.in_(ids)))
        return {row.external_id: row for row in rows}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=pages())
async def test_ingest_never_raises_stores_valid_items_once_and_saves_the_cursor(
    page: list[Spec], inbox_factory: Callable[..., Inbox], engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = inbox_factory()
    caplog.clear()
    capture_context(caplog)
    valid = {s.raw.external_id.replace("\x00", ""): s for s in page if s.valid}
    # The brand's own posts are dropped silently; everything else that is refused is logged.
    invalid = [s for s in page if not s.valid and not _is_brand(s.raw)]
    cursor = Cursor(since_id=str(page[0].raw.external_id))
    with caplog.at_level(logging.WARNING, logger="inbox.ingest"):
        first = await inbox.ingestor.ingest(SOURCE, [s.raw for s in page], cursor)
    assert first.stored == len(valid)
    assert first.skipped == len(page) - len(valid)  # the invalid ones and the brand's own posts
    # Each skipped item, and only those, is named by its position with a reason.
    assert [p.index for p in first.problems] == [i for i, s in enumerate(page) if not s.valid]
    assert all(p.reason for p in first.problems)
    assert await load_cursor(engine, SOURCE.name) == {"since_id": cursor.since_id}
    # Every invalid item is named in a warning that says which connector dropped it.
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "skipped item" in r.getMessage()]
    assert len(warnings) == len(invalid), [w.getMessage() for w in warnings]
    assert all(getattr(w, "connector", None) == SOURCE.name and "external_id" in vars(w) for w in warnings)
    # Text round-trips exactly, minus null bytes (which no store keeps) and surrounding whitespace; too long, it is cut
    # with a marker. Every stored field fits its documented bound.
    rows = await stored_rows(inbox.engine, list(valid))
    assert set(rows) == set(valid)
    for key, spec in valid.items():
        row, expected = rows[key], spec.expected_text
        assert expected is not None
        if len(expected) <= MAX_TEXT:
            assert row.text == expected
        else:
            assert (
                len(row.text) == MAX_TEXT and row.text.startswith(expected[: MAX_TEXT - 100]) and row.text.endswith("]")
            )
        assert len(row.author_handle) <= MAX_HANDLE and len(row.external_id) <= MAX_ID
        assert row.author_name is None or len(row.author_name) <= MAX_NAME
        url = spec.raw.url.replace("\x00", "") if spec.raw.url is not None else None
        assert row.url == (url if url is None or len(url) <= MAX_URL else None)  # a URL too long to be one is dropped
    # The same page again (a re-poll) stores nothing new.
    again = await inbox.ingestor.ingest(SOURCE, [s.raw for s in page], Cursor(since_id="again"))
    assert (again.stored, again.duplicates) == (0, len(valid))
    assert await load_cursor(engine, SOURCE.name) == {"since_id": "again"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=any_text(),
    name=st.one_of(st.none(), any_text()),
    rating=st.one_of(st.none(), st.integers(1, 5)),
    kind=st.sampled_from(list(Kind)),
    age=st.floats(-1e6, 1e7),
    max_chars=st.one_of(st.none(), st.integers(1, 5000)),
)
def test_triage_and_suggestion_never_raise_never_evaluate_customer_data_and_fit(
    text: str,
    name: str | None,
    rating: int | None,
    kind: Kind,
    age: float,
    max_chars: int | None,
    triager: Triager,
    templates: ReplyTemplates,
) -> None:
    result = triager.classify(text, rating=rating, kind=str(kind), age_minutes=age)
    assert result.intent in set(Intent)
    variables = reply_variables(
        customer_name=name, channel="x", kind=str(kind), text=text, agent_name="Ana", brand="Acme"
    )
    suggestion = templates.render(result.intent, result.language, variables, max_chars)
    if max_chars is not None:
        assert len(suggestion.text) <= max_chars
    # Template syntax in a customer's name is printed, never run: {{ 7*7 }} never becomes 49.
    if name and "{{ 7*7 }}" in name and not suggestion.truncated:
        assert "49" not in suggestion.text.replace(name, "")


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["{{ 7*7 }}", "{% for x in range(10**9) %}x{% endfor %}", "{{ ''.__class__.__mro__ }}"]),
    intent=st.sampled_from(list(Intent)),
    language=st.sampled_from(["en", "fr", "ro", "xx"]),
)
def test_template_code_in_customer_name_is_printed_literally(
    name: str, intent: Intent, language: str, templates: ReplyTemplates
) -> None:
    variables = reply_variables(
        customer_name=name, channel="x", kind="mention", text=name, agent_name="Ana", brand="Acme"
    )
    text = templates.render(intent, language, variables).text
    assert "49" not in text and "<class" not in text and "xxxx" not in text
