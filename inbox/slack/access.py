"""Who may act from Slack: the allowed users and group, else any full member of the workspace."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from slack_sdk.web.async_client import AsyncWebClient

from inbox.settings import SlackSettings
from inbox.slack.api import SLACK_ERRORS, Identity

log = logging.getLogger(__name__)

_TTL = 300.0  # membership changes reach us within five minutes


class Access:
    """Answers 'may this Slack user do this?' with a reason when not, caching Slack's answers."""

    def __init__(
        self,
        settings: SlackSettings,
        client: AsyncWebClient,
        identity: Callable[[], Awaitable[Identity]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = frozenset(settings.allowed_users)
        self.group = settings.allowed_group
        self.client = client
        self.identity = identity
        self.clock = clock
        self._members: tuple[float, frozenset[str]] | None = None
        self._users: dict[str, tuple[float, str | None]] = {}

    async def refusal(self, user_id: str, *, acting: bool = True) -> str | None:
        """None when `user_id` may go ahead; else the reason to show them.

        Acting (replying, assigning, resolving) needs the allowed list or group when one is set;
        reading the dashboard needs only a full member of this workspace.
        """
        if acting and (self.allowed or self.group):
            if user_id in self.allowed or (self.group and user_id in await self._group_members(self.group)):
                return None
            return "You are not one of this inbox's agents, so nothing was done. Ask an admin to add you."
        return await self._member(user_id)

    async def _group_members(self, group: str) -> frozenset[str]:
        now = self.clock()
        if self._members is None or now - self._members[0] > _TTL:
            try:
                answer = await self.client.usergroups_users_list(usergroup=group)
                self._members = (now, frozenset(answer.get("users") or []))
            except SLACK_ERRORS as exc:
                log.warning("Slack: cannot read the members of user group %s: %s", group, exc)
                return self._members[1] if self._members else frozenset()
        return self._members[1]

    async def _member(self, user_id: str) -> str | None:
        now = self.clock()
        cached = self._users.get(user_id)
        if cached and now - cached[0] <= _TTL:
            return cached[1]
        try:
            answer = await self.client.users_info(user=user_id)
        except SLACK_ERRORS as exc:
            log.warning("Slack: cannot look up user %s: %s", user_id, exc)
            return "Slack could not tell who you are just now, so nothing was done. Try again in a moment."
        info = answer.get("user") or {}
        team = (await self.identity()).team_id
        reason = None
        if info.get("deleted") or info.get("is_bot"):
            reason = "Only people in this workspace can act on the inbox."
        elif info.get("is_restricted") or info.get("is_ultra_restricted"):
            reason = "Guests cannot act on the inbox."
        elif team and info.get("team_id") not in (None, team):
            reason = "Only members of this workspace can act on the inbox."
        self._users[user_id] = (now, reason)
        return reason
