"""Which errors from a store call mean "the store is unavailable" (retry, 503) and which are bugs."""

from __future__ import annotations

import errno
import socket

import aiohttp
import sqlalchemy as sa

from inbox.store.db import StoreUnavailable, is_outage


def test_a_connection_that_cannot_be_opened_is_an_outage() -> None:
    # PostgreSQL's driver lets the socket's own errors through when it cannot connect.
    assert is_outage(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert is_outage(OSError(errno.EHOSTUNREACH, "No route to host"))
    assert is_outage(
        OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), [Errno 111] ...")
    )
    assert is_outage(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert is_outage(StoreUnavailable("locked"))
    assert is_outage(sa.exc.OperationalError("SELECT 1", {}, Exception("database is locked")))


def test_bad_queries_and_other_parties_network_errors_are_not_the_stores() -> None:
    assert not is_outage(sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_outage(aiohttp.ClientConnectionError("Slack unreachable"))
    assert not is_outage(TimeoutError())  # anyone's: Slack's, a vendor's
    assert not is_outage(ValueError("a bug"))
