"""`inbox report` as a user runs it, a real process against a config file, on conversations pushed through the pipeline."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inbox.connector import Kind, RawItem
from inbox.pipeline.ingest import Source
from inbox.reports import CSV_COLUMNS
from inbox.service import Inbox
from inbox.store.db import create_engine, migrate
from inbox.templates import ReplyTemplates
from inbox.triage import Triager
from tests.conftest import FakeClock, make_settings, thread_of
from tests.processes import inbox_cli


@pytest.fixture
async def config_file(store_url: str, tmp_path: Path, triager: Triager, templates: ReplyTemplates) -> Path:
    """Five conversations on X, three hours ago, answered by agents at known moments; the config file of their store.

    c1 answered after 10 min by ana, c2 after 50 min by ben (late), c3 never (past due), c4 five minutes ago (not
    due yet), c5 after 20 min by ana.
    """
    path = tmp_path / "inbox.toml"
    connector = {"name": "acme-x", "type": "jsonl", "path": str(tmp_path / "x.jsonl"), "channel": "x"}
    path.write_text(
        f'[database]\nurl = "{store_url}"\n\n[reports]\ntimezone = "Europe/Paris"\n\n'
        f'[[connectors]]\nname = "acme-x"\ntype = "jsonl"\npath = "{connector["path"]}"\nchannel = "x"\n'
    )
    now = datetime.now(UTC).replace(microsecond=0)
    base = now - timedelta(hours=3)
    clock = FakeClock(base)
    engine = create_engine(store_url)
    await migrate(engine)
    inbox = Inbox(
        make_settings(tmp_path, connectors=[connector]),
        engine,
        clock=clock,
        notifiers=[],
        triager=triager,
        templates=templates,
    )
    source = Source.of(inbox.connectors["acme-x"])
    try:
        posts = {f"c{n}": base for n in (1, 2, 3, 5)} | {"c4": now - timedelta(minutes=5)}
        for key, at in sorted(posts.items(), key=lambda p: p[1]):
            clock.now = at
            raw = RawItem(key, "where is my order? it's late", at, Kind.MENTION, f"{key}-customer", thread_id=key)
            await inbox.ingestor.ingest(source, [raw])

        for key, minutes, agent in [("c1", 10, "ana"), ("c5", 20, "ana"), ("c2", 50, "ben")]:
            clock.now = base + timedelta(minutes=minutes)
            assert (await inbox.actions.reply(await thread_of(engine, key), "On it!", agent)).status == "sent"
    finally:
        await inbox.connectors["acme-x"].close()
        await engine.dispose()
    return path


def test_json_figures_of_conversations_answered_at_known_moments(config_file: Path) -> None:
    run = inbox_cli("report", "--config", str(config_file), "--since", "1d", "--format", "json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["by"] is None
    [row] = report["rows"]
    assert row == {
        "group": None,
        "conversations": 5,
        "first_responses": 3,
        "met": 2,
        "missed": 2,
        "attainment": 0.5,
        "open_not_due": 1,
        "waiting_past_due": 1,
        "first_response_minutes": {"p50": 20.0, "p90": 44.0, "p95": 47.0},
        "next_response_attainment": None,
        "within_30_minutes": 0.6667,
        "csat": {"questions": 0, "answers": 0, "satisfied": None, "response_rate": None},
    }
    by_agent = inbox_cli("report", "--config", str(config_file), "--by", "agent", "--format", "json")
    assert by_agent.returncode == 0, by_agent.stderr
    rows = {r["group"]: (r["conversations"], r["met"], r["missed"]) for r in json.loads(by_agent.stdout)["rows"]}
    assert rows == {"ana": (2, 2, 0), "ben": (1, 0, 1), "(none)": (2, 0, 1)}


def test_csv_has_one_row_per_conversation_and_out_writes_a_file(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.csv"
    run = inbox_cli("report", "--config", str(config_file), "--format", "csv", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    got = {r["customer"]: (r["sla_outcome"], r["first_response_minutes"], r["replied_by"]) for r in rows}
    assert got == {
        "c1-customer": ("met", "10.0", "ana"),
        "c2-customer": ("missed", "50.0", "ben"),
        "c3-customer": ("breached", "", ""),
        "c4-customer": ("waiting", "", ""),
        "c5-customer": ("met", "20.0", "ana"),
    }
    assert all(r["sla_target_minutes"] == "30.0" and r["started_at"].endswith("Z") for r in rows)
    # The file is renamed into place once whole; on stdout, the same CSV.
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    printed = inbox_cli("report", "--config", str(config_file), "--format", "csv")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == out.read_text()


def test_the_table_reads_at_80_columns(config_file: Path) -> None:
    run = inbox_cli("report", "--config", str(config_file), "--by", "agent", columns=80)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    table = "\n".join(lines)
    assert "ana" in table and "ben" in table and "(none)" in table and "100%" in table and "0%" in table
    header = next(line for line in lines if "conv" in line)
    assert header.split() == ["agent", "conv", "SLA", "miss", "late", "p50", "p90", "p95", "≤30m", "next", "CSAT"]
    assert "…" not in table  # nothing cut to fit


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "team"], "--by 'team' is not a grouping"),
        (["--since", "a week"], "--since 'a week' is not a duration"),
        (["--format", "xml"], "--format 'xml'"),
        (["--from", "2026-13-01"], "--from '2026-13-01' is not a date"),
        (["--to", "2026-12-01"], "--to needs --from"),
        (["--from", "0001-01-01T00:00+05:00"], "--from '0001-01-01T00:00+05:00' is out of range"),
        (["--from", "2000-01-01", "--to", "2026-01-01"], "at most 3650 days"),
        (["--since", "4000d"], "--since '4000d': the duration must be more than 0 and at most 3650 days"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "inbox.db"}"\n')
    run = inbox_cli("report", "--config", str(config), *args)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr


def test_a_bad_reports_section_is_refused_by_key_path(tmp_path: Path) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text('[reports]\ntimezone = "Mars/Olympus"\ndigest = "monday 9am"\ncolour = "red"\n')
    run = inbox_cli("report", "--config", str(config))
    assert run.returncode == 2
    assert "reports.timezone" in run.stderr and "reports.digest" in run.stderr and "reports.colour" in run.stderr
    assert "Traceback" not in run.stderr


def test_an_unreachable_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "inbox.toml"
    config.write_text('[database]\nurl = "postgresql://nobody@127.0.0.1:9/none"\n')
    run = inbox_cli("report", "--config", str(config))
    assert run.returncode == 1
    assert "the store cannot be read" in run.stderr and "Traceback" not in run.stderr
