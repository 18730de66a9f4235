"""Rate limits are not failures: the real X and Mastodon connectors against their local fakes, the real poller,
an injected clock and jitter. The vendors' resets are real epoch seconds, as on the wire."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.fakes.mastodon import TOKEN, MastodonFake
from inbox.fakes.x import XFake
from inbox.pipeline.poller import Poller
from inbox.pipeline.workers import Leases
from inbox.service import Inbox
from inbox.store.models import ConnectorHealth, EventKind
from tests.conftest import FakeClock, Recorder, close_connectors
from tests.connectors.test_x import NAME, config
from tests.test_server import get

MASTODON = "acme-mastodon"


def top(low: float, high: float) -> float:
    """Jitter that always takes the top of its range: a second or two past a reset is then two seconds."""
    return high


@pytest.fixture
def fake(x_fake: XFake) -> XFake:
    return x_fake


@pytest.fixture
async def mastodon() -> AsyncIterator[MastodonFake]:
    server = await MastodonFake().start()
    yield server
    await server.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def inbox(inbox_factory: Any, fake: XFake, mastodon: MastodonFake, recorder: Recorder) -> AsyncIterator[Inbox]:
    masto = {
        "name": MASTODON,
        "type": "mastodon",
        "api_url": mastodon.base_url,
        "access_token": TOKEN,
        "poll_seconds": 30,
    }
    inbox = inbox_factory(recorder, connectors=[config(fake), masto])
    yield inbox
    await close_connectors(inbox)


def poller(inbox: Inbox, name: str, clock: FakeClock) -> Poller:
    """The real poller of the connector, with the test's clock and jitter (and the service's metrics, for /healthz)."""
    built = Poller(inbox.connectors[name], inbox.ingestor, metrics=inbox.metrics, clock=clock, jitter=top)
    inbox.pollers[name] = built
    return built


async def health(inbox: Inbox, name: str) -> ConnectorHealth:
    async with inbox.engine.connect() as conn:
        return (await conn.execute(sa.select(ConnectorHealth).where(ConnectorHealth.connector == name))).one()


async def health_changes(inbox: Inbox, recorder: Recorder) -> list[dict[str, Any]]:
    await inbox.outbox.dispatch()
    return [n.payload for n in recorder.notices if n.kind == EventKind.CONNECTOR_HEALTH]


def sample(inbox: Inbox, metric: str, name: str) -> float | None:
    return inbox.metrics.registry.get_sample_value(metric, {"connector": name})


# How far ahead a 429's reset is: far enough that a poll slowed down by a busy machine still reads it ahead (a reset
# already past says nothing, and the poller falls back to its backoff), and unlike any backoff step (30, 60, 120 s).
RESET_IN = 100


async def refused(x: Poller, fake: XFake) -> tuple[float, float, float, Any]:
    """One poll answered by X's 429 with its reset RESET_IN seconds ahead: (reset, before, after, result)."""
    fault = fake.fault_rate_limited(reset_in=RESET_IN + 0.5)  # X sends whole epoch seconds: within a second of it
    fake.faults.append(fault)
    before = time.time()
    result = await x.poll_once()
    return float(fault.headers["x-rate-limit-reset"]), before, time.time(), result


async def test_a_429_is_retried_just_after_its_reset_not_by_backoff(inbox, fake, clock, recorder):
    x = poller(inbox, NAME, clock)
    fake.add_customer_post("where is my parcel?", author="ana")
    for _ in range(3):
        reset, before, after, result = await refused(x, fake)
        assert result.error is not None and "429" in result.error
        # The reset plus the (injected) two seconds of jitter: not the 30, 60, 120 s of the backoff without a reset.
        assert reset - after + 2 <= result.delay <= reset - before + 2
        clock.advance(seconds=result.delay)
    row = await health(inbox, NAME)
    assert (row.healthy, row.failures, row.reason) == (True, 0, None)
    assert (await x.poll_once()).stored == 1
    assert await health_changes(inbox, recorder) == []


async def test_429s_for_under_10_minutes_keep_the_connector_healthy_counted_and_shown_on_healthz(
    inbox, fake, clock, recorder
):
    x = poller(inbox, NAME, clock)
    first = clock.now
    for _ in range(9):  # a refusal a minute, for 8 minutes
        _, _, _, result = await refused(x, fake)
        last = clock.now
        clock.advance(minutes=1)
    row = await health(inbox, NAME)
    assert (row.healthy, row.failures) == (True, 0) and row.last_poll_at == last
    assert sample(inbox, "inbox_rate_limited_total", NAME) == 9
    assert sample(inbox, "inbox_rate_limited_until_seconds", NAME) == pytest.approx(last.timestamp() + result.delay)
    status, body = await get(inbox, "/healthz")
    shown = json.loads(body)
    assert status == 200 and shown["status"] == "ok" and shown["unhealthy"] == []
    entry = shown["connectors"][NAME]
    assert entry["healthy"] is True
    assert datetime.fromisoformat(entry["rate_limited_since"]) == first
    assert datetime.fromisoformat(entry["rate_limited_until"]).timestamp() == pytest.approx(
        last.timestamp() + result.delay
    )
    assert shown["connectors"][MASTODON]["rate_limited_until"] is None
    assert await health_changes(inbox, recorder) == []

    fake.add_customer_post("still there?", author="ana", minutes_ago=0.5)
    assert (await x.poll_once()).stored == 1
    entry = json.loads((await get(inbox, "/healthz"))[1])["connectors"][NAME]
    assert (entry["rate_limited_since"], entry["rate_limited_until"]) == (None, None)
    assert sample(inbox, "inbox_rate_limited_until_seconds", NAME) == 0


async def test_rate_limited_for_over_10_minutes_is_unhealthy_once_and_admins_are_told_once(
    inbox, fake, clock, recorder
):
    x = poller(inbox, NAME, clock)
    healthy = []
    for _ in range(14):  # a refusal a minute, for 13 minutes
        await refused(x, fake)
        healthy.append((await health(inbox, NAME)).healthy)
        clock.advance(minutes=1)
    # Ten minutes of refusals are borne; the one after 11 minutes is not.
    assert healthy == [True] * 11 + [False] * 3
    reason = (await health(inbox, NAME)).reason
    assert reason.startswith("rate limited by the vendor for 13 min (more than 10)") and "429" in reason
    changes = await health_changes(inbox, recorder)
    assert len(changes) == 1 and changes[0]["healthy"] is False and "rate limited" in changes[0]["reason"]

    fake.add_customer_post("hello?", author="ana", minutes_ago=0.5)
    assert (await x.poll_once()).stored == 1
    assert (await health(inbox, NAME)).healthy
    assert [c["healthy"] for c in await health_changes(inbox, recorder)] == [False, True]


async def test_polls_are_spaced_out_when_the_announced_budget_would_not_last_until_the_reset(
    inbox, fake, clock, caplog
):
    caplog.set_level(logging.INFO, logger="inbox.ratelimit")
    x = poller(inbox, NAME, clock)
    mentions = fake.windows["mentions"]
    mentions.remaining, mentions.reset = 5, int(time.time()) + 900  # X Basic: a few reads per 15-minute window
    delays = []
    for left in (4, 3):
        before = time.time()
        result = await x.poll_once()
        after = time.time()
        assert result.error is None
        # The requests left spread over the time to the reset, instead of every 60 s (66 with jitter).
        assert (mentions.reset - after) / left <= result.delay <= (mentions.reset - before) / left
        delays.append(result.delay)
    paced = [r for r in caplog.records if "more request(s) until its reset" in r.getMessage()]
    assert len(paced) == 1, "pacing is told once, not on every poll"

    mentions.remaining = 1  # the next answer says: nothing left until the reset, in a quarter of an hour
    before = time.time()
    result = await x.poll_once()
    assert mentions.reset - time.time() + 2 <= result.delay <= mentions.reset - before + 2
    # Polled early all the same (a stream dropped): held back by the spent budget, no request sent, still healthy.
    asked = len(fake.fetch_requests())
    early = await x.poll_once()
    assert len(fake.fetch_requests()) == asked and early.error is not None
    assert early.delay <= mentions.reset - before + 2
    assert (await health(inbox, NAME)).healthy

    assert sample(inbox, "inbox_rate_limited_total", NAME) == 1  # the early poll only: X never answered 429


async def test_mastodon_429_and_budget_flow_through_the_shared_http_code(inbox, mastodon, clock, recorder, caplog):
    masto = poller(inbox, MASTODON, clock)
    mastodon.add_customer_post("hello", author="ana")
    for _ in range(3):
        fault = mastodon.fault_rate_limited(reset_in=RESET_IN)  # X-RateLimit-Reset as ISO 8601, to the millisecond
        reset = datetime.fromisoformat(fault.headers["X-RateLimit-Reset"].replace("Z", "+00:00")).timestamp()
        mastodon.faults.append(fault)
        before = time.time()
        result = await masto.poll_once()
        assert result.error is not None and "429" in result.error
        assert reset - time.time() + 2 <= result.delay <= reset - before + 2
        clock.advance(seconds=result.delay)
    assert (await health(inbox, MASTODON)).healthy and sample(inbox, "inbox_rate_limited_total", MASTODON) == 3
    assert (await masto.poll_once()).stored == 1

    caplog.set_level(logging.INFO, logger="inbox.ratelimit")
    mastodon.rate_remaining = 3  # X-RateLimit-Remaining: 3, reset in 5 minutes from the answer
    before = time.time()
    result = await masto.poll_once()
    took = time.time() - before  # the answer's "5 minutes" were counted from some moment within the poll
    assert result.error is None and (300 - took) / 3 - 2 <= result.delay <= (300 + took) / 3 + 1  # not every 30 s
    mastodon.rate_remaining = None  # plenty again
    assert (await masto.poll_once()).delay == pytest.approx(33)
    assert [r.getMessage() for r in caplog.records if "configured interval again" in r.getMessage()] == [
        "the vendor's rate budget lasts at the configured interval again: polling every 30 s"
    ]
    assert await health_changes(inbox, recorder) == []


async def test_healthz_shows_the_rate_limit_only_on_the_worker_that_polls_the_connector(inbox, fake, clock):
    x = poller(inbox, NAME, clock)
    await refused(x, fake)
    assert json.loads((await get(inbox, "/healthz"))[1])["connectors"][NAME]["rate_limited_until"] is not None
    other = Leases(inbox.engine, "other-host:1:abcdef", [NAME], seconds=30, clock=clock)
    await other.refresh()  # the connector moved to another worker: what this one saw is stale
    entry = json.loads((await get(inbox, "/healthz"))[1])["connectors"][NAME]
    assert entry["polled_by"] == "other-host:1:abcdef" and entry["rate_limited_until"] is None
