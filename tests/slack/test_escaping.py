"""Hostile customer text is shown literally: it can never ping, mention, format or disguise a link."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inbox.slack.text import escape, from_slack, link, literal, plain, safe_url
from tests.slack.conftest import LEADS, TRIAGE, Harness

HOSTILE = "<!channel> hey <@U123> see <https://evil.example|ok> *bold* _it_ ~s~ `c` & more"
RAW = ["<!channel>", "<@U123>", "<https://evil.example|ok>", "<!here>"]


def text_objects(node: Any) -> list[dict[str, Any]]:
    """Every text object (plain_text or mrkdwn) anywhere in a Block Kit structure."""
    found = []
    if isinstance(node, dict):
        if node.get("type") in ("plain_text", "mrkdwn") and "text" in node:
            found.append(node)
        for value in node.values():
            found += text_objects(value)
    elif isinstance(node, list):
        for value in node:
            found += text_objects(value)
    return found


def assert_harmless(message: dict[str, Any]) -> None:
    dumped = json.dumps(message)
    for raw in RAW:
        assert raw not in dumped, raw
    for obj in text_objects(message.get("blocks", [])):
        if obj["type"] == "mrkdwn":
            for marker in ("*bold*", "_it_", "~s~", "`c`", "*Boss*", "hey"):
                assert marker not in obj["text"], (marker, obj["text"])


def test_escape_replaces_exactly_slacks_three_control_characters():
    assert escape("a & b < c > d \"q\" 'x'") == "a &amp; b &lt; c &gt; d \"q\" 'x'"
    assert plain(HOSTILE)["text"].startswith(
        "&lt;!channel&gt; hey &lt;@U123&gt; see &lt;https://evil.example|ok&gt; *bold*"
    )
    assert plain(HOSTILE)["emoji"] is False
    assert literal("*Boss* <!here>\n_x_") == "∗Boss∗ &lt;!here&gt; ˍxˍ"


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://x.com/bob/status/1", "https://x.com/bob/status/1"),
        ("javascript:alert(1)", None),
        ("https://evil.example|ok>", "https://evil.example%7Cok%3E"),
        ("ftp://files.example/x", None),
        ("not a url", None),
        (None, None),
    ],
)
def test_only_http_links_survive_and_cannot_break_out_of_a_mrkdwn_link(url, safe):
    assert safe_url(url) == safe


@pytest.mark.parametrize("text", ["&" * 5000, "a<b>" * 900, "é" * 3500, "ok & fine " * 400, "short & sweet"])
def test_plain_text_never_exceeds_slacks_limit_after_escaping_nor_splits_an_entity(text):
    rendered = plain(text, limit=3000)["text"]
    assert len(rendered) <= 3000
    body = rendered.removesuffix("…")
    assert escape(text).startswith(body)
    assert not body.endswith(("&", "&a", "&am", "&amp", "&l", "&lt", "&g", "&gt"))


def test_a_link_label_from_a_customer_is_literal():
    assert link("https://x.com/1", "@bob|<!channel>") == "<https://x.com/1|@bob¦&lt;!channel&gt;>"
    assert link("javascript:alert(1)", "*hi*") == "∗hi∗"


def test_an_agents_slack_text_becomes_plain_text_for_the_customer():
    assert from_slack("5 &lt; 6 &amp;&amp; 7 &gt; 3") == "5 < 6 && 7 > 3"
    assert from_slack("see <https://acme.example/faq>") == "see https://acme.example/faq"
    assert from_slack("see <http://acme.example|acme.example>") == "see acme.example"
    assert from_slack("our <https://acme.example/faq|FAQ>") == "our FAQ (https://acme.example/faq)"
    assert from_slack("ask <@U123|ana> or <!here> in <#C1|help>") == "ask @ana or @here in #help"


async def test_a_hostile_item_cannot_ping_mention_or_hide_a_link_anywhere(harness: Harness):
    thread = await harness.customer_says(
        "1",
        HOSTILE,
        minutes_ago=31,
        handle="<!here>",
        name="*Boss*",
        url="javascript:alert(1)",
        rating=1,
        kind="review",
    )
    await harness.dispatch()
    message = harness.triage_message(thread)
    assert_harmless(message)
    assert "&lt;!here&gt;" in message["text"]
    customer = next(b for b in message["blocks"] if b.get("block_id") == "customer_text")
    assert customer["text"]["type"] == "plain_text" and "*bold*" in customer["text"]["text"]
    assert "accessory" not in customer  # no link button to a javascript: URL
    await harness.customer_says("2", "<!everyone> again <@U999>", thread_id="1", handle="<!here>")
    await harness.inbox.sweep.run()
    await harness.dispatch()
    for posted in harness.fake.posted(TRIAGE) + harness.fake.posted(LEADS):
        assert_harmless(posted)
        assert "<!everyone>" not in json.dumps(posted) and "<@U999>" not in json.dumps(posted)
    assert harness.fake.posted(LEADS)  # the breach alert was checked too


DISGUISES = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\x1b\x07\u2028"


async def test_bidi_and_control_characters_are_shown_neutralised_and_stored_as_received(harness: Harness):
    import io

    import sqlalchemy as sa
    from rich.console import Console

    from inbox.cli.render import print_queue
    from inbox.store.models import Item
    from inbox.views import open_queue

    handle, name = "\u202eevil", "Bob\u2066\u200bsmith\u2069"
    text = "refund \u202eDEVORPPA\u202c ok \x1b[31mred\x07\u2028next line"
    thread = await harness.customer_says("1", text, handle=handle, name=name)
    await harness.dispatch()
    message = harness.triage_message(thread)
    shown = json.dumps(message["blocks"], ensure_ascii=False) + message["text"]
    assert not set(DISGUISES) & set(shown), [c for c in DISGUISES if c in shown]
    assert (
        "@\ufffdevil" in shown and "Bob\ufffd\ufffdsmith\ufffd" in shown
    )  # marked, so an agent sees something was there
    assert "refund \ufffdDEVORPPA\ufffd ok \ufffd[31mred\ufffd" in shown
    # The store keeps what the customer sent: it is data (an export returns it as it was).
    async with harness.inbox.engine.connect() as conn:
        row = (await conn.execute(sa.select(Item.author_handle, Item.author_name, Item.text))).one()
    assert (row.author_handle, row.author_name, row.text) == (handle, name, text)
    # The terminal too: `inbox queue` shows no raw control character (an escape sequence would restyle the screen).
    out = io.StringIO()
    views = await open_queue(harness.inbox.engine, harness.inbox.policies, harness.clock.now)
    print_queue(Console(file=out, width=200, color_system=None), views)
    assert "\ufffdevil" in out.getvalue() and not set(DISGUISES) & set(out.getvalue())
