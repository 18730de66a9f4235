"""`inbox export`, `inbox forget` and `inbox retention` as an admin runs them: real processes on a config file, on
SQLite and PostgreSQL, with a fake Slack whose messages the erasure edits."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from inbox.fakes.slack import TOKEN, FakeSlack
from inbox.service import Inbox
from inbox.store.models import Erasure, Thread
from tests.conftest import FakeClock, close_connectors, make_settings
from tests.processes import slack_table, toml_table
from tests.slack.test_privacy import store_bytes
from tests.test_cli_backfill import cli_store, inbox  # noqa: F401 - the fixture, used by name

DANA_TEXT = "Quillobrant parcel lost in Cluj"
DANA_NAME = "Dana Ostrivesk"
BOB_OLD = "Marzipello refund still missing"
BOB_NEW = "Marzipello app will not open"


def write_config(path: Path, url: str, feed: Path, fake: FakeSlack, text_days: int) -> Path:
    config = path / "inbox.toml"
    config.write_text(
        f"[database]\nurl = {json.dumps(url)}\n"
        f"[retention]\ntext_days = {text_days}\n"
        f"[slack]\n{toml_table(slack_table(fake))}"
        f"[[connectors]]\n{toml_table({'name': 'acme-x', 'type': 'jsonl', 'path': str(feed), 'channel': 'x'})}"
    )
    return config


def line(feed: Path, external_id: str, text: str, handle: str, name: str, at: datetime) -> None:
    record = {"id": external_id, "text": text, "posted_at": at.isoformat(), "author": {"handle": handle, "name": name}}
    with feed.open("a", encoding="utf-8") as out:
        out.write(json.dumps({**record, "thread_id": f"t-{external_id}"}) + "\n")


async def report(config: Path) -> dict[str, Any]:
    """`inbox report` over the last 60 days: the JSON figures, and the CSV rows without the customer column."""
    code, out, err = await inbox(
        "report", "--format", "json", "--since", "60d", "--by", "intent", "--config", str(config)
    )
    assert code == 0, err
    document = json.loads(out)
    code, out, err = await inbox("report", "--format", "csv", "--since", "60d", "--config", str(config))
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    customer = rows[0].index("customer")
    return {"json": document["rows"], "rows": [[v for i, v in enumerate(r) if i != customer] for r in rows]}


async def test_export_forget_and_retention_from_the_command_line(cli_store, tmp_path, triager, templates):
    engine, url = cli_store
    fake = FakeSlack()
    await fake.start()
    feed = tmp_path / "x.jsonl"
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FakeClock(now - timedelta(days=40))
    try:
        # Forty days ago: Dana's and Bob's conversations, answered and resolved; today, Bob writes again.
        settings = make_settings(
            tmp_path,
            slack=slack_table(fake),
            connectors=[{"name": "acme-x", "type": "jsonl", "path": str(feed), "channel": "x"}],
        )
        live = Inbox(settings, engine, clock=clock, triager=triager, templates=templates)
        line(feed, "d1", DANA_TEXT, "dana_o", DANA_NAME, clock.now)
        line(feed, "b1", BOB_OLD, "bob_m", "Bob M", clock.now)
        await live.pollers["acme-x"].poll_once()
        async with engine.connect() as conn:
            dana_thread, bob_old = [t for (t,) in await conn.execute(sa.select(Thread.id).order_by(Thread.id))]
        clock.advance(minutes=3)
        await live.actions.reply(dana_thread, f"Sorry {DANA_NAME}, resending", "UAGENT001")
        await live.actions.reply(bob_old, "Refunded, Bob", "UAGENT001")
        await live.actions.resolve(dana_thread, "UAGENT001")
        await live.actions.resolve(bob_old, "UAGENT001")
        clock.now = now
        line(feed, "b2", BOB_NEW, "bob_m", "Bob M", clock.now)
        await live.pollers["acme-x"].poll_once()
        await live.outbox.dispatch()
        await close_connectors(live)
        assert DANA_TEXT in json.dumps(fake.messages)
        config = write_config(tmp_path, url, feed, fake, text_days=30)

        figures = await report(config)
        assert sum(r["conversations"] for r in figures["json"]) == 3 and len(figures["rows"]) == 4
        code, out, err = await inbox("export", "--customer", "x:dana_o", "--config", str(config))
        assert code == 0, err
        document = json.loads(out)
        [dana] = document["customers"]
        assert dana["display_name"] == DANA_NAME and dana["conversations"][0]["items"][0]["text"] == DANA_TEXT
        assert "bob_m" not in out and "Marzipello" not in out
        target = tmp_path / "dana.json"
        code, out, err = await inbox("export", "--customer", "x:@dana_o", "--out", str(target), "--config", str(config))
        assert code == 0 and "1 customer(s), 1 conversation(s)" in out and json.loads(target.read_text())["customers"]
        assert target.stat().st_mode & 0o077 == 0

        code, out, err = await inbox("export", "--customer", "x:nobody", "--config", str(config))
        assert code == 1 and "no such customer: x:nobody" in err and "Traceback" not in err
        code, out, err = await inbox("forget", "--customer", "dana_o", "--config", str(config))
        assert code == 2 and "CHANNEL:HANDLE" in err

        # Asked, and the admin says no: nothing erased.
        process_in = await inbox("forget", "--customer", "x:dana_o", "--config", str(config), stdin="n\n")
        assert process_in[0] == 1 and "x:dana_o: 1 customer(s), 1 conversation(s), 1 item(s)" in process_in[1]
        assert "Nothing erased" in process_in[1] and DANA_TEXT.encode() in await store_bytes(engine, url)

        code, out, err = await inbox("forget", "--customer", "x:dana_o", "--yes", "--config", str(config))
        assert code == 0, err
        assert "x:dana_o: 1 customer(s), 1 conversation(s), 1 item(s), 1 reply(ies)" in out
        assert "Erased: 1 customer(s)" in out and "Slack: 2 message(s) updated" in out
        held = await store_bytes(engine, url)
        shown = json.dumps(fake.messages, ensure_ascii=False)
        for word in ("Quillobrant", "Ostrivesk", "dana_o"):
            assert word.encode() not in held and word not in shown, word
        assert BOB_OLD.encode() in held and BOB_OLD in shown
        code, out, err = await inbox("export", "--customer", "x:dana_o", "--config", str(config))
        assert code == 1 and "no such customer" in err
        assert await report(config) == figures

        # Retention: Bob's conversation resolved forty days ago goes, his conversation of today stays.
        code, out, err = await inbox("retention", "--dry-run", "--config", str(config))
        assert code == 0, err
        assert "Would erase" in out and "1 conversation(s), 1 item(s), 1 reply(ies)" in out
        assert BOB_OLD.encode() in await store_bytes(engine, url)
        code, out, err = await inbox("retention", "--config", str(config))
        assert code == 0, err
        assert "Erased the texts and names of conversations resolved before" in out
        held = await store_bytes(engine, url)
        assert b"Marzipello refund" not in held and BOB_NEW.encode() in held and b"bob_m" in held
        assert "Marzipello refund" not in json.dumps(fake.messages)
        code, out, err = await inbox("retention", "--dry-run", "--config", str(config))
        assert code == 0 and "0 conversation(s)" in out
        assert await report(config) == figures

        async with engine.connect() as conn:
            records = [(r.reason, r.customers, r.threads, r.items) for r in await conn.execute(sa.select(Erasure))]
        assert records == [("request", 1, 1, 1), ("retention", 0, 1, 1)]

        # Export reads the store alone: Slack's variables need not be set for it.
        unset = tmp_path / "unset.toml"
        unset.write_text(config.read_text().replace(json.dumps(TOKEN), '"${GDPR_TEST_UNSET_SLACK_TOKEN}"'))
        code, out, err = await inbox("export", "--customer", "x:bob_m", "--config", str(unset))
        assert code == 0 and BOB_NEW in out, err
        code, out, err = await inbox("forget", "--customer", "x:bob_m", "--config", str(unset))
        assert code == 2 and "GDPR_TEST_UNSET_SLACK_TOKEN" in err

        off = write_config(tmp_path, url, feed, fake, text_days=0)
        code, out, err = await inbox("retention", "--config", str(off))
        assert code == 0 and "Retention is off" in out
    finally:
        await fake.stop()
