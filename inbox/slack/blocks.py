"""Block Kit for the triage message, follow-ups, replies, SLA alerts and health announcements.

Every string a customer (or a vendor) controls enters as a plain_text object or through
`literal`, never as mrkdwn, so it cannot ping, mention, format or disguise a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from inbox.connector import display_name
from inbox.display import shown_name, stars
from inbox.sla import ClockKind, SlaState, clock_label, duration_text
from inbox.slack.text import clip, escape, link, literal, mrkdwn, plain, safe_url
from inbox.store.models import Status
from inbox.views import ThreadView

Block = dict[str, Any]

SEND, EDIT, ASSIGN, RESOLVE, OPEN_POST = "inbox_send", "inbox_edit", "inbox_assign", "inbox_resolve", "inbox_open_post"
# A button per reply mode the item offers besides the ordinary reply: `inbox_send_private` opens the editor for it.
SEND_MODE = "inbox_send_"
# Message metadata lets a retry find a post whose answer was lost, instead of posting twice.
THREAD_EVENT, POST_EVENT = "inbox_thread", "inbox_event"

STATE_LABEL = {
    SlaState.OK: ":large_green_circle: on time",
    SlaState.WARNING: ":large_yellow_circle: *warning*",
    SlaState.BREACHED: ":red_circle: *breached*",
    SlaState.MET: ":white_check_mark: met",
    SlaState.MISSED: ":x: missed",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What agents did to the thread, for the status line of its message."""

    reply_text: str | None = None
    reply_agent: str | None = None
    reply_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = None
    # A reply of the current cycle the platform reported undelivered: (agent, the platform's reason).
    undelivered: tuple[str, str] | None = None


def channel_name(channel: str) -> str:
    """'X', 'Google', or the channel key itself."""
    return display_name(channel) or channel


def button_value(view: ThreadView) -> str:
    """What a button carries: the thread and the item the message showed when it was drawn."""
    return f"{view.thread_id}:{view.item_id}"


def parse_value(value: str) -> tuple[int, int | None]:
    """(thread id, item id) from a button value; ValueError when it is not ours."""
    thread, _, item = value.partition(":")
    return int(thread), int(item) if item else None


def when(at: datetime, token: str = "{time}") -> str:
    """A time every reader sees in their own time zone (with a UTC fallback)."""
    return f"<!date^{int(at.timestamp())}^{token}|{at:%H:%M} UTC>"


def user(user_id: str | None) -> str:
    """A mention of an agent (ours: Slack user ids), or 'nobody'."""
    if not user_id:
        return "nobody"
    return f"<@{user_id}>" if user_id.isalnum() else literal(user_id, 64)


def minutes(value: float) -> str:
    """'12 min left', '3 min late' or '2 d 4 h late'."""
    return clock_label(value)


def fallback(view: ThreadView) -> str:
    """Notification text: who and where, never the customer's words."""
    return f"New {channel_name(view.channel)} {view.kind} from @{literal(view.author_handle, 80)}"


def triage_message(view: ThreadView, outcome: Outcome) -> list[Block]:
    """The one message per conversation in the triage channel, redrawn after every change."""
    blocks: list[Block] = [
        {"type": "header", "text": plain(f"{channel_name(view.channel)} {view.kind} · {view.connector}", 150)},
        _customer_text(view),
        {"type": "context", "elements": _about(view)},
        {"type": "section", "text": mrkdwn(_clock_line(view))},
    ]
    window = view.window_note()
    if window is not None:
        closed = view.as_of is not None and view.window.closed(view.as_of)
        shut = view.window.removed_at is not None or (closed and not view.window.after_window)
        icon = ":no_entry:" if shut else ":hourglass_flowing_sand:"
        blocks.append({"type": "section", "block_id": "reply_window", "text": mrkdwn(f"{icon} {escape(window)}")})
    if view.earlier:
        items = [
            plain(f"{e.posted_at:%d %b} · {channel_name(e.channel)} · {e.status}: {clip(e.text, 120)}", 200)
            for e in view.earlier[:4]
        ]
        blocks.append({"type": "context", "elements": [mrkdwn("*Earlier from this customer:*"), *items]})
    is_open = view.status in (Status.NEW, Status.ASSIGNED)
    if is_open:
        note = " _(cut to fit the channel)_" if view.suggestion_truncated else ""
        blocks += [
            {"type": "section", "text": mrkdwn(f"*Suggested reply* ({escape(view.language)}){note}")},
            {"type": "section", "block_id": "suggestion", "text": plain(view.suggestion or "(no suggestion)")},
        ]
    blocks += _status(view, outcome)
    if is_open:
        blocks.append(_buttons(view))
    return blocks


def _customer_text(view: ThreadView) -> Block:
    block: Block = {"type": "section", "block_id": "customer_text", "text": plain(view.text or "(no text)")}
    url = safe_url(view.url)
    if url:
        block["accessory"] = {"type": "button", "action_id": OPEN_POST, "text": plain("Open post ↗", 75), "url": url}
    return block


def _about(view: ThreadView) -> list[Block]:
    name = f" ({shown_name(view.author_name)})" if view.author_name and view.author_name != view.author_handle else ""
    who = f"@{shown_name(view.author_handle)}{name}"
    elements = [plain(who, 200)]
    if view.rating is not None:
        elements.append(plain(stars(view.rating), 20))
    facts = f"{view.language} · {view.intent} · {view.sentiment} · *{view.priority}* priority"
    if view.messages > 1:
        facts += f" · {view.messages} messages"
    elements.append(mrkdwn(escape(facts)))
    return elements


def _clock_line(view: ThreadView) -> str:
    clock = view.clock
    label = "First response" if clock.kind == ClockKind.FIRST_RESPONSE else "Next response"
    posted = f"posted {when(clock.started_at)}"
    if clock.responded_at is not None:
        return f":stopwatch: *{label}* {STATE_LABEL[clock.state]} · {posted}, answered after {duration_text(clock.minutes_waited)}"
    if view.status == Status.RESOLVED:
        return f":stopwatch: *{label}*: clock stopped (resolved) · {posted}"
    return (
        f":stopwatch: *{label}* due {when(clock.due_at)} · *{minutes(clock.minutes_left)}* · "
        f"{STATE_LABEL[clock.state]} · {posted} · as of {when(_as_of(view))}"
    )


def _as_of(view: ThreadView) -> datetime:
    # The view was evaluated when the notice was sent: that many minutes after the clock started.
    return view.clock.started_at + timedelta(minutes=view.clock.minutes_waited)


def _status(view: ThreadView, outcome: Outcome) -> list[Block]:
    lines: list[str] = []
    blocks: list[Block] = []
    if view.assignee and view.status != Status.RESOLVED:
        lines.append(f":bust_in_silhouette: Assigned to {user(view.assignee)}")
    if outcome.reply_text is not None and outcome.reply_at is not None:
        lines.append(f":outbox_tray: Replied by {user(outcome.reply_agent)} at {when(outcome.reply_at)}:")
    elif view.status == Status.REPLIED and view.clock.responded_at is not None:
        # No reply of ours: the platform showed the brand's answer (a reply from the vendor's dashboard).
        lines.append(
            f":outbox_tray: Answered on {escape(channel_name(view.channel))} at {when(view.clock.responded_at)}, outside this inbox."
        )
    if outcome.undelivered is not None:
        agent, _ = outcome.undelivered
        lines.append(
            f":warning: {escape(channel_name(view.channel))} did not deliver the reply by {user(agent)}: the customer "
            "has not received it. Send again, or resolve."
        )
    if lines:
        blocks.append({"type": "section", "text": mrkdwn("\n".join(lines))})
    if outcome.undelivered is not None:
        blocks.append({"type": "context", "elements": [plain(f"Reason: {outcome.undelivered[1]}", 500)]})
    if outcome.reply_text is not None and outcome.reply_at is not None:
        blocks.append({"type": "section", "text": plain(outcome.reply_text)})
    if view.status == Status.RESOLVED:
        who = f" by {user(outcome.resolved_by)}" if outcome.resolved_by else ""
        at = f" at {when(outcome.resolved_at)}" if outcome.resolved_at else ""
        blocks.append({"type": "section", "text": mrkdwn(f":ballot_box_with_check: Resolved{who}{at}.")})
    csat = _csat_line(view)
    if csat:
        blocks.append({"type": "context", "elements": [mrkdwn(csat)]})
    return blocks


def _csat_line(view: ThreadView) -> str | None:
    """The CSAT question's state: sent and awaiting, or the customer's answer."""
    if view.csat_score is not None:
        return f":star: *CSAT*: the customer answered *{view.csat_score}/5* {stars(view.csat_score)}"
    if view.csat_status == "sent":
        return ":speech_balloon: *CSAT*: question sent, awaiting the customer's rating"
    if view.csat_status == "closed":
        return ":speech_balloon: *CSAT*: no rating given"
    return None


def _buttons(view: ThreadView) -> Block:
    value = button_value(view)
    assign_label = "Take it" if not view.assignee else "Take over"
    # A removed item takes no reply: its send buttons are gone (a click on an older drawing is refused anyway).
    sends: list[Block] = []
    if view.window.removed_at is None:
        sends = [
            {
                "type": "button",
                "action_id": SEND,
                "style": "primary",
                "text": plain("Send suggestion", 75),
                "value": value,
            },
            {"type": "button", "action_id": EDIT, "text": plain("Edit, then send", 75), "value": value},
            *(
                {
                    "type": "button",
                    "action_id": f"{SEND_MODE}{mode.name}",
                    "text": plain(mode.label, 75),
                    "value": value,
                }
                for mode in (view.window.open_modes(view.as_of) if view.as_of else ())
            ),
        ]
    return {
        "type": "actions",
        "block_id": "inbox_actions",
        "elements": [
            *sends,
            {"type": "button", "action_id": ASSIGN, "text": plain(assign_label, 75), "value": value},
            {
                "type": "button",
                "action_id": RESOLVE,
                "style": "danger",
                "text": plain("Resolve", 75),
                "value": value,
                "confirm": {
                    "title": plain("Close without a reply?", 100),
                    "text": plain("The customer gets no answer and the SLA clock stops.", 300),
                    "confirm": plain("Resolve", 30),
                    "deny": plain("Cancel", 30),
                },
            },
        ],
    }


def follow_up(author_handle: str, text: str, posted_at: datetime) -> tuple[str, list[Block]]:
    """A customer's later message, posted in the triage message's thread."""
    who = literal(author_handle, 80)
    return f"Follow-up from @{who}", [
        {
            "type": "context",
            "elements": [mrkdwn(f":speech_balloon: Follow-up from @{who} · {when(posted_at, '{date_short} {time}')}")],
        },
        {"type": "section", "text": plain(text or "(no text)")},
    ]


def item_changed(view: ThreadView, change: str, author_handle: str, text: str) -> tuple[str, list[Block]]:
    """The customer edited (the new text) or removed what they wrote: said in the triage message's thread."""
    who, where = literal(author_handle, 80), escape(channel_name(view.channel))
    if change == "removed":
        line = f":wastebasket: @{who} removed this on {where}: it can no longer be answered there"
        return f"Removed by @{who}", [{"type": "context", "elements": [mrkdwn(line)]}]
    return f"Edited by @{who}", [
        {"type": "context", "elements": [mrkdwn(f":pencil2: @{who} edited this on {where}; it now says:")]},
        {"type": "section", "text": plain(text or "(no text)")},
    ]


def reply_note(view: ThreadView, agent: str, text: str, at: datetime) -> tuple[str, list[Block]]:
    """Our reply, kept in the thread beside the customer's messages."""
    return "Reply sent", [
        {
            "type": "context",
            "elements": [mrkdwn(f":outbox_tray: {user(agent)} replied on {channel_name(view.channel)} at {when(at)}")],
        },
        {"type": "section", "text": plain(text)},
    ]


def reply_failed(view: ThreadView, agent: str, error: str) -> tuple[str, list[Block]]:
    """The platform reported our reply undelivered: said in the thread, to the agent who sent it."""
    where = channel_name(view.channel)
    return f"Reply not delivered on {where}", [
        {
            "type": "section",
            "text": mrkdwn(
                f":warning: {user(agent)}, {escape(where)} did not deliver your reply: the customer has not received it."
            ),
        },
        {"type": "context", "elements": [plain(f"Reason: {error}", 500)]},
    ]


def sla_alert(view: ThreadView, *, breach: bool, permalink: str | None, group: str | None) -> tuple[str, list[Block]]:
    """A warning or breach for the leads: where, how long, who has it."""
    clock = view.clock
    what = f"{channel_name(view.channel)} {view.kind} from @{view.author_handle}"
    title = ":red_circle: *SLA breach*" if breach else ":large_yellow_circle: *SLA warning*"
    waited = f"has waited *{duration_text(clock.minutes_waited)}*"
    due = f"due {when(clock.due_at)}" + (f" ({minutes(clock.minutes_left)})" if not breach else "")
    line = f"{title} · {link(permalink, what)} {waited} for a {'first' if clock.kind == ClockKind.FIRST_RESPONSE else 'next'} response, {due}. Assignee: {user(view.assignee)}."
    if breach and group:
        line += f" <!subteam^{group}>"
    text = f"SLA {'breach' if breach else 'warning'}: {literal(what)} waited {duration_text(clock.minutes_waited)}"
    return text, [
        {"type": "section", "text": mrkdwn(line)},
        {
            "type": "context",
            "elements": [plain(f"{view.priority} priority · {view.intent} · “{clip(view.text, 150)}”", 300)],
        },
    ]


def window_alert(view: ThreadView, *, permalink: str | None) -> tuple[str, list[Block]]:
    """The platform's reply window of an open conversation closes soon: for the leads, once."""
    what = f"{channel_name(view.channel)} {view.kind} from @{view.author_handle}"
    door = view.window.door
    closes = f"closes {when(door)}" if door else "closes soon"
    note = view.window_note() or ""
    line = (
        f":hourglass_flowing_sand: *Reply window closing* · {link(permalink, what)}: {escape(channel_name(view.channel))}'s "
        f"reply window {closes}. Assignee: {user(view.assignee)}."
    )
    return f"Reply window closing: {literal(what)}", [
        {"type": "section", "text": mrkdwn(line)},
        {"type": "context", "elements": [plain(note or f"{view.priority} priority · {view.intent}", 300)]},
    ]


def health_notice(connector: str, healthy: bool, reason: str | None) -> tuple[str, list[Block]]:
    """A connector turning unhealthy or recovering, announced once."""
    name = literal(connector, 64)
    if healthy:
        text = f":large_green_circle: Connector *{name}* is healthy again."
        fallback_text = f"Connector {name} is healthy again"
    else:
        text = f":red_circle: Connector *{name}* is unhealthy; items from it are not coming in."
        fallback_text = f"Connector {name} is unhealthy"
    blocks: list[Block] = [{"type": "section", "text": mrkdwn(text)}]
    if reason:
        blocks.append({"type": "context", "elements": [plain(f"Reason: {reason}", 500)]})
    return fallback_text, blocks


ERASED = {
    "request": "Erased on request: this conversation's texts and the customer's name are no longer kept.",
    "retention": "Erased after the retention period: this conversation's texts and the customer's name are no longer kept.",
}


def erased_note(reason: str) -> tuple[str, list[Block]]:
    """What a message that showed an erased customer's words or name becomes (inbox forget, retention)."""
    text = ERASED.get(reason, ERASED["request"])
    return text, [{"type": "context", "elements": [mrkdwn(f":wastebasket: _{text}_")]}]
