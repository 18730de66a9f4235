"""The kit's reply windows, templates by language, waits said in words and epoch times sent as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from inbox.connector import Kind, ReplyTarget
from inbox.connectors.kit.http import seconds_in
from inbox.connectors.kit.parse import EpochText
from inbox.connectors.kit.windows import by_language, window_closes_at

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def target(kind: Kind = Kind.DM, closes: datetime | None = None) -> ReplyTarget:
    return ReplyTarget("m1", "t1", kind, "ana", {}, window_closes_at=closes)


def test_the_window_is_the_cores_else_the_registrys_from_the_items_own_time() -> None:
    moved = AT + timedelta(hours=30)
    assert window_closes_at(target(closes=moved), "whatsapp", AT.timestamp()) == moved
    assert window_closes_at(target(), "whatsapp", AT.timestamp()) == AT + timedelta(hours=24)
    assert window_closes_at(target(), "whatsapp", "yesterday") is None  # no time kept: unknown
    assert window_closes_at(target(), "whatsapp", True) is None
    assert window_closes_at(target(Kind.MENTION), "x", AT.timestamp()) is None  # X sets no window


def test_a_template_is_chosen_by_the_customers_language_then_a_regional_one_of_it() -> None:
    templates = {"fr": "suivi", "en_US": "follow_up", "en_GB": "follow_up_gb"}
    assert by_language(templates, "fr") == ("suivi", "fr")
    assert by_language(templates, "en") == ("follow_up_gb", "en_GB")  # the first regional one, by code
    assert by_language(templates, "en-AU") == ("follow_up_gb", "en_GB")
    assert by_language(templates, "ro") is None
    assert by_language(templates, None) is None and by_language({}, "fr") is None


@pytest.mark.parametrize(
    ("words", "seconds"),
    [
        ("you are doing that too much. try again in 9 minutes.", 540),
        ("Take a break for 30 seconds before trying again", 30),
        ("wait 1 hour", 3600),
        ("try again in 500 milliseconds", 0.5),
        ("try again later", None),
    ],
)
def test_a_wait_said_in_words_is_read_in_seconds(words: str, seconds: float | None) -> None:
    assert seconds_in(words) == seconds


class _Timed(BaseModel):
    at: EpochText


def test_epoch_seconds_as_text_or_number_read_as_utc_and_nothing_else() -> None:
    assert _Timed.model_validate({"at": "1504902988"}).at == datetime(2017, 9, 8, 20, 36, 28, tzinfo=UTC)
    assert _Timed.model_validate({"at": 1504902988}).at == _Timed.model_validate({"at": "1504902988"}).at
    for wrong in ("soon", True, None, "1e9", 10**20):
        with pytest.raises(ValueError):
            _Timed.model_validate({"at": wrong})
