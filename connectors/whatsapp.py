"""`whatsapp`: a WhatsApp Business phone number on the Cloud API; messages arrive by webhook only, replies are
text inside the 24-hour customer-service window and an approved template after it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, ValidationError

from inbox.connector import (
    CHANNELS,
    Clock,
    Connector,
    Delivery,
    DeliveryState,
    Kind,
    Page,
    PermanentError,
    Push,
    RawItem,
    ReplyTarget,
    SentReply,
    wall_clock,
)
from inbox.connectors.kit.meta import GRAPH_URL, Envelope, GraphClient, MetaReceiver, MetaSettings
from inbox.connectors.kit.parse import Entries, IfObject, OptionalId, OptionalText, Payload, problem

log = logging.getLogger(__name__)

PERMISSION = "whatsapp_business_messaging"
WINDOW = CHANNELS["whatsapp"].reply_windows[Kind.DM].standard
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


class WhatsAppCursor(BaseModel):
    """Nothing to poll: no cursor."""


def _epoch_text(value: Any) -> Any:
    # WhatsApp sends epoch seconds as a string ("1504902988").
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected epoch seconds, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"time {value!r} is out of range") from exc


EpochText = Annotated[datetime, BeforeValidator(_epoch_text)]


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


class _Error(Payload):
    code: int | None = None
    title: OptionalText = None
    message: OptionalText = None
    error_data: Annotated[dict[str, Any] | None, IfObject] = None

    def describe(self) -> str:
        details = (self.error_data or {}).get("details")
        words = self.message or self.title or "no reason given"
        if isinstance(details, str) and details and details != words:
            words = f"{words}: {details}"
        return f"WhatsApp error {self.code}: {words}" if self.code is not None else words


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


class WhatsAppConnector(Connector[WhatsAppSettings, WhatsAppCursor], MetaReceiver[WhatsAppSettings]):
    """Receives a phone number's messages and statuses by webhook, replies with text or an approved template."""

    type = "whatsapp"
    max_reply_chars = CHANNELS["whatsapp"].reply_limit  # a text body's limit
    pushes = True
    no_polling = "the WhatsApp Cloud API has no endpoint that lists received messages; they arrive only by webhook"

    def __init__(self, settings: WhatsAppSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.graph = GraphClient(
            self.name,
            settings.api_url or GRAPH_URL,
            settings.api_version,
            settings.access_token,
            clock=lambda: self.clock().timestamp(),
        )

    # --- webhooks -----------------------------------------------------------------------------------------------

    def read(self, delivery: Envelope) -> Push:
        """Customers' messages as items, our replies' statuses as deliveries; other numbers and fields are ignored."""
        push = Push(label="messages")
        position = 0
        for entry in delivery.entry:
            for raw in entry.changes:
                if not isinstance(raw, dict) or raw.get("field") != "messages":
                    # smb_message_echoes (sent from the WhatsApp Business app), account updates, ...: not items.
                    continue
                try:
                    value = _Value.model_validate(raw.get("value"))
                except ValidationError as exc:
                    log.warning("%s: skipped a change whose value is not readable: %s", self.name, problem(exc))
                    continue
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
                    log.warning("%s: WhatsApp reports %s", self.name, _error_text(error))
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
            error = "; ".join(_error_text(e) for e in status.errors) or None
            found.append(Delivery(status.id, state, status.timestamp, error))
        return found

    async def fetch(self, cursor: WhatsAppCursor | None) -> AsyncIterator[Page[WhatsAppCursor]]:
        """Nothing to poll: the Cloud API only pushes."""
        pages: tuple[Page[WhatsAppCursor], ...] = ()
        for page in pages:  # none: the loop only makes this an async generator
            yield page

    # --- replies ------------------------------------------------------------------------------------------------

    def window_closes_at(self, target: ReplyTarget) -> datetime | None:
        """When the 24-hour customer-service window of the customer's last message closes (None: unknown)."""
        if target.window_closes_at is not None:  # the core's: moved by each later message of the customer
            return target.window_closes_at
        at = target.reply_to.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float):
            return None
        return datetime.fromtimestamp(at, UTC) + WINDOW

    def window_open(self, target: ReplyTarget) -> bool:
        """True while free text may be sent."""
        closes = self.window_closes_at(target)
        return closes is None or self.clock() < closes

    def template_for(self, language: str | None) -> tuple[str, str] | None:
        """(template name, Meta language code) for the customer's language: its own key ("fr"), else a regional
        one of it ("en_US" for "en")."""
        templates = self.settings.templates
        if not language:
            return None
        if language in templates:
            return templates[language], language
        base = language.split("_")[0].split("-")[0].lower()
        for code, name in sorted(templates.items()):
            if code.split("_")[0].lower() == base:
                return name, code
        return None

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
        sent = _SendAnswer.model_validate(answer) if isinstance(answer, dict) else _SendAnswer()
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
        number = _PhoneNumber.model_validate(data) if isinstance(data, dict) else _PhoneNumber()
        shown = (
            " ".join(filter(None, (number.verified_name, number.display_phone_number))) or self.settings.phone_number_id
        )
        return f"WhatsApp number {shown}: token accepted; messages arrive by webhook only (nothing to poll)"

    async def close(self) -> None:
        """Close the Graph session."""
        await self.graph.close()


def _names(contacts: list[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for entry in contacts:
        try:
            contact = _Contact.model_validate(entry)
        except ValidationError:
            continue
        if contact.wa_id and contact.profile is not None and contact.profile.name:
            names[contact.wa_id] = contact.profile.name
    return names


def _error_text(entry: Any) -> str:
    try:
        return str(_Error.model_validate(entry).describe())
    except ValidationError:
        return "an error WhatsApp did not describe"
