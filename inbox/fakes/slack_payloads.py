"""Requests as Slack sends them: payloads from slack-bolt's own tests, form-encoded and signed like Slack."""

from __future__ import annotations

import copy
import itertools
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from slack_sdk.signature import SignatureVerifier

from inbox.fakes.slack import FIXTURES, TEAM

SECRET = "test-signing-secret"
_ids = itertools.count(1)


def _fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / "bolt-python" / f"{name}.payload.json").read_text())
    return payload


def form(payload: dict[str, Any]) -> str:
    """The raw body Slack POSTs for an interaction: payload=<urlencoded JSON>."""
    return "payload=" + quote(json.dumps(payload))


def signed(
    body: str,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    """Headers Slack sends with `body`: X-Slack-Request-Timestamp and X-Slack-Signature."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None  # None only for a missing timestamp
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": content_type}


def block_action(
    action_id: str, value: str, *, user: str, channel: str, message_ts: str, response_url: str
) -> dict[str, Any]:
    """A button click on a message (slack-bolt's block_actions payload, retargeted)."""
    n = next(_ids)
    payload = _fixture("block_actions")
    payload["user"].update(id=user, username=user.lower(), name=user.lower(), team_id=TEAM)
    payload["team"]["id"] = TEAM
    payload["container"] = {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False}
    payload["channel"] = {"id": channel, "name": "triage"}
    payload["trigger_id"] = f"{n}.{n}.trigger{n}"
    payload["response_url"] = response_url
    action = payload["actions"][0]
    action.update(action_id=action_id, block_id="inbox_actions", value=value, action_ts=f"{time.time():.6f}")
    return payload


def modal_action(view: dict[str, Any], action_id: str, selected: str, *, user: str) -> dict[str, Any]:
    """A choice inside a modal (block_actions with the view)."""
    n = next(_ids)
    payload = _fixture("block_actions")
    payload["user"].update(id=user, team_id=TEAM)
    payload.pop("container", None)
    payload.pop("channel", None)
    payload["container"] = {"type": "view", "view_id": view["id"]}
    payload["trigger_id"] = f"{n}.{n}.trigger{n}"
    payload["view"] = copy.deepcopy(view)
    payload["actions"] = [
        {
            "type": "static_select",
            "action_id": action_id,
            "block_id": "template",
            "selected_option": {"text": {"type": "plain_text", "text": selected}, "value": selected},
            "action_ts": f"{time.time():.6f}",
        }
    ]
    return payload


def view_submission(view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str) -> dict[str, Any]:
    """The modal submitted with `values` (slack-bolt's view_submission payload, with our view)."""
    n = next(_ids)
    payload = _fixture("view_submission")
    payload["user"].update(id=user, team_id=TEAM)
    payload["team"]["id"] = TEAM
    payload["trigger_id"] = f"{n}.{n}.trigger{n}"
    submitted = copy.deepcopy(view)
    submitted["state"] = {"values": values}
    payload["view"] = {**payload["view"], **submitted}
    return payload


def slash(text: str, *, user: str, response_url: str) -> str:
    """The form body of `/inbox TEXT`."""
    n = next(_ids)
    return urlencode(
        {
            "token": "verification_token",
            "team_id": TEAM,
            "team_domain": "acme",
            "channel_id": "CLEADS",
            "channel_name": "leads",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/inbox",
            "text": text,
            "api_app_id": "A111",
            "response_url": response_url,
            "trigger_id": f"{n}.{n}.trigger{n}",
        }
    )


def event(inner: dict[str, Any], *, event_id: str | None = None) -> str:
    """An Events API envelope around `inner`, as JSON."""
    n = next(_ids)
    return json.dumps(
        {
            "token": "verification_token",
            "team_id": TEAM,
            "api_app_id": "A111",
            "type": "event_callback",
            "event_id": event_id or f"Ev{n:08d}",
            "event_time": int(time.time()),
            "event": inner,
            "authorizations": [{"team_id": TEAM, "user_id": "UBOT0001", "is_bot": True}],
        }
    )
