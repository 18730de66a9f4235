"""Logging: readable lines on a terminal, one JSON object per line elsewhere; context fields on every line, no secrets."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ParamSpec, TextIO, TypeVar
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

# ------------------------------------------------------------------------------------------------ context fields

# The fields the terminal shows after the message, in this order (the connector goes in front).
# Libraries that talk to vendors and log what they send and receive (bodies, URLs with handles) below WARNING.
VENDOR_CLIENT_LOGGERS = (
    "slack_sdk",
    "slack_bolt",
    "tweepy",
    "atproto",
    "atproto_client",
    "httpx",
    "httpcore",
    "urllib3",
    "requests_oauthlib",
    "oauthlib",
)
CONTEXT_FIELDS = ("thread_id", "item_id", "reply_id", "event_id", "external_id")

_context: ContextVar[Mapping[str, Any]] = ContextVar("inbox_log_context", default=MappingProxyType({}))

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every log line inside (nested calls and tasks started here included) carries these fields; None ones are left out."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> Mapping[str, Any]:
    """The fields log lines get here and now."""
    return _context.get()


def log_fields(**paths: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an async function: its log lines carry fields read from its arguments, e.g. connector="source.name"."""

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        signature = inspect.signature(func)
        getters = {field: _argument_getter(signature, path, func) for field, path in paths.items()}

        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind_partial(*args, **kwargs).arguments
            with log_context(**{field: get(bound) for field, get in getters.items()}):
                return await func(*args, **kwargs)

        return wrapper

    return decorate


def _argument_getter(
    signature: inspect.Signature, path: str, func: Callable[..., Any]
) -> Callable[[Mapping[str, Any]], Any]:
    name, *attributes = path.split(".")
    if name not in signature.parameters:
        raise TypeError(f"{func.__qualname__} has no argument {name!r} (from log field path {path!r})")

    def get(arguments: Mapping[str, Any]) -> Any:
        value = arguments.get(name)
        for attribute in attributes:
            value = getattr(value, attribute, None)
        return value

    return get


class ContextFilter(logging.Filter):
    """Copies the current context fields onto each record; a field given with `extra=` wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record."""
        for key, value in _context.get().items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


# ------------------------------------------------------------------------------------------------ secrets

REDACTED = "[redacted]"
# Shorter values would hide ordinary words, and are too weak to be real credentials.
MIN_SECRET_LENGTH = 6
# Tokens renewed at run time (hourly OAuth tokens, 20-minute JWTs): the most recently used are kept; expired ones go.
MAX_RUNTIME_SECRETS = 200
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "apikey", "x-api-key", "x-goog-api-key", "cookie"}
)
_SENSITIVE_FIELD = re.compile(r"(?i)password|secret|token|assertion|api_?key")

# Credentials that look like credentials, whether or not they were configured.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A password in a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)"), rf"\1{REDACTED}"),
    # A credential in a query string.
    (
        re.compile(
            r"(?i)([?&](?:access_token|refresh_token|id_token|token|api_key|apikey|key|client_secret|secret|password|ticket|signature|sig)=)[^&#\s\"']+"
        ),
        rf"\1{REDACTED}",
    ),
    # An Authorization header's value (a token has a digit or punctuation; words do not).
    (re.compile(r"(?i)\b(Bearer|Basic)\s+(?=[A-Za-z0-9._~+/-]*[0-9._~+/-])[A-Za-z0-9._~+/=-]{12,}"), rf"\1 {REDACTED}"),
    # Slack tokens: bot, user, app-level, configuration.
    (re.compile(r"\b(?:xox[abeoprs]|xapp)-[A-Za-z0-9-]{4,}"), REDACTED),
)


class Secrets:
    """Every value that must never be shown: configured secrets, and tokens the connectors obtain at run time."""

    def __init__(self) -> None:
        self._configured: set[str] = set()
        self._runtime: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        self._stale = False  # the pattern is rebuilt at the next redact, not at every add

    def add(self, *values: str | SecretStr | None, runtime: bool = False) -> None:
        """Remember values (and their URL- and JSON-escaped forms) to redact; short and empty ones are ignored."""
        changed = False
        for value in values:
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not raw or len(raw) < MIN_SECRET_LENGTH:
                continue
            for form in {raw, quote(raw, safe=""), quote_plus(raw), json.dumps(raw)[1:-1]}:
                if form in self._configured:
                    continue
                if runtime:
                    if form in self._runtime:
                        self._runtime.move_to_end(form)
                        continue
                    self._runtime[form] = None
                    while len(self._runtime) > MAX_RUNTIME_SECRETS:
                        self._runtime.popitem(last=False)
                else:
                    self._runtime.pop(form, None)
                    self._configured.add(form)
                changed = True
        self._stale = self._stale or changed

    def add_settings(self, settings: BaseModel) -> None:
        """Every SecretStr in loaded settings (connectors, Slack, ...), and the database URL's password."""
        self.add(*_secret_values(settings))
        database = getattr(settings, "database", None)
        url = getattr(database, "url", None)
        if isinstance(url, str):
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            with suppress(ArgumentError):
                self.add(make_url(url).password)

    def add_request(self, headers: Mapping[str, str], form: Any = None) -> None:
        """Credentials a request carries: header values (and, for `Scheme token`, the token) and form fields like `assertion`."""
        for name, value in headers.items():
            if name.lower() in SENSITIVE_HEADERS and isinstance(value, str):
                scheme, _, credential = value.partition(" ")
                self.add(value, credential if credential and scheme.isalpha() else None, runtime=True)
        if isinstance(form, Mapping):
            for name, value in form.items():
                if isinstance(name, str) and isinstance(value, str) and _SENSITIVE_FIELD.search(name):
                    self.add(value, runtime=True)

    def redact(self, text: str) -> str:
        """`text` with every known secret, and anything shaped like a credential, replaced by [redacted]."""
        if self._stale:
            known = sorted(self._configured | set(self._runtime), key=len, reverse=True)  # the longest first
            self._pattern = re.compile("|".join(map(re.escape, known))) if known else None
            self._stale = False
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def clear(self) -> None:
        """Forget every value (for tests)."""
        self._configured.clear()
        self._runtime.clear()
        self._pattern = None
        self._stale = False


def _secret_values(value: Any) -> Iterator[SecretStr]:
    if isinstance(value, SecretStr):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_values(getattr(value, name, None))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secret_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secret_values(item)


SECRETS = Secrets()


def redact(text: str) -> str:
    """`text` safe to show: in a log line, a health reason, a Slack message or `inbox check`'s table."""
    return SECRETS.redact(text)


class RedactFilter(logging.Filter):
    """Redacts secrets from a record's message, arguments, exception and stack text and `extra=` strings."""

    def __init__(self, secrets: Secrets = SECRETS) -> None:
        super().__init__()
        self.secrets = secrets
        self._traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keeps the record, made safe."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is logging's to report (handleError), not ours
            return True
        record.msg, record.args = self.secrets.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.secrets.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.secrets.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD or value is None or isinstance(value, bool | int | float):
                continue
            if isinstance(value, str):
                setattr(record, key, self.secrets.redact(value))
            else:  # a structure given with extra=: redacted as the JSON it will be written as
                try:
                    setattr(record, key, json.loads(self.secrets.redact(json.dumps(value, default=str))))
                except (TypeError, ValueError):
                    setattr(record, key, self.secrets.redact(str(value)))
        return True


# ------------------------------------------------------------------------------------------------ output


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the context and `extra=` fields (connector, item id, ...) as keys."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, default=str, ensure_ascii=False)


def _rich_handler(stream: TextIO | None) -> logging.Handler:
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.text import Text

    class ContextRichHandler(RichHandler):
        """Rich lines with the connector in front of the message and the ids after it."""

        def render_message(self, record: logging.LogRecord, message: str) -> Any:
            """The message, `connector: ` first unless it already says so, then `thread_id=… item_id=…` dimmed."""
            rendered = super().render_message(record, message)  # a Text, though Rich declares any renderable
            text = rendered if isinstance(rendered, Text) else Text(str(rendered))
            connector = getattr(record, "connector", None)
            if connector and not message.startswith(f"{connector}: "):
                text = Text.assemble((f"{connector}: ", "bold"), text)
            ids = [f"{key}={getattr(record, key)}" for key in CONTEXT_FIELDS if getattr(record, key, None) is not None]
            if ids:
                text.append("  " + " ".join(ids), style="dim")
            return text

    console = Console(file=stream, width=200) if stream is not None else None  # a file has no terminal width
    return ContextRichHandler(console=console, show_path=False, rich_tracebacks=False, markup=False)


def log_handler(*, json_lines: bool | None = None, stream: TextIO | None = None) -> logging.Handler:
    """A handler for `stream` (stderr): JSON lines unless it is a terminal; context fields added, secrets redacted."""
    target = stream or sys.stderr
    if json_lines is None:
        json_lines = not target.isatty()
    handler: logging.Handler
    if json_lines:
        handler = logging.StreamHandler(target)
        handler.setFormatter(JsonFormatter())
    else:
        handler = _rich_handler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    return handler


def setup_logging(
    level: int = logging.INFO,
    *,
    json_lines: bool | None = None,
    settings: BaseModel | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Configure the root logger once for a CLI command; `settings`' secrets are never shown."""
    if settings is not None:
        SECRETS.add_settings(settings)
    handler = log_handler(json_lines=json_lines, stream=stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler", "aiosqlite", "sqlalchemy", "alembic", "aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Vendor clients log whole request and response bodies at debug level (slack_sdk every chat.postMessage),
    # which hold customers' words and names: `-v` is our debug log, never theirs.
    for client in VENDOR_CLIENT_LOGGERS:
        logging.getLogger(client).setLevel(max(level, logging.WARNING))
    # "skipped: maximum number of running instances reached" is by design (a sweep or lease round still running
    # when its next turn comes is not run twice); the scheduler's errors still show.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    return handler
