"""`inbox export`, `inbox forget` and `inbox retention`: what the terminal shows and asks around the GDPR pipeline."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from inbox.pipeline import privacy
from inbox.pipeline.privacy import CustomerRef, Plan
from inbox.service import Inbox
from inbox.settings import Settings
from inbox.store.privacy import Held


def counts(held: Held) -> str:
    """'2 conversation(s), 5 item(s), 2 reply(ies), 1 CSAT question(s), 4 Slack message(s)'."""
    return (
        f"{held.threads} conversation(s), {held.items} item(s), {held.replies} reply(ies), "
        f"{held.csat} CSAT question(s), {held.slack_messages} Slack message(s)"
    )


def admin() -> str:
    """Who runs the command, for the record of the erasure."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"


async def export(settings: Settings, refs: Sequence[CustomerRef]) -> dict[str, Any]:
    """The export document of the customers `refs` name."""
    inbox = await Inbox.open(settings, notifiers=[])
    try:
        return await privacy.export(inbox.engine, refs, inbox.clock())
    finally:
        await inbox.close()


def write_export(document: dict[str, Any], out_file: Path | None, out: Console) -> None:
    """The JSON to `out_file` (readable by its owner only: it is personal data) or to stdout."""
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if out_file is None:
        out.file.write(text)
        return
    out_file.touch(mode=0o600, exist_ok=True)
    out_file.write_text(text, encoding="utf-8")
    customers = document["customers"]
    conversations = sum(len(c["conversations"]) for c in customers)
    out.print(f"Wrote {out_file}: {len(customers)} customer(s), {conversations} conversation(s).")


async def forget(settings: Settings, refs: Sequence[CustomerRef], out: Console, confirm: Callable[[str], bool]) -> bool:
    """Show what will be erased, ask `confirm`, erase, then edit the Slack messages; False when not confirmed."""
    inbox = await Inbox.open(settings)
    try:
        plan = await privacy.plan_forget(inbox.engine, refs)
        out.print(Text(f"{', '.join(str(r) for r in refs)}: {len(plan.customers)} customer(s), {counts(plan.held)}."))
        if not confirm("Erase their handle and name, every text of theirs and every text written for them?"):
            out.print("Nothing erased.")
            return False
        waiting = await privacy.pushes_waiting(inbox.engine, plan)
        await privacy.forget(inbox.engine, plan, by=admin(), now=inbox.clock(), on_event=inbox.bell.ring)
        out.print(f"Erased: {len(plan.customers)} customer(s) (now a pseudonym each), {counts(plan.held)}.")
        if waiting:
            out.print(
                f"{waiting} webhook delivery(ies) naming them were still waiting to be ingested: they become a new "
                "customer; run inbox forget again once they are in."
            )
        await _edit_slack(inbox, plan, out)
    finally:
        await inbox.close()
    return True


async def retention(settings: Settings, out: Console, *, dry_run: bool) -> None:
    """Erase (or, with `dry_run`, show) what `[retention] text_days` makes due now."""
    inbox = await Inbox.open(settings)
    try:
        job = inbox.retention
        if not job.enabled:
            out.print("Retention is off ([retention] text_days = 0): texts are kept until inbox forget.")
            return
        plan = await job.plan()
        before = f"resolved before {job.cutoff():%Y-%m-%d %H:%M} UTC ({job.text_days} day(s) ago)"
        gone = (
            f"; {len(plan.customers)} customer(s) left with no conversation lose their name" if plan.customers else ""
        )
        if dry_run:
            out.print(f"Would erase the texts and names of conversations {before}: {counts(plan.held)}{gone}.")
            return
        done = await job.run()
        out.print(f"Erased the texts and names of conversations {before}: {counts(done)}{gone}.")
        await _edit_slack(inbox, plan, out)
    finally:
        await inbox.close()


async def _edit_slack(inbox: Inbox, plan: Plan, out: Console) -> None:
    """Deliver the erasure's Slack edits now, rather than at the running inbox's next outbox turn."""
    if inbox.slack is None or not plan.held.slack_messages:
        return
    try:
        await inbox.outbox.dispatch()
    except Exception as exc:  # noqa: BLE001 - the events stay in the outbox: `inbox run` delivers them
        out.print(f"Slack could not be reached now ({type(exc).__name__}): inbox run edits the messages.")
        return
    if await privacy.slack_edits_pending(inbox.engine, plan):
        out.print("Some Slack messages are not edited yet: inbox run goes on until they are.")
    else:
        out.print(f"Slack: {plan.held.slack_messages} message(s) {inbox.settings.slack.erased_messages}d.")
