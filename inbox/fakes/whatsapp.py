"""A local WhatsApp Cloud API: the phone number, `POST /{phone-number-id}/messages`, and the webhook deliveries
(messages, statuses) Meta would send, signed, to the inbox. Shapes: inbox/fakes/data/whatsapp/SOURCE.md."""

from __future__ import annotations

import copy
import itertools
from datetime import timedelta
from typing import Any

from aiohttp import web

from inbox.fakes.data import payload
from inbox.fakes.meta import GraphFake
from inbox.fakes.vendor import SentReply

WINDOW = timedelta(hours=24)
TEXT_LIMIT = 4096


class WhatsAppFake(GraphFake):
    """One phone number of a WhatsApp Business Account; customers' messages wait in `pending` until delivered."""

    def __init__(self, *, phone_number_id: str = "106540352242922", **keys: Any) -> None:
        super().__init__(**keys)
        self.phone_number_id = phone_number_id
        self.display_phone_number = "15550783881"
        self.verified_name = "Acme Support"
        self.waba_id = "102290129340398"
        self.pending: list[dict[str, Any]] = []  # message events (with their contact), oldest first
        self.pending_changes: list[dict[str, Any]] = []  # other changes: echoes, statuses
        self.last_inbound: dict[str, tuple[str, float]] = {}  # wa_id → (message id, epoch seconds)
        self.sent: list[dict[str, Any]] = []  # send bodies as received
        self._ids = itertools.count(1)
        self._numbers: dict[str, str] = {}

    def graph_routes(self, app: web.Application) -> None:
        self.route(app, "GET", "/{phone_number_id}", self._phone_number)
        self.route(app, "POST", "/{phone_number_id}/messages", self._send)

    # --- the API ------------------------------------------------------------------------------------------------

    async def _phone_number(self, request: web.Request) -> web.Response:
        if request.match_info["phone_number_id"] != self.phone_number_id:
            return self._unknown(request.match_info["phone_number_id"])
        return web.json_response(
            {
                "display_phone_number": self.display_phone_number,
                "verified_name": self.verified_name,
                "id": self.phone_number_id,
            }
        )

    async def _send(self, request: web.Request) -> web.Response:
        if request.match_info["phone_number_id"] != self.phone_number_id:
            return self._unknown(request.match_info["phone_number_id"])
        body = await request.json()
        problem = _invalid(body)
        if problem is not None:
            return web.Response(
                status=400,
                text=self.graph_fault(100, f"(#100) {problem}").body,
                content_type="application/json",
            )
        self.sent.append(body)
        to = str(body["to"]).lstrip("+")
        wamid = f"wamid.fake{next(self._ids):06d}"
        last = self.last_inbound.get(to)
        target = last[0] if last else to
        text = body["text"]["body"] if body["type"] == "text" else f"template:{body['template']['name']}"
        self.replies.append(SentReply(target, text, {"to": to, "type": body["type"], "id": wamid, "body": body}))
        # As the real API does: a text outside the window is accepted, then reported failed (131047) by webhook.
        if body["type"] == "text" and (last is None or self.now.timestamp() > last[1] + WINDOW.total_seconds()):
            self.pending_changes.append(self.status_change(wamid, "failed", to, error=131047))
        else:
            self.pending_changes.append(self.status_change(wamid, "sent", to))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": to}],
                "messages": [{"id": wamid}],
            }
        )

    def _unknown(self, object_id: str) -> web.Response:
        text = self.graph_fault(
            100, f"Unsupported request - method type: get. Object with ID '{object_id}' does not exist", subcode=33
        ).body
        return web.Response(status=400, text=text, content_type="application/json")

    # --- what customers do --------------------------------------------------------------------------------------

    def add_customer_post(
        self, text: str, *, author: str = "33612345678", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A text message from `author` (a wa_id: digits, the customer's number); returns its wamid."""
        message = self._message(self.wa_id(author), minutes_ago, "text", {"text": {"body": text}})
        if reply_to is not None:
            message["context"] = {"from": self.display_phone_number, "id": reply_to}
        return str(message["id"])

    def add_media(
        self, kind: str, *, caption: str | None, author: str = "33612345678", minutes_ago: float = 1.0
    ) -> str:
        """A media message (image, video, document, ...) with its caption; returns its wamid."""
        media: dict[str, Any] = {"mime_type": "image/jpeg", "sha256": "81d3bd8a", "id": f"27548594{next(self._ids)}"}
        if caption is not None:
            media["caption"] = caption
        return str(self._message(self.wa_id(author), minutes_ago, kind, {kind: media})["id"])

    def wa_id(self, author: str) -> str:
        """The customer's number: `author` itself when it is one, else a number given to that name."""
        if author.lstrip("+").isdigit():
            return author.lstrip("+")
        return self._numbers.setdefault(author, f"4070000{len(self._numbers):04d}")

    def _message(self, wa_id: str, minutes_ago: float, kind: str, content: dict[str, Any]) -> dict[str, Any]:
        at = int((self.now - timedelta(minutes=minutes_ago)).timestamp())
        message = {"from": wa_id, "id": f"wamid.in{next(self._ids):06d}", "timestamp": str(at), "type": kind, **content}
        self.pending.append(
            {"message": message, "contact": {"profile": {"name": f"Customer {wa_id[-4:]}"}, "wa_id": wa_id}}
        )
        if at >= self.last_inbound.get(wa_id, ("", 0))[1]:
            self.last_inbound[wa_id] = (message["id"], at)
        return message

    def add_brand_post(self, text: str) -> list[str]:
        """A message the business sent from the WhatsApp Business app (coexistence), echoed to the webhook."""
        wamid = f"wamid.echo{next(self._ids):06d}"
        at = str(int(self.now.timestamp()))
        echo = {"from": self.display_phone_number, "to": "33612345678", "id": wamid, "timestamp": at, "type": "text"}
        self.pending_changes.append(
            {
                "field": "smb_message_echoes",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": self._metadata(),
                    "message_echoes": [{**echo, "text": {"body": text}}],
                },
            }
        )
        return [wamid]

    def add_existing_reply(self, target: str, text: str) -> None:
        """WhatsApp has no API listing sent messages: a reply sent before a crash cannot be looked up."""
        raise NotImplementedError("the Cloud API cannot list sent messages")

    def add_broken_item(self) -> None:
        """A message without its sender."""
        message = {"id": f"wamid.broken{next(self._ids)}", "timestamp": str(int(self.now.timestamp())), "type": "text"}
        self.pending.append({"message": {**message, "text": {"body": "no sender"}}, "contact": {}})

    # --- webhook deliveries -------------------------------------------------------------------------------------

    def _metadata(self) -> dict[str, str]:
        return {"display_phone_number": self.display_phone_number, "phone_number_id": self.phone_number_id}

    def status_change(self, wamid: str, status: str, recipient: str, *, error: int | None = None) -> dict[str, Any]:
        """A `statuses` change as Meta sends it (the failed one from the recorded 131047 delivery)."""
        if status == "failed":
            recorded = payload("whatsapp", "whatsapp_status_failed.json")["entry"][0]["changes"][0]["value"]["statuses"]
            entry = copy.deepcopy(recorded[0])
            entry["errors"][0]["code"] = error or entry["errors"][0]["code"]
        else:
            entry = {"status": status}
        entry |= {"id": wamid, "status": status, "timestamp": str(int(self.now.timestamp())), "recipient_id": recipient}
        return {
            "field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": self._metadata(), "statuses": [entry]},
        }

    def envelope(self, changes: list[dict[str, Any]]) -> dict[str, Any]:
        """One webhook delivery with these changes."""
        return {
            "object": "whatsapp_business_account",
            "entry": [{"id": self.waba_id, "changes": changes}],
        }

    def message_change(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """A `messages` change carrying these message events and their contacts."""
        contacts = {e["contact"].get("wa_id"): e["contact"] for e in events if e["contact"]}
        return {
            "field": "messages",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": self._metadata(),
                "contacts": list(contacts.values()),
                "messages": [e["message"] for e in events],
            },
        }

    def take_deliveries(self, per_delivery: int | None = None) -> list[dict[str, Any]]:
        """What is pending, as webhook deliveries of up to `per_delivery` messages each (others in their own)."""
        size = per_delivery or self.page_size
        deliveries: list[dict[str, Any]] = []
        events = self.pending
        for start in range(0, len(events), size):
            chunk = events[start : start + size]
            if self.duplicating and start:
                chunk = [events[start - 1], *chunk]
            deliveries.append(self.envelope([self.message_change(chunk)]))
        deliveries += [self.envelope([change]) for change in self.pending_changes]
        self.pending, self.pending_changes = [], []
        return deliveries


def _invalid(body: Any) -> str | None:
    """Why a send body is not one the Cloud API takes (text or template message), or None."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required and must be whatsapp."
    if not isinstance(body.get("to"), str) or not body["to"].lstrip("+").isdigit():
        return "The parameter to is required and must be a phone number."
    if body.get("type") == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("body"), str) or not text["body"]:
            return "The parameter text['body'] is required."
        if len(text["body"]) > TEXT_LIMIT:
            return f"Param text['body'] must be at most {TEXT_LIMIT} characters long."
        return None
    if body.get("type") == "template":
        template = body.get("template")
        if not isinstance(template, dict) or not template.get("name"):
            return "The parameter template['name'] is required."
        if not isinstance(template.get("language"), dict) or not template["language"].get("code"):
            return "The parameter template['language']['code'] is required."
        return None
    return f"Unsupported message type {body.get('type')!r}."
