"""Durations for people, in the terminal and in Slack: minutes, then hours, then days."""

from __future__ import annotations

from inbox.sla import clock_label, duration_text
from inbox.slack.blocks import minutes


def test_minutes_up_to_90_then_hours_then_days():
    assert [duration_text(m) for m in (0, 0.4, 12, 89.4)] == ["0 min", "0 min", "12 min", "89 min"]
    assert [duration_text(m) for m in (90, 125, 180, 1439)] == ["1 h 30 min", "2 h 5 min", "3 h", "23 h 59 min"]
    assert [duration_text(m) for m in (1440, 19628, 3 * 1440 + 59)] == ["1 d", "13 d 15 h", "3 d"]


def test_the_clock_says_left_or_late_the_same_way_in_the_terminal_and_in_slack():
    assert clock_label(12) == "12 min left" and clock_label(-3) == "3 min late"
    assert clock_label(-19628) == "13 d 15 h late" and minutes(-19628) == "13 d 15 h late"
    assert minutes(125) == "2 h 5 min left"
