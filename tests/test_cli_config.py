"""The config refused at the door, start-up failures said in one line, and a command needing only what it uses.

Each runs the real `inbox` entry point in a process of its own, as a user would.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL
from tests.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "inbox.example.toml"
STRONG = "0123456789abcdef0123456789abcdef"
# Variables a test's config may use: never inherited from the machine running the suite.
OURS = (
    "SHOP_WEBHOOK_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "HOOK",
    "OFF",
    "SIG",
    "BOT",
)


def inbox(
    *args: str, cwd: Path, env: dict[str, str] | None = None, columns: int = 200, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in OURS}
    full = {**base, "COLUMNS": str(columns), "INBOX_CONFIG": "", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "inbox", *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=timeout
    )


def config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "inbox.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def refused(run: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The output of a run that must be a config error (exit 2, no traceback) naming each needle."""
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    assert "Traceback" not in output, output
    for needle in needles:
        assert needle in output, (needle, output)
    return output


def one_line_exit_1(run: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The single stderr line of a run that could not start (exit 1, no traceback)."""
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    assert "Traceback" not in output, output
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for needle in needles:
        assert needle in lines[0], (needle, output)
    return lines[0]


WEBHOOK = '[[connectors]]\nname = "shop"\ntype = "webhook"\nsecret = "{secret}"\n'
SERVER = '[server]\nhost = "127.0.0.1"\nport = 0\n'


@pytest.mark.parametrize("command", ["run", "check", "queue"])
def test_an_empty_webhook_secret_from_the_environment_is_refused_by_every_command(tmp_path, command):
    path = config(
        tmp_path, f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n{SERVER}' + WEBHOOK.format(secret="${HOOK}")
    )
    output = refused(inbox(command, "--config", path, cwd=tmp_path, env={"HOOK": ""}), "connectors[shop].secret", "16")
    assert "token_hex" in output  # how to make a good one
    assert not (tmp_path / "s.db").exists()  # refused before anything starts


def test_a_short_webhook_secret_is_refused_and_a_16_character_one_runs(tmp_path):
    short = config(
        tmp_path,
        f'{SERVER}[[connectors]]\ntype = "jsonl"\nname = "f"\npath = "f.jsonl"\n' + WEBHOOK.format(secret="s3cr3"),
    )
    output = refused(inbox("run", "--config", short, cwd=tmp_path), "connectors[shop].secret", "at least 16 characters")
    assert "s3cr3" not in output
    good = config(tmp_path, WEBHOOK.format(secret="x" * 16))
    assert inbox("queue", "--config", good, cwd=tmp_path).returncode == 0


def test_the_secret_rule_is_one_type_that_meta_connectors_can_declare():
    from pydantic import BaseModel, ValidationError

    from inbox.connector import Secret

    class MetaLike(BaseModel):  # what the facebook, instagram and whatsapp settings will declare
        app_secret: Secret
        verify_token: Secret

    assert MetaLike(app_secret=STRONG, verify_token="v" * 16).verify_token.get_secret_value() == "v" * 16
    with pytest.raises(ValidationError) as info:
        MetaLike(app_secret="", verify_token="short")
    assert {e["loc"][0] for e in info.value.errors()} == {"app_secret", "verify_token"}


@pytest.mark.parametrize("url", ["not a url at all", "mysql://inbox:hunter2pass@db.example/inbox", ""])
@pytest.mark.parametrize("command", ["run", "check"])
def test_a_malformed_or_unsupported_database_url_is_a_config_error(tmp_path, command, url):
    path = config(tmp_path, f'[database]\nurl = "{url}"\n{SERVER}')
    output = refused(inbox(command, "--config", path, cwd=tmp_path), "database.url", "sqlite:///", "postgresql://")
    assert "hunter2pass" not in output


def test_run_says_in_one_line_when_the_store_is_unreachable(tmp_path):
    url = f"postgresql://inbox:pw-not-shown@127.0.0.1:{free_port()}/inbox"
    line = one_line_exit_1(
        inbox("run", "--config", config(tmp_path, f'[database]\nurl = "{url}"\n{SERVER}'), cwd=tmp_path),
        "unreachable",
        f"127.0.0.1:{make_url(url).port}",
        "database.url",
    )
    assert "pw-not-shown" not in line


@pytest.mark.postgresql
@pytest.mark.skipif(not PG_URL, reason="PostgreSQL tests need INBOX_TEST_DATABASE_URL (.ci/run sets it)")
def test_run_says_in_one_line_when_the_database_does_not_exist(tmp_path):
    name = f"inbox_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    path = config(tmp_path, f'[database]\nurl = "{url}"\n{SERVER}')
    one_line_exit_1(
        inbox("run", "--config", path, cwd=tmp_path), f'database "{name}" does not exist', f"createdb {name}"
    )


def test_run_says_in_one_line_when_the_sqlite_folder_does_not_exist(tmp_path):
    folder = tmp_path / "no" / "such" / "folder"
    path = config(tmp_path, f'[database]\nurl = "sqlite:///{folder / "inbox.db"}"\n{SERVER}')
    one_line_exit_1(inbox("run", "--config", path, cwd=tmp_path), f"folder {folder} does not exist", "mkdir -p")
    assert not (tmp_path / "no").exists()


def test_run_says_in_one_line_when_the_port_is_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = config(
            tmp_path,
            f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n[server]\nhost = "127.0.0.1"\nport = {port}\n',
        )
        one_line_exit_1(
            inbox("run", "--config", path, cwd=tmp_path), f"127.0.0.1:{port}", "already in use", "server.port"
        )


def test_check_does_not_create_the_sqlite_store(tmp_path):
    run = inbox("check", "--config", config(tmp_path, '[database]\nurl = "sqlite:///inbox.db"\n'), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "inbox run" in run.stdout and "creates it" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox.toml"]


def test_check_reads_an_existing_sqlite_store_and_refuses_a_file_that_is_not_one(tmp_path):
    path = config(tmp_path, '[database]\nurl = "sqlite:///inbox.db"\n')
    (tmp_path / "inbox.db").write_text("not a database")
    run = inbox("check", "--config", path, cwd=tmp_path)
    assert run.returncode == 1 and "not a database" in run.stdout, run.stdout


MANY_VARIABLES = """
[database]
url = "sqlite:///{db}"
[server]
host = "127.0.0.1"
port = 0
[slack]
bot_token = "${{BOT:-}}"
signing_secret = "${{SIG}}"
triage_channel = "C1"
leads_channel = "C2"
[[connectors]]
name = "shop"
type = "webhook"
secret = "${{HOOK}}"
[[connectors]]
name = "old-shop"
type = "webhook"
enabled = false
secret = "${{OFF}}"
"""


def test_each_command_needs_only_the_variables_of_what_it_uses(tmp_path):
    path = config(tmp_path, MANY_VARIABLES.format(db=tmp_path / "v.db"))
    # Nothing set: triage and queue use neither Slack nor connectors.
    triage = inbox("triage", "--config", path, "where is my parcel", cwd=tmp_path)
    assert triage.returncode == 0 and '"intent": "delivery"' in triage.stdout, triage.stderr
    assert inbox("queue", "--config", path, cwd=tmp_path).returncode == 0
    # check uses the enabled webhook: its variable is needed, and named with its key; the disabled one's is not.
    output = refused(
        inbox("check", "--config", path, cwd=tmp_path), "connectors[shop].secret: environment variable HOOK is not set"
    )
    assert "OFF" not in output and "SIG" not in output  # Slack is off (BOT unset): its signing secret is not needed
    check = inbox("check", "--config", path, cwd=tmp_path, env={"HOOK": STRONG})
    assert check.returncode == 0, check.stdout + check.stderr
    # Slack on: now its signing secret is needed.
    refused(
        inbox("check", "--config", path, cwd=tmp_path, env={"HOOK": STRONG, "BOT": "xoxb-1-2"}),
        "slack.signing_secret: environment variable SIG is not set",
    )


def test_the_shipped_example_needs_no_variable_for_triage_and_queue_and_one_for_check(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "inbox.toml")
    (tmp_path / "items.jsonl").write_text("")
    path = str(tmp_path / "inbox.toml")
    assert inbox("triage", "--config", path, "thanks!", cwd=tmp_path).returncode == 0
    assert inbox("queue", "--config", path, cwd=tmp_path).returncode == 0
    refused(inbox("check", "--config", path, cwd=tmp_path), "SHOP_WEBHOOK_SECRET")
    check = inbox("check", "--config", path, cwd=tmp_path, env={"SHOP_WEBHOOK_SECRET": STRONG})
    assert check.returncode == 0, check.stdout + check.stderr
    assert "no bot_token" in check.stdout  # Slack off until SLACK_BOT_TOKEN is set


def test_triage_refuses_an_unknown_channel_and_says_which_exist(tmp_path):
    run = inbox("triage", "--channel", "bogus", "where is my parcel", cwd=tmp_path)
    output = refused(run, "bogus", "x", "mastodon", "google_reviews")
    assert run.stdout == "", output
    path = config(
        tmp_path, '[[connectors]]\nname = "shop"\ntype = "webhook"\nchannel = "myshop"\nsecret = "' + STRONG + '"\n'
    )
    assert inbox("triage", "--config", path, "--channel", "myshop", "hello", cwd=tmp_path).returncode == 0


def test_the_demo_reads_well_at_80_columns_and_at_200(tmp_path):
    narrow = inbox("demo", cwd=tmp_path, columns=80, timeout=120)
    assert narrow.returncode == 0, narrow.stderr
    queue = narrow.stdout.split("What an agent sees")[1].split("What a team lead sees")[0]
    assert "│ … │" not in queue and "…  │" not in queue
    for said in ("Inadmissible", "staff were rude about it", "Make $5000/week", "garantie couvre un écran cassé"):
        assert said in queue, said
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80
    # 13 conversations, each a few lines, not 20 to 30 lines each.
    assert len(queue.splitlines()) < 13 * 10, queue
    wide = inbox("demo", cwd=tmp_path, columns=200, timeout=120)
    assert wide.returncode == 0, wide.stderr
    table = wide.stdout.split("What an agent sees")[1].split("What a team lead sees")[0]
    assert "customer said" in table and "suggested reply" in table and "Inadmissible" in table
