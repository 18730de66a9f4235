"""The edit modal: the suggestion to edit, a template picker, the channel's length limit."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from inbox.connector import STANDARD_MODE
from inbox.display import shown_name
from inbox.slack.blocks import Block, channel_name
from inbox.slack.text import clip, plain

CALLBACK = "inbox_edit_submit"
TEMPLATE = "inbox_template"
REPLY_TEXT = "inbox_reply_text"
_REPLY_BLOCK = "reply_"
_INPUT_LIMIT = 3000  # Slack's most for a plain_text_input


@dataclass(frozen=True, slots=True)
class EditMeta:
    """What the modal carries between Slack and us (its private_metadata)."""

    thread: int
    item: int
    channel: str  # the triage channel, for an ephemeral message if the send fails
    platform: str  # the customer's channel, e.g. "x"
    limit: int | None
    revision: int = 0
    mode: str = STANDARD_MODE  # how the reply goes out: the ordinary reply, or one of the item's reply modes
    mode_label: str = ""  # that mode's button text, the modal's title

    def dump(self) -> str:
        """As private_metadata."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def load(cls, raw: str) -> EditMeta:
        """From private_metadata; ValueError when it is not ours."""
        try:
            return cls(**json.loads(raw))
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an edit modal: {exc}") from exc


def edit_modal(
    meta: EditMeta,
    *,
    customer: str,
    customer_text: str,
    text: str,
    templates: list[tuple[str, str]],
    selected: tuple[str, str] | None,
) -> dict[str, Any]:
    """The modal, prefilled with `text`; a new revision replaces the text box's content."""
    options = [_option(intent, lang) for intent, lang in templates][:100]
    picker: Block = {
        "type": "static_select",
        "action_id": TEMPLATE,
        "placeholder": plain("Start from a template", 150),
        "options": options,
    }
    if selected and selected in templates:
        picker["initial_option"] = _option(*selected)
    box: Block = {"type": "plain_text_input", "action_id": REPLY_TEXT, "multiline": True, "initial_value": text}
    if meta.limit:
        box["max_length"] = min(meta.limit, _INPUT_LIMIT)
    blocks: list[Block] = [
        {
            "type": "context",
            "elements": [
                plain(
                    f"Replying to @{shown_name(customer)} on {channel_name(meta.platform)}: “{clip(customer_text, 200)}”",
                    400,
                )
            ],
        },
    ]
    if options:
        blocks.append(
            {
                "type": "input",
                "block_id": "template",
                "dispatch_action": True,
                "optional": True,
                "label": plain("Template", 50),
                "element": picker,
            }
        )
    blocks += [
        # The block id changes with each revision, or Slack would keep the old text in the box.
        {"type": "input", "block_id": f"{_REPLY_BLOCK}{meta.revision}", "label": plain("Reply", 50), "element": box},
        {"type": "context", "elements": [plain(hint(text, meta), 300)]},
    ]
    return {
        "type": "modal",
        "callback_id": CALLBACK,
        "private_metadata": meta.dump(),
        "title": plain(meta.mode_label or "Reply to the customer", 24),
        "submit": plain("Send", 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }


def hint(text: str, meta: EditMeta) -> str:
    """The character count against the channel's limit."""
    if meta.limit is None:
        return f"{len(text)} characters; {channel_name(meta.platform)} sets no limit."
    return f"{len(text)} of {meta.limit} characters allowed on {channel_name(meta.platform)}."


def submitted_text(view: dict[str, Any]) -> tuple[str, str]:
    """(block id, text) of the reply box in a submitted or updated view."""
    values: dict[str, Any] = view.get("state", {}).get("values", {})
    for block_id, actions in values.items():
        if block_id.startswith(_REPLY_BLOCK) and REPLY_TEXT in actions:
            return block_id, actions[REPLY_TEXT].get("value") or ""
    return f"{_REPLY_BLOCK}0", ""


def problem(text: str, meta: EditMeta) -> str | None:
    """Why the text cannot be sent, shown under the box; None when it can."""
    if not text.strip():
        return "The reply is empty."
    if meta.limit is not None and len(text.strip()) > meta.limit:
        return f"{len(text.strip())} characters; {channel_name(meta.platform)} allows {meta.limit}."
    return None


def _option(intent: str, lang: str) -> Block:
    return {"text": plain(f"{intent} · {lang}", 75), "value": f"{intent}.{lang}"}


def parse_option(value: str) -> tuple[str, str]:
    """(intent, language) from a picker value."""
    intent, _, lang = value.partition(".")
    if not intent or not lang:
        raise ValueError(f"not a template option: {value!r}")
    return intent, lang
