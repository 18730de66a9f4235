"""The TOML config: found, expanded from the environment, validated whole before anything starts."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from inbox.connector import ConnectorSettings, ConnectorTypes
from inbox.csat import CHANNEL_TYPES, askable_types, is_review_site
from inbox.sla import BusinessHours, SlaPolicies, SlaPolicy

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# ${NAME}, or ${NAME:-fallback} for a value that may stay unset (fallback may be empty).
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# The drivers `inbox.store.db.async_url` maps to the async ones the inbox runs on.
SUPPORTED_DATABASES = (
    "sqlite",
    "sqlite+aiosqlite",
    "postgresql",
    "postgres",
    "postgresql+asyncpg",
    "postgresql+psycopg2",
)
DATABASE_FORMS = "sqlite:///path/to/inbox.db or postgresql://user:password@host:5432/dbname"


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists each one by key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s)")
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        lines = [f"{self.source}: the config has {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class Section(BaseModel):
    """A config table: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    """Where items live."""

    url: str = "sqlite:///inbox.db"

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        try:
            driver = make_url(value).drivername
        except (ArgumentError, ValueError):
            raise ValueError(f"not a database URL; use {DATABASE_FORMS}") from None
        if driver not in SUPPORTED_DATABASES:
            raise ValueError(f"unsupported database {driver!r}; use {DATABASE_FORMS}")
        return value


class BusinessHoursSettings(Section):
    """Office hours during which the SLA clock runs."""

    timezone: str = "UTC"
    start: time = time(9, 0)
    end: time = time(18, 0)
    days: list[str] = Field(default_factory=lambda: list(DAYS[:5]))
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Paris')") from None
        return value

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower() not in DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {', '.join(DAYS)}")
        return [d.lower() for d in value]

    @model_validator(mode="after")
    def _order(self) -> BusinessHoursSettings:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def build(self) -> BusinessHours:
        """The pure-logic object the SLA functions take."""
        return BusinessHours(
            timezone=ZoneInfo(self.timezone),
            start=self.start,
            end=self.end,
            days=frozenset(DAYS.index(d) for d in self.days),
            holidays=frozenset(self.holidays),
        )


class ChannelSlaSettings(Section):
    """Per-channel overrides of the SLA numbers."""

    first_response_minutes: float | None = Field(default=None, gt=0)
    warn_after_minutes: float | None = Field(default=None, gt=0)
    business_hours: BusinessHoursSettings | None = None


class SlaSettings(Section):
    """The customer's first-response clock."""

    first_response_minutes: float = Field(default=30, gt=0)
    warn_after_minutes: float = Field(default=20, gt=0)
    check_seconds: float = Field(default=15, gt=0)
    # Leads are warned this long before a platform's reply window closes (Messenger and WhatsApp: 24 h).
    reply_window_warn_minutes: float = Field(default=120, gt=0)
    business_hours: BusinessHoursSettings | None = None
    channels: dict[str, ChannelSlaSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _warn_before_due(self) -> SlaSettings:
        for key, channel in [("", None), *self.channels.items()]:
            due = (channel and channel.first_response_minutes) or self.first_response_minutes
            warn = (channel and channel.warn_after_minutes) or self.warn_after_minutes
            if warn >= due:
                where = f"channels.{key}." if key else ""
                raise ValueError(
                    f"{where}warn_after_minutes ({warn:g}) must be less than first_response_minutes ({due:g})"
                )
        return self

    def zone(self) -> ZoneInfo:
        """The business-hours time zone, else UTC."""
        return ZoneInfo(self.business_hours.timezone if self.business_hours else "UTC")

    def policies(self) -> SlaPolicies:
        """Per-channel policies for the SLA functions."""
        default_hours = self.business_hours.build() if self.business_hours else None
        default = SlaPolicy(self.first_response_minutes, self.warn_after_minutes, default_hours)
        channels = {
            name: SlaPolicy(
                c.first_response_minutes or self.first_response_minutes,
                c.warn_after_minutes or self.warn_after_minutes,
                c.business_hours.build() if c.business_hours else default_hours,
            )
            for name, c in self.channels.items()
        }
        return SlaPolicies(default=default, channels=channels)


class SlackSettings(Section):
    """The Slack app; off while bot_token is empty."""

    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    triage_channel: str | None = None
    leads_channel: str | None = None
    admin_channel: str | None = None
    allowed_users: list[str] = Field(default_factory=list)
    # A user group (S…) whose members may act too, and one mentioned on SLA breaches.
    allowed_group: str | None = Field(default=None, pattern=r"^S[A-Z0-9]+$")
    leads_group: str | None = Field(default=None, pattern=r"^S[A-Z0-9]+$")
    # An agent's message in a triage thread starting with this is sent to the customer.
    reply_prefix: str = Field(default="reply:", min_length=1)
    # What `inbox forget` and retention do to the Slack messages that showed an erased customer's words or name:
    # "update" replaces them with a short note, "delete" deletes them.
    erased_messages: Literal["update", "delete"] = "update"

    @property
    def enabled(self) -> bool:
        """Slack is on when a bot token is configured."""
        return bool(self.bot_token and self.bot_token.get_secret_value())

    @model_validator(mode="after")
    def _complete(self) -> SlackSettings:
        if self.enabled:
            missing = [k for k in ("triage_channel", "leads_channel") if not getattr(self, k)]
            if not self.app_token and not self.signing_secret:
                missing.append("signing_secret")
            if missing:
                raise ValueError(f"with bot_token set, also set {', '.join(missing)}")
        return self


class ServerSettings(Section):
    """The HTTP server for Slack, webhooks, /healthz and /metrics."""

    host: str = "0.0.0.0"
    port: int = Field(default=3000, ge=0, le=65535)
    # The address people reach this server at (behind its proxy), for the links Slack gives to /reports.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) address; write e.g. https://inbox.example.com")
        if parts.query or parts.fragment:
            raise ValueError("the address takes no query (?…) nor fragment (#…)")
        return value.rstrip("/")


class WorkersSettings(Section):
    """How `inbox run` workers sharing one store split the work."""

    # A dead worker's connectors, outbox events and replies are taken over once this has passed.
    lease_seconds: float = Field(default=30, ge=1, le=3600)
    # Outbox events (Slack posts and updates) one worker delivers at once; one conversation's stay in order.
    outbox_concurrency: int = Field(default=8, ge=1, le=64)


class TriageSettings(Section):
    """Where an admin's triage rules and reply templates live, and how replies are signed."""

    rules: Path | None = None
    templates: Path | None = None
    brand: str = ""  # empty: templates sign off without a brand
    agent_name: str = ""  # empty: "The {brand} team" (or no sign-off) until an agent edits the reply


def _askable_type(type_: str) -> str:
    if type_ not in CHANNEL_TYPES:
        raise ValueError(f"{type_!r} is not a connector type; known: {', '.join(CHANNEL_TYPES)}")
    if is_review_site(type_):
        raise ValueError(
            f"{type_!r} is a review site: the customer cannot answer a question there in private or in the thread "
            "(its stars are followed instead: rating_before and rating_after)"
        )
    return type_


class CsatSettings(Section):
    """`[csat]`: one question after a conversation resolved with a reply, in the customer's channel and language."""

    enabled: bool = False
    ask_after_minutes: float = Field(default=60, ge=0)
    # Connector types to ask on; empty: every type where the customer can answer in private or in the thread.
    channels: list[Annotated[str, AfterValidator(_askable_type)]] = Field(default_factory=list)
    answer_hours: float = Field(default=72, gt=0)
    # The folder of `csat.<lang>.j2` question templates (else `csat.en.j2`); empty: the shipped ones.
    templates: Path | None = None

    def asked_types(self) -> frozenset[str]:
        """The connector types questions go out on."""
        return frozenset(self.channels or askable_types(CHANNEL_TYPES))


# `[reports] digest`: a weekday and a time, e.g. "mon 09:00".
_DIGEST = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun) ([01][0-9]|2[0-3]):([0-5][0-9])$")


class ReportsSettings(Section):
    """`[reports]`: the time zone reports count days and hours in, the weekly digest, the token for CSV/JSON."""

    timezone: str | None = None  # IANA; None: the business-hours zone, else UTC
    digest: str = ""  # e.g. "mon 09:00" (in `timezone`): the weekly summary to leads_channel; empty = off
    token: SecretStr | None = None  # bearer token for GET /reports.csv and /reports.json; unset: those are off

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like 'Europe/Paris')") from None
        return value

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not _DIGEST.match(value):
            raise ValueError(f'{value!r} is not a weekday and a time: write e.g. "mon 09:00" (empty = no digest)')
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty token (e.g. "${REPORTS_TOKEN:-}" left unset) is no token: the endpoints stay off.
        return value if value is not None and value.get_secret_value() else None


class RetentionSettings(Section):
    """`[retention]`: how long the texts and names of resolved conversations are kept; the numbers stay."""

    text_days: int = Field(default=0, ge=0)  # 0: kept until `inbox forget`


class Settings(Section):
    """The whole config file."""

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    workers: WorkersSettings = Field(default_factory=WorkersSettings)
    csat: CsatSettings = Field(default_factory=CsatSettings)
    reports: ReportsSettings = Field(default_factory=ReportsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    connectors: list[ConnectorSettings] = Field(default_factory=list)


def find_config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """`--config`, else $INBOX_CONFIG, else ./inbox.toml, else None (defaults apply)."""
    if explicit:
        return Path(explicit)
    if os.environ.get("INBOX_CONFIG"):
        return Path(os.environ["INBOX_CONFIG"])
    default = Path("inbox.toml")
    return default if default.exists() else None


@dataclass(frozen=True, slots=True)
class Uses:
    """The parts of the config a command reads: only their `${VAR}`s must be set.

    Slack counts only while it is on (its `bot_token` set), a connector only while enabled; a variable left
    unset elsewhere is no error, and what holds it is left out of the settings (a connector) or off (Slack).
    """

    sections: frozenset[str] = frozenset(
        {"database", "sla", "slack", "server", "triage", "workers", "csat", "reports", "retention"}
    )
    connectors: bool | str = True  # every enabled connector, none, or only the one with this name

    def needs(self, where: tuple[str | int, ...], raw: dict[str, Any]) -> bool:
        """Whether a value at key path `where` of the (expanded) document `raw` is used."""
        top = where[0] if where else ""
        if top == "connectors":
            if self.connectors is False or len(where) < 2:
                return self.connectors is not False
            table = _connector_table(raw.get("connectors"), where[1])
            if table is None or table.get("enabled", True) is False:
                return False
            return self.connectors is True or table.get("name") == self.connectors
        if top == "slack":
            slack: dict[str, Any] = raw["slack"] if isinstance(raw.get("slack"), dict) else {}
            if "slack" not in self.sections:
                return False
            if where[1:2] == ("bot_token",):
                return True
            # Socket Mode needs no signing secret: Slack's requests come over the app's own connection.
            socket_mode = bool(slack.get("app_token")) and where[1:2] == ("signing_secret",)
            return bool(slack.get("bot_token")) and not socket_mode
        return top in self.sections or top not in Settings.model_fields


EVERYTHING = Uses()


def load_config(
    path: Path | None, env: Mapping[str, str] | None = None, *, types: ConnectorTypes, uses: Uses = EVERYTHING
) -> Settings:
    """Read, expand and validate a config file; raise ConfigError listing every problem."""
    if path is None:
        return Settings()
    source = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read the file: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"TOML syntax: {exc}"]) from None
    env = os.environ if env is None else env
    return parse_config(raw, source=source, base_dir=path.parent, env=env, types=types, uses=uses)


def parse_config(
    raw: dict[str, Any],
    *,
    source: str = "<config>",
    base_dir: Path = Path("."),
    env: Mapping[str, str],
    types: ConnectorTypes,
    uses: Uses = EVERYTHING,
) -> Settings:
    """Validate a parsed TOML document, each connector table by its type's model; raise ConfigError listing every problem."""
    problems: list[str] = []
    unset: list[tuple[tuple[str | int, ...], str]] = []
    data = _expand(raw, env, (), unset)
    # Unset variables the command does not use are no error: their keys take their defaults (Slack stays off), and
    # a connector left incomplete by them is left out.
    unused = [where for where, _name in unset if not uses.needs(where, data)]
    problems += [
        f"{_path(where)}: environment variable {name} is not set" for where, name in unset if uses.needs(where, data)
    ]
    # Slack half-configured is worse than off: a command that does not use it gets it off. Slack on (in Socket
    # Mode) leaves out only the key it does not need.
    unused = [
        where[:1] if where[0] == "slack" and not uses.needs(("slack", "app_token"), data) else where for where in unused
    ]
    for where in unused:
        _drop(data, where)
    unused_keys = [_path(where[:2] if where[0] == "connectors" else where) for where in unused]
    # A needed one is reported once, as unset, not again as the empty value it left behind.
    quiet = unused_keys + [_path(where) for where, _name in unset]
    connectors_raw = data.pop("connectors", [])
    settings: Settings | None = None
    found: list[str] = []
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        found += _describe(exc, ())
    connectors = _connectors(connectors_raw, found, types)
    problems += [p for p in found if not any(_under(p, key) for key in quiet)]
    if problems or settings is None:
        raise ConfigError(source, problems or found)
    settings.connectors = [
        c for c in connectors if not any(_under(f"connectors[{c.name}]", key) for key in unused_keys)
    ]
    _resolve_paths(settings, base_dir)
    return settings


def _under(problem: str, key: str) -> bool:
    """True when `problem` (or a key path) is about `key` or something inside it."""
    return problem.startswith(key) and problem[len(key) : len(key) + 1] in (":", ".", "[", "")


def _drop(data: dict[str, Any], where: tuple[str | int, ...]) -> None:
    """Remove the key at `where` (a whole list holding it, if it is in one), so its default applies."""
    parent: Any = data
    keys = list(where)
    if keys[:1] == ["connectors"] and len(keys) >= 3:
        parent, keys = _connector_table(data.get("connectors"), keys[1]), keys[2:]
    for i, key in enumerate(keys):
        if not isinstance(parent, dict) or not isinstance(key, str):
            return
        if i == len(keys) - 1 or not isinstance(parent.get(key), dict):
            parent.pop(key, None)
            return
        parent = parent[key]


def _connector_table(raw: Any, key: str | int) -> dict[str, Any] | None:
    """The `[[connectors]]` table a key path names (by name, or by position when it has none)."""
    if not isinstance(raw, list):
        return None
    for i, table in enumerate(raw):
        if isinstance(table, dict) and _list_key(("connectors",), i, table) == key:
            return table
    return None


def _connectors(raw: Any, problems: list[str], types: ConnectorTypes) -> list[ConnectorSettings]:
    if not isinstance(raw, list):
        problems.append("connectors: must be an array of tables ([[connectors]])")
        return []
    result: list[ConnectorSettings] = []
    seen: dict[str, int] = {}
    for i, table in enumerate(raw):
        where: tuple[str | int, ...] = ("connectors", i)
        if not isinstance(table, dict):
            problems.append(f"{_path(where)}: must be a table")
            continue
        name, type_ = table.get("name"), table.get("type")
        if isinstance(name, str):
            if name in seen:
                problems.append(
                    f"connectors[{i}].name: duplicate connector name {name!r} (also connectors[{seen[name]}])"
                )
            else:
                where = ("connectors", name)
            seen.setdefault(name, i)
        if not isinstance(type_, str):
            problems.append(f"{_path(where)}.type: required, one of {', '.join(types.known_types())}")
            continue
        model = types.settings_model_for(type_)
        if model is None:
            problems.append(
                f"{_path(where)}.type: unknown connector type {type_!r}; known: {', '.join(types.known_types())}"
            )
            continue
        try:
            result.append(model.model_validate(table))
        except ValidationError as exc:
            problems += _describe(exc, where)
    return result


def _resolve_paths(settings: Settings, base_dir: Path) -> None:
    """Relative file paths in a config file mean relative to that file."""
    for holder, key in [(settings.triage, "rules"), (settings.triage, "templates"), (settings.csat, "templates")]:
        value = getattr(holder, key)
        if value is not None and not value.is_absolute():
            setattr(holder, key, base_dir / value)
    for i, connector in enumerate(settings.connectors):
        path = getattr(connector, "path", None)
        if isinstance(path, Path) and not path.is_absolute():
            settings.connectors[i] = connector.model_copy(update={"path": base_dir / path})


def _expand(
    value: Any, env: Mapping[str, str], where: tuple[str | int, ...], unset: list[tuple[tuple[str | int, ...], str]]
) -> Any:
    """`value` with every ${NAME} replaced; each one unset (without a :- fallback) is added to `unset`."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, fallback = match.group(1), match.group(2)
            if fallback is not None:
                return env.get(name) or fallback  # as the shell's ${NAME:-fallback}: unset or empty
            if name not in env:
                unset.append((where, name))
                return ""
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, (*where, k), unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, (*where, _list_key(where, i, v)), unset) for i, v in enumerate(value)]
    return value


def _list_key(where: tuple[str | int, ...], index: int, value: Any) -> str | int:
    # Connectors are easier to find by name than by position.
    if where == ("connectors",) and isinstance(value, dict) and isinstance(value.get("name"), str):
        return str(value["name"])
    return index


def _describe(exc: ValidationError, prefix: tuple[str | int, ...]) -> list[str]:
    out = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        message = message.removeprefix("Value error, ")
        out.append(f"{_path((*prefix, *loc))}: {message}")
    return out


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int) or text == "connectors":
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"
