"""trustpilot against a fake Trustpilot API: the contract, title + text, page-number paging, replies, the password grant."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.connector import AuthError
from inbox.connectors.trustpilot import TrustpilotConnector, TrustpilotSettings
from inbox.fakes.data import payload
from inbox.fakes.reviews import OWN_NAME
from inbox.fakes.trustpilot import (
    ACCESS_TOKEN,
    API_KEY,
    API_SECRET,
    BUSINESS_UNIT_ID,
    BUSINESS_USER_ID,
    PASSWORD,
    USERNAME,
    TrustpilotFake,
)
from inbox.settings import ConfigError
from inbox.store.clocks import STOPPED
from inbox.store.models import Thread
from tests.conftest import FakeClock, make_settings, serving
from tests.connectors.contract import ConnectorLevel
from tests.connectors.helpers import build, items_of  # noqa: F401 - build is a fixture

NAME = "acme-trustpilot"

# inbox/fakes/data/trustpilot/GET_v1_private_business_units_id_reviews.SHAPE.json (SHAPE-ONLY: field set from
# tap-trustpilot's schema, values placeholders), verbatim.
SHAPE_PAGE: dict[str, Any] = payload("trustpilot", "GET_v1_private_business_units_id_reviews.SHAPE.json")


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[TrustpilotFake]:
    async with serving(TrustpilotFake(), clock) as fake:
        yield fake


def trustpilot_config(fake: TrustpilotFake, **extra: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "trustpilot",
        "api_url": fake.base_url,
        "business_unit_id": BUSINESS_UNIT_ID,
        "business_user_id": BUSINESS_USER_ID,
        "api_key": API_KEY,
        "access_token": ACCESS_TOKEN,
        "own_handles": [OWN_NAME],
        **extra,
    }


@pytest.fixture
def connector_config(fake: TrustpilotFake) -> dict[str, Any]:
    return trustpilot_config(fake)


def connector(config: dict[str, Any]) -> TrustpilotConnector:
    return TrustpilotConnector(TrustpilotSettings.model_validate(config))


class TestTrustpilotContract(ConnectorLevel):
    name = NAME

    # Removed, not skipped: Trustpilot lists reviews by creation time only (orderBy createdat/stars), so a
    # consumer's later update of a review never comes back in the listing, and a review has no customer follow-ups.
    test_level_a_follow_up_joins_its_thread = None


async def test_recorded_shape_maps_stars_title_text_and_language(fake, connector_config):
    fake.verbatim.append(copy.deepcopy(SHAPE_PAGE))
    trustpilot = connector({**connector_config, "first_poll_hours": 876000})
    try:
        [item] = [i async for page in trustpilot.fetch(None) for i in page.items]
    finally:
        await trustpilot.close()
    assert (item.external_id, item.thread_id, item.rating, item.kind) == (
        "SHAPE-ONLY-review-1",
        "SHAPE-ONLY-review-1",
        1,
        "review",
    )
    assert item.text == "Parcel never arrived\n\nOrdered two weeks ago, still nothing and no answer from support."
    assert (item.author_handle, item.author_name) == ("John Doe", "John Doe")
    assert item.posted_at == datetime(2013, 9, 7, 13, 37, tzinfo=UTC)
    assert item.url == "https://www.trustpilot.com/reviews/SHAPE-ONLY-review-1"
    assert item.reply_to == {"review_id": "SHAPE-ONLY-review-1", "language": "en"}
    # One review is fewer than perPage: the listing ended, whatever its links say.
    assert len(fake.fetch_requests()) == 1


async def test_pages_by_number_until_a_short_page(fake, build, engine):
    for n in range(150):
        fake.add_review(f"review {n}", author=f"c{n}", minutes_ago=200 - n)
    result = await build().pollers[NAME].poll_once()
    assert result.stored == 150
    assert [(r.query["page"], r.query["perPage"], r.query["orderBy"]) for r in fake.fetch_requests()] == [
        ("1", "100", "createdat.desc"),
        ("2", "100", "createdat.desc"),
    ]


async def test_a_later_poll_stops_at_the_cursor(fake, build):
    inbox = build()
    for n in range(150):
        fake.add_review(f"review {n}", author=f"c{n}", minutes_ago=200 - n)
    await inbox.pollers[NAME].poll_once()
    before = len(fake.fetch_requests())
    fake.add_review("new one", minutes_ago=0)
    assert (await inbox.pollers[NAME].poll_once()).stored == 1
    assert len(fake.fetch_requests()) - before == 1


async def test_a_reply_is_signed_by_the_business_user(fake, build, engine):
    inbox = build()
    review = fake.add_review("Late parcel", title="Meh", rating=2)
    await inbox.pollers[NAME].poll_once()
    item = (await items_of(engine, NAME))[review.id]
    assert item.text == "Meh\n\nLate parcel" and item.url.endswith(review.id)
    outcome = await inbox.actions.reply(item.thread_id, "Sorry, a new parcel is on its way.", "ana")
    assert outcome.status == "sent" and outcome.url == f"https://www.trustpilot.com/reviews/{review.id}"
    assert fake.replies[-1].details == {"author": BUSINESS_USER_ID}


async def test_a_review_answered_elsewhere_is_kept_with_a_note_and_its_clock_stopped(fake, build, engine, clock):
    review = fake.add_review("Nice", rating=5, minutes_ago=120)
    fake.add_existing_reply(review.id, "Thanks from the shop!")
    fake.reviews[review.id].reply_at = clock.now - timedelta(minutes=90)
    waiting = fake.add_review("Where is my parcel?", author="kim", rating=1, minutes_ago=100)
    inbox = build()
    await inbox.pollers[NAME].poll_once()
    items = await items_of(engine, NAME)
    assert items[review.id].reply_to["existing_reply"] == "Thanks from the shop!"
    async with engine.connect() as conn:
        threads = {t.id: t for t in await conn.execute(sa.select(Thread))}
    answered = threads[items[review.id].thread_id]
    assert (answered.status, answered.sla_stage, answered.responded_at) == (
        "replied",
        STOPPED,
        clock.now - timedelta(minutes=90),
    )
    # 100 minutes old and unanswered: breached; answered an hour after it was written: no alert, whatever its age.
    assert (await inbox.sweep.run()).breached == [items[waiting.id].thread_id]


async def test_a_company_reply_maps_to_the_time_it_was_written(fake, connector_config):
    review = fake.add_review("Nice", rating=5, minutes_ago=60)
    fake.add_existing_reply(review.id, "Thanks!")
    fake.reviews[review.id].reply_at = fake.now - timedelta(minutes=30)
    trustpilot = connector(connector_config)
    try:
        [item] = [i async for page in trustpilot.fetch(None) for i in page.items]
    finally:
        await trustpilot.close()
    # Trustpilot writes whole seconds.
    assert item.answered_at == (fake.now - timedelta(minutes=30)).replace(microsecond=0)


async def test_the_password_grant_gets_a_token_once(fake, connector_config):
    config = {k: v for k, v in connector_config.items() if k != "access_token"}
    trustpilot = connector({**config, "api_secret": API_SECRET, "username": USERNAME, "password": PASSWORD})
    fake.add_review("hello")
    try:
        assert "Acme" in await trustpilot.check()
        assert len([i async for page in trustpilot.fetch(None) for i in page.items]) == 1
    finally:
        await trustpilot.close()
    assert fake.token_grants == 1  # 100-hour tokens are reused
    assert {r.headers["Authorization"] for r in fake.fetch_requests()} == {"Bearer granted-token-1"}


async def test_a_wrong_password_is_an_auth_error(fake, connector_config):
    config = {k: v for k, v in connector_config.items() if k != "access_token"}
    trustpilot = connector({**config, "api_secret": API_SECRET, "username": USERNAME, "password": "wrong"})
    try:
        with pytest.raises(AuthError, match="password grant refused"):
            await trustpilot.check()
    finally:
        await trustpilot.close()


def test_credentials_are_required(tmp_path):
    base = {"name": NAME, "type": "trustpilot", "business_unit_id": "b", "business_user_id": "u", "api_key": "k"}
    with pytest.raises(ConfigError, match="set access_token, or api_secret, username and password"):
        make_settings(tmp_path, connectors=[base])
    with pytest.raises(ConfigError, match="business_user_id"):
        make_settings(
            tmp_path, connectors=[{k: v for k, v in base.items() if k != "business_user_id"} | {"access_token": "t"}]
        )
