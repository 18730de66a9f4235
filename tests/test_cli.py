"""The `inbox` command as a user runs it: a real process, real output."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.processes import ROOT
from tests.processes import inbox_cli as inbox


def test_triage_prints_one_json_object():
    run = inbox("triage", "Ma commande n'est toujours pas arrivée, c'est inadmissible !")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert set(result) == {"language", "sentiment", "intent", "priority", "suggestion"}
    assert (result["language"], result["intent"], result["sentiment"]) == ("fr", "delivery", "negative")
    assert result["suggestion"]


def test_triage_reads_stdin_line_by_line_and_never_evaluates_customer_text():
    run = inbox(
        "triage", "-", "--channel", "x", stdin="thanks so much, great service!\n\nMulțumesc {{ 7*7 }} pentru ajutor!\n"
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["intent"] for r in lines] == ["praise", "praise"]
    assert lines[1]["language"] == "ro"
    assert all(len(r["suggestion"]) <= 280 for r in lines)
    assert "49" not in run.stdout


def test_triage_explain_shows_the_model_and_the_rules_that_decided(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[lexicon.en.intents.billing]\n"chronopoints" = 8\n', encoding="utf-8")
    (tmp_path / "inbox.toml").write_text('[triage]\nrules = "rules.toml"\n', encoding="utf-8")
    run = inbox("triage", "--explain", "where did my chronopoints go? parcel still not here", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    why = result["explain"]
    assert result["intent"] == "billing"  # the admin's term outweighs the model's reading (delivery)
    assert why["intent"]["rules"] == {"billing": 8.0}
    assert max(why["intent"]["model_probabilities"], key=why["intent"]["model_probabilities"].get) == "delivery"
    assert why["intent"]["top_features"] and why["sentiment"]["top_features"]
    assert ["chronopoints", "billing 8"] in why["terms"]
    plain = json.loads(inbox("triage", "where did my chronopoints go? parcel still not here", cwd=tmp_path).stdout)
    assert "explain" not in plain and plain["intent"] == "billing"


def test_demo_shows_the_queue_and_the_alerts_within_30_seconds_of_work(tmp_path):
    # The promise is about the demo's own work: its CPU time, which a machine busy with other programs does not
    # stretch as it stretches the wall clock (the timeout is only a ceiling for a demo that hangs).
    started = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = inbox("demo", cwd=tmp_path, timeout=600)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (used.ru_utime - started.ru_utime) + (used.ru_stime - started.ru_stime)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "most urgent first" in out and "BREACH" in out and "warning" in out
    assert "claire_dpt" in out and "nothing sent twice" in out and "next response clock" in out
    assert "facebook" in out and "@camille.martin" in out  # a Page comment beside the others
    # The lead's report of the demo's own traffic: attainment, percentiles, the breach, the CSAT answer, the page.
    assert "SLA attainment 67% (met 2, missed 1" in out and "First response p50" in out and "p90" in out
    assert "Breach: x · @claire_dpt answered after 31 min (target 30 min)" in out
    assert "CSAT: 1 answer(s) to 1 question(s), 100% satisfied." in out
    assert "/reports" in out and "`/inbox report` in Slack" in out
    assert "{{ 7*7 }}" in out and "<!channel>" in out  # customer text shown as typed, never evaluated
    assert 0 < cpu < 30, f"the demo took {cpu:.1f} s of CPU"
    assert not list(tmp_path.iterdir()), "the demo left files behind"


def bob_waiting(folder: Path, minutes: float) -> None:
    """feed.jsonl in `folder`: Bob has been waiting `minutes` for an answer about his parcel."""
    posted = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()
    record = {"id": "1", "text": "where is my parcel??", "posted_at": posted, "author": {"handle": "bob"}}
    (folder / "feed.jsonl").write_text(json.dumps(record) + "\n")


def test_queue_and_check_on_a_config(tmp_path):
    bob_waiting(tmp_path, 25)
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "q.db"}"\n[[connectors]]\nname = "feed"\ntype = "jsonl"\npath = "feed.jsonl"\n'
        '[[connectors]]\nname = "gone"\ntype = "jsonl"\npath = "missing.jsonl"\n'
    )
    check = inbox("check", "--config", str(config))
    assert check.returncode == 1
    assert "feed" in check.stdout and "missing.jsonl does not exist" in check.stdout
    empty = inbox("queue", "--config", str(config))
    assert empty.returncode == 0 and "The queue is empty" in empty.stdout


def test_run_without_slack_polls_logs_escalations_and_exits_0_on_sigterm(tmp_path):
    import signal

    bob_waiting(tmp_path, 31)
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "r.db"}"\n[server]\nhost = "127.0.0.1"\nport = 0\n'
        '[sla]\ncheck_seconds = 1\n[[connectors]]\nname = "feed"\ntype = "jsonl"\npath = "feed.jsonl"\npoll_seconds = 1\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "inbox", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "SLA BREACH" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    log = "".join(lines) + rest
    assert process.returncode == 0, log
    breach = json.loads(next(line for line in lines if "SLA BREACH" in line))
    assert breach["level"] == "warning" and "@bob" in breach["message"] and "assignee: nobody" in breach["message"]
    # Each line names the worker that wrote it (several may share a log shipper) and what it is about.
    assert (
        breach["worker"].split(":")[1] == str(process.pid)
        and breach["connector"] == "feed"
        and breach["thread_id"] == 1
    )
    assert "stopping: finishing in-flight work" in log
    queue = inbox("queue", "--config", str(config))
    assert "bob" in queue.stdout and "breached" in queue.stdout


def test_a_broken_rules_file_or_template_stops_before_anything_starts(tmp_path):
    (tmp_path / "rules.toml").write_text('[priority]\nbase = "not a table"\n')
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "generic.en.j2").write_text("Hi {{ customer_name }")
    config = tmp_path / "inbox.toml"
    config.write_text('[triage]\nrules = "rules.toml"\n')
    run = inbox("run", "--config", str(config), timeout=60)
    assert run.returncode == 2 and "priority.base" in run.stderr and "Traceback" not in run.stderr
    config.write_text('[triage]\ntemplates = "templates"\n')
    run = inbox("queue", "--config", str(config), timeout=60)
    assert run.returncode == 2 and "generic.en.j2" in run.stderr and "Traceback" not in run.stderr
