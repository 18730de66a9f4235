"""app_store against a fake App Store Connect: the contract, ES256 JWTs, Apple's example payload, 409 and 429."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from inbox.connector import AuthError, PermanentError, TransientError
from inbox.connectors.app_store import AppStoreConnector, AppStoreSettings
from inbox.fakes.app_store import APP_ID, ISSUER_ID, KEY_ID, AppStoreFake
from inbox.fakes.reviews import OWN_NAME
from inbox.settings import ConfigError
from tests.conftest import FakeClock, make_settings
from tests.connectors.contract import ConnectorContract, ConnectorLevel
from tests.connectors.helpers import build, review_target  # noqa: F401 - build is a fixture

NAME = "acme-ios"

# inbox/fakes/data/app_store/GET_v1_appStoreVersions_id_customerReviews.json: VERBATIM Apple's documented
# example; only links.next is dropped, since it points at the appStoreVersions listing this fake does not serve.
APPLE_EXAMPLE: dict[str, Any] = {
    "data": [
        {
            "type": "customerReviews",
            "id": "00000028-b08c-0014-9674-c54800000000",
            "attributes": {
                "rating": 5,
                "title": "Pretty Stellar",
                "body": "I love how creative I can be when I use this app. I can really explore the depths of my imagination!",
                "reviewerNickname": "Juan Chavez",
                "createdDate": "2024-01-02T11:19:36-07:00",
                "territory": "USA",
            },
            "relationships": {
                "response": {
                    "links": {
                        "self": "https://api.appstoreconnect.apple.com/v1/customerReviews/00000028-b08c-0014-9674-c54800000000/relationships/response",
                        "related": "https://api.appstoreconnect.apple.com/v1/customerReviews/00000028-b08c-0014-9674-c54800000000/response",
                    }
                }
            },
            "links": {
                "self": "https://api.appstoreconnect.apple.com/v1/customerReviews/00000028-b08c-0014-9674-c54800000000"
            },
        }
    ],
    "links": {
        "self": "https://api.appstoreconnect.apple.com/v1/appStoreVersions/d716c220-3de9-4cf2-a885-8cfb43a11087/customerReviews?filter%5Bterritory%5D=USA&limit=1",
    },
    "meta": {"paging": {"total": 10, "limit": 1}},
}


def pem(key: ec.EllipticCurvePrivateKey) -> str:
    """The key as the .p8 file App Store Connect hands out (PKCS#8 PEM)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
async def fake(clock: FakeClock, private_key: ec.EllipticCurvePrivateKey) -> AsyncIterator[AppStoreFake]:
    fake = AppStoreFake(private_key.public_key())
    fake.now = clock.now
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def connector_config(fake: AppStoreFake, private_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return {
        "name": NAME,
        "type": "app_store",
        "api_url": fake.base_url,
        "key_id": KEY_ID,
        "issuer_id": ISSUER_ID,
        "private_key": pem(private_key),
        "app_id": APP_ID,
        "own_handles": [OWN_NAME],
    }


def connector(config: dict[str, Any]) -> AppStoreConnector:
    return AppStoreConnector(AppStoreSettings.model_validate(config))


class TestAppStoreContract(ConnectorLevel):
    name = NAME

    # Removed, not skipped: customerReviews carry only createdDate, no update time, so a customer's edit cannot be
    # told from the listing, and a review has no customer follow-ups.
    test_level_a_follow_up_joins_its_thread = None


async def test_rate_limit_waits_for_the_vendors_reset(fake, inbox_factory, connector_config):
    # Through the store, for the one rate limit without a reset: App Store's.
    # Adapted: Apple's 429 (RATE_LIMIT_EXCEEDED) names no reset time: its window is a rolling hour and
    # Apple says "wait and try again or slow down". So there is no 120-second reset to wait for; the
    # poll is refused as rate-limited, the core waits the poll interval (longer with each refusal), and the next poll recovers.
    # Stopping *before* a 429 is the rate budget's job: see test_a_spent_hourly_budget_holds_requests_back.
    inbox = inbox_factory(connectors=[connector_config])
    poller = inbox.pollers[NAME]
    try:
        fake.faults.append(fake.fault_rate_limited(reset_in=120))
        fake.add_customer_post("hello", author="a")
        limited = await poller.poll_once()
        assert limited.error is not None and "RATE_LIMIT_EXCEEDED" in limited.error
        assert 0 < limited.delay < 120
        ConnectorContract.assert_rate_limited_not_failed(TestAppStoreContract(), poller)
        assert (await poller.poll_once()).stored == 1
    finally:
        await inbox.connectors[NAME].close()


async def test_apples_example_maps_rating_title_body_and_time(fake, connector_config):
    fake.verbatim.append(copy.deepcopy(APPLE_EXAMPLE))
    store = connector({**connector_config, "first_poll_hours": 876000})
    try:
        [item] = [i async for page in store.fetch(None) for i in page.items]
    finally:
        await store.close()
    assert (item.external_id, item.thread_id, item.rating, item.kind) == (
        "00000028-b08c-0014-9674-c54800000000",
        "00000028-b08c-0014-9674-c54800000000",
        5,
        "review",
    )
    assert (
        item.text
        == "Pretty Stellar\n\nI love how creative I can be when I use this app. I can really explore the depths of my imagination!"
    )
    assert (item.author_handle, item.author_name) == ("Juan Chavez", "Juan Chavez")
    assert item.posted_at == datetime(2024, 1, 2, 18, 19, 36, tzinfo=UTC)
    assert item.reply_to == {"review_id": "00000028-b08c-0014-9674-c54800000000", "territory": "USA"}


async def test_the_token_is_an_es256_jwt_apple_accepts_and_it_is_reused(fake, connector_config, private_key):
    store = connector(connector_config)
    try:
        assert await store.check() == "App Store app Acme Shop (com.acme.shop)"
        await store.check()
    finally:
        await store.close()
    first, second = fake.tokens
    assert first == second  # signed once, used until shortly before it expires
    header = jwt.get_unverified_header(first)
    claims = jwt.decode(first, private_key.public_key(), algorithms=["ES256"], audience="appstoreconnect-v1")
    assert (header["alg"], header["kid"], header["typ"]) == ("ES256", KEY_ID, "JWT")
    assert claims["iss"] == ISSUER_ID and claims["aud"] == "appstoreconnect-v1"
    assert 0 < claims["exp"] - claims["iat"] <= 20 * 60 and abs(claims["iat"] - time.time()) < 5


async def test_a_token_near_its_expiry_is_signed_again(fake, connector_config):
    store = connector(connector_config)
    try:
        await store.check()
        store.token._expires_at = 0.0  # the clock of the token cache, moved past the 15 minutes
        await store.check()
    finally:
        await store.close()
    assert len(set(fake.tokens)) == 2


async def test_a_key_apple_does_not_know_is_refused(fake, connector_config):
    other = pem(ec.generate_private_key(ec.SECP256R1()))
    store = connector({**connector_config, "private_key": other})
    try:
        with pytest.raises(AuthError, match="NOT_AUTHORIZED"):
            await store.check()
    finally:
        await store.close()


async def test_next_links_on_apples_host_are_followed_under_api_url(fake, build, engine):
    for n in range(450):
        fake.add_review(f"r{n}", author=f"u{n}", minutes_ago=500 - n)
    result = await build().pollers[NAME].poll_once()
    assert result.stored == 450
    queries = [dict(r.query) for r in fake.fetch_requests()]
    assert len(queries) == 3 and all(q["limit"] == "200" and q["sort"] == "-createdDate" for q in queries)
    assert [("cursor" in q) for q in queries] == [False, True, True]


async def test_an_existing_response_with_our_text_counts_as_sent(fake, connector_config):
    review = fake.add_review("Crashes on launch", rating=1)
    fake.add_existing_reply(review.id, "Fixed in 2.1, sorry!")
    store = connector(connector_config)
    try:
        sent = await store.reply(review_target(review.id), "Fixed in 2.1, sorry!")
        assert sent.external_id == f"response-{review.id}"
        with pytest.raises(PermanentError, match="already has a different developer response"):
            await store.reply(review_target(review.id), "Something else")
    finally:
        await store.close()
    assert fake.replies == []  # both POSTs were answered 409


async def test_find_reply_is_none_while_apple_has_no_response(fake, connector_config):
    review = fake.add_review("Love it", rating=5)
    store = connector(connector_config)
    try:
        assert await store.find_reply(review_target(review.id), "Thanks!") is None
        sent = await store.reply(review_target(review.id), "Thanks!")
        assert await store.find_reply(review_target(review.id), "Thanks!") == sent
    finally:
        await store.close()


async def test_the_rate_budget_is_read_from_x_rate_limit(fake, connector_config):
    store = connector(connector_config)
    try:
        await store.check()
    finally:
        await store.close()
    assert store.client.budget.remaining == fake.remaining


async def test_a_spent_hourly_budget_holds_requests_back(fake, connector_config):
    fake.remaining = 1  # the next answer says user-hour-rem:0
    store = connector(connector_config)
    try:
        await store.check()
        calls = len(fake.requests)
        with pytest.raises(TransientError) as held:
            await store.check()
    finally:
        await store.close()
    assert len(fake.requests) == calls and held.value.retry_after is not None and held.value.retry_after > 3000


def test_the_private_key_is_checked_when_the_config_is_read(tmp_path, connector_config):
    with pytest.raises(ConfigError, match="private_key: is not a PEM private key"):
        make_settings(tmp_path, connectors=[{**connector_config, "private_key": "not a key"}])
    flattened = connector_config["private_key"].replace("\n", "\\n")
    settings = make_settings(tmp_path, connectors=[{**connector_config, "private_key": flattened}])
    assert settings.connectors[0].private_key.get_secret_value().startswith("-----BEGIN PRIVATE KEY-----\n")
