"""The door of /slack/events: a valid signature on a well-formed timestamp (else 401), then a payload Slack could
have sent (else 400), before Bolt sees anything.

Bolt verifies signatures too, but only after it has parsed the body, and its parsing and routing assume Slack's
shapes: a non-numeric timestamp, a body that is not JSON or a `payload` of the wrong shape raised inside it and
answered 500. Everything here is checked on the raw bytes first, so an unsigned caller learns nothing about what
the body would have done, and a signed one that is malformed gets a clear 400.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qs

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from inbox import safejson

MAX_AGE_SECONDS = 5 * 60  # Slack's own rule: an older request may be a replay
# ASCII digits only: int() also takes " 12", "+12" and "١٢", none of which Slack sends.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def signature_ok(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
    """True when the body carries Slack's v0 signature with `secret` and a timestamp within five minutes of `now`."""
    timestamp = headers.get("X-Slack-Request-Timestamp") or ""
    signature = headers.get("X-Slack-Signature") or ""
    if not _TIMESTAMP.fullmatch(timestamp) or abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    # Over the raw bytes: Slack signs bytes, and a body that is not UTF-8 must still get 401 when unsigned.
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


class _Shape(BaseModel):
    """Slack adds fields over time: unknown ones are kept, only those Bolt and the inbox read are checked."""

    model_config = ConfigDict(extra="allow")


class _Ref(_Shape):
    """A user, team, channel or enterprise given as an object."""

    id: str | None = None
    team_id: str | None = None


_Who = _Ref | str | None  # Slack sends some of these as a bare id


class _Action(_Shape):
    action_id: str
    block_id: str | None = None


class _View(_Shape):
    id: str | None = None
    callback_id: str
    private_metadata: str | None = None
    state: dict[str, dict[str, dict[str, dict[str, Any]]]] | None = None


class _Interaction(_Shape):
    """The `payload` field of a form-encoded interaction."""

    type: Literal[
        "block_actions",
        "block_suggestion",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
        "interactive_message",
        "dialog_submission",
        "dialog_cancellation",
        "dialog_suggestion",
        "workflow_step_edit",
    ]
    user: _Who = None
    team: _Who = None
    enterprise: _Who = None
    channel: _Who = None
    container: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    view: _View | None = None
    actions: list[_Action] | None = None
    response_url: str | None = None
    trigger_id: str | None = None

    @model_validator(mode="after")
    def _an_action_for_a_click(self) -> _Interaction:
        # Bolt routes block_actions by their first action: without one it fails inside.
        if self.type == "block_actions" and not self.actions:
            raise ValueError("block_actions without any action")
        if self.type in ("view_submission", "view_closed") and self.view is None:
            raise ValueError(f"{self.type} without its view")
        return self


class _Event(_Shape):
    type: str
    user: _Who = None
    channel: _Who = None


class _Authorization(_Shape):
    team_id: str | None = None
    user_id: str | None = None
    enterprise_id: str | None = None


class _Envelope(_Shape):
    """An Events API request, as JSON."""

    type: Literal["url_verification", "event_callback", "app_rate_limited"]
    challenge: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None
    event_id: str | None = None
    event: _Event | None = None
    authorizations: list[_Authorization] | None = None


class _Command(_Shape):
    """A slash command, form-encoded."""

    command: str = Field(pattern=r"^/\S+$")
    text: str = ""
    user_id: str | None = None
    team_id: str | None = None
    channel_id: str | None = None


def payload_problem(body: bytes, content_type: str | None) -> str | None:
    """What makes a (signed) body something Slack never sends, or None when Bolt may have it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    # Bolt's own rule for telling JSON from a form.
    if content_type == "application/json" or text.startswith("{"):
        return _problem(_Envelope, text, "body")
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return "body is neither JSON nor form-encoded"
    if any(len(values) > 1 for values in fields.values()):
        return "a form field is repeated"
    form = {key: values[0] for key, values in fields.items()}
    if "payload" in form:
        return _problem(_Interaction, form["payload"], "payload")
    if "command" in form:
        try:
            _Command.model_validate(form)
        except ValidationError as exc:
            return f"slash command: {_first_error(exc)}"
        return None
    if "ssl_check" in form:
        return None
    return "neither an event, an interaction nor a slash command"


def _problem(model: type[BaseModel], text: str, what: str) -> str | None:
    try:
        data = safejson.loads(text)
    except ValueError as exc:
        return f"{what} is not JSON: {exc}"
    if not isinstance(data, dict):
        return f"{what} is not a JSON object"
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return f"{what}: {_first_error(exc)}"
    return None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
