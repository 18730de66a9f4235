"""The webhook connector over real HTTP: signed items stored once, unsigned or forged ones refused."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inbox.connectors.webhook import sign
from inbox.models import Item
from inbox.server import build_app

SECRET = "s3cret-s3cret-s3cret"


def body(*ids: str, **extra: object) -> bytes:
    items = [{"id": i, "text": f"hello {i}", "posted_at": "2026-11-23T09:59:00Z", "author": {"handle": "bob"}, **extra} for i in ids]
    return json.dumps({"items": items}).encode()


@pytest.fixture
async def client(inbox_factory):
    inbox = inbox_factory(connectors=[{"name": "shop", "type": "webhook", "secret": SECRET, "channel": "shop"}])
    async with TestClient(TestServer(build_app(inbox))) as client:
        yield client


async def stored(engine) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(sa.select(Item.external_id))).scalars().all())


async def test_signed_items_are_stored_once(client, engine):
    data = body("a", "b")
    for _ in range(2):
        response = await client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})
        assert response.status == 202
    assert (await response.json())["duplicates"] == 2
    assert await stored(engine) == ["a", "b"]


@pytest.mark.parametrize("signature", [None, "", "sha256=deadbeef", sign("other-secret", body("a"))])
async def test_unsigned_or_forged_bodies_get_401_and_are_not_stored(client, engine, signature):
    headers = {} if signature is None else {"X-Inbox-Signature": signature}
    response = await client.post("/webhooks/shop", data=body("a"), headers=headers)
    assert response.status == 401
    assert await stored(engine) == []


async def test_bad_items_are_reported_good_ones_kept(client, engine):
    data = json.dumps([{"id": "ok", "text": "hi", "posted_at": "2026-11-23T09:00:00Z", "author": {"handle": "x"}},
                       {"id": "bad", "text": "no author"}]).encode()
    response = await client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})
    answer = await response.json()
    assert response.status == 202 and answer["stored"] == 1
    assert answer["problems"] == ["items[1]: posted_at: Field required; author: Field required"]
    garbage = b"{not json"
    response = await client.post("/webhooks/shop", data=garbage, headers={"X-Inbox-Signature": sign(SECRET, garbage)})
    assert response.status == 400


async def test_unknown_webhook_is_404(client):
    assert (await client.post("/webhooks/nope", data=b"{}")).status == 404


async def test_reply_is_posted_signed_to_reply_url(inbox_factory, engine):
    received: list[tuple[dict, str]] = []

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        received.append((json.loads(raw), request.headers["X-Inbox-Signature"] == sign(SECRET, raw)))
        return web.json_response({"id": "r-1"})

    app = web.Application()
    app.router.add_post("/replies", receive)
    async with TestServer(app) as server:
        inbox = inbox_factory(connectors=[{"name": "shop", "type": "webhook", "secret": SECRET,
                                           "reply_url": str(server.make_url("/replies"))}])
        async with TestClient(TestServer(build_app(inbox))) as client:
            data = body("a")
            await client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})
        async with engine.connect() as conn:
            thread = (await conn.execute(sa.select(Item.thread_id))).scalar_one()
        outcome = await inbox.actions.reply(thread, "Thanks Bob!", "ana")
        await inbox.close()
    assert outcome.external_id == "r-1"
    assert received == [({"in_reply_to": "a", "thread_id": "a", "to": "bob", "text": "Thanks Bob!"}, True)]
