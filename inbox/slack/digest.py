"""`[reports] digest`: the weekly summary to the leads' channel, a chart (PNG) with it, once a week whatever happens.

`inbox run` asks every minute (`Digest.run`, on the injected clock) whether the digest's slot (e.g. Monday 09:00 in
the report time zone) has come. The week is then claimed in the store (`inbox.store.digests`): one worker of several
posts it, and a restart finds it posted. A claim that ran out without a post (a crash in the middle) is taken over,
and the channel is looked at first: a chart with the week's title already there means it did go out.

The week is the seven calendar days before the slot's day (Monday to Sunday for a Monday slot), compared with the
seven before them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from inbox.reports import charts
from inbox.reports.figures import ratio
from inbox.reports.overview import ATTAINMENT_GOAL, attainment, daily, day_points, headline
from inbox.reports.page import mins, pct
from inbox.reports.window import Window, report_zone
from inbox.settings import DAYS
from inbox.slack.api import SLACK_ERRORS, describe
from inbox.store import digests
from inbox.store.reports import Figures

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from slack_sdk.web.async_client import AsyncWebClient

    from inbox.slack.core import Core

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0  # how often `inbox run` asks whether the slot has come
LATE_LIMIT = timedelta(hours=24)  # a digest not posted within a day of its slot (a long outage) is skipped
RETRY_SECONDS = 300.0  # after Slack refused the post plainly


def slot_before(now: datetime, setting: str, zone: ZoneInfo) -> datetime | None:
    """The latest moment `setting` ("mon 09:00") names at or before `now`, in `zone`; None when it is off."""
    if not setting:
        return None
    day, clock = setting.split()
    hour, minute = (int(part) for part in clock.split(":"))
    local = now.astimezone(zone)
    back = (local.weekday() - DAYS.index(day)) % 7
    moment = datetime.combine(local.date() - timedelta(days=back), time(hour, minute), tzinfo=zone)
    if moment > local:
        moment = datetime.combine(moment.date() - timedelta(days=7), time(hour, minute), tzinfo=zone)
    return moment


def week_before(slot: datetime, zone: ZoneInfo, weeks: int = 1) -> Window:
    """The seven calendar days ending `weeks - 1` weeks before the slot's day (midnight to midnight, in `zone`)."""
    end_day = slot.astimezone(zone).date() - timedelta(weeks=weeks - 1)
    return Window(_midnight(end_day - timedelta(days=7), zone), _midnight(end_day, zone))


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


class Digest:
    """Posts the weekly digest to `leads_channel`, exactly once per week."""

    def __init__(self, core: Core, client: AsyncWebClient, channel: str, worker: str) -> None:
        self.core = core
        self.client = client
        self.channel = channel
        self.worker = worker
        self.claim_seconds = max(core.claim_seconds, 120.0)  # drawing and uploading take a few seconds

    async def run(self) -> bool:
        """Post the digest if its slot has come and nobody posted it; True when this call posted it."""
        settings = self.core.settings
        zone = report_zone(settings)
        now = self.core.clock()
        slot = slot_before(now, settings.reports.digest, zone)
        if slot is None or now - slot >= LATE_LIMIT:
            return False
        week = slot.date().isoformat()
        this, last = week_before(slot, zone), week_before(slot, zone, weeks=2)
        title = f"SLA report, {_span(this, zone)}"
        until = now + timedelta(seconds=self.claim_seconds)
        claim = await digests.claim(self.core.engine, week, self.channel, title, self.worker, now, until)
        if claim is None:
            return False
        if claim.retaken:
            found = await self._find(claim.title, claim.first_claimed_at)
            if found is not None:
                log.info("Slack: the digest of %s was posted before a restart; not posted again", week)
                await digests.posted(self.core.engine, week, None, found, now)
                return False
        engine = self.core.engine
        rows = (await headline(engine, settings, this, now), await headline(engine, settings, last, now))
        days = (await daily(engine, settings, this, now), await daily(engine, settings, last, now))
        # Drawn off the event loop: loading matplotlib and drawing take a good part of a second.
        png = await asyncio.to_thread(
            charts.digest_png, _by_weekday(days[0]), _by_weekday(days[1]), ATTAINMENT_GOAL, title
        )
        try:
            answer = await self.client.files_upload_v2(
                channel=self.channel,
                file=png,
                filename=f"sla-report-{week}.png",
                title=claim.title,
                alt_txt=f"SLA attainment per day, this week and last week, against the {ATTAINMENT_GOAL:.0%} goal",
                initial_comment=summary(title, rows[0], rows[1]),
            )
        except SLACK_ERRORS as exc:
            log.error("Slack: the weekly digest of %s was not posted: %s", week, describe(exc))
            status = exc.response.status_code if isinstance(exc, SlackApiError) and exc.response is not None else None
            if status is not None and status < 500:
                # Slack said no (the channel, the scope, a rate limit): nothing went out, so try again in a while.
                retry = now + timedelta(seconds=RETRY_SECONDS)
                await digests.failed(self.core.engine, week, self.worker, retry)
            # Otherwise the outcome is unknown: the claim runs out and the channel is looked at before a retry.
            return False
        file = answer.get("file") or {}
        await digests.posted(self.core.engine, week, None, file.get("id"), now)
        log.info("Slack: posted the weekly digest of %s to %s", week, self.channel)
        return True

    async def _find(self, title: str, since: datetime) -> str | None:
        """The id of a chart titled `title` shared in the channel since `since`, if one is there."""
        cursor = None
        while True:
            page = await self.client.conversations_history(
                channel=self.channel, oldest=f"{since.timestamp() - 60:.6f}", limit=200, cursor=cursor
            )
            for message in page.get("messages") or []:
                for file in message.get("files") or []:
                    if file.get("title") == title:
                        return str(file.get("id") or "")
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None


def _by_weekday(days: Sequence[tuple[str, Figures | None]]) -> list[charts.DayPoint]:
    """A week's days labelled by weekday, so this week and last share the chart's axis."""
    return [
        charts.DayPoint(f"{date.fromisoformat(point.label):%a}", point.attainment, point.met, point.missed)
        for point in day_points(days)
    ]


def _span(window: Window, zone: ZoneInfo) -> str:
    first = window.start.astimezone(zone)
    last = (window.end - timedelta(seconds=1)).astimezone(zone)
    return f"{first:%a %d %b} to {last:%a %d %b %Y}"


def _change(now: float | None, before: float | None, *, points: bool) -> str:
    if now is None or before is None:
        return ""
    delta = (now - before) * (100 if points else 1)
    if abs(delta) < 0.05:
        return " (same as last week)"
    arrow = "▲" if delta > 0 else "▼"
    unit = " points" if points else " min"
    return f" ({arrow} {abs(delta):.1f}{unit} on last week)"


def summary(title: str, this: Figures, last: Figures) -> str:
    """The digest's text: this week's headline figures, each beside last week's."""
    this_att, last_att = attainment(this), attainment(last)
    this_csat = ratio(this.csat_satisfied, this.csat_answers)
    last_csat = ratio(last.csat_satisfied, last.csat_answers)
    lines: Sequence[str] = (
        f"*Weekly {title}*",
        f"• SLA attainment: *{pct(this_att)}* ({this.met} met, {this.missed} missed)"
        + _change(this_att, last_att, points=True),
        f"• First response: p50 {mins(this.p50)}, p90 {mins(this.p90)} (last week p50 {mins(last.p50)}, p90 {mins(last.p90)})",
        f"• Breaches: *{this.missed}* (last week {last.missed}); {this.waiting_past_due} still waiting",
        f"• CSAT: {pct(this_csat)} of {this.csat_answers} answers" + _change(this_csat, last_csat, points=True),
        f"• Conversations: {this.conversations} (last week {last.conversations})",
        "For charts, channels, agents and staffing: `/inbox report 7d`.",
    )
    return "\n".join(lines)
