"""What agents and leads do in Slack: buttons, the edit modal, thread replies, `/inbox`, App Home.

Every listener acknowledges at once and leaves the work to a tracked background task, so Slack's
3-second deadline never depends on the store, the platform or Slack's own API.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from inbox.connector import STANDARD_MODE
from inbox.logs import log_context
from inbox.pipeline.actions import ActionError, ReplyOutcome
from inbox.reports.window import ReportError
from inbox.slack import blocks, dashboard, modal, report
from inbox.slack.api import SLACK_ERRORS, describe
from inbox.slack.tasks import bolt_listener
from inbox.slack.text import clip, escape, from_slack, literal
from inbox.store.db import describe_outage, is_outage
from inbox.templates import ReplyTemplateError, reply_variables
from inbox.views import ThreadView, open_queue, thread_view

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from inbox.settings import SlackSettings
    from inbox.slack.access import Access
    from inbox.slack.core import Core
    from inbox.slack.notifier import SlackNotifier
    from inbox.slack.tasks import Background

log = logging.getLogger(__name__)

Body = dict[str, Any]

STORE_DOWN = "The inbox cannot reach its database just now, so nothing was done. Try again in a minute."


class Host(Protocol):
    """What the listeners use of the Slack app (`runtime.Slack` is one), so this module does not import it."""

    @property
    def settings(self) -> SlackSettings: ...
    @property
    def core(self) -> Core: ...
    @property
    def client(self) -> AsyncWebClient: ...
    @property
    def access(self) -> Access: ...
    @property
    def tasks(self) -> Background: ...
    @property
    def notifier(self) -> SlackNotifier: ...


class Interactions:
    """Registers the listeners on a Bolt app and does the work behind each."""

    def __init__(self, slack: Host, app: AsyncApp) -> None:
        self.slack = slack
        self.core = slack.core
        self.work: dict[str, Callable[[Body], Awaitable[None]]] = {
            blocks.SEND: self.send_suggestion,
            blocks.EDIT: self.open_editor,
            blocks.ASSIGN: self.assign,
            blocks.RESOLVE: self.resolve,
            modal.TEMPLATE: self.pick_template,
        }
        # One listener for every button, registered first: Bolt tries listeners in order and each
        # try costs, so a click is matched at the first attempt (see tests/bench/bench_slack_ack.py).
        app.action(re.compile(r"^inbox_"))(bolt_listener(self.on_action))
        app.view(modal.CALLBACK)(bolt_listener(self.submit_editor))
        app.command("/inbox")(bolt_listener(self.command))
        app.event("app_home_opened")(self._later(self.publish_home, "app_home_opened"))
        app.event("message")(self._later(self.thread_message, "message"))

    async def on_action(self, ack: AsyncAck, body: Body) -> None:
        """Acknowledge a button or a choice at once; its work runs after."""
        await ack()
        action_id = (body.get("actions") or [{}])[0].get("action_id", "")
        work = self.work.get(action_id) or (self.open_editor if action_id.startswith(blocks.SEND_MODE) else None)
        if work is not None:  # the link button (inbox_open_post) only needs the acknowledgement
            # A modal must open within Slack's 3 s trigger window, whatever queue a burst of clicks built.
            with log_context(**_about(body)):  # the task, and its log lines, carry the conversation's ids
                self.slack.tasks.spawn(
                    self._guarded(_Where.of(body), work(body)),
                    action_id,
                    urgent=action_id == blocks.EDIT or action_id.startswith(blocks.SEND_MODE),
                )

    def _later(self, work: Callable[[Body], Coroutine[Any, Any, None]], name: str) -> Callable[..., Awaitable[None]]:
        async def listener(ack: AsyncAck, body: Body) -> None:
            await ack()
            self.slack.tasks.spawn(work(body), name)

        listener.__name__ = f"on_{name}"
        return listener

    # ------------------------------------------------------------------ buttons

    async def send_suggestion(self, body: Body) -> None:
        """`inbox_send`: the suggestion as shown, once."""
        where = _Where.of(body)
        target = await self._target(body, where)
        if target is None:
            return
        view, current = target
        if not current:
            await self.tell(
                where,
                "The customer wrote again since this message was drawn; nothing was sent. Look at the updated message and choose again.",
            )
            return
        await self._reply(where, view.thread_id, view.suggestion)

    async def assign(self, body: Body) -> None:
        """`inbox_assign`: the clicking agent takes the conversation."""
        where = _Where.of(body)
        target = await self._target(body, where)
        if target is not None:
            await self._act(where, self.core.actions.assign(target[0].thread_id, where.user))

    async def resolve(self, body: Body) -> None:
        """`inbox_resolve`: close without a reply."""
        where = _Where.of(body)
        target = await self._target(body, where)
        if target is not None:
            await self._act(where, self.core.actions.resolve(target[0].thread_id, where.user))

    async def open_editor(self, body: Body) -> None:
        """`inbox_edit` (or `inbox_send_<mode>`, for one of the item's other reply modes): the modal, prefilled."""
        where = _Where.of(body)
        target = await self._target(body, where)
        if target is None:
            return
        view = target[0]
        action_id = str((body.get("actions") or [{}])[0].get("action_id", ""))
        mode = action_id.removeprefix(blocks.SEND_MODE) if action_id.startswith(blocks.SEND_MODE) else STANDARD_MODE
        offered = view.window.mode(mode)
        refusal = self.core.actions.refusal(view, mode)
        if refusal:
            # Said before the agent writes anything: the platform would refuse it.
            await self.tell(where, f"Not sent: {refusal}.")
            return
        meta = modal.EditMeta(
            thread=view.thread_id,
            item=view.item_id,
            channel=where.channel,
            platform=view.channel,
            limit=self._limit(view),
            mode=mode,
            mode_label=offered.label if offered else "",
        )
        form = modal.edit_modal(
            meta,
            customer=view.author_handle,
            customer_text=view.text,
            text=view.suggestion,
            templates=self.core.templates.available(),
            selected=(view.intent, view.language),
        )
        await self.slack.client.views_open(trigger_id=body["trigger_id"], view=form)

    # ------------------------------------------------------------------ the modal

    async def pick_template(self, body: Body) -> None:
        """A template chosen in the modal replaces the text in the box."""
        form = body.get("view") or {}
        meta = modal.EditMeta.load(form.get("private_metadata") or "")
        choice = (body.get("actions") or [{}])[0].get("selected_option") or {}
        intent, lang = modal.parse_option(choice.get("value", ""))
        view = await self._view(meta.thread)
        if view is None:
            return
        triage = self.core.triage
        try:
            variables = reply_variables(
                customer_name=view.author_name or view.author_handle,
                channel=view.channel,
                kind=view.kind,
                text=view.text,
                agent_name=triage.agent_name,
                brand=triage.brand,
            )
            suggestion = self.core.templates.render(intent, lang, variables, max_chars=meta.limit)
        except ReplyTemplateError as exc:
            log.warning("Slack: template %s.%s cannot be rendered: %s", intent, lang, exc)
            return
        meta = dataclasses.replace(meta, revision=meta.revision + 1)
        new = modal.edit_modal(
            meta,
            customer=view.author_handle,
            customer_text=view.text,
            text=suggestion.text,
            templates=self.core.templates.available(),
            selected=(intent, lang),
        )
        await self.slack.client.views_update(view_id=form["id"], hash=form.get("hash"), view=new)

    async def submit_editor(self, ack: AsyncAck, body: Body) -> None:
        """The modal's Send: checked at once (the modal stays open on a problem), sent after."""
        form = body.get("view") or {}
        meta = modal.EditMeta.load(form.get("private_metadata") or "")
        block_id, text = modal.submitted_text(form)
        problem = modal.problem(text, meta)
        if problem:
            await ack(response_action="errors", errors={block_id: problem})
            return
        await ack()
        where = _Where(user=body["user"]["id"], channel=meta.channel)
        with log_context(thread_id=meta.thread, item_id=meta.item):
            self.slack.tasks.spawn(self._guarded(where, self._send_edited(where, meta, text)), "inbox_edit_submit")

    async def _send_edited(self, where: _Where, meta: modal.EditMeta, text: str) -> None:
        if await self._refused(where):
            return
        await self._reply(where, meta.thread, text, meta.mode)

    # ------------------------------------------------------------------ thread replies

    async def thread_message(self, body: Body) -> None:
        """`reply: …` from an agent in a triage message's thread goes to the customer."""
        event = body.get("event") or {}
        if event.get("subtype") or event.get("bot_id") or not event.get("user"):
            return
        thread_ts, text = event.get("thread_ts"), event.get("text") or ""
        if not thread_ts or thread_ts == event.get("ts") or event.get("channel") != self.slack.settings.triage_channel:
            return
        prefix = self.slack.settings.reply_prefix
        stripped = text.lstrip()
        if not stripped.lower().startswith(prefix.lower()):
            return
        where = _Where(user=event["user"], channel=event["channel"], thread_ts=thread_ts)
        await self._guarded(where, self._thread_reply(where, from_slack(stripped[len(prefix) :]).strip()))

    async def _thread_reply(self, where: _Where, text: str) -> None:
        assert where.thread_ts is not None
        thread_id = await self.slack.notifier.store.thread_for(where.channel, where.thread_ts)
        if thread_id is None:
            return
        if await self._refused(where):
            return
        await self._reply(where, thread_id, text)

    # ------------------------------------------------------------------ dashboard

    async def command(self, ack: AsyncAck, body: Body, respond: AsyncRespond) -> None:
        """`/inbox queue|stats|connectors`: answered privately, after the acknowledgement."""
        await ack()
        self.slack.tasks.spawn(self._answer_command(body, respond), "/inbox")

    async def _answer_command(self, body: Body, respond: AsyncRespond) -> None:
        try:
            await self._dashboard(body, respond)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("Slack: /inbox could not read the store: %s", describe_outage(exc))
            await respond(text=STORE_DOWN, response_type="ephemeral")

    async def _dashboard(self, body: Body, respond: AsyncRespond) -> None:
        words = (body.get("text") or "queue").strip().lower().split()
        what = words[0] if words else "queue"
        if what == "report":
            await self._report(body, respond, words[1] if len(words) > 1 else None)
            return
        refusal = await self.slack.access.refusal(body.get("user_id", ""), acting=False)
        if refusal:
            await respond(text=refusal, response_type="ephemeral")
            return
        now = self.core.clock()
        if what == "queue":
            content = dashboard.queue_blocks(await open_queue(self.core.engine, self.core.policies, now))
        elif what == "stats":
            content = dashboard.stats_blocks(await dashboard.sla_stats(self.core.engine, self.core.policies, now))
        elif what in ("connectors", "health"):
            content = dashboard.health_blocks(await dashboard.connector_health(self.core.engine, self.core.connectors))
        else:
            await respond(text=dashboard.HELP, response_type="ephemeral")
            return
        await respond(text=f"/inbox {what}", blocks=content[:50], response_type="ephemeral")

    async def _report(self, body: Body, respond: AsyncRespond, argument: str | None) -> None:
        """`/inbox report [DURATION]`: the headline figures and a signed link, for the allowed users only."""
        user = body.get("user_id", "")
        # The link opens every conversation's figures: given to those allowed to act, when a list is set.
        refusal = await self.slack.access.refusal(user, acting=True)
        if refusal:
            log.info("Slack: refused /inbox report to %s: %s", user, refusal)
            await respond(text=literal(refusal, 300), response_type="ephemeral")
            return
        try:
            text, content = await report.report_blocks(self.core, argument, user)
        except ReportError as exc:
            await respond(text=str(exc), response_type="ephemeral")
            return
        await respond(text=escape(text), blocks=content, response_type="ephemeral")

    async def publish_home(self, body: Body) -> None:
        """The App Home tab: the dashboard for whoever opens it."""
        event = body.get("event") or {}
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        refusal = await self.slack.access.refusal(event["user"], acting=False)
        if refusal:
            home = {
                "type": "home",
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": literal(refusal, 300)}}],
            }
        else:
            now = self.core.clock()
            try:
                home = dashboard.home_view(
                    await open_queue(self.core.engine, self.core.policies, now),
                    await dashboard.sla_stats(self.core.engine, self.core.policies, now),
                    await dashboard.connector_health(self.core.engine, self.core.connectors),
                )
            except Exception as exc:
                if not is_outage(exc):
                    raise
                log.warning("Slack: App Home could not read the store: %s", describe_outage(exc))
                text = "The inbox cannot reach its database just now. Open this tab again in a minute."
                home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}
        await self.slack.client.views_publish(user_id=event["user"], view=home)

    # ------------------------------------------------------------------ shared steps

    async def _target(self, body: Body, where: _Where) -> tuple[ThreadView, bool] | None:
        """The clicked conversation and whether the message showed its latest item; None after a refusal."""
        if await self._refused(where):
            return None
        action = (body.get("actions") or [{}])[0]
        try:
            thread_id, item_id = blocks.parse_value(str(action.get("value", "")))
        except ValueError:
            log.warning("Slack: a button with an unknown value %r", action.get("value"))
            return None
        view = await self._view(thread_id)
        if view is None:
            await self.tell(where, "This conversation is no longer in the inbox.")
            return None
        return view, item_id in (None, view.item_id)

    async def _view(self, thread_id: int) -> ThreadView | None:
        return await thread_view(self.core.engine, self.core.policies, thread_id, self.core.clock())

    def _limit(self, view: ThreadView) -> int | None:
        connector = self.core.connectors.get(view.connector)
        return connector.max_reply_chars if connector else None

    async def _refused(self, where: _Where) -> bool:
        refusal = await self.slack.access.refusal(where.user)
        if refusal:
            log.info("Slack: refused an action by %s: %s", where.user, refusal)
            await self.tell(where, refusal)
        return bool(refusal)

    async def _reply(self, where: _Where, thread_id: int, text: str, mode: str = STANDARD_MODE) -> None:
        try:
            outcome: ReplyOutcome = await self.core.actions.reply(thread_id, text, where.user, mode)
        except ActionError as exc:
            await self.tell(where, f"Not sent: {exc}. The conversation stays open.")
            return
        if outcome.status == "deferred":
            await self.tell(
                where,
                "The inbox cannot reach its database just now. Your reply is saved and goes out once "
                "the database is back, once only; nothing more to do.",
            )
        elif outcome.status == "unrecorded":
            await self.tell(
                where,
                "Sent to the customer. The inbox cannot reach its database just now, so this "
                "conversation shows as answered once it is back; do not send it again.",
            )
        elif outcome.status == "duplicate" and mode != STANDARD_MODE:
            await self.tell(
                where,
                "This reply was already sent to this customer message (the platform takes one); nothing more was sent.",
            )
        elif outcome.status == "duplicate":
            await self.tell(
                where, "This message was already answered (one reply per customer message); nothing more was sent."
            )
        elif outcome.status == "unknown":
            await self.tell(
                where,
                "The platform did not answer in time. cx-inbox checks whether the reply arrived and sends it "
                "if it did not; nothing is sent twice.",
            )

    async def _act(self, where: _Where, change: Awaitable[None]) -> None:
        try:
            await change
        except ActionError as exc:
            await self.tell(where, f"Not done: {exc}.")

    async def _guarded(self, where: _Where, work: Awaitable[None]) -> None:
        """Run an interaction's work; if the store fails under it, tell the agent nothing was done, to try again."""
        try:
            await work
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "Slack: an action by %s was not done, the store is unavailable: %s", where.user, describe_outage(exc)
            )
            if where.channel:  # a choice inside a modal has no channel to answer in: the modal simply stays as it was
                await self.tell(where, STORE_DOWN)

    async def tell(self, where: _Where, text: str) -> None:
        """An ephemeral message only the agent sees, where they acted."""
        try:
            await self.slack.client.chat_postEphemeral(
                channel=where.channel,
                user=where.user,
                text=escape(clip(text, 1000)),
                thread_ts=where.thread_ts,
            )
        except SLACK_ERRORS as exc:
            # Not the message itself: it may quote a reply written for a customer.
            log.warning("Slack: could not tell %s (%d characters): %s", where.user, len(text), describe(exc))


def _about(body: Body) -> dict[str, int | None]:
    """The conversation a click is about (a button's value, or the edit modal's metadata), as log fields."""
    try:
        thread, item = blocks.parse_value(str((body.get("actions") or [{}])[0].get("value") or ""))
    except ValueError:
        try:
            meta = modal.EditMeta.load((body.get("view") or {}).get("private_metadata") or "")
        except ValueError:
            return {}
        thread, item = meta.thread, meta.item
    return {"thread_id": thread, "item_id": item}


class _Where:
    """Who acted and where to answer them."""

    __slots__ = ("channel", "thread_ts", "user")

    def __init__(self, user: str, channel: str, thread_ts: str | None = None) -> None:
        self.user = user
        self.channel = channel
        self.thread_ts = thread_ts

    @classmethod
    def of(cls, body: Body) -> _Where:
        """From a block_actions payload."""
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
        return cls(user=body["user"]["id"], channel=channel)
