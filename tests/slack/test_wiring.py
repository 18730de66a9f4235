"""How Slack plugs in: config keys, the manifest, `inbox check`, the route, the notifier in the outbox."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from rich.console import Console

from inbox.checks import run_checks
from inbox.fakes.slack import FakeSlack
from inbox.pipeline.outbox import LogNotifier
from inbox.service import Inbox
from inbox.settings import ConfigError
from inbox.slack.notifier import SlackNotifier
from tests.conftest import make_settings
from tests.slack.conftest import Harness, slack_config

MANIFEST = Path(__file__).resolve().parents[2] / "config" / "slack-manifest.yml"
INTERACTIONS = Path(__file__).resolve().parents[2] / "inbox" / "slack" / "interactions.py"


def manifest_list(key: str) -> set[str]:
    """The items of the YAML list under `key:` (the manifest is plain block YAML)."""
    lines = MANIFEST.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{key}:")
    indent = len(lines[start]) - len(lines[start].lstrip())
    items = set()
    for line in lines[start + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        items.add(line.strip().removeprefix("- "))
    return items


def test_the_manifest_asks_for_exactly_what_the_app_uses():
    # chat.postMessage/update/postEphemeral, conversations.history/replies (public and private
    # triage channels), /inbox, users.info (who may act), usergroups.users.list (allowed_group), and the external
    # upload of the weekly digest's chart (files.getUploadURLExternal, files.completeUploadExternal).
    assert manifest_list("bot") == {
        "chat:write",
        "files:write",
        "channels:history",
        "groups:history",
        "commands",
        "users:read",
        "usergroups:read",
    }
    events = set(re.findall(r'app\.event\("([a-z_]+)"\)', INTERACTIONS.read_text()))
    assert events == {"app_home_opened", "message"}
    assert manifest_list("bot_events") == {"app_home_opened", "message.channels", "message.groups"}
    text = MANIFEST.read_text()
    assert "command: /inbox" in text and 'app.command("/inbox")' in INTERACTIONS.read_text()
    assert text.count("request_url: https://YOUR-HOST/slack/events") == 2 and "is_enabled: true" in text


def test_slack_keys_are_validated(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        make_settings(
            tmp_path,
            slack={
                "bot_token": "xoxb-1",
                "triage_channel": "C1",
                "leads_channel": "C2",
                "signing_secret": "s",
                "leads_group": "not-a-group",
                "reply_prefix": "",
            },
        )
    problems = "\n".join(caught.value.problems)
    assert "slack.leads_group" in problems and "slack.reply_prefix" in problems
    settings = make_settings(
        tmp_path, slack={"bot_token": "xoxb-1", "triage_channel": "C1", "leads_channel": "C2", "signing_secret": "s"}
    )
    assert settings.slack.reply_prefix == "reply:" and settings.slack.allowed_group is None


async def test_with_slack_on_the_outbox_notifies_slack_and_without_it_the_log(
    engine, tmp_path: Path, fake_slack: FakeSlack
):
    on = Inbox(make_settings(tmp_path, **slack_config(fake_slack, tmp_path)), engine)
    assert [type(n) for n in on.outbox.notifiers] == [SlackNotifier]
    await on.slack.close()  # type: ignore[union-attr]
    off = Inbox(make_settings(tmp_path), engine)
    assert off.slack is None and [type(n) for n in off.outbox.notifiers] == [LogNotifier]


async def test_inbox_check_tries_slack_auth(tmp_path: Path, fake_slack: FakeSlack):
    good = make_settings(tmp_path, **{**slack_config(fake_slack, tmp_path), "connectors": []})
    out = Console(record=True, width=200)
    assert await run_checks(good, out) == 0
    assert re.search(r"slack\s+│\s+http\s+│\s+ok\s+│\s+bot <@UBOT0001> in Subarachnoid", out.export_text())
    config = slack_config(fake_slack, tmp_path)
    config["slack"]["bot_token"] = "xoxb-revoked"
    bad = make_settings(tmp_path, **{**config, "connectors": []})
    out = Console(record=True, width=200)
    assert await run_checks(bad, out) == 1
    assert "Slack answered invalid_auth" in out.export_text()


async def test_slack_events_route_answers_url_verification_and_healthz_still_works(harness: Harness):
    import json

    from inbox.fakes import slack_payloads as payloads

    body = json.dumps(
        {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}
    )
    status, answer, _ = await harness.post(body, payloads.signed(body, content_type="application/json"))
    assert status == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer
    async with harness.http.get(f"{harness.url}/healthz") as response:
        assert response.status == 200


async def test_without_slack_there_is_no_slack_route(engine, tmp_path: Path):
    from inbox.server import start_server

    inbox = Inbox(make_settings(tmp_path), engine)
    site = await start_server(inbox, "127.0.0.1", 0)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{site.port}/slack/events", data=b"x") as response,
        ):
            assert response.status in (404, 405)
    finally:
        await site.runner.cleanup()


async def test_socket_mode_takes_interactions_over_a_websocket(harness_factory):
    harness: Harness = await harness_factory(app_token="xapp-1-test", signing_secret=None)
    assert harness.slack.socket_mode
    thread = await harness.customer_says("1")
    await harness.dispatch()
    status, _, _ = await harness.click(thread, "inbox_assign")
    assert status in (404, 405)  # no HTTP endpoint in Socket Mode

    from inbox.fakes import slack_payloads as payloads
    from tests.slack.conftest import AGENT, TRIAGE

    message = harness.triage_message(thread)
    payload = payloads.block_action(
        "inbox_assign",
        harness.value_of(thread, "inbox_assign"),
        user=AGENT,
        channel=TRIAGE,
        message_ts=message["ts"],
        response_url=harness.fake.response_url(),
    )
    await harness.fake.send_envelope(
        {
            "envelope_id": "env-1",
            "type": "interactive",
            "accepts_response_payload": True,
            "payload": payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
    )
    deadline = asyncio.get_running_loop().time() + 10
    while not harness.fake.socket_acks and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    assert harness.fake.socket_acks[0]["envelope_id"] == "env-1"
    await harness.settle()
    assert f"Assigned to <@{AGENT}>" in str(harness.triage_message(thread)["blocks"])
