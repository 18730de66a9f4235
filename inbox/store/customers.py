"""Customers: a person as one channel knows them, shared by every connector's pages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import sqlalchemy as sa

from inbox.store.models import Customer
from inbox.store.sqlutil import chunks, commit_without_waiting, insert_new, one_of

# A known customer's last_seen_at is kept to this precision: rewriting it for every message locked the row.
_SEEN_PRECISION = timedelta(hours=1)

CustomerKey = tuple[str, str]  # (channel, handle as stored)


def customer_ids(
    conn: sa.Connection, seen: Mapping[CustomerKey, str | None], now: datetime, *, durable: bool = True
) -> dict[CustomerKey, int]:
    """The ids of the customers seen (key: display name shown now), adding the new ones; known ones are written
    only when their name or hour changed.

    `durable=False` (in a transaction of their own): its commit need not wait for the disk. What refers to these
    customers commits after them, durably, and so writes them to the disk too; a server crash before that loses
    only customers nothing refers to, added again with the page's next try.

    Most customers of a page are known, and many are shared by other connectors' pages, in other workers too:
    reading them takes no lock, where an upsert of every one locked them all and made the workers wait on each
    other in turn. What is written (new customers, and known ones hourly) is locked in key order, so two pages
    never deadlock.
    """
    latest: dict[CustomerKey, dict[str, Any]] = {
        key: {"channel": key[0], "handle": key[1], "display_name": name, "first_seen_at": now, "last_seen_at": now}
        for key, name in seen.items()
    }
    # In key order throughout: two transactions locking shared rows in different orders deadlock on PostgreSQL.
    keys = sorted(latest)
    known = _customers(conn, keys)
    missing = [latest[key] for key in keys if key not in known]
    if missing:
        result = insert_new(conn, Customer, missing, ["channel", "handle"], ["id", "channel", "handle"])
        # As just written: a new customer is neither renamed nor stale.
        added = {
            (channel, handle): (id_, latest[(channel, handle)]["display_name"], now) for id_, channel, handle in result
        }
        # Another worker may have added some meanwhile: theirs are known now.
        raced = [key for key in keys if key not in known and key not in added]
        known |= added | _customers(conn, raced)
    stale = [
        (key, latest[key])
        for key in keys
        if key in known
        and (_renamed(known[key][1], latest[key]["display_name"]) or known[key][2] <= now - _SEEN_PRECISION)
    ]
    if stale:
        touch = (
            sa.update(Customer)
            .where(Customer.id == sa.bindparam("_id"))
            .values(
                last_seen_at=sa.bindparam("_seen"),
                display_name=sa.func.coalesce(
                    sa.bindparam("_name", type_=Customer.display_name.type), Customer.display_name
                ),
            )
        )
        conn.execute(
            touch, [{"_id": known[key][0], "_seen": now, "_name": values["display_name"]} for key, values in stale]
        )
    if not durable and (missing or stale):
        commit_without_waiting(conn)
    return {key: id_ for key, (id_, _, _) in known.items()}


def _renamed(stored: str | None, seen: str | None) -> bool:
    return seen is not None and seen != stored


def _customers(conn: sa.Connection, keys: list[CustomerKey]) -> dict[CustomerKey, tuple[int, str | None, datetime]]:
    """(id, display name, last seen) of the customers with these (channel, handle) keys that exist.

    The keys of one page share its channel.
    """
    found: dict[CustomerKey, tuple[int, str | None, datetime]] = {}
    if not keys:
        return found
    channel = keys[0][0]
    for part in chunks([handle for _, handle in keys]):
        result = conn.execute(_customers_query(conn.dialect.name), {"channel": channel, "keys": list(part)})
        found.update({(channel, handle): (id_, name, seen) for id_, handle, name, seen in result})
    return found


@cache
def _customers_query(dialect: str) -> Any:
    query = sa.select(Customer.id, Customer.handle, Customer.display_name, Customer.last_seen_at)
    return one_of(dialect, query.where(Customer.channel == sa.bindparam("channel")), Customer.handle)
