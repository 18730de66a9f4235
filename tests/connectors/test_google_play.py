"""google_play against a fake Android Publisher API: the contract, the documented payload, edits, the 7-day window."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from inbox.connector import AuthError
from inbox.connectors.google_play import GooglePlayConnector, GooglePlaySettings
from inbox.connectors.kit.reviews import ReviewCursor
from inbox.fakes.google import ACCESS_TOKEN, CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, SERVICE_ACCOUNT
from inbox.fakes.google_play import PACKAGE, GooglePlayFake
from inbox.fakes.reviews import OWN_NAME
from inbox.pipeline.actions import ActionError
from inbox.settings import ConfigError
from inbox.sla import ClockKind, SlaState
from inbox.store.models import Thread
from tests.conftest import FakeClock, make_settings, serving
from tests.connectors.contract import ConnectorLevel
from tests.connectors.helpers import build, items_of  # noqa: F401 - build is a fixture

NAME = "acme-android"

# inbox/fakes/data/google_play/GET_reviews.documented_excerpt.json: the two reviews are VERBATIM the example of
# https://developers.google.com/android-publisher/reply-to-reviews (the developerComment entry is SHAPE-ONLY);
# tokenPagination is dropped so the listing ends here.
DOCUMENTED_PAGE: dict[str, Any] = {
    "reviews": [
        {
            "reviewId": "12345678",
            "authorName": "Jane Bloggs",
            "comments": [
                {
                    "userComment": {
                        "text": "This is the best app ever!",
                        "lastModified": {"seconds": "1443676826", "nanos": 713000000},
                        "starRating": 5,
                    }
                }
            ],
        },
        {
            "reviewId": "11223344",
            "authorName": "John Doe",
            "comments": [
                {
                    "userComment": {
                        "text": "I love using this app!",
                        "lastModified": {"seconds": "141582134", "nanos": 213000000},
                        "starRating": 5,
                        "reviewerLanguage": "en",
                        "device": "trltecan",
                        "androidOsVersion": 21,
                        "appVersionCode": 12345,
                        "appVersionName": "1.2.3",
                        "thumbsUpCount": 10,
                        "thumbsDownCount": 3,
                        "deviceMetadata": {
                            "productName": "E5333 (Xperia™ C4 Dual)",
                            "manufacturer": "Sony",
                            "deviceClass": "phone",
                            "screenWidthPx": 1080,
                        },
                    }
                },
                {
                    "developerComment": {
                        "text": "SHAPE-ONLY developer reply text",
                        "lastModified": {"seconds": "1423101467", "nanos": 813000000},
                    }
                },
            ],
        },
    ],
    "pageInfo": {"totalResults": 2, "resultPerPage": 2, "startIndex": 0},
}


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[GooglePlayFake]:
    async with serving(GooglePlayFake(), clock) as fake:
        yield fake


@pytest.fixture
def connector_config(fake: GooglePlayFake) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "google_play",
        "api_url": fake.base_url,
        "package_name": PACKAGE,
        "access_token": ACCESS_TOKEN,
        "own_handles": [OWN_NAME],
    }


def connector(config: dict[str, Any]) -> GooglePlayConnector:
    return GooglePlayConnector(GooglePlaySettings.model_validate(config))


class TestGooglePlayContract(ConnectorLevel):
    name = NAME


async def test_the_documented_reviews_map_to_items(fake, connector_config):
    fake.verbatim.append(copy.deepcopy(DOCUMENTED_PAGE))
    play = connector({**connector_config, "first_poll_hours": 876000})
    try:
        jane, john = [i async for page in play.fetch(None) for i in page.items]
    finally:
        await play.close()
    assert (jane.external_id, jane.thread_id, jane.rating, jane.kind) == (
        "12345678@1443676826",
        "12345678",
        5,
        "review",
    )
    assert jane.text == "This is the best app ever!" and (jane.author_handle, jane.author_name) == (
        "Jane Bloggs",
        "Jane Bloggs",
    )
    assert jane.posted_at == datetime(2015, 10, 1, 5, 20, 26, 713000, tzinfo=UTC)
    assert jane.url == "https://play.google.com/store/apps/details?id=com.acme.shop&reviewId=12345678"
    assert john.posted_at == datetime.fromtimestamp(141582134, UTC) + timedelta(microseconds=213000)
    # The developer replied after John's (only) version: answered, with the reply kept because ours would replace it.
    assert john.reply_to == {
        "review_id": "11223344",
        "language": "en",
        "existing_reply": "SHAPE-ONLY developer reply text",
    }
    assert john.answered_at == datetime.fromtimestamp(1423101467, UTC) + timedelta(microseconds=813000)
    assert jane.answered_at is None and "existing_reply" not in jane.reply_to


async def test_an_edit_after_our_reply_is_a_follow_up_with_a_next_response_clock(fake, build, engine, clock):
    inbox = build()
    first = fake.add_customer_post("App crashes at checkout", author="li", minutes_ago=5)
    await inbox.pollers[NAME].poll_once()
    thread_id = (await items_of(engine, NAME))[first].thread_id
    await inbox.actions.reply(thread_id, "Sorry! Version 2.1.1 fixes it.", "ana")
    assert fake.replies[-1].target == first

    clock.advance(minutes=30)
    fake.now = clock.now
    edited = fake.add_customer_post("Still crashes on 2.1.1", minutes_ago=0, reply_to=first)
    assert (await inbox.pollers[NAME].poll_once()).stored == 1
    items = await items_of(engine, NAME)
    assert edited != first and items[edited].thread_id == thread_id and items[edited].text == "Still crashes on 2.1.1"
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Thread).where(Thread.id == thread_id))).one()
    assert (thread.cycle, thread.clock_kind, thread.sla_stage) == (2, ClockKind.NEXT_RESPONSE, SlaState.OK)


async def test_check_says_play_lists_only_seven_days(fake, connector_config):
    play = connector({**connector_config, "poll_seconds": 300})
    try:
        line = await play.check()
    finally:
        await play.close()
    assert "only the last 7 days" in line and "every 5 min" in line and "WARNING" not in line


async def test_a_long_poll_interval_is_warned_in_check_and_at_start(fake, connector_config, caplog):
    with caplog.at_level(logging.WARNING):
        play = connector({**connector_config, "poll_seconds": 2 * 86400})
    try:
        line = await play.check()
    finally:
        await play.close()
    assert "WARNING: poll_seconds = 172800 is longer than a day" in line
    assert any(r.getMessage().startswith(f"{NAME}: poll_seconds = 172800") for r in caplog.records)


async def test_a_poll_interval_beyond_plays_hourly_quota_is_warned(fake, connector_config):
    play = connector({**connector_config, "poll_seconds": 10})
    try:
        assert "WARNING: poll_seconds = 10 spends most of Play's 200 review requests per hour" in await play.check()
    finally:
        await play.close()


async def test_a_cursor_older_than_the_window_is_warned_about(fake, connector_config, caplog):
    play = connector(connector_config)
    stale = ReviewCursor(newest=datetime.now(UTC) - timedelta(days=9))
    try:
        with caplog.at_level(logging.WARNING):
            [page async for page in play.fetch(stale)]
    finally:
        await play.close()
    assert any("may be lost" in r.getMessage() and r.getMessage().startswith(NAME) for r in caplog.records)


async def test_play_does_not_list_reviews_older_than_seven_days(fake, build, engine):
    fake.add_review("old", minutes_ago=8 * 24 * 60)
    recent = fake.add_customer_post("new", minutes_ago=10)
    await build(first_poll_hours=720).pollers[NAME].poll_once()
    assert list(await items_of(engine, NAME)) == [recent]


async def test_a_reply_over_350_characters_is_refused_by_the_core(fake, build, engine):
    inbox = build()
    review = fake.add_customer_post("hi")
    await inbox.pollers[NAME].poll_once()
    with pytest.raises(ActionError, match="350"):
        await inbox.actions.reply((await items_of(engine, NAME))[review].thread_id, "x" * 351, "ana")
    assert fake.replies == []


async def test_an_anonymous_author_gets_a_handle_of_their_own(fake, build, engine):
    review = fake.add_review("no name", anonymous=True)
    await build().pollers[NAME].poll_once()
    [item] = (await items_of(engine, NAME)).values()
    assert (item.author_handle, item.author_name) == (f"anonymous:{review.id}", None)


async def test_the_refresh_token_flow_is_shared_with_google_reviews(fake, connector_config):
    config = {k: v for k, v in connector_config.items() if k != "access_token"}
    play = connector(
        {
            **config,
            "token_url": fake.token_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
    )
    try:
        await play.check()
    finally:
        await play.close()
    assert fake.token_grants == 1 and fake.fetch_requests()[-1].headers["Authorization"] == "Bearer ya29.refreshed-1"


def key_file(key: rsa.RSAPrivateKey) -> str:
    """A service account's JSON key file, as the Cloud console downloads it (the fields that matter)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-project",
            "private_key_id": "0123abcd",
            "private_key": pem,
            "client_email": SERVICE_ACCOUNT,
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


async def test_a_service_account_signs_its_way_to_a_token(fake, connector_config):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake.service_account_public_key = key.public_key()
    config = {k: v for k, v in connector_config.items() if k != "access_token"}
    play = connector({**config, "token_url": fake.token_url, "service_account_key": key_file(key)})
    try:
        await play.check()
        await play.check()
    finally:
        await play.close()
    assert fake.token_grants == 1


async def test_a_service_account_google_does_not_know_is_an_auth_error(fake, connector_config):
    fake.service_account_public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    config = {k: v for k, v in connector_config.items() if k != "access_token"}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    play = connector({**config, "token_url": fake.token_url, "service_account_key": key_file(other)})
    try:
        with pytest.raises(AuthError, match="invalid_grant"):
            await play.check()
    finally:
        await play.close()


def test_a_service_account_key_is_checked_when_the_config_is_read(tmp_path):
    base = {"name": NAME, "type": "google_play", "package_name": PACKAGE}
    with pytest.raises(ConfigError, match="content of a service account's JSON key file"):
        make_settings(tmp_path, connectors=[{**base, "service_account_key": "/path/to/key.json"}])
