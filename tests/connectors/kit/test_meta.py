"""The Meta kit: the webhook handshake and signature, the envelope, and the Graph client against a local Graph fake."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr, ValidationError

from inbox.connector import AuthError, PermanentError, RateLimited, TransientError
from inbox.connectors.kit.meta import (
    GraphClient,
    MetaSettings,
    MissingPermission,
    envelope,
    handshake,
    sign,
    signature_ok,
)
from inbox.fakes.meta import GraphFake, meta_signature
from inbox.fakes.vendor import Fault

SECRET = "app-secret-0123456789abcdef"
TOKEN = "verify-token-0123456789"


class Accounts(GraphFake):
    """A Graph fake with one account and one paged list, enough to exercise the client."""

    def __init__(self) -> None:
        super().__init__()
        self.things = [{"id": str(n)} for n in range(45)]

    def graph_routes(self, app: web.Application) -> None:
        self.route(app, "GET", "/123", self._account)
        self.route(app, "GET", "/123/things", self._things)
        self.route(app, "POST", "/123/messages", self._send)

    async def _account(self, request: web.Request) -> web.Response:
        return web.json_response({"id": "123", "name": "Acme"})

    async def _things(self, request: web.Request) -> web.Response:
        return self.list_page(request, self.things)

    async def _send(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    def add_customer_post(self, text: str, **_: Any) -> str:
        raise NotImplementedError

    def add_brand_post(self, text: str) -> list[str]:
        raise NotImplementedError

    def add_existing_reply(self, target: str, text: str) -> None:
        raise NotImplementedError

    def add_broken_item(self) -> None:
        raise NotImplementedError


@pytest.fixture
async def fake():
    fake = await Accounts().start()
    yield fake
    await fake.close()


@pytest.fixture
async def graph(fake):
    client = GraphClient("meta-test", fake.base_url, fake.api_version, SecretStr(fake.token))
    yield client
    await client.close()


def test_the_handshake_echoes_the_challenge_only_for_the_right_token():
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": TOKEN}
    assert (handshake(TOKEN, query).status, handshake(TOKEN, query).text) == (200, "1158201444")
    assert handshake(TOKEN, {**query, "hub.verify_token": "wrong-token-0123456789"}).status == 403
    assert handshake(TOKEN, {k: v for k, v in query.items() if k != "hub.verify_token"}).status == 403
    assert handshake(TOKEN, {"hub.mode": "unsubscribe", "hub.challenge": "1"}).status == 400


def test_the_signature_is_checked_over_the_raw_bytes():
    body = b'{"object":"page","entry":[{"id":"1","messaging":[{"message":{"text":"caf\\u00e9"}}]}]}'
    assert sign(SECRET, body) == meta_signature(SECRET, body)  # the fake signs as Meta does, independently
    assert signature_ok(SECRET, body, sign(SECRET, body))
    assert signature_ok(SECRET, body, sign(SECRET, body).upper().replace("SHA256=", "sha256="))  # hex case
    # Re-serialised JSON is other bytes: the signature no longer matches.
    assert not signature_ok(SECRET, json.dumps(json.loads(body)).encode(), sign(SECRET, body))
    assert not signature_ok(SECRET, body, None) and not signature_ok(SECRET, body, "")
    assert not signature_ok(SECRET, body, sign("another-secret-0123456789", body))


def test_settings_refuse_weak_secrets_and_odd_versions():
    base = {"name": "m", "type": "whatsapp", "app_secret": SECRET, "verify_token": TOKEN}
    assert MetaSettings.model_validate(base).api_version == "v21.0"
    for bad in ({"app_secret": "short"}, {"verify_token": ""}, {"api_version": "21"}):
        with pytest.raises(ValidationError):
            MetaSettings.model_validate({**base, **bad})


def test_the_envelope_is_read_and_a_body_of_another_shape_refused():
    delivery = envelope(b'{"object": "page", "entry": [{"id": "1", "time": 1, "changes": [{"field": "feed"}]}]}')
    assert delivery.object == "page" and delivery.entry[0].changes == [{"field": "feed"}]
    for body in (b"{not json", b'{"entry": []}', b'{"object": "page", "entry": "x"}'):
        with pytest.raises(PermanentError):
            envelope(body)


async def test_calls_carry_the_version_and_bearer_token(fake, graph):
    assert await graph.call("GET", "/123", params={"fields": "id,name"}) == {"id": "123", "name": "Acme"}
    (call,) = fake.calls
    assert (call.path, call.query, call.token) == ("/v21.0/123", {"fields": "id,name"}, fake.token)


async def test_a_list_is_followed_through_its_cursors(fake, graph):
    pages = [page async for page in graph.pages("/123/things", {"limit": 20})]
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [t["id"] for p in pages for t in p] == [str(n) for n in range(45)]
    assert [c.query.get("after") for c in fake.calls] == [None, "20", "40"]


async def test_graph_errors_become_the_connector_error_kinds(fake, graph):
    fake.faults.append(fake.fault_unauthorized())
    with pytest.raises(AuthError, match="190/463"):
        await graph.call("GET", "/123/things")
    fake.faults.append(fake.fault_rate_limited(reset_in=120))
    with pytest.raises(RateLimited) as limited:
        await graph.call("GET", "/123/things")
    assert limited.value.retry_after == 120
    for code in (17, 32, 613, 80006):
        fake.faults.append(fake.graph_fault(code, f"(#{code}) limit reached"))
        with pytest.raises(RateLimited):
            await graph.call("GET", "/123/things")
    fake.faults.append(fake.graph_fault(2, "Service temporarily unavailable", status=500))
    with pytest.raises(TransientError) as transient:
        await graph.call("GET", "/123/things")
    assert not isinstance(transient.value, RateLimited)
    fake.faults.append(fake.graph_fault(100, "(#100) Invalid parameter"))
    with pytest.raises(PermanentError, match="Invalid parameter"):
        await graph.call("GET", "/123/things")
    fake.faults.append(Fault(502, {}, "<html>Bad gateway</html>"))
    with pytest.raises(TransientError):
        await graph.call("GET", "/123/things")


async def test_a_missing_permission_is_named(fake, graph):
    fake.faults.append(fake.fault_permission("whatsapp_business_messaging"))
    with pytest.raises(MissingPermission, match="lacks the permission whatsapp_business_messaging") as named:
        await graph.call("GET", "/123/things")
    assert named.value.permission == "whatsapp_business_messaging" and isinstance(named.value, AuthError)
    # Meta's message does not always name it: the caller says what the call needs.
    fake.faults.append(fake.fault_permission())
    with pytest.raises(MissingPermission, match="lacks the permission pages_messaging"):
        await graph.call("GET", "/123/things", needs="pages_messaging")


async def test_a_send_outside_the_window_is_refused_not_a_permission(fake, graph):
    fake.send_faults.append(fake.graph_fault(10, "This message is sent outside of allowed window.", subcode=2018278))
    with pytest.raises(PermanentError, match="reply window") as refused:
        await graph.call("POST", "/123/messages", json_body={"x": 1})
    assert not isinstance(refused.value, AuthError)


async def test_a_wrong_token_is_refused_by_the_fake(fake):
    client = GraphClient("meta-test", fake.base_url, fake.api_version, SecretStr("not-the-token"))
    try:
        with pytest.raises(AuthError):
            await client.call("GET", "/123")
    finally:
        await client.close()


async def test_usage_at_100_percent_stops_calls_before_meta_throttles(fake, graph):
    usage = {"123": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 3}]}
    fake.faults.append(Fault(200, {"X-Business-Use-Case-Usage": json.dumps(usage)}, '{"data": []}'))
    await graph.call("GET", "/123/things")
    calls = len(fake.calls)
    with pytest.raises(RateLimited) as limited:
        await graph.call("GET", "/123/things")
    assert len(fake.calls) == calls and 170 <= (limited.value.retry_after or 0) <= 180
