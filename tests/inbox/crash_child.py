"""Child process for the crash test: polls a jsonl file and stops dead at a named point."""

from __future__ import annotations

import asyncio
import sys
import time

import sqlalchemy as sa

from inbox import connectors as registry
from inbox.service import Inbox
from inbox.settings import parse_config
from inbox.store.db import create_engine, plain_engines


async def main(url: str, schema: str, path: str, point: str) -> None:
    engine = create_engine(url, schema=schema or None)
    settings = parse_config({"connectors": [{"name": "feed", "type": "jsonl", "path": path}]}, env={}, types=registry)
    inbox = Inbox(settings, engine, notifiers=[])
    poller = inbox.pollers["feed"]
    if point == "before-commit":
        # The last moment before COMMIT reaches the database: items and cursor are written, not committed.
        def stall(_conn: object) -> None:
            print("COMMITTING", flush=True)
            time.sleep(600)

        for sync_engine in plain_engines(engine):
            sa.event.listen(sync_engine, "commit", stall)
        await poller.poll_once()
    else:
        pages = [page async for page in poller.connector.fetch(None)]
        print(f"FETCHED {sum(len(p.items) for p in pages)}", flush=True)
        time.sleep(600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
