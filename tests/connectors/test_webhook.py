"""The webhook connector over real HTTP: signed items stored once, unsigned or forged ones refused."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inbox.connector import MAX_NAME, MAX_TEXT
from inbox.connectors.webhook import sign
from inbox.server import build_app
from inbox.store.models import Customer, Item

SECRET = "s3cret-s3cret-s3cret"


def body(*ids: str, **extra: object) -> bytes:
    items = [
        {"id": i, "text": f"hello {i}", "posted_at": "2026-11-23T09:59:00Z", "author": {"handle": "bob"}, **extra}
        for i in ids
    ]
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
    data = json.dumps(
        [
            {"id": "ok", "text": "hi", "posted_at": "2026-11-23T09:00:00Z", "author": {"handle": "x"}},
            {"id": "bad", "text": "no author"},
        ]
    ).encode()
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
        inbox = inbox_factory(
            connectors=[
                {"name": "shop", "type": "webhook", "secret": SECRET, "reply_url": str(server.make_url("/replies"))}
            ]
        )
        async with TestClient(TestServer(build_app(inbox))) as client:
            data = body("a")
            await client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})
        async with engine.connect() as conn:
            thread = (await conn.execute(sa.select(Item.thread_id))).scalar_one()
        outcome = await inbox.actions.reply(thread, "Thanks Bob!", "ana")
        await inbox.close()
    assert outcome.external_id == "r-1"
    assert received == [({"in_reply_to": "a", "thread_id": "a", "to": "bob", "text": "Thanks Bob!"}, True)]


def signed_post(client, data: bytes):
    return client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})


@pytest.mark.parametrize("where", ["body", "item field"])
async def test_json_nested_100000_deep_is_400_with_a_clear_error(client, engine, where):
    deep = "[" * 100_000 + "]" * 100_000
    data = (
        deep
        if where == "body"
        else '{"id": "a", "text": "hi", "posted_at": "2026-11-23T09:59:00Z", "author": {"handle": "bob"}, "x": '
        + deep
        + "}"
    ).encode()
    response = await signed_post(client, data)
    assert response.status == 400
    assert "nested deeper than 100 levels" in (await response.json())["error"]
    assert await stored(engine) == []


async def test_every_item_skipped_at_any_stage_has_a_problem_line_and_one_log_line(client, engine, caplog):
    def entry(i: str, **extra: object) -> dict:
        return {
            "id": i,
            "text": f"hello {i}",
            "posted_at": "2026-11-23T09:59:00Z",
            "author": {"handle": "bob"},
            **extra,
        }

    items = [
        entry("ok"),
        entry("\u0000\u0000"),  # an id of NULs only: nothing left once they are removed
        entry("blank", author={"handle": "   "}),
        entry("year1", posted_at="0001-01-01T00:00:00+01:00"),  # no UTC time exists for it
        {"id": "no-author", "text": "hi", "posted_at": "2026-11-23T09:59:00Z"},  # refused by the item format itself
        entry("brand", from_brand=True),
        entry("x" * 1_000_000),  # a megabyte is not an id
        entry("long-handle", author={"handle": "h" * 256}),
    ]
    with caplog.at_level(logging.DEBUG):
        response = await signed_post(client, json.dumps({"items": items}).encode())
    answer = await response.json()
    assert response.status == 202, answer
    assert (answer["stored"], answer["skipped"]) == (1, 7)
    lines = answer["problems"]
    assert [line.split(":")[0] for line in lines] == [f"items[{i}]" for i in range(1, 8)]
    assert "missing id" in lines[0] and "author handle" in lines[1] and "out of range" in lines[2]
    assert "author: Field required" in lines[3] and "brand" in lines[4] and "id longer than 255" in lines[5]
    assert "longer than 255" in lines[6]
    assert await stored(engine) == ["ok"]
    # Each skipped item is logged once (the brand's own post, routine on every platform, at debug level).
    skips = [r for r in caplog.records if "skipped" in r.getMessage() and r.name in ("inbox.server", "inbox.ingest")]
    assert len([r for r in skips if r.levelno == logging.WARNING]) == 6
    assert len([r for r in skips if r.levelno == logging.DEBUG]) == 1


async def test_every_stored_field_is_bounded(client, engine):
    data = json.dumps(
        [
            {
                "id": "a",
                "text": "t" * 150_000,
                "posted_at": "2026-11-23T09:59:00Z",
                "author": {"handle": "bob", "name": "N" * 300},
                "url": "https://shop.example/" + "u" * 1_900_000,
            },
        ]
    ).encode()
    response = await signed_post(client, data)
    assert response.status == 202 and (await response.json())["stored"] == 1
    async with engine.connect() as conn:
        item = (await conn.execute(sa.select(Item))).one()
        name = (await conn.execute(sa.select(Customer.display_name))).scalar_one()
    assert item.url is None  # a URL cut short leads nowhere: dropped, the item kept
    assert len(item.text) == MAX_TEXT and item.text.startswith("t" * 1000) and item.text.endswith("]")
    assert len(item.author_name) == MAX_NAME and item.author_name.endswith("…") and name == item.author_name


async def test_a_get_is_405_for_a_webhook_without_handshake_and_404_for_none(client):
    response = await client.get("/webhooks/shop")
    assert response.status == 405 and response.headers["Allow"] == "POST"
    assert (await client.get("/webhooks/nope")).status == 404
