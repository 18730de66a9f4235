"""The leads' dashboard for `/inbox` and the App Home: open queue, today's SLA attainment, connector health."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import Connector
from inbox.display import shown_name
from inbox.sla import SlaPolicies, SlaState, duration_text
from inbox.slack.blocks import Block, channel_name, minutes, user, when
from inbox.slack.text import clip, escape, literal, mrkdwn, plain
from inbox.store import health, items
from inbox.views import ThreadView

QUEUE_ROWS = 15
_STATE_DOT = {
    SlaState.OK: ":large_green_circle:",
    SlaState.WARNING: ":large_yellow_circle:",
    SlaState.BREACHED: ":red_circle:",
}


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """First responses on one channel today."""

    channel: str
    responses: int
    within_target: int
    median_minutes: float
    p90_minutes: float


@dataclass(frozen=True, slots=True)
class Stats:
    """Today's first responses (UTC day) across channels."""

    since: datetime
    responses: int
    within_target: int
    channels: list[ChannelStats] = field(default_factory=list)

    @property
    def attainment(self) -> float | None:
        """Share of first responses within target, or None before the first one."""
        return self.within_target / self.responses if self.responses else None


@dataclass(frozen=True, slots=True)
class Health:
    """One configured connector's health."""

    name: str
    type: str
    healthy: bool
    reason: str | None
    last_ok_at: datetime | None


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def sla_stats(engine: AsyncEngine, policies: SlaPolicies, now: datetime) -> Stats:
    """First responses given today: within target or not, median and p90 time per channel."""
    since = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
    rows = await items.first_responses(engine, since, now)
    by_channel: dict[str, list[tuple[float, bool]]] = {}
    for channel, opened_at, responded_at in rows:
        # The first cycle's clock started at the customer's first post, whatever later cycles did.
        due = policies.for_channel(channel).deadlines(opened_at)[1]
        waited = max(0.0, (responded_at - opened_at).total_seconds() / 60)
        by_channel.setdefault(channel, []).append((waited, responded_at <= due))
    channels = [
        ChannelStats(
            channel=channel,
            responses=len(values),
            within_target=sum(ok for _, ok in values),
            median_minutes=statistics.median(w for w, _ in values),
            p90_minutes=percentile([w for w, _ in values], 0.9),
        )
        for channel, values in sorted(by_channel.items())
    ]
    return Stats(since, sum(c.responses for c in channels), sum(c.within_target for c in channels), channels)


async def connector_health(engine: AsyncEngine, connectors: Mapping[str, Connector[Any, Any]]) -> list[Health]:
    """Every configured connector with its last known health."""
    rows = await health.all_health(engine)
    result = []
    for name, connector in sorted(connectors.items()):
        row = rows.get(name)
        result.append(
            Health(
                name,
                connector.type,
                row.healthy if row else True,
                row.reason if row else None,
                row.last_ok_at if row else None,
            )
        )
    return result


def queue_blocks(queue: Sequence[ThreadView]) -> list[Block]:
    """The open queue, most urgent first."""
    blocks: list[Block] = [{"type": "header", "text": plain(f"Open queue ({len(queue)})", 150)}]
    if not queue:
        return [*blocks, {"type": "section", "text": mrkdwn("Nothing waits for a reply. :tada:")}]
    for view in queue[:QUEUE_ROWS]:
        dot = _STATE_DOT.get(view.clock.state, ":white_circle:")
        line = (
            f"{dot} *#{view.thread_id}* · {escape(channel_name(view.channel))} · *{view.priority}* · "
            f"{minutes(view.clock.minutes_left)} (due {when(view.clock.due_at)}) · {user(view.assignee) if view.assignee else 'unassigned'}"
        )
        window = view.window_note()
        if window is not None:
            line += f"\n:hourglass_flowing_sand: {escape(window)}"
        blocks.append({"type": "section", "text": mrkdwn(line)})
        blocks.append(
            {
                "type": "context",
                "elements": [
                    plain(f"@{shown_name(view.author_handle)}: {clip(' '.join(view.text.split()), 150)}", 300)
                ],
            }
        )
    if len(queue) > QUEUE_ROWS:
        blocks.append(
            {
                "type": "context",
                "elements": [mrkdwn(f"…and {len(queue) - QUEUE_ROWS} more; `inbox queue` lists them all.")],
            }
        )
    return blocks


def stats_blocks(stats: Stats) -> list[Block]:
    """Today's SLA attainment overall and per channel."""
    blocks: list[Block] = [{"type": "header", "text": plain("SLA today (UTC)", 150)}]
    if stats.attainment is None:
        return [*blocks, {"type": "section", "text": mrkdwn("No first response yet today.")}]
    blocks.append(
        {
            "type": "section",
            "text": mrkdwn(
                f"*{stats.attainment:.0%}* of first responses within target ({stats.within_target} of {stats.responses})"
            ),
        }
    )
    lines = [
        f"• *{escape(channel_name(c.channel))}*: {c.within_target}/{c.responses} within target · "
        f"median {duration_text(c.median_minutes)} · p90 {duration_text(c.p90_minutes)}"
        for c in stats.channels
    ]
    blocks.append({"type": "section", "text": mrkdwn("\n".join(lines))})
    return blocks


def health_blocks(health: Sequence[Health]) -> list[Block]:
    """Each connector's health with its reason."""
    blocks: list[Block] = [{"type": "header", "text": plain("Connectors", 150)}]
    if not health:
        return [*blocks, {"type": "section", "text": mrkdwn("No connector is configured.")}]
    lines = []
    for h in health:
        dot = ":large_green_circle:" if h.healthy else ":red_circle:"
        ok = f" · last ok {when(h.last_ok_at, '{date_short} {time}')}" if h.last_ok_at else ""
        reason = f" · {literal(h.reason, 300)}" if h.reason and not h.healthy else ""
        lines.append(f"{dot} *{literal(h.name, 64)}* ({literal(h.type, 32)}){ok}{reason}")
    return [*blocks, {"type": "section", "text": mrkdwn("\n".join(lines))}]


def home_view(queue: Sequence[ThreadView], stats: Stats, health: Sequence[Health]) -> dict[str, Any]:
    """The App Home tab: the whole dashboard."""
    divider: Block = {"type": "divider"}
    blocks = [*stats_blocks(stats), divider, *health_blocks(health), divider, *queue_blocks(queue)]
    return {"type": "home", "blocks": blocks[:100]}


HELP = "Use `/inbox queue`, `/inbox stats`, `/inbox connectors` or `/inbox report [DURATION]`."
