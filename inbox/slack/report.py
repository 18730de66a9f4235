"""`/inbox report [DURATION]`: the window's headline figures and a signed link to the page, for the user alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from inbox.reports.figures import ratio
from inbox.reports.links import LINK_LIFETIME, LinkSigner
from inbox.reports.overview import attainment, headline
from inbox.reports.page import mins, pct
from inbox.reports.window import DEFAULT_SINCE, ReportError, parse_window, report_zone
from inbox.slack.blocks import Block
from inbox.slack.core import Core
from inbox.slack.text import plain

OPEN_REPORT = "inbox_open_report"  # the link button: Slack tells the app of the click, which only acknowledges it
USAGE = "Use `/inbox report` (the last 7 days) or `/inbox report DURATION`, e.g. `/inbox report 24h`, `30d` or `4w`."


async def report_blocks(core: Core, argument: str | None, user: str) -> tuple[str, list[Block]]:
    """The answer's text and blocks; ReportError (with a message for Slack) for a duration it cannot read."""
    since = (argument or DEFAULT_SINCE).strip().lower()
    now = core.clock()
    settings = core.settings
    zone = report_zone(settings)
    try:
        window = parse_window(now, zone, since=since)
    except ReportError:
        raise ReportError(f"`{since}` is not a duration. {USAGE}") from None
    row = await headline(core.engine, settings, window, now)
    start, end = (moment.astimezone(zone).strftime("%a %d %b %H:%M") for moment in (window.start, window.end))
    title = f"SLA report, last {since}"
    fields = [
        f"*SLA attainment*\n{pct(attainment(row))} ({row.met} met, {row.missed} missed)",
        f"*First response*\np50 {mins(row.p50)}, p90 {mins(row.p90)}",
        f"*Breaches*\n{row.missed} ({row.waiting_past_due} still waiting)",
        f"*CSAT*\n{pct(ratio(row.csat_satisfied, row.csat_answers))} of {row.csat_answers} answers",
        f"*Conversations*\n{row.conversations} ({row.first_responses} answered)",
        f"*Within 30 minutes*\n{pct(ratio(row.within_expectation, row.first_responses))} of first responses",
    ]
    blocks: list[Block] = [
        {"type": "header", "text": plain(title, 150)},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{start} to {end} ({zone})"}]},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
        _link_block(core.report_links, since, user, now),
    ]
    summary = (
        f"{title}: attainment {pct(attainment(row))}, p50 {mins(row.p50)}, p90 {mins(row.p90)}, "
        f"{row.missed} breaches, CSAT {pct(ratio(row.csat_satisfied, row.csat_answers))}"
    )
    return summary, blocks


def _link_block(signer: LinkSigner | None, since: str, user: str, now: datetime) -> Block:
    if signer is None or not signer.base_url:
        text = (
            "Set `[server] public_url` in the config (the address people reach this inbox at) "
            "to get a link to the full report here."
        )
        return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
    # The user it was given to rides along, signed: the server's log says whose link opened the page.
    link = signer.sign("/reports", {"since": since, "for": user}, now + LINK_LIFETIME)
    button: dict[str, Any] = {
        "type": "button",
        "text": plain("Open the full report", 75),
        "url": link,
        "action_id": OPEN_REPORT,
        "style": "primary",
    }
    return {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": "Charts, breaches by hour, channels, agents, CSAT and staffing. The link is yours and works for 24 hours.",
        },
        "accessory": button,
    }
