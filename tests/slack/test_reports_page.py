"""`/inbox report` in Slack, the signed link it gives, and the page and breach lists that link opens."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from inbox.fakes import slack_payloads as payloads
from inbox.reports import charts, conversation_rows, parse_window, report_zone
from inbox.reports.figures import scope
from inbox.service import Inbox
from inbox.store import reportpage
from inbox.store.db import create_engine
from tests.conftest import make_settings
from tests.slack.conftest import AGENT, Harness, HarnessFactory
from tests.test_server import get as get_page
from tests.test_server import sqlite_threads_stopped, unreachable_store

PUBLIC = "https://inbox.example.com"
TOKEN = "reports-token-123"
LEAD = "ULEAD0001"
STRANGER = "USTRANGER"


async def reporting_harness(harness_factory: HarnessFactory, **tables: dict[str, Any]) -> Harness:
    return await harness_factory(
        allowed_users=[AGENT, LEAD],
        tables={"server": {"public_url": PUBLIC}, "reports": {"token": TOKEN}, **tables},
    )


async def traffic(harness: Harness) -> dict[str, int]:
    """Four conversations answered after known waits (5, 12 and 45 min; one of 60 min), one waiting past its deadline."""
    threads = {}
    for external_id, waited, handle in [
        ("1", 5, "ana"),
        ("2", 12, "bo"),
        ("3", 45, "<b>late</b> & <script>alert(1)</script>"),
        ("4", 60, "dee"),
    ]:
        thread = await harness.customer_says(external_id, handle=handle, minutes_ago=waited)
        assert (await harness.inbox.actions.reply(thread, "Thanks, on it.", AGENT)).status == "sent"
        threads[external_id] = thread
    threads["5"] = await harness.customer_says("5", handle="eve", minutes_ago=40)
    await harness.dispatch()  # the triage messages: the breach list links to them
    return threads


async def command(harness: Harness, text: str, user: str = LEAD) -> dict[str, Any]:
    body = payloads.slash(text, user=user, response_url=harness.fake.response_url())
    status, answer, _ = await harness.post(body, payloads.signed(body))
    assert (status, answer) == (200, "")  # acknowledged at once, the answer follows
    await harness.slack.tasks.drain(10)
    return harness.fake.responses[-1]


def link_of(answer: dict[str, Any]) -> str:
    for block in answer.get("blocks") or []:
        accessory = block.get("accessory") or {}
        if accessory.get("url"):
            return accessory["url"]
    raise AssertionError(f"no link in {answer}")


def local(harness: Harness, link: str) -> str:
    """The public link, pointed at the test server (as the proxy in front of it would)."""
    assert link.startswith(PUBLIC + "/")
    return harness.url + link.removeprefix(PUBLIC)


async def get(harness: Harness, url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with harness.http.get(url, headers=headers, allow_redirects=False) as response:
        return response.status, await response.text(), dict(response.headers)


def hrefs(html: str, path: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="(' + re.escape(path) + r'\?[^"]+)"', html)]


async def test_report_answers_the_user_with_the_figures_and_a_link_that_opens_the_page(harness_factory):
    harness = await reporting_harness(harness_factory)
    await traffic(harness)
    answer = await command(harness, "report 7d")
    assert answer["response_type"] == "ephemeral"
    shown = json.dumps(answer["blocks"])
    # 2 met (5, 12 min), 3 missed (45, 60 min, and one still waiting past its deadline).
    assert "40% (2 met, 3 missed)" in shown
    assert "p50 28.5 min, p90 55.5 min" in shown  # percentile_cont over 5, 12, 45, 60
    assert "*Breaches*\\n3 (1 still waiting)" in shown
    link = link_of(answer)
    query = dict(parse_qsl(urlsplit(link).query))
    assert (query["since"], query["for"]) == ("7d", LEAD) and {"exp", "sig"} <= set(query)

    status, html, headers = await get(harness, local(harness, link))
    assert status == 200, html
    assert headers["Content-Type"].startswith("text/html")
    assert (
        "script-src" not in headers["Content-Security-Policy"]
        and "default-src 'none'" in headers["Content-Security-Policy"]
    )
    assert headers["Referrer-Policy"] == "no-referrer"
    assert html.count("<svg") >= 3 and "<script" not in html
    assert "SLA attainment per day" in html and "Breaches by hour of the week" in html and "Staffing" in html
    # The heatmap's cells add up to the breaches; the channel's row shows the same figures as Slack did.
    heat = html[html.index('<table class="heat">') : html.index("</table>", html.index('<table class="heat">'))]
    assert sum(int(n) for n in re.findall(r"<a href=\"[^\"]+\">(\d+)</a>", heat)) == 3
    channel = re.search(r"<tr><td>x</td>(.*?)</tr>", html, re.S)
    assert channel is not None
    cells = re.findall(r"<td[^>]*>(?:<a [^>]+>)?([^<]*)", channel.group(1))
    assert cells[:5] == ["5", "4", "2", "3", "40%"]  # conversations, answered, met, breached, attainment


async def test_a_breach_count_opens_its_conversations_with_their_slack_messages(harness_factory):
    harness = await reporting_harness(harness_factory)
    threads = await traffic(harness)
    answer = await command(harness, "report")
    status, html, _ = await get(harness, local(harness, link_of(answer)))
    assert status == 200
    lists = hrefs(html, "/reports/breaches")
    assert lists, "the page links its breach counts"
    everything = next(h for h in lists if "by=" not in h)
    status, listed, _ = await get(harness, harness.url + everything)
    assert status == 200, listed
    rows = re.findall(r"<tr><td>(\d+)</td>", listed)
    assert sorted(int(r) for r in rows) == sorted([threads["3"], threads["4"], threads["5"]])
    # Customer text is data: escaped, never markup.
    assert "&lt;b&gt;late&lt;/b&gt; &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in listed
    assert "<script>" not in listed and "<b>late" not in listed
    message = harness.triage_message(threads["3"])
    # Slack's permalink form: the workspace's address (auth.test) and the message's channel and ts.
    workspace = (await harness.slack.identity()).url
    permalink = f"{workspace}archives/CTRIAGE01/p{message['ts'].replace('.', '')}"
    assert permalink in listed
    # The hour of the week's cell opens the breaches that started in that hour only.
    by_hour = [h for h in lists if "by=hour" in h]
    assert by_hour
    status, listed, _ = await get(harness, harness.url + by_hour[0])
    assert status == 200 and re.findall(r"<tr><td>(\d+)</td>", listed)


async def test_links_that_are_unsigned_changed_or_expired_are_refused(harness_factory):
    harness = await reporting_harness(harness_factory)
    await traffic(harness)
    link = local(harness, link_of(await command(harness, "report 7d")))
    status, html, _ = await get(harness, f"{harness.url}/reports?since=7d")
    assert status == 403 and "not signed" in html
    longer = link.replace("since=7d", "since=30d")
    status, html, _ = await get(harness, longer)
    assert status == 403 and "signature" in html
    harness.clock.advance(hours=24)
    status, html, _ = await get(harness, link)
    assert status == 403 and "expired" in html and "/inbox report" in html


async def test_the_reports_token_opens_the_page_and_a_wrong_one_does_not(harness_factory):
    harness = await reporting_harness(harness_factory)
    await traffic(harness)
    status, html, _ = await get(harness, f"{harness.url}/reports?since=7d", Authorization=f"Bearer {TOKEN}")
    assert status == 200 and "<svg" in html
    # Its lists are signed, so they open in the browser without the token.
    [first, *_] = hrefs(html, "/reports/breaches")
    assert (await get(harness, harness.url + first))[0] == 200
    status, _, _ = await get(harness, f"{harness.url}/reports?since=7d", Authorization="Bearer nope")
    assert status == 403
    status, html, _ = await get(harness, f"{harness.url}/reports?since=oops", Authorization=f"Bearer {TOKEN}")
    assert status == 400 and "oops" in html


async def test_only_allowed_users_get_the_report(harness_factory):
    harness = await reporting_harness(harness_factory)
    answer = await command(harness, "report 7d", user=STRANGER)
    assert "blocks" not in answer or "inbox_open_report" not in json.dumps(answer.get("blocks"))
    assert "not one of this inbox's agents" in answer["text"]


async def test_a_duration_it_cannot_read_gets_the_usage(harness_factory):
    harness = await reporting_harness(harness_factory)
    answer = await command(harness, "report soon")
    assert "`soon` is not a duration" in answer["text"] and "/inbox report 24h" in answer["text"]


async def test_without_public_url_the_answer_says_how_to_get_a_link(harness_factory):
    harness = await harness_factory(allowed_users=[LEAD])
    answer = await command(harness, "report 24h")
    shown = json.dumps(answer["blocks"])
    assert "public_url" in shown and "inbox_open_report" not in shown


@pytest.mark.parametrize("missing", ["exp", "sig"])
async def test_a_link_missing_its_expiry_or_signature_is_refused(harness_factory, missing):
    harness = await reporting_harness(harness_factory)
    link = local(harness, link_of(await command(harness, "report 7d")))
    parts = urlsplit(link)
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k != missing]
    status, _, _ = await get(harness, f"{harness.url}{parts.path}?{urlencode(kept)}")
    assert status == 403


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_store_outage_is_a_503_page_never_a_500(kind: str, tmp_path, clock) -> None:
    url = await unreachable_store(kind, tmp_path)
    engine = create_engine(url)
    settings = make_settings(tmp_path, database={"url": url}, reports={"token": TOKEN})
    inbox = Inbox(settings, engine, clock=clock, notifiers=[])
    try:
        for path in ("/reports?since=7d", "/reports/breaches?since=7d"):
            status, body = await get_page(inbox, path, headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 503 and "cannot be made just now" in body, body
    finally:
        await engine.dispose()
        await sqlite_threads_stopped()


async def test_the_spread_and_the_breach_list_agree_with_the_conversation_rows(harness_factory):
    """The page's own queries against a plain computation over `inbox report`'s rows of the same window."""
    harness = await reporting_harness(harness_factory)
    await traffic(harness)
    inbox, now = harness.inbox, harness.clock.now
    window = parse_window(now, report_zone(inbox.settings), since="7d")
    rows = await conversation_rows(inbox.engine, inbox.settings, window, now)
    where = scope(inbox.settings, window, now)
    edges = [low for low, _high in charts.BUCKETS]
    expected = [0] * len(edges)
    for row in rows:
        if row.first_response_minutes is not None:
            waited = round(row.first_response_minutes, 3)  # to the millisecond: SQLite's Julian days are a hair off
            expected[max(i for i, edge in enumerate(edges) if waited >= edge)] += 1
    assert await reportpage.minutes_histogram(inbox.engine, where, edges) == expected
    assert sum(expected) == 4 and expected[1] == expected[2] == 1  # 5 and 12 minutes: the 5–10 and 10–15 buckets
    late = sorted(r.conversation_id for r in rows if r.sla_outcome in ("missed", "breached"))
    listed = await reportpage.breaches(inbox.engine, where, None, None)
    assert sorted(b.conversation_id for b in listed) == late and len(late) == 3
    by_channel = await reportpage.breaches(inbox.engine, where, "channel", "x")
    assert sorted(b.conversation_id for b in by_channel) == late
    assert await reportpage.breaches(inbox.engine, where, "channel", "mastodon") == []
