"""Slack: triage messages agents act on, SLA alerts for leads, health for admins (see README, "Slack")."""

from inbox.slack.runtime import Slack

__all__ = ["Slack"]
