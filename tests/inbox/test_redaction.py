"""Never a secret: configured secrets and tokens granted at run time are redacted from logs, the store, /healthz and `inbox check`."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from pydantic import BaseModel
from rich.console import Console

from inbox.checks import run_checks
from inbox.connector import Connector, ConnectorSettings, Page, ReplyTarget, SentReply, TransientError
from inbox.connectors.kit.http import VendorClient
from inbox.fakes.trustpilot import API_KEY, API_SECRET, PASSWORD, USERNAME, TrustpilotFake
from inbox.logs import MAX_RUNTIME_SECRETS, REDACTED, SECRETS, Secrets
from inbox.pipeline.actions import ActionError
from inbox.pipeline.ingest import Source
from inbox.pipeline.poller import Poller
from inbox.server import start_server
from inbox.store.models import ConnectorHealth, Event, Reply, Thread
from tests.conftest import FakeClock, make_settings, serving
from tests.connectors.test_trustpilot import connector_config
from tests.inbox.pipeline.test_ingest import item
from tests.inbox.test_logs import Captured, json_log  # noqa: F401 - json_log is a fixture

ROOT = Path(__file__).resolve().parents[2]
BASIC = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()


class EchoingTrustpilot(TrustpilotFake):
    """Trustpilot behind a gateway that refuses every API call and echoes the request's headers in its error body."""

    def authorized(self, request: web.Request) -> web.Response:
        """401 naming the token it refused, with every request header (the token again, the API key)."""
        return self.error(
            401, f"Invalid access token {self.bearer(request)}; request headers: {json.dumps(dict(request.headers))}"
        )


def trustpilot_config(fake: TrustpilotFake) -> dict[str, Any]:
    """The password grant: the token the connector sends is granted at run time, never configured."""
    config = {k: v for k, v in connector_config.__wrapped__(fake).items() if k != "access_token"}  # type: ignore[attr-defined]
    return {**config, "api_secret": API_SECRET, "username": USERNAME, "password": PASSWORD}


def trustpilot_secrets(fake: TrustpilotFake) -> list[str]:
    """What must never be shown: the configured secrets, the Basic credentials and every token the fake granted."""
    assert fake.token_grants >= 1, "the connector never obtained a token"
    return [API_KEY, API_SECRET, PASSWORD, BASIC, *(f"granted-token-{n}" for n in range(1, fake.token_grants + 1))]


def leaked(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    """Each test starts with no known secret, so what it redacts it learnt itself."""
    SECRETS.clear()
    yield
    SECRETS.clear()


@pytest.fixture
async def echoing(clock: FakeClock) -> AsyncIterator[EchoingTrustpilot]:
    async with serving(EchoingTrustpilot(), clock) as fake:
        yield fake


# ------------------------------------------------------------------------------------------------ the filter


def test_every_configured_secret_is_redacted_from_message_arguments_exception_and_fields(
    tmp_path: Path, json_log: Captured
):
    settings = make_settings(
        tmp_path,
        database={"url": "postgresql+asyncpg://inbox:db-Passw0rd@db.internal:5432/inbox"},
        slack={
            "bot_token": "xoxb-1111-2222-abcdef",
            "signing_secret": "0123456789abcdef0123",
            "app_token": "xapp-1-A1-2-ffff",
            "triage_channel": "C1",
            "leads_channel": "C2",
        },
        connectors=[
            {
                "name": "acme-mastodon",
                "type": "mastodon",
                "api_url": "https://mastodon.example",
                "access_token": "mastodon-T0KEN-value",
            },
            {
                "name": "acme-trustpilot",
                "type": "trustpilot",
                "business_unit_id": "b",
                "business_user_id": "u",
                "api_key": "tp-key-123456",
                "access_token": "tp-token-abcdef",
            },
        ],
    )
    SECRETS.add_settings(settings)
    secrets = [
        "db-Passw0rd",
        "xoxb-1111-2222-abcdef",
        "0123456789abcdef0123",
        "xapp-1-A1-2-ffff",
        "mastodon-T0KEN-value",
        "tp-key-123456",
        "tp-token-abcdef",
    ]
    log = logging.getLogger("inbox.test")
    log.warning("vendor said: %s", "bad token mastodon-T0KEN-value")
    log.warning(f"signing with 0123456789abcdef0123 and {'tp-key-123456'}")
    log.warning(
        "failed",
        extra={"reason": "token tp-token-abcdef refused", "attempts": 3, "sent": {"headers": ["apikey tp-key-123456"]}},
    )
    try:
        raise RuntimeError("cannot connect with xoxb-1111-2222-abcdef to postgresql://inbox:db-Passw0rd@db.internal")
    except RuntimeError:
        log.exception("crashed")
    assert leaked(json_log.text, secrets) == []
    args, fstring, extra, crashed = json_log.lines()
    assert args["message"] == f"vendor said: bad token {REDACTED}"
    assert fstring["message"] == f"signing with {REDACTED} and {REDACTED}"
    assert (extra["reason"], extra["attempts"], extra["sent"]) == (
        f"token {REDACTED} refused",
        3,
        {"headers": [f"apikey {REDACTED}"]},
    )
    assert "RuntimeError: cannot connect with" in crashed["exception"] and "db.internal" in crashed["exception"]


def test_credential_shapes_are_redacted_even_when_nobody_configured_them():
    secrets = Secrets()
    cases = {
        "GET https://bot:pr0xy-pass@proxy.example/api/v1/x failed": f"GET https://bot:{REDACTED}@proxy.example/api/v1/x failed",
        "wss://wss.slack.com/link/?ticket=abc123-def&app_id=A1": f"wss://wss.slack.com/link/?ticket={REDACTED}&app_id=A1",
        "https://api.example/v1?page=2&access_token=ya29.a0AfH6SM": f"https://api.example/v1?page=2&access_token={REDACTED}",
        "headers: {'Authorization': 'Bearer ya29.a0AfH6SMBx-123'}": f"headers: {{'Authorization': 'Bearer {REDACTED}'}}",
        "Authorization: bearer 1a2b3c4d5e6f7g8h": f"Authorization: bearer {REDACTED}",
        "token xoxb-123456-abcdef leaked": f"token {REDACTED} leaked",
    }
    for text, expected in cases.items():
        assert secrets.redact(text) == expected
    for ordinary in (
        "Basic information about the bearer of good news",
        "page=2&per_page=100",
        "https://mastodon.example/@bob",
    ):
        assert secrets.redact(ordinary) == ordinary


def test_escaped_forms_are_redacted_and_short_values_ignored():
    secrets = Secrets()
    secrets.add("p@ss/word+1", "abc", None, "")
    assert secrets.redact("password=p%40ss%2Fword%2B1&x=1") == f"password={REDACTED}&x=1"
    assert secrets.redact('{"password": "p@ss/word+1"}') == f'{{"password": "{REDACTED}"}}'
    assert (
        secrets.redact("grant_type=password&password=p%40ss%2Fword%2B1") == f"grant_type=password&password={REDACTED}"
    )
    assert secrets.redact("abc is not worth hiding") == "abc is not worth hiding"


def test_tokens_granted_at_run_time_are_kept_to_the_newest_configured_ones_always():
    secrets = Secrets()
    secrets.add("configured-secret-1")
    for n in range(MAX_RUNTIME_SECRETS + 50):
        secrets.add_request({"Authorization": f"Bearer jwt-{n:06d}", "User-Agent": "cx-inbox/0.1"})
    newest, oldest = f"jwt-{MAX_RUNTIME_SECRETS + 49:06d}", "jwt-000000"
    assert (
        secrets.redact(f"{newest} {oldest} configured-secret-1 cx-inbox/0.1")
        == f"{REDACTED} {oldest} {REDACTED} cx-inbox/0.1"
    )


def test_credentials_in_a_token_request_form_are_learnt():
    secrets = Secrets()
    secrets.add_request(
        {}, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "eyJhbGciOi.signed.jwt"}
    )
    assert secrets.redact("invalid_grant for eyJhbGciOi.signed.jwt") == f"invalid_grant for {REDACTED}"
    assert (
        secrets.redact("urn:ietf:params:oauth:grant-type:jwt-bearer") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    )


# ------------------------------------------------------------------------------------------------ real failures


async def test_a_vendor_echoing_the_credentials_leaks_them_nowhere(
    echoing: EchoingTrustpilot, inbox_factory: Any, engine: Any, clock: FakeClock, tmp_path: Path, json_log: Captured
):
    # `inbox check` below opens the configured store: one in the test's folder, not the working directory.
    inbox = inbox_factory(
        connectors=[trustpilot_config(echoing)], database={"url": f"sqlite:///{tmp_path / 'check.db'}"}
    )
    poller = inbox.pollers["acme-trustpilot"]
    for _ in range(2):
        result = await poller.poll_once()
        assert result.error is not None and "Invalid access token" in result.error
        clock.advance(minutes=20)
    secrets = trustpilot_secrets(echoing)
    assert echoing.token_grants == 2  # the refused token was dropped and a new one granted: both are secrets
    # The vendor really sent them back: the failure was about them, and they were cut out.
    assert "granted-token-1" in str(echoing.requests[1].headers) and REDACTED in result.error

    assert "Invalid access token" in json_log.text and leaked(json_log.text, secrets) == []
    async with engine.connect() as conn:
        health = (await conn.execute(sa.select(ConnectorHealth))).one()
        payloads = [e.payload for e in await conn.execute(sa.select(Event))]
    assert health.healthy is False and "Invalid access token" in health.reason
    assert leaked(health.reason, secrets) == [] and leaked(json.dumps(payloads), secrets) == []  # what Slack is told

    site = await start_server(inbox, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{site.port}/healthz") as response:
            body = await response.text()
    finally:
        await site.runner.cleanup()
    assert "Invalid access token" in body and leaked(body, secrets) == []

    await inbox.connectors["acme-trustpilot"].close()

    out = io.StringIO()
    problems = await run_checks(inbox.settings, Console(file=out, width=400))
    secrets = trustpilot_secrets(echoing)
    assert problems == 1 and "Invalid access token" in out.getvalue() and leaked(out.getvalue(), secrets) == []


async def test_a_reply_refused_with_the_credentials_echoed_tells_the_agent_without_them(
    echoing: EchoingTrustpilot, inbox_factory: Any, engine: Any, clock: FakeClock
):
    inbox = inbox_factory(connectors=[trustpilot_config(echoing)])
    review = echoing.add_review("my parcel is late", author="ann")
    stored = item(review.id, clock, kind="review", reply_to={"review_id": review.id})  # as the connector maps it
    await inbox.ingestor.ingest(Source.of(inbox.connectors["acme-trustpilot"]), [stored])
    async with engine.connect() as conn:
        thread = (await conn.execute(sa.select(Thread.id))).scalar_one()
    with pytest.raises(ActionError) as refused:
        await inbox.actions.reply(thread, "Sorry, Ann! It ships today.", "ana")
    secrets = trustpilot_secrets(echoing)
    assert "refused the reply" in str(refused.value) and "Invalid access token" in str(
        refused.value
    )  # what the agent sees in Slack
    assert leaked(str(refused.value), secrets) == []
    async with engine.connect() as conn:
        error = (await conn.execute(sa.select(Reply.error))).scalar_one()
    assert "Invalid access token" in error and leaked(error, secrets) == []
    await inbox.connectors["acme-trustpilot"].close()


async def test_a_password_in_a_proxy_url_stays_out_of_the_connection_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = VendorClient("acme-proxy", f"http://inbox:Pr0xy-Passw0rd@127.0.0.1:{port}")
    try:
        with pytest.raises(TransientError) as failed:
            await client.get("/api/v1/notifications")
    finally:
        await client.close()
    message = str(failed.value)
    assert f"GET http://inbox:{REDACTED}@127.0.0.1:{port}/api/v1/notifications failed: ClientConnectorError" in message
    assert "Pr0xy-Passw0rd" not in message


class _Settings(ConnectorSettings):
    type: str = "buggy"


class _Cursor(BaseModel):
    after: str = ""


class BuggyConnector(Connector[_Settings, _Cursor]):
    """A connector with a bug: its exception text holds the URL it built, token and all."""

    type = "buggy"
    settings_model = _Settings
    cursor_model = _Cursor
    token = "EAAB-long-lived-page-token-123"

    async def fetch(self, cursor: _Cursor | None) -> AsyncIterator[Page[_Cursor]]:
        """Crash the way a careless f-string does."""
        raise KeyError(f"no 'data' in the answer of https://api.example/v1/feed?access_token={self.token}")
        yield Page([])  # pragma: no cover - makes this an async generator

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Never called."""
        raise NotImplementedError

    async def check(self) -> str:
        """Never called."""
        return ""


async def test_a_connector_crash_whose_exception_holds_a_token_is_logged_and_stored_without_it(
    inbox_factory: Any, engine: Any, json_log: Captured
):
    inbox = inbox_factory()
    poller = Poller(BuggyConnector(_Settings(name="buggy")), inbox.ingestor)  # a bug: no registered type needed
    result = await poller.poll_once()
    assert result.error is not None and result.error.startswith("KeyError") and REDACTED in result.error
    crash = json_log.about("poll crashed")
    assert crash["connector"] == "buggy" and "KeyError" in crash["exception"] and "access_token=" in crash["exception"]
    assert BuggyConnector.token not in json_log.text
    async with engine.connect() as conn:
        assert BuggyConnector.token not in (await conn.execute(sa.select(ConnectorHealth.reason))).scalar_one()


# ------------------------------------------------------------------------------------------------ the command line


async def run_inbox(*args: str, cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inbox",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "300", "INBOX_CONFIG": "", "PYTHONPATH": str(ROOT)},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_inbox_check_against_an_echoing_vendor_prints_the_failure_without_the_credentials(
    echoing: EchoingTrustpilot, tmp_path: Path
):
    config = tmp_path / "inbox.toml"
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in trustpilot_config(echoing).items())
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "check.db"}"\n\n[[connectors]]\n{table}')
    code, output = await run_inbox("check", "--config", str(config), cwd=tmp_path)
    assert code == 1 and "Invalid access token" in output and "FAIL" in output
    assert leaked(output, trustpilot_secrets(echoing)) == []


async def test_a_bad_config_is_refused_without_showing_its_secrets(tmp_path: Path):
    config = tmp_path / "inbox.toml"
    config.write_text(
        '[database]\nurl = "postgresql+asyncpg://inbox:db-Passw0rd@127.0.0.1:1/inbox"\n'
        '[slack]\nbot_token = "xoxb-9999-8888-secretvalue"\napp_token = 12345678901234\ntriage_channel = "C1"\n'
        '[[connectors]]\nname = "acme-mastodon"\ntype = "mastodon"\napi_url = "https://m.example"\n'
        'access_token = "mastodon-secret-token"\nunknown_key = "mastodon-secret-token"\n'
        '[[connectors]]\nname = "acme-trustpilot"\ntype = "trustpilot"\napi_key = "tp-secret-key-42"\n'
    )
    for command in ("run", "check"):
        code, output = await run_inbox(command, "--config", str(config), cwd=tmp_path)
        assert (
            code == 2 and "connectors[acme-mastodon].unknown_key: unknown key" in output and "Traceback" not in output
        )
        assert "slack.app_token: Input should be a valid string" in output
        assert (
            leaked(
                output,
                [
                    "db-Passw0rd",
                    "xoxb-9999-8888-secretvalue",
                    "12345678901234",
                    "mastodon-secret-token",
                    "tp-secret-key-42",
                ],
            )
            == []
        )
