"""Review sites: a review whose time cannot be held in UTC is skipped with a log line; its page goes on."""

from __future__ import annotations

import logging

import pytest

from inbox.connectors import app_store, google_play, google_reviews, trustpilot
from inbox.connectors.kit.parse import each_valid

FAR = "0001-01-01T00:00:00+01:00"  # no UTC time exists for it


@pytest.mark.parametrize(
    ("model", "bad", "good"),
    [
        (
            trustpilot._Review,
            {"id": "r1", "stars": 1, "createdAt": FAR},
            {"id": "r2", "stars": 1, "createdAt": "2026-11-23T09:00:00Z"},
        ),
        (
            app_store._Attributes,
            {"rating": 1, "createdDate": FAR},
            {"rating": 1, "createdDate": "2026-11-23T09:00:00-07:00"},
        ),
        (
            google_play._DeveloperComment,
            {"text": "x", "lastModified": {"seconds": "99999999999999"}},
            {"text": "x", "lastModified": {"seconds": "1763888400"}},
        ),
        (
            google_reviews._ReviewReply,
            {"comment": "x", "updateTime": FAR},
            {"comment": "x", "updateTime": "2026-11-23T09:00:00Z"},
        ),
    ],
)
def test_an_impossible_time_skips_that_review_only(model, bad, good, caplog):
    with caplog.at_level(logging.WARNING):
        kept = list(each_valid(model, [bad, good], "acme-reviews"))
    assert len(kept) == 1
    assert any(r.getMessage().startswith("acme-reviews: skipped") for r in caplog.records)
