"""Config: every problem reported by key path, ${VAR} from the environment, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from inbox import connectors as registry
from inbox.settings import ConfigError, find_config_path, load_config, parse_config

GOOD = """
[database]
url = "sqlite:///inbox.db"

[sla]
first_response_minutes = 30
warn_after_minutes = 20

[sla.channels.google_reviews]
first_response_minutes = 240
warn_after_minutes = 180

[slack]
bot_token = "${SLACK_BOT_TOKEN}"
signing_secret = "${SLACK_SIGNING_SECRET}"
triage_channel = "C0123TRIAGE"
leads_channel = "C0123LEADS"

[[connectors]]
name = "imports"
type = "jsonl"
path = "items.jsonl"

[[connectors]]
name = "shop"
type = "webhook"
secret = "${SHOP_WEBHOOK_SECRET}"
"""
ENV = {
    "SLACK_BOT_TOKEN": "xoxb-secret-token",
    "SLACK_SIGNING_SECRET": "sig-secret",
    "SHOP_WEBHOOK_SECRET": "0123456789abcdef",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), types=registry, env=ENV if env is None else env)
    return info.value.problems


def test_good_config_loads_with_variables_and_relative_paths(tmp_path):
    settings = load_config(write(tmp_path, GOOD), types=registry, env=ENV)
    assert settings.slack.enabled and settings.slack.bot_token.get_secret_value() == "xoxb-secret-token"
    assert [c.name for c in settings.connectors] == ["imports", "shop"]
    assert settings.connectors[0].path == tmp_path / "items.jsonl"
    assert settings.sla.policies().for_channel("google_reviews").first_response_minutes == 240
    assert "xoxb-secret-token" not in repr(settings)


def test_every_problem_is_listed_by_key_path(tmp_path):
    text = (
        GOOD.replace("first_response_minutes = 30", 'first_response_minutes = "thirty"').replace(
            'leads_channel = "C0123LEADS"', 'leads_channel = "C0123LEADS"\ncolour = "red"'
        )
        + '\n[[connectors]]\nname = "imports"\ntype = "jsonl"\npath = "b.jsonl"\n\n[[connectors]]\nname = "tw"\ntype = "twitter"\n'
    )
    found = problems(tmp_path, text, {k: v for k, v in ENV.items() if k != "SHOP_WEBHOOK_SECRET"})
    assert "sla.first_response_minutes: Input should be a valid number, unable to parse string as a number" in found
    assert "slack.colour: unknown key" in found
    assert "connectors[shop].secret: environment variable SHOP_WEBHOOK_SECRET is not set" in found
    assert any(p.startswith("connectors[2].name: duplicate connector name 'imports'") for p in found)
    assert any(p.startswith("connectors[tw].type: unknown connector type 'twitter'") for p in found)
    assert len(found) == 5


def test_connector_specific_keys_are_checked(tmp_path):
    found = problems(
        tmp_path, '[[connectors]]\nname = "imports"\ntype = "jsonl"\nbearer_token = "x"\npoll_seconds = -1\n'
    )
    assert sorted(found) == [
        "connectors[imports].bearer_token: unknown key",
        "connectors[imports].path: Field required",
        "connectors[imports].poll_seconds: Input should be greater than 0",
    ]


def test_warn_must_come_before_breach_per_channel(tmp_path):
    found = problems(tmp_path, "[sla.channels.x]\nfirst_response_minutes = 10\n")
    assert found == ["sla: channels.x.warn_after_minutes (20) must be less than first_response_minutes (10)"]


def test_business_hours_are_validated(tmp_path):
    found = problems(tmp_path, '[sla.business_hours]\ntimezone = "Mars/Olympus"\ndays = ["mon", "funday"]\n')
    assert any("sla.business_hours.timezone: unknown time zone 'Mars/Olympus'" in p for p in found)
    assert any("sla.business_hours.days: unknown day(s) ['funday']" in p for p in found)


def test_toml_syntax_error(tmp_path):
    found = problems(tmp_path, "[sla\nfirst = 1")
    assert len(found) == 1 and found[0].startswith("TOML syntax:")


def test_slack_needs_its_channels(tmp_path):
    found = problems(tmp_path, '[slack]\nbot_token = "xoxb-1"\nsigning_secret = "s"\n')
    assert found == ["slack: with bot_token set, also set triage_channel, leads_channel"]


def test_config_lookup_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INBOX_CONFIG", raising=False)
    assert find_config_path(None) is None
    (tmp_path / "inbox.toml").write_text("")
    assert find_config_path(None) == Path("inbox.toml")
    monkeypatch.setenv("INBOX_CONFIG", "/etc/inbox.toml")
    assert find_config_path(None) == Path("/etc/inbox.toml")
    assert find_config_path("other.toml") == Path("other.toml")


def test_no_config_means_defaults():
    settings = parse_config({}, types=registry, env={})
    assert settings.database.url == "sqlite:///inbox.db" and settings.connectors == [] and not settings.slack.enabled


def test_the_shipped_example_config_is_valid(monkeypatch):
    from importlib.resources import files

    example = Path(str(files("inbox.config") / "inbox.example.toml"))
    env = {
        name: "x" * 20 for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "SHOP_WEBHOOK_SECRET")
    }
    settings = load_config(example, types=registry, env=env)
    assert settings.connectors


def test_cli_prints_problems_without_a_traceback(tmp_path):
    path = write(
        tmp_path,
        '[sla]\nfirst_response_minutes = "x"\n[slack]\nbot_token = "xoxb-very-secret"\nsigning_secret = "${NOPE}"\n',
    )
    run = subprocess.run(
        [sys.executable, "-m", "inbox", "check", "--config", str(path)], capture_output=True, text=True
    )
    assert run.returncode == 2
    output = run.stdout + run.stderr
    assert (
        "sla.first_response_minutes" in output
        and "slack.signing_secret: environment variable NOPE is not set" in output
    )
    assert "Traceback" not in output and "xoxb-very-secret" not in output


def test_names_and_channels_fit_the_store(tmp_path):
    # The store's connector columns hold 64 characters and its channel columns 32 (PostgreSQL would refuse more).
    name = "n" * 65
    found = problems(
        tmp_path, f'[[connectors]]\nname = "{name}"\ntype = "jsonl"\npath = "x.jsonl"\nchannel = "{"c" * 33}"\n'
    )
    assert sorted(found) == [
        f"connectors[{name}].channel: String should have at most 32 characters",
        f"connectors[{name}].name: String should have at most 64 characters",
    ]


def test_a_command_needs_only_the_variables_of_what_it_uses(tmp_path):
    from inbox.settings import Uses

    text = GOOD + '[[connectors]]\nname = "old"\ntype = "webhook"\nenabled = false\nsecret = "${OLD_SECRET}"\n'
    path = write(tmp_path, text)
    queue = Uses(frozenset({"database", "sla", "triage"}), connectors=False)
    # Slack on by its token but its signing secret unset: a command that does not use Slack gets it off, whole.
    settings = load_config(path, types=registry, env={"SLACK_BOT_TOKEN": "xoxb-secret-token"}, uses=queue)
    assert not settings.slack.enabled
    assert [c.name for c in settings.connectors] == ["imports"]  # the webhook lacks its secret: left out
    # One connector's backfill needs that connector's variables only.
    only_shop = Uses(frozenset({"database", "sla", "triage"}), connectors="shop")
    with pytest.raises(ConfigError) as info:
        load_config(path, types=registry, env={}, uses=only_shop)
    assert info.value.problems == ["connectors[shop].secret: environment variable SHOP_WEBHOOK_SECRET is not set"]
    shop = load_config(path, types=registry, env={"SHOP_WEBHOOK_SECRET": "s" * 16}, uses=only_shop)
    assert [c.name for c in shop.connectors] == ["imports", "shop"]  # "old" is disabled and lacks its secret
    # Everything (inbox run): every enabled part's variables, never a disabled connector's.
    found = problems(tmp_path, text, {})
    assert sorted(found) == [
        "connectors[shop].secret: environment variable SHOP_WEBHOOK_SECRET is not set",
        "slack.bot_token: environment variable SLACK_BOT_TOKEN is not set",
    ]


def test_a_fallback_is_taken_when_the_variable_is_unset_or_empty():
    raw = {"slack": {"bot_token": "${BOT:-}", "api_url": "${API:-http://127.0.0.1:9/api/}"}}
    assert not parse_config(raw, types=registry, env={}).slack.enabled
    assert parse_config(raw, types=registry, env={"API": ""}).slack.api_url == "http://127.0.0.1:9/api/"
    assert parse_config(raw, types=registry, env={"API": "http://x/"}).slack.api_url == "http://x/"


def test_database_urls_other_than_sqlite_and_postgresql_are_refused_without_the_password():
    for url in ("mysql://u:pa55word-x@h/db", "not a url", "oracle://u:pa55word-x@h"):
        with pytest.raises(ConfigError) as info:
            parse_config({"database": {"url": url}}, types=registry, env={})
        [problem] = info.value.problems
        assert problem.startswith("database.url: ") and "postgresql://" in problem and "pa55word-x" not in problem
    for url in (
        "sqlite:///inbox.db",
        "sqlite:////var/lib/inbox.db",
        "postgresql://u@h/db",
        "postgresql+asyncpg://u@h:5/db",
    ):
        assert parse_config({"database": {"url": url}}, types=registry, env={}).database.url == url


def test_socket_mode_needs_no_signing_secret_variable():
    channels = {"triage_channel": "C1", "leads_channel": "C2"}
    raw = {"slack": {"bot_token": "${BOT}", "app_token": "${APP}", "signing_secret": "${SIGNING}", **channels}}
    settings = parse_config(raw, types=registry, env={"BOT": "xoxb-token", "APP": "xapp-token"})
    assert settings.slack.enabled and settings.slack.signing_secret is None
    with pytest.raises(ConfigError) as info:  # over HTTP it is needed, and said so by key
        parse_config(
            {"slack": {"bot_token": "${BOT}", "signing_secret": "${SIGNING}", **channels}},
            env={"BOT": "xoxb-token"},
            types=registry,
        )
    assert "slack.signing_secret: environment variable SIGNING is not set" in info.value.problems


def test_retention_and_erased_messages_are_checked_by_key_path(tmp_path: Path):
    settings = parse_config({}, source="t", base_dir=tmp_path, env={}, types=registry)
    assert settings.retention.text_days == 0 and settings.slack.erased_messages == "update"
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"retention": {"text_days": -1, "days": 3}, "slack": {"erased_messages": "burn"}},
            source="t",
            base_dir=tmp_path,
            env={},
            types=registry,
        )
    problems = str(info.value)
    assert "retention.text_days: Input should be greater than or equal to 0" in problems
    assert (
        "retention.days: unknown key" in problems
        and "slack.erased_messages: Input should be 'update' or 'delete'" in problems
    )
