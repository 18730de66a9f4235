"""google_reviews against a fake Business Profile API: the contract, stars, rating-only and edited reviews, OAuth refresh."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.connector import AuthError, PermanentError
from inbox.connectors.google_reviews import GoogleReviewsConnector, GoogleReviewsSettings
from inbox.fakes.data import payload
from inbox.fakes.google import ACCESS_TOKEN, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN
from inbox.fakes.google_reviews import ACCOUNT_ID, LOCATION_ID, GoogleReviewsFake
from inbox.fakes.reviews import OWN_NAME
from inbox.pipeline.actions import ActionError
from inbox.settings import ConfigError
from inbox.sla import ClockKind, SlaState
from inbox.store.clocks import STOPPED
from inbox.store.models import Thread
from tests.conftest import FakeClock, make_settings
from tests.connectors.contract import ConnectorContract
from tests.connectors.helpers import build, items_of, review_target  # noqa: F401 - build is a fixture

NAME = "acme-google"

# inbox/fakes/data/google_reviews/GET_v4_accounts_locations_reviews.SHAPE.json (SHAPE-ONLY: field names
# from the v4 reference, values made up); nextPageToken dropped so the listing ends after this page.
SHAPE_PAGE: dict[str, Any] = {
    key: value
    for key, value in payload("google_reviews", "GET_v4_accounts_locations_reviews.SHAPE.json").items()
    if key != "nextPageToken"
}


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[GoogleReviewsFake]:
    fake = GoogleReviewsFake()
    fake.now = clock.now  # the fake's "now" is the test's clock, so the SLA sees platform times as they were
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def connector_config(fake: GoogleReviewsFake) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "google_reviews",
        "api_url": fake.base_url,
        "account_id": ACCOUNT_ID,
        "location_id": LOCATION_ID,
        "access_token": ACCESS_TOKEN,
        "own_handles": [OWN_NAME],
    }


def refresh_config(fake: GoogleReviewsFake, **extra: Any) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "google_reviews",
        "api_url": fake.base_url,
        "token_url": fake.token_url,
        "account_id": ACCOUNT_ID,
        "location_id": LOCATION_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        **extra,
    }


def connector(config: dict[str, Any]) -> GoogleReviewsConnector:
    return GoogleReviewsConnector(GoogleReviewsSettings.model_validate(config))


class TestGoogleReviewsContract(ConnectorContract):
    name = NAME


async def test_recorded_shape_maps_stars_rating_only_and_anonymous(fake, connector_config):
    fake.verbatim.append(copy.deepcopy(SHAPE_PAGE))
    google = connector({**connector_config, "first_poll_hours": 876000})
    try:
        items = [i async for page in google.fetch(None) for i in page.items]
    finally:
        await google.close()
    jane, anonymous = items
    assert (jane.external_id, jane.thread_id, jane.rating, jane.kind) == (
        "SHAPE-ONLY-review-1",
        "SHAPE-ONLY-review-1",
        2,
        "review",
    )
    assert jane.text == "Waited 40 minutes and nobody answered the phone."
    assert (jane.author_handle, jane.author_name) == ("Jane Customer", "Jane Customer")
    assert jane.posted_at == datetime(2014, 10, 2, 15, 1, 23, tzinfo=UTC)
    # Rating-only, anonymous, already answered outside cx-inbox: kept, with the existing reply noted.
    assert (anonymous.text, anonymous.rating) == ("", 5)
    assert anonymous.author_handle == "anonymous:SHAPE-ONLY-review-2" and anonymous.author_name == "A Google user"
    assert anonymous.posted_at == datetime(2014, 10, 2, 15, 1, 23, 45123, tzinfo=UTC)  # created, not updated
    assert anonymous.reply_to == {
        "review_id": "SHAPE-ONLY-review-2",
        "existing_reply": "Thank you for visiting our business!",
    }
    assert anonymous.answered_at == datetime(2014, 10, 3, 9, 0, tzinfo=UTC) and jane.answered_at is None


async def test_a_review_answered_in_google_before_the_poll_is_stored_answered_not_waiting(fake, build, engine, clock):
    answered = fake.add_review("Lovely staff", author="ines", rating=5, minutes_ago=300)
    fake.add_existing_reply(answered.id, "Thank you, Ines!")
    fake.reviews[answered.id].reply_at = clock.now - timedelta(minutes=240)
    changed = fake.add_review("Slow service", author="jon", rating=2, minutes_ago=200)
    fake.add_existing_reply(changed.id, "Sorry, Jon")
    fake.reviews[changed.id].reply_at = clock.now - timedelta(minutes=190)
    fake.edit(
        changed.id, "Slow service, and the reply did not help", minutes_ago=100
    )  # the customer wrote after the reply
    inbox = build()
    await inbox.pollers[NAME].poll_once()
    async with engine.connect() as conn:
        threads = {t.external_id: t for t in await conn.execute(sa.select(Thread))}
    assert (threads[answered.id].status, threads[answered.id].sla_stage) == ("replied", STOPPED)
    assert threads[answered.id].responded_at == clock.now - timedelta(minutes=240)
    assert (threads[changed.id].status, threads[changed.id].sla_stage) == ("new", SlaState.OK)
    items = await items_of(engine, NAME)
    assert (
        items[changed.id].reply_to["existing_reply"] == "Sorry, Jon"
    )  # still noted: a reply from the inbox replaces it
    assert (await inbox.sweep.run()).breached == [threads[changed.id].id]


@pytest.mark.parametrize("stars", [1, 2, 3, 4, 5])
async def test_star_words_become_numbers(fake, build, engine, stars):
    review = fake.add_review("ok", rating=stars)
    await build().pollers[NAME].poll_once()
    assert (await items_of(engine, NAME))[review.id].rating == stars


async def test_a_rating_only_review_is_stored_without_text(fake, build, engine):
    review = fake.add_review("", rating=1, anonymous=True)
    result = await build().pollers[NAME].poll_once()
    assert result.stored == 1
    row = (await items_of(engine, NAME))[review.id]
    assert (row.text, row.rating, row.author_handle) == ("", 1, f"anonymous:{review.id}")


async def test_the_fetch_asks_newest_updates_first_in_pages_of_50(fake, build):
    for n in range(60):
        fake.add_review(f"r{n}", minutes_ago=60 - n)
    await build().pollers[NAME].poll_once()
    queries = [dict(r.query) for r in fake.fetch_requests()]
    assert [q.get("pageToken") is not None for q in queries] == [False, True]
    assert all(q["pageSize"] == "50" and q["orderBy"] == "updateTime desc" for q in queries)


async def test_an_edited_review_after_our_reply_restarts_the_clock_in_the_same_thread(fake, build, engine, clock):
    inbox = build()
    review = fake.add_review("Cold food.", author="maria", rating=2, minutes_ago=5)
    await inbox.pollers[NAME].poll_once()
    thread_id = (await items_of(engine, NAME))[review.id].thread_id
    await inbox.actions.reply(thread_id, "Sorry Maria, we will make it right.", "ana")
    assert fake.replies[-1].target == review.id

    clock.advance(minutes=10)
    fake.now = clock.now
    edited = fake.add_customer_post("Cold food, and still no refund.", minutes_ago=0, reply_to=review.id)
    result = await inbox.pollers[NAME].poll_once()
    assert (result.stored, edited) == (1, f"{review.id}@{clock.now.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}")
    items = await items_of(engine, NAME)
    assert items[edited].thread_id == thread_id and items[edited].text == "Cold food, and still no refund."
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Thread).where(Thread.id == thread_id))).one()
    assert (thread.cycle, thread.clock_kind, thread.sla_stage) == (2, ClockKind.NEXT_RESPONSE, SlaState.OK)

    # The answer to the edit replaces our reply on the same review.
    await inbox.actions.reply(thread_id, "Refund sent today.", "ana")
    assert (fake.replies[-1].target, fake.reviews[review.id].reply) == (edited, "Refund sent today.")


async def test_our_reply_moving_update_time_is_not_a_follow_up(fake, build, engine, clock):
    fake.reply_bumps_update_time = True
    inbox = build()
    review = fake.add_review("Great staff", rating=5, minutes_ago=5)
    await inbox.pollers[NAME].poll_once()
    await inbox.actions.reply((await items_of(engine, NAME))[review.id].thread_id, "Thank you!", "ana")
    clock.advance(minutes=1)
    result = await inbox.pollers[NAME].poll_once()
    assert (result.stored, list(await items_of(engine, NAME))) == (0, [review.id])


async def test_a_review_already_edited_when_first_seen_is_one_item(fake, build, engine):
    review = fake.add_review("first words", minutes_ago=30)
    fake.edit(review.id, "second words", minutes_ago=2)
    await build().pollers[NAME].poll_once()
    items = await items_of(engine, NAME)
    assert list(items) == [review.id] and items[review.id].text == "second words"


async def test_the_first_poll_reads_only_first_poll_hours_back(fake, build, engine):
    fake.add_review("ancient", minutes_ago=60 * 24 * 30)
    recent = fake.add_review("recent", minutes_ago=60)
    await build(first_poll_hours=168).pollers[NAME].poll_once()
    assert list(await items_of(engine, NAME)) == [recent.id]


async def test_a_refresh_token_gets_and_renews_access_tokens(fake):
    fake.token_lifetime = 30  # shorter than the renewal margin: every call renews
    fake.add_review("hello")
    google = connector(refresh_config(fake))
    try:
        assert "1 review(s)" in await google.check()
        assert [i.external_id async for page in google.fetch(None) for i in page.items] == ["rev00001"]
    finally:
        await google.close()
    assert fake.token_grants == 2
    assert {r.headers["Authorization"] for r in fake.fetch_requests()} == {
        "Bearer ya29.refreshed-1",
        "Bearer ya29.refreshed-2",
    }


async def test_a_long_lived_token_is_reused(fake):
    google = connector(refresh_config(fake))
    try:
        await google.check()
        await google.check()
    finally:
        await google.close()
    assert fake.token_grants == 1


async def test_a_revoked_refresh_token_is_an_auth_error(fake):
    fake.refresh_token = "something-else"
    google = connector(refresh_config(fake))
    try:
        with pytest.raises(AuthError, match=r"token refresh refused.*invalid_grant"):
            await google.check()
    finally:
        await google.close()


async def test_a_refused_access_token_is_renewed_on_the_next_call(fake):
    google = connector(refresh_config(fake))
    try:
        await google.check()
        fake.faults.append(fake.fault_unauthorized())
        with pytest.raises(AuthError):
            await google.check()
        await google.check()
    finally:
        await google.close()
    assert fake.token_grants == 2


def test_credentials_are_required_and_go_together(tmp_path):
    base = {"name": NAME, "type": "google_reviews", "account_id": "1", "location_id": "2"}
    with pytest.raises(
        ConfigError, match="set one of: access_token; client_id, client_secret and refresh_token; service_account_key"
    ):
        make_settings(tmp_path, connectors=[base])
    with pytest.raises(ConfigError, match="go together"):
        make_settings(tmp_path, connectors=[{**base, "access_token": "t", "refresh_token": "r"}])
    with pytest.raises(ConfigError, match="set one of"):
        make_settings(
            tmp_path,
            connectors=[{**base, "access_token": "t", "client_id": "c", "client_secret": "s", "refresh_token": "r"}],
        )


async def test_a_reply_over_4096_bytes_is_refused_before_sending(fake, connector_config):
    google = connector(connector_config)
    review = fake.add_review("hi")
    target = review_target(review.id)
    try:
        with pytest.raises(PermanentError, match="bytes"):
            await google.reply(target, "é" * 2100)  # 2100 characters, 4200 bytes
    finally:
        await google.close()
    assert fake.replies == []


async def test_a_too_long_reply_is_refused_by_the_core(fake, build, engine):
    inbox = build()
    review = fake.add_review("hi")
    await inbox.pollers[NAME].poll_once()
    with pytest.raises(ActionError, match="4096"):
        await inbox.actions.reply((await items_of(engine, NAME))[review.id].thread_id, "x" * 4097, "ana")
