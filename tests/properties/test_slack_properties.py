"""Slack text and Block Kit builders: hostile customer text never pings, mentions, formats or breaks a limit."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.sla import SlaPolicy, evaluate
from inbox.slack import blocks
from inbox.slack.text import escape, link, literal, plain, safe_url
from inbox.store.models import Status
from inbox.triage import Priority
from inbox.views import EarlierItem, ThreadView
from tests.properties import FRAGMENTS, any_text, hostile_text

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
AGENT = "U0AGENT1"
GROUP = "S0LEADS"
PERMALINK = "https://acme.slack.com/archives/C0123TRIAGE/p1700000000000100"
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
# Markup the builders themselves write: dates, our agent, the leads group, the permalink we passed in.
# Anything else shaped like Slack markup must have come from customer text unescaped.
_OWN_MARKUP = re.compile(
    r"<!date\^-?\d+\^\{[a-z_]+\}(?: \{[a-z_]+\})?\|\d\d:\d\d UTC>"
    rf"|<@{AGENT}>|<!subteam\^{GROUP}>|<{re.escape(PERMALINK)}\|[^<>|]*>"
)
# Slack's documented maxima for what the builders produce.
LIMITS = {
    "header": 150,
    "section": 3000,
    "field": 2000,
    "context": 3000,
    "button": 75,
    "title": 100,
    "confirm_text": 300,
    "confirm": 30,
    "deny": 30,
    "url": 3000,
    "value": 2000,
}

PROPS = settings(max_examples=25, deadline=None)


def assert_no_live_markup(text: str, where: str) -> None:
    """No `<`, `>` or bare `&` outside the markup the builders write themselves."""
    rest = _OWN_MARKUP.sub("", text)
    assert "<" not in rest and ">" not in rest, (where, text[:300])
    assert "&" not in _ENTITY.sub("", rest), (where, text[:300])


def text_objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(path, object) for every plain_text or mrkdwn object in a Block Kit structure."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
            found.append((path, node))
        for key, value in node.items():
            found += text_objects(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += text_objects(value, f"{path}[{index}]")
    return found


def assert_within_limits(body: list[dict[str, Any]]) -> None:
    """Every text, button and URL fits what Slack accepts (a message over a limit is refused whole)."""
    for block in body:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= LIMITS["header"]
        if block["type"] == "section":
            if "text" in block:
                assert len(block["text"]["text"]) <= LIMITS["section"]
            for field in block.get("fields", []):
                assert len(field["text"]) <= LIMITS["field"]
            accessory = block.get("accessory")
            if accessory:
                assert len(accessory["text"]["text"]) <= LIMITS["button"]
                assert len(accessory.get("url", "")) <= LIMITS["url"], len(accessory["url"])
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
            for element in block["elements"]:
                assert len(element["text"]) <= LIMITS["context"]
        if block["type"] == "actions":
            for button in block["elements"]:
                assert len(button["text"]["text"]) <= LIMITS["button"]
                assert len(button.get("value", "")) <= LIMITS["value"]
                confirm = button.get("confirm")
                if confirm:
                    assert len(confirm["title"]["text"]) <= LIMITS["title"]
                    assert len(confirm["text"]["text"]) <= LIMITS["confirm_text"]
    for path, obj in text_objects(body):
        assert obj["text"], f"empty text at {path}"  # Slack refuses empty text objects


# What could make a string look like another: bidi embeddings, overrides and isolates, and control characters.
_DISGUISE = re.compile("[\u202a-\u202e\u2066-\u2069\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def assert_nothing_disguised(text: str, where: str) -> None:
    """No character that reorders or restyles what is shown reaches Slack (shown as U+FFFD instead)."""
    assert not _DISGUISE.search(text), (where, text[:300])


def assert_safe_message(text: str, body: list[dict[str, Any]]) -> None:
    """The notification text and every text object are free of live markup and disguising controls, and within limits."""
    assert_no_live_markup(text, "fallback text")
    assert_nothing_disguised(text, "fallback text")
    for path, obj in text_objects(body):
        assert_no_live_markup(obj["text"], path)
        assert_nothing_disguised(obj["text"], path)
    assert_within_limits(body)
    json.dumps(body)  # what the Slack client will send must serialise


def formatting_marks(body: list[dict[str, Any]], text: str) -> int:
    """How many mrkdwn formatting characters the message carries (the builders' own, if escaping works)."""
    marks = text + "".join(obj["text"] for _, obj in text_objects(body) if obj["type"] == "mrkdwn")
    return sum(marks.count(c) for c in "*_~`")


def near_limit_urls() -> st.SearchStrategy[str]:
    """http(s) URLs of 1,000 to 2,900 characters before quoting: percent-encoding may triple them."""
    return st.tuples(st.sampled_from(FRAGMENTS), st.integers(1000, 2880)).map(
        lambda parts: ("https://x.com/" + parts[0] * parts[1])[: parts[1]]
    )


@st.composite
def thread_views(draw: st.DrawFn) -> ThreadView:
    """A ThreadView whose every customer- or vendor-controlled string is hostile."""
    started = NOW - timedelta(minutes=draw(st.integers(0, 600)))
    responded = draw(st.one_of(st.none(), st.just(started + timedelta(minutes=7))))
    clock = evaluate(started, responded, SlaPolicy(), NOW)
    url = draw(st.one_of(st.none(), hostile_text(3), any_text().map(lambda s: "https://x.com/" + s), near_limit_urls()))
    earlier = [
        EarlierItem(thread_id=i, channel="x", text=draw(any_text()), posted_at=started, status=Status.RESOLVED)
        for i in range(draw(st.integers(0, 5)))
    ]
    return ThreadView(
        thread_id=draw(st.integers(1, 2**31)),
        item_id=draw(st.integers(1, 2**31)),
        connector="acme-x",
        channel=draw(st.sampled_from(["x", "mastodon", "google_reviews", "webhook"])),
        kind=draw(st.sampled_from(["mention", "dm", "review"])),
        status=draw(st.sampled_from([Status.NEW, Status.ASSIGNED, Status.REPLIED, Status.RESOLVED])),
        assignee=draw(st.sampled_from([None, AGENT])),
        priority=draw(st.sampled_from(list(Priority))),
        author_handle=draw(any_text()),
        author_name=draw(st.one_of(st.none(), any_text())),
        text=draw(any_text()),
        url=url,
        rating=draw(st.one_of(st.none(), st.integers(1, 5))),
        language=draw(st.sampled_from(["en", "fr", "ro"])),
        sentiment="negative",
        intent="complaint",
        suggestion=draw(any_text()),
        suggestion_truncated=draw(st.booleans()),
        posted_at=started,
        messages=draw(st.integers(1, 50)),
        clock=clock,
        earlier=earlier,
    )


def neutral(view: ThreadView) -> ThreadView:
    """The same view with every hostile string replaced by a harmless word, for a differential check."""
    return replace(
        view,
        author_handle="x",
        author_name=None if view.author_name is None else "x",
        text="x",
        suggestion="x",
        url=None if safe_url(view.url) is None else "https://x.com/x",
        earlier=[replace(e, text="x") for e in view.earlier],
    )


@PROPS
@given(any_text(), st.integers(1, 3000))
def test_plain_escapes_and_fits(text: str, limit: int) -> None:
    obj = plain(text, limit)
    assert obj["type"] == "plain_text" and obj["emoji"] is False
    assert 1 <= len(obj["text"]) <= limit
    assert_no_live_markup(obj["text"], "plain")
    # Nothing is lost but what the limit cuts: the escaped text, or a prefix of it with an ellipsis.
    escaped = escape(text)
    assert obj["text"] in (escaped, " ") or (obj["text"].endswith("…") and escaped.startswith(obj["text"][:-1]))


@PROPS
@given(any_text(), st.integers(1, 500))
def test_literal_is_one_inert_line(text: str, limit: int) -> None:
    out = literal(text, limit)
    assert_no_live_markup(out, "literal")
    assert not any(c in out for c in "*_~`\n\r"), out[:200]
    # The clip is counted before escaping; an entity is at most five characters.
    assert len(out) <= 5 * limit


@PROPS
@given(
    st.one_of(
        st.none(),
        any_text(),
        any_text().map(lambda s: "https://evil.example/" + s),
        near_limit_urls(),
        any_text().map(lambda s: "http://" + s),
    )
)
def test_safe_url_is_http_and_cannot_break_out(url: str | None) -> None:
    safe = safe_url(url)
    if safe is None:
        return
    assert safe.lower().startswith(("http://", "https://"))
    assert not any(c in safe for c in '<>| "\n\t'), safe[:200]
    assert len(safe) <= LIMITS["url"], len(safe)  # Slack refuses a button or link URL over 3,000
    label = link(url, "label <!channel>")
    assert label.startswith(f"<{safe}|") and label.count("<") == 1 and label.count(">") == 1


@PROPS
@given(thread_views(), st.one_of(st.none(), any_text()), st.booleans())
def test_triage_message_is_inert_and_within_limits(view: ThreadView, reply: str | None, resolved: bool) -> None:
    outcome = blocks.Outcome(
        reply_text=reply,
        reply_agent=AGENT,
        reply_at=NOW if reply is not None else None,
        resolved_by=AGENT if resolved else None,
        resolved_at=NOW if resolved else None,
    )
    body = blocks.triage_message(view, outcome)
    assert_safe_message(blocks.fallback(view), body)
    # Customer text adds no formatting: the hostile message has exactly the marks of a harmless one.
    calm = neutral(view)
    calm_outcome = replace(outcome, reply_text=None if reply is None else "x")
    assert formatting_marks(body, blocks.fallback(view)) == formatting_marks(
        blocks.triage_message(calm, calm_outcome), blocks.fallback(calm)
    )


@PROPS
@given(
    thread_views(),
    st.booleans(),
    st.sampled_from([None, PERMALINK, "javascript:alert(1)"]),
    st.sampled_from([None, GROUP]),
)
def test_sla_alert_is_inert_and_within_limits(
    view: ThreadView, breach: bool, permalink: str | None, group: str | None
) -> None:
    text, body = blocks.sla_alert(view, breach=breach, permalink=permalink, group=group)
    assert_safe_message(text, body)
    calm_text, calm_body = blocks.sla_alert(neutral(view), breach=breach, permalink=permalink, group=group)
    assert formatting_marks(body, text) == formatting_marks(calm_body, calm_text)


@PROPS
@given(any_text(), any_text(), st.integers(0, 10**6))
def test_follow_up_is_inert_and_within_limits(handle: str, text: str, minutes_ago: int) -> None:
    posted_at = NOW - timedelta(minutes=minutes_ago)
    fallback_text, body = blocks.follow_up(handle, text, posted_at)
    assert_safe_message(fallback_text, body)
    calm_text, calm_body = blocks.follow_up("x", "x", posted_at)
    assert formatting_marks(body, fallback_text) == formatting_marks(calm_body, calm_text)


@PROPS
@given(thread_views(), any_text())
def test_reply_note_is_inert_and_within_limits(view: ThreadView, text: str) -> None:
    fallback_text, body = blocks.reply_note(view, AGENT, text, NOW)
    assert_safe_message(fallback_text, body)


@PROPS
@given(hostile_text(), st.booleans(), st.one_of(st.none(), any_text()))
def test_health_notice_is_inert_and_within_limits(connector: str, healthy: bool, reason: str | None) -> None:
    # The reason is a vendor's error message, which may quote a payload.
    fallback_text, body = blocks.health_notice(connector, healthy, reason)
    assert_safe_message(fallback_text, body)
