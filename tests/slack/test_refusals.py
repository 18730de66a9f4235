"""Requests Slack never sends, over real HTTP: a malformed timestamp is 401, a signed body that is no payload is 400."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import quote

import pytest

from inbox.fakes import slack_payloads as payloads
from tests.slack.conftest import AGENT, Harness
from tests.slack.test_buttons import status_of

FORM = "application/x-www-form-urlencoded"


def signed_at(body: str | bytes, timestamp: str, content_type: str = FORM) -> dict[str, str]:
    """Headers whose signature is right for `body` at `timestamp`, whatever that string is (Slack's v0 HMAC of the bytes)."""
    raw = body.encode() if isinstance(body, str) else body
    signature = (
        "v0=" + hmac.new(payloads.SECRET.encode(), b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256).hexdigest()
    )
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature, "Content-Type": content_type}


async def a_click(harness: Harness) -> tuple[int, str]:
    """A thread posted to Slack, and the form body of a click on its send button."""
    thread = await harness.customer_says("1")
    await harness.dispatch()
    return thread, harness.click_body(thread, "inbox_send")


@pytest.mark.parametrize(
    "timestamp",
    ["abc", "1e3", "", " ", "9" * 5000, "99999999999999999999", "-1", "+{now}", "{now}.5", "١٧٠٠٠٠٠٠٠٠", " {now}"],
)
async def test_a_malformed_timestamp_is_401_and_does_nothing(harness: Harness, timestamp: str):
    thread, body = await a_click(harness)
    calls_before = len(harness.fake.calls)
    status, answer, _ = await harness.post(body, signed_at(body, timestamp.format(now=int(time.time()))))
    assert status == 401, answer
    await harness.settle()
    assert harness.replies() == [] and await status_of(harness, thread) == ("new", None)
    assert len(harness.fake.calls) == calls_before


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_PAYLOADS = {
    "empty form": ("", FORM),
    "not form-encoded": ("this is just some text", FORM),
    "payload not JSON": ("payload=" + quote("{not json"), FORM),
    "payload a list": ("payload=" + quote("[1, 2]"), FORM),
    "payload without type": ("payload=" + quote(json.dumps({"user": {"id": AGENT}})), FORM),
    "payload of unknown type": ("payload=" + quote(json.dumps({"type": "no_such_thing", "user": {"id": AGENT}})), FORM),
    "payload type not a string": ("payload=" + quote(json.dumps({"type": ["block_actions"]})), FORM),
    "actions not a list": (
        "payload=" + quote(json.dumps({"type": "block_actions", "user": {"id": AGENT}, "actions": "inbox_send"})),
        FORM,
    ),
    "action not an object": (
        "payload=" + quote(json.dumps({"type": "block_actions", "user": {"id": AGENT}, "actions": ["inbox_send"]})),
        FORM,
    ),
    "user not an object": (
        "payload=" + quote(json.dumps({"type": "block_actions", "user": "U1", "actions": []})),
        FORM,
    ),
    "view not an object": (
        "payload=" + quote(json.dumps({"type": "view_submission", "user": {"id": AGENT}, "view": "v"})),
        FORM,
    ),
    "payload twice": (
        "payload=" + quote('{"type":"block_actions"}') + "&payload=" + quote('{"type":"shortcut"}'),
        FORM,
    ),
    "payload nested 100,000 deep": ("payload=" + quote(nested(100_000)), FORM),
    "JSON not JSON": ("{not json", "application/json"),
    "JSON a list": ("[]", "application/json"),
    "JSON nested 100,000 deep": ('{"a": ' + nested(100_000) + "}", "application/json"),
    "event of unknown type": (json.dumps({"type": "no_such_envelope", "event": {}}), "application/json"),
    "event not an object": (json.dumps({"type": "event_callback", "event": "message"}), "application/json"),
    "command without a slash": ("command=inbox&text=report&user_id=" + AGENT, FORM),
}


@pytest.mark.parametrize("case", list(BAD_PAYLOADS))
async def test_a_signed_body_that_is_no_payload_is_400_and_does_nothing(harness: Harness, case: str):
    thread, _ = await a_click(harness)
    body, content_type = BAD_PAYLOADS[case]
    calls_before = len(harness.fake.calls)
    status, answer, _ = await harness.post(body, payloads.signed(body, content_type=content_type))
    assert status == 400, answer
    await harness.settle()
    assert harness.replies() == [] and await status_of(harness, thread) == ("new", None)
    assert len(harness.fake.calls) == calls_before


async def test_a_signed_body_that_is_not_utf8_is_400(harness: Harness):
    body = b"payload=\xff\xfe"
    async with harness.http.post(
        f"{harness.url}/slack/events", data=body, headers=signed_at(body, str(int(time.time())))
    ) as response:
        assert response.status == 400


async def test_an_unsigned_body_that_is_no_payload_is_401_not_400(harness: Harness):
    # The signature is checked before anything of the body is read: an unsigned caller learns nothing.
    for body in ("payload=" + quote("{not json"), nested(100_000)):
        status, _, _ = await harness.post(body, payloads.signed(body, secret="not-the-secret"))
        assert status == 401
