"""The watermark over newest-first listings: what is new, when to stop reading back, how the mark advances."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from inbox.connectors.kit.parse import Name, Payload, Timestamp
from inbox.connectors.kit.watermark import Mark, ReadBack, advance, chunks

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class _Entry(Payload):
    id: Name
    at: Timestamp


def entry(ident: str, minutes: int) -> dict[str, str]:
    return {"id": ident, "at": (T0 + timedelta(minutes=minutes)).isoformat()}


def test_reading_back_stops_at_the_mark_and_skips_what_it_covers():
    mark = Mark(at=T0 + timedelta(minutes=5), ids=["b"])
    reader: ReadBack[None] = ReadBack(mark, T0, "test")
    first = [entry("d", 9), entry("c", 5), entry("b", 5)]  # newest first; b was read at the mark's time
    assert reader.read(first, _Entry, "entry", ("at", "id")) is False  # nothing older than the mark yet
    assert reader.read([entry("d", 9), entry("a", 4)], _Entry, "entry", ("at", "id")) is True  # d again, then older
    assert [(e.id, e.at) for e in reader.new()] == [("c", T0 + timedelta(minutes=5)), ("d", T0 + timedelta(minutes=9))]


def test_without_a_mark_the_horizon_is_the_floor_and_skip_passes_over_entries():
    reader: ReadBack[str] = ReadBack(None, T0, "test")
    page = [entry("ours", 3), entry("theirs", 2), entry("at-horizon", 0), entry("old", -1)]
    assert reader.read(page, _Entry, "entry", ("at", "id"), about="convo", skip=lambda raw: raw["id"] == "ours")
    assert [(e.id, e.about) for e in reader.new()] == [("at-horizon", "convo"), ("theirs", "convo")]


def test_an_entry_without_a_time_is_logged_with_why_and_skipped(caplog: pytest.LogCaptureFixture):
    reader: ReadBack[None] = ReadBack(None, T0, "test")
    with caplog.at_level(logging.WARNING):
        assert reader.read([{"id": "x", "at": 42}, entry("y", 1)], _Entry, "entry", ("at", "id")) is False
    assert [e.id for e in reader.new()] == ["y"]
    assert any("skipped entry 'x'" in r.getMessage() for r in caplog.records)


def test_the_mark_advances_over_chunks_read_oldest_first():
    reader: ReadBack[None] = ReadBack(None, T0, "test")
    reader.read([entry("c", 2), entry("b", 1), entry("a", 1)], _Entry, "entry", ("at", "id"))
    new = reader.new()
    [first, second] = list(chunks(new, 2))
    mark = advance(None, first)
    assert mark == Mark(at=T0 + timedelta(minutes=1), ids=["b", "a"])
    assert advance(mark, second) == Mark(at=T0 + timedelta(minutes=2), ids=["c"])
    assert advance(mark, []) == mark
