"""Slack is never shown a secret: not in a connector's health notice, not in the note to an agent whose reply was refused."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.fakes.slack import FakeSlack
from inbox.pipeline.ingest import Source
from inbox.server import start_server
from inbox.service import Inbox
from inbox.store.models import Reply, Thread
from inbox.templates import ReplyTemplates
from inbox.triage import Triager
from tests.conftest import FakeClock, close_connectors, make_settings
from tests.inbox.pipeline.test_ingest import item
from tests.inbox.test_redaction import (  # noqa: F401 - echoing and fresh_secrets are fixtures
    EchoingTrustpilot,
    echoing,
    fresh_secrets,
    leaked,
    trustpilot_config,
    trustpilot_secrets,
)
from tests.slack.conftest import ADMIN, Harness, slack_config


async def test_slack_never_shows_the_credentials_a_vendor_echoed(
    engine: AsyncEngine,
    clock: FakeClock,
    triager: Triager,
    templates: ReplyTemplates,
    tmp_path: Path,
    fake_slack: FakeSlack,
    echoing: EchoingTrustpilot,
):
    fake_slack.now = lambda: clock.now.timestamp()
    config = slack_config(fake_slack, tmp_path, admin_channel=ADMIN)
    config["connectors"].append(trustpilot_config(echoing))
    inbox = Inbox(make_settings(tmp_path, **config), engine, clock=clock, triager=triager, templates=templates)
    site = await start_server(inbox, "127.0.0.1", 0)
    assert inbox.slack is not None
    await inbox.slack.start()
    harness = Harness(inbox, site, fake_slack, clock, tmp_path)
    try:
        # A review stored before the vendor's gateway started refusing (and echoing) every call.
        review = echoing.add_review("my parcel is late", author="ann")
        stored = item(review.id, clock, kind="review", reply_to={"review_id": review.id})
        await inbox.ingestor.ingest(Source.of(inbox.connectors["acme-trustpilot"]), [stored])
        assert (await inbox.pollers["acme-trustpilot"].poll_once()).error is not None  # auth refused: unhealthy at once
        await harness.dispatch()
        [notice] = fake_slack.posted(ADMIN)
        async with engine.connect() as conn:
            thread = (
                await conn.execute(sa.select(Thread.id).where(Thread.connector == "acme-trustpilot"))
            ).scalar_one()

        status, _, _ = await harness.click(thread, "inbox_send")
        await harness.settle()
        assert status == 200
        [told] = harness.ephemerals()
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(Reply.status))).scalar_one() == "failed"
    finally:
        await harness.close()
        await close_connectors(inbox)

    secrets = trustpilot_secrets(echoing)
    assert "Invalid access token" in json.dumps(notice) and "Invalid access token" in told  # the reasons are shown...
    assert leaked(json.dumps(notice), secrets) == [] and leaked(told, secrets) == []  # ...without the credentials
    assert (
        leaked(json.dumps([call.args for call in fake_slack.calls]), secrets) == []
    )  # nor anywhere else sent to Slack
