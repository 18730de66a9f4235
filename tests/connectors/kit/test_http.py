"""Vendor HTTP: connectors of one vendor share kept-alive connections, and the pool closes with its last session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from inbox.connector import PermanentError
from inbox.connectors.kit.http import VendorClient


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[TestServer, set[int]]]:
    """A vendor answering every GET with `{}`; the set collects the client ports of the connections it saw."""
    ports: set[int] = set()

    async def answer(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        ports.add(peer[1])
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server, ports
    await server.close()


async def test_accounts_of_one_vendor_reuse_each_others_connections(vendor):
    server, ports = vendor
    clients = [VendorClient(f"acme-{n}", str(server.make_url("/"))) for n in range(20)]
    try:
        for _ in range(3):
            for client in clients:  # one after the other, as polls spread over an interval are
                await client.get("/api/v1/notifications")
    finally:
        for client in clients:
            await client.close()
    assert len(ports) == 1, f"60 requests of 20 connectors took {len(ports)} connections"


async def test_the_pool_closes_with_its_last_session_and_opens_again_on_demand(vendor):
    server, ports = vendor
    first, second = VendorClient("acme-1", str(server.make_url("/"))), VendorClient("acme-2", str(server.make_url("/")))
    await first.get("/a")
    await second.get("/b")
    pool = first.session().connector
    assert pool is second.session().connector
    await first.close()
    assert pool is not None and not pool.closed, "the other connector still uses it"
    await second.get("/c")
    await second.close()
    assert pool.closed
    again = VendorClient("acme-3", str(server.make_url("/")))
    try:
        await again.get("/d")
        assert again.session().connector is not pool
    finally:
        await again.close()
    assert len(ports) == 2, "one connection for the first pool, one for the new one"


async def test_a_vendor_answering_absurdly_nested_json_is_a_permanent_error_not_a_crash():
    async def answer(request: web.Request) -> web.Response:
        return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        client = VendorClient("acme", str(server.make_url("/")))
        try:
            with pytest.raises(PermanentError, match="nested deeper than 100 levels"):
                await client.get("/api/v1/notifications")
        finally:
            await client.close()
