"""`whatsapp`: a WhatsApp Business phone number on the Cloud API; messages arrive by webhook only, replies are
text inside the 24-hour customer-service window and an approved template after it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError

from inbox.connector import (
    Clock,
    Delivery,
    DeliveryState,
    Kind,
    PermanentError,
    Push,
    RawItem,
    ReplyTarget,
    SentReply,
    wall_clock,
)
from inbox.connectors.kit.meta import GRAPH_URL, Envelope, MetaReceiver, MetaSettings, described, field_values
from inbox.connectors.kit.parse import (
    Entries,
    EpochText,
    IfObject,
    OptionalId,
    OptionalText,
    Payload,
    fitting,
    or_empty,
    problem,
)
from inbox.connectors.kit.push import NoCursor, PushOnly
from inbox.connectors.kit.windows import by_language, window_closes_at

log = logging.getLogger(__name__)

PERMISSION = "whatsapp_business_messaging"
_MEDIA = ("image", "video", "audio", "document", "sticker")
# Not a customer's words: a reaction, a number change, a message type WhatsApp cannot show us.
_IGNORED = frozenset({"reaction", "system", "unsupported", "ephemeral", "request_welcome"})


class WhatsAppSettings(MetaSettings):
    """The phone number, a token with whatsapp_business_messaging, and the approved templates for a closed window."""

    type: str = "whatsapp"
    phone_number_id: str = Field(min_length=1, pattern=r"^[^/?#\s]+$")  # digits on Meta; one path segment
    access_token: SecretStr
    # Language (as triage names it: "fr", or Meta's code: "en_US") → the name of an approved template in it.
    templates: dict[str, str] = Field(default_factory=dict)
    # The template's body has one parameter ({{1}}) that takes the agent's text; otherwise it is sent as approved.
    template_text_parameter: bool = False


class _Metadata(Payload):
    phone_number_id: OptionalId = None
    display_phone_number: OptionalText = None


class _Profile(Payload):
    name: OptionalText = None


class _Contact(Payload):
    wa_id: OptionalId = None
    profile: Annotated[_Profile | None, IfObject] = None


class _Value(Payload):
    metadata: Annotated[_Metadata, IfObject] = Field(default_factory=_Metadata)
    contacts: Entries = Field(default_factory=list)
    messages: Entries = Field(default_factory=list)
    statuses: Entries = Field(default_factory=list)
    errors: Entries = Field(default_factory=list)


class _Media(Payload):
    id: OptionalId = None
    caption: OptionalText = None
    mime_type: OptionalText = None
    filename: OptionalText = None


class _Message(Payload):
    id: str = Field(min_length=1)
    sender: str = Field(alias="from", min_length=1)
    timestamp: EpochText
    type: str = Field(min_length=1)
    text: Annotated[dict[str, Any] | None, IfObject] = None
    location: Annotated[dict[str, Any] | None, IfObject] = None
    button: Annotated[dict[str, Any] | None, IfObject] = None
    interactive: Annotated[dict[str, Any] | None, IfObject] = None
    image: Annotated[_Media | None, IfObject] = None
    video: Annotated[_Media | None, IfObject] = None
    audio: Annotated[_Media | None, IfObject] = None
    document: Annotated[_Media | None, IfObject] = None
    sticker: Annotated[_Media | None, IfObject] = None


class _Status(Payload):
    id: str = Field(min_length=1)
    status: str
    timestamp: EpochText
    recipient_id: OptionalId = None
    errors: Entries = Field(default_factory=list)


class _SendAnswer(Payload):
    messages: Entries = Field(default_factory=list)


class _PhoneNumber(Payload):
    display_phone_number: OptionalText = None
    verified_name: OptionalText = None


class WhatsAppConnector(PushOnly[WhatsAppSettings, NoCursor], MetaReceiver[WhatsAppSettings]):
    """Receives a phone number's messages and statuses by webhook, replies with text or an approved template."""

    type = "whatsapp"
    no_polling = "the WhatsApp Cloud API has no endpoint that lists received messages; they arrive only by webhook"

    def __init__(self, settings: WhatsAppSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.graph = self.make_graph(settings.api_url or GRAPH_URL, settings.access_token)

    # --- webhooks -----------------------------------------------------------------------------------------------

    def read(self, delivery: Envelope) -> Push:
        """Customers' messages as items, our replies' statuses as deliveries; other numbers and fields are ignored."""
        push = Push(label="messages")
        position = 0
        for value in field_values(delivery, "messages", _Value, self.name):
            if value.metadata.phone_number_id not in (None, self.settings.phone_number_id):
                log.warning(
                    "%s: ignored a delivery for another phone number (%s): give that number its own callback URL",
                    self.name,
                    value.metadata.phone_number_id,
                )
                continue
            names = _names(value.contacts)
            for message in value.messages:
                self._message(push, position, message, names)
                position += 1
            push.deliveries += self._statuses(value.statuses)
            for error in value.errors:
                log.warning("%s: WhatsApp reports %s", self.name, described(error, "WhatsApp"))
        return push

    def _message(self, push: Push, position: int, entry: Any, names: dict[str, str]) -> None:
        try:
            message = _Message.model_validate(entry)
        except ValidationError as exc:
            push.refused[position] = problem(exc)
            log.warning("%s: skipped a message: %s", self.name, problem(exc))
            return
        if message.type in _IGNORED:
            log.debug("%s: ignored a %s message", self.name, message.type)
            return
        text, url = self._content(message)
        push.add(
            RawItem(
                external_id=message.id,
                text=text,
                posted_at=message.timestamp,
                kind=Kind.DM,
                author_handle=message.sender,
                author_name=names.get(message.sender),
                thread_id=message.sender,  # one conversation per customer's number, as in the WhatsApp app
                url=url,
                reply_to={"to": message.sender, "message_id": message.id, "at": int(message.timestamp.timestamp())},
            ),
            position,
        )

    def _content(self, message: _Message) -> tuple[str, str | None]:
        """The text an agent reads, and a link to the media when there is one."""
        if message.text is not None and isinstance(body := message.text.get("body"), str):
            return body, None
        media = getattr(message, message.type, None) if message.type in _MEDIA else None
        if isinstance(media, _Media):
            # Meta gives media as an id; its download URL is short-lived and needs the token, so the link is the
            # Graph media object (GET it with the token for the current URL).
            url = f"{self.graph.base_url}/{self.settings.api_version}/{quote(media.id)}" if media.id else None
            label = f"[{message.type}{': ' + media.filename if media.filename else ''}]"
            return (f"{media.caption}\n{label}" if media.caption else label), url
        if message.location is not None:
            where = " ".join(str(message.location.get(k)) for k in ("name", "address") if message.location.get(k))
            lat, lon = message.location.get("latitude"), message.location.get("longitude")
            link = (
                f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}" if lat is not None and lon is not None else None
            )
            return f"[location] {where}".strip(), link
        if message.button is not None and isinstance(pressed := message.button.get("text"), str):
            return pressed, None
        if message.interactive is not None:
            for key in ("button_reply", "list_reply"):
                chosen = message.interactive.get(key)
                if isinstance(chosen, dict) and isinstance(title := chosen.get("title"), str):
                    return title, None
        return f"[{message.type} message: open WhatsApp to see it]", None

    def _statuses(self, entries: list[Any]) -> list[Delivery]:
        found: list[Delivery] = []
        for entry in entries:
            try:
                status = _Status.model_validate(entry)
                state = DeliveryState(status.status)
            except (ValidationError, ValueError) as exc:
                why = problem(exc) if isinstance(exc, ValidationError) else str(exc)
                log.warning("%s: skipped a message status: %s", self.name, why)
                continue
            error = "; ".join(described(e, "WhatsApp") for e in status.errors) or None
            found.append(Delivery(status.id, state, status.timestamp, error))
        return found

    # --- replies ------------------------------------------------------------------------------------------------

    def window_closes_at(self, target: ReplyTarget) -> datetime | None:
        """When the 24-hour customer-service window of the customer's last message closes (None: unknown)."""
        return window_closes_at(target, self.channel, target.reply_to.get("at"))

    def window_open(self, target: ReplyTarget) -> bool:
        """True while free text may be sent."""
        closes = self.window_closes_at(target)
        return closes is None or self.clock() < closes

    def template_for(self, language: str | None) -> tuple[str, str] | None:
        """(template name, Meta language code) for the customer's language."""
        return by_language(self.settings.templates, language)

    def after_window(self, kind: Kind, language: str) -> str | None:
        """After the 24-hour window only an approved template goes out: the one for the customer's language, if any."""
        template = self.template_for(language)
        if template is None:
            return None  # the inbox refuses the send and says why
        return f"The 24-hour WhatsApp window closed: Send delivers the approved template “{template[0]}” ({template[1]}) instead of this text."

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Text inside the window; the configured template for the customer's language after it."""
        to = str(target.reply_to.get("to") or target.author_handle)
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
        if self.window_open(target):
            body |= {"type": "text", "text": {"preview_url": False, "body": text}}
        else:
            template = self.template_for(target.language)
            if template is None:
                # Refused here: WhatsApp would accept the text and report it failed (131047) a moment later.
                configured = ", ".join(sorted(self.settings.templates)) or "none"
                raise PermanentError(
                    f"the 24-hour WhatsApp window closed at {self.window_closes_at(target):%d %b %H:%M} UTC and only an "
                    f"approved template may be sent now; none is configured for language "
                    f"{target.language or '(unknown)'} (templates configured: {configured}). Add one under `templates` "
                    "or wait for the customer to write again."
                )
            name, code = template
            body |= {"type": "template", "template": {"name": name, "language": {"code": code}}}
            if self.settings.template_text_parameter:
                parameter = {"type": "text", "text": " ".join(text.split())}  # template parameters take no newlines
                body["template"]["components"] = [{"type": "body", "parameters": [parameter]}]
        answer = await self.graph.call(
            "POST", f"/{self.settings.phone_number_id}/messages", json_body=body, needs=PERMISSION
        )
        # A 2xx is Meta's acceptance; the message id (for its statuses) is read when the answer has it.
        sent = or_empty(_SendAnswer, answer)
        first = sent.messages[0] if sent.messages and isinstance(sent.messages[0], dict) else {}
        message_id = first.get("id")
        if not message_id:
            log.warning(
                "%s: WhatsApp accepted a message without giving its id: its statuses cannot be followed", self.name
            )
        return SentReply(str(message_id) if message_id else None)

    async def check(self) -> str:
        """Read the phone number: proves the token and its access to the number."""
        data = await self.graph.call(
            "GET",
            f"/{self.settings.phone_number_id}",
            params={"fields": "display_phone_number,verified_name"},
            needs=PERMISSION,
        )
        number = or_empty(_PhoneNumber, data)
        shown = (
            " ".join(filter(None, (number.verified_name, number.display_phone_number))) or self.settings.phone_number_id
        )
        return f"WhatsApp number {shown}: token accepted; messages arrive by webhook only (nothing to poll)"


def _names(contacts: list[Any]) -> dict[str, str]:
    found = fitting(_Contact, contacts)
    return {c.wa_id: c.profile.name for c in found if c.wa_id and c.profile is not None and c.profile.name}
