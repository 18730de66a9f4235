"""`inbox run` (the installed script) with facebook, instagram, whatsapp and bluesky connectors on local fakes.

Meta-signed webhook deliveries (a Page comment, a Messenger message, an Instagram comment, a WhatsApp text) and a
Bluesky mention in the fake PDS reach Slack once each; Send clicked in Slack (signed interaction payloads to
/slack/events) makes exactly one reply on the platform's own endpoint to the right recipient. A bad signature is
answered 401; the verification handshake echoes the challenge for the right verify token and 403 for a wrong one.
Every wait is on a condition with a generous deadline: the machine may be busy.

The deliveries' shapes are the fakes' recorded payloads (inbox/fakes/data/{facebook,instagram,whatsapp}/SOURCE.md
names where each came from: Meta's webhook reference and examples).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import sqlalchemy as sa

from inbox.fakes import facebook as fb
from inbox.fakes import instagram as ig
from inbox.fakes.bluesky import APP_PASSWORD, HANDLE, BlueskyFake
from inbox.fakes.facebook import FacebookFake
from inbox.fakes.instagram import InstagramFake
from inbox.fakes.meta import GraphFake
from inbox.fakes.slack import FakeSlack
from inbox.fakes.whatsapp import WhatsAppFake
from inbox.slack.blocks import SEND, THREAD_EVENT
from inbox.store.db import create_engine
from inbox.store.models import Item
from tests.processes import AGENT, TRIAGE, InboxProcess, free_port, slack_table, toml_table, until

PSID = "6543210987654321"  # the Messenger customer's page-scoped id
WA_ID = "33612345678"  # the WhatsApp customer's number
POLL_SECONDS = 2
VERIFY_TOKEN = "a-verify-token-chosen-in-the-app-dashboard"
WAIT = 240  # seconds: a ceiling for each condition, generous because the machine is shared (load 12-15 seen)
CLIENT_SECONDS = 60  # an HTTP answer (a delivery is answered once stored) taking longer is taken as never coming
T = TypeVar("T")


class Fakes:
    """The four platforms' fakes and Slack's, started."""

    def __init__(self) -> None:
        self.facebook, self.instagram, self.whatsapp = FacebookFake(), InstagramFake(), WhatsAppFake()
        self.bluesky, self.slack = BlueskyFake(), FakeSlack()

    async def __aenter__(self) -> Fakes:
        for fake in (self.facebook, self.instagram, self.whatsapp, self.bluesky):
            await fake.start()
        await self.slack.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for fake in (self.facebook, self.instagram, self.whatsapp, self.bluesky):
            await fake.close()
        await self.slack.stop()


def meta_connectors(
    facebook: FacebookFake, instagram: InstagramFake, whatsapp: WhatsAppFake, bluesky: BlueskyFake, **polled: Any
) -> list[dict[str, Any]]:
    """The four connectors' tables on their fakes; `polled` (e.g. poll_seconds) for those that poll."""
    return [
        {
            "name": "acme-facebook",
            "type": "facebook",
            "api_url": facebook.base_url,
            "page_id": fb.PAGE_ID,
            "page_access_token": fb.TOKEN,
            "app_secret": facebook.app_secret,
            "verify_token": VERIFY_TOKEN,
            **polled,
        },
        {
            "name": "acme-instagram",
            "type": "instagram",
            "api_url": instagram.base_url,
            "ig_user_id": ig.IG_USER_ID,
            "access_token": ig.TOKEN,
            "app_secret": instagram.app_secret,
            "verify_token": VERIFY_TOKEN,
            **polled,
        },
        {
            "name": "acme-whatsapp",
            "type": "whatsapp",
            "api_url": whatsapp.base_url,
            "phone_number_id": whatsapp.phone_number_id,
            "access_token": whatsapp.token,
            "app_secret": whatsapp.app_secret,
            "verify_token": VERIFY_TOKEN,
        },
        {
            "name": "acme-bluesky",
            "type": "bluesky",
            "api_url": bluesky.base_url,
            "handle": HANDLE,
            "app_password": APP_PASSWORD,
            **polled,
        },
    ]


def write_config(folder: Path, url: str, fakes: Fakes, port: int) -> Path:
    connectors = meta_connectors(
        fakes.facebook, fakes.instagram, fakes.whatsapp, fakes.bluesky, poll_seconds=POLL_SECONDS
    )
    config = folder / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[server]\nhost = "127.0.0.1"\nport = {port}\n'
        + f"[slack]\n{toml_table(slack_table(fakes.slack))}"
        + "".join(f"\n[[connectors]]\n{toml_table(c)}" for c in connectors)
    )
    return config


class Service(InboxProcess):
    """The installed `inbox run`, and what Meta and an agent do to it over HTTP."""

    def __init__(self, config: Path, port: int, log: Path, http: aiohttp.ClientSession) -> None:
        super().__init__(config, port, log, http)
        self.url = f"http://127.0.0.1:{port}"

    async def healthy(self) -> bool:
        try:
            async with self.http.get(f"{self.url}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False  # not listening yet

    async def health(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/healthz") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def handshake(self, name: str, verify_token: str) -> tuple[int, str]:
        query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": verify_token}
        async with self.http.get(f"{self.url}/webhooks/{name}", params=query) as response:
            return response.status, await response.text()

    async def click_send(self, message: dict[str, Any]) -> int:
        return await self.click(message, SEND)


def triage_messages(slack: FakeSlack, text: str) -> list[dict[str, Any]]:
    """Top-level triage messages showing the customer's `text`."""
    return [
        m
        for m in slack.posted(TRIAGE, in_thread=False)
        if (m.get("metadata") or {}).get("event_type") == THREAD_EVENT and text in json.dumps(m["blocks"])
    ]


def has_send(message: dict[str, Any]) -> bool:
    return any(e.get("action_id") == SEND for b in message["blocks"] for e in b.get("elements", []))


async def test_four_platforms_pushed_and_polled_are_answered_once_from_slack(store_url: str, tmp_path: Path) -> None:
    async with Fakes() as fakes, aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_SECONDS)) as http:
        port = free_port()
        service = Service(write_config(tmp_path, store_url, fakes, port), port, tmp_path / "inbox.log", http)
        await service.start()
        try:
            await scenario(service, fakes)
            assert await service.stop() == 0
            text = (tmp_path / "inbox.log").read_text()
            assert "Traceback" not in text, text[-8000:]
        except BaseException:
            print((tmp_path / "inbox.log").read_text()[-20000:])
            raise
        finally:
            await service.stop()
        await stored_once(store_url)


async def scenario(service: Service, fakes: Fakes) -> None:
    await until("the service answers /healthz 200", service.healthy, WAIT)
    facebook, instagram, whatsapp, bluesky = fakes.facebook, fakes.instagram, fakes.whatsapp, fakes.bluesky
    # WhatsApp has nothing to poll, and /healthz says so rather than showing a poller that never ran.
    health = (await service.health())["connectors"]
    assert health["acme-whatsapp"]["polling"].startswith("nothing to poll: ")
    assert health["acme-facebook"]["polling"] == "polled"

    # The subscription check of each Meta callback URL: the challenge echoed, or 403 for a wrong verify token.
    for name in ("acme-facebook", "acme-instagram", "acme-whatsapp"):
        assert await service.handshake(name, VERIFY_TOKEN) == (200, "1158201444")
        status, _ = await service.handshake(name, "not-the-verify-token")
        assert status == 403

    # What the customers write: each text is how the test finds its item in Slack.
    texts = {
        "facebook": "Bonjour, ma commande 4512 est toujours pas livree, que se passe-t-il ?",
        "messenger": "Bonjour, ou en est ma commande 7781 ? Je attends depuis deux semaines.",
        "instagram": "Ma commande 3390 est arrivee cassee, je veux un remboursement",
        "whatsapp": "Salut, ma commande 6620 a du retard, vous pouvez verifier ?",
        "bluesky": "my order 9914 never arrived, can you help?",
    }
    comment = facebook.add_comment(texts["facebook"], author="6543210000000001", name="Camille Martin")
    mid = facebook.add_message(PSID, texts["messenger"], name="Luc Bernard")
    ig_comment = instagram.add_comment(texts["instagram"])
    wamid = whatsapp.add_customer_post(texts["whatsapp"], author=WA_ID)
    mention = bluesky.add_customer_post(texts["bluesky"], author="ana")
    # Written while the webhook was down (never delivered): the poll, the safety net, finds it.
    missed_text = "Personne ne repond sur Messenger, commande 5150 bloquee"
    facebook.add_comment(missed_text, author="6543210000000002", name="Ioana Pop")
    deliveries: list[tuple[GraphFake, str, Any]] = [
        (facebook, "acme-facebook", facebook.comment_delivery(comment)),
        (facebook, "acme-facebook", facebook.message_delivery(mid)),
        (instagram, "acme-instagram", instagram.comment_delivery(ig_comment)),
        *((whatsapp, "acme-whatsapp", d) for d in whatsapp.take_deliveries()),
    ]

    # A delivery signed with another secret, or not signed: 401, nothing stored.
    fake, name, delivery = deliveries[0]
    assert (await fake.deliver(f"{service.url}/webhooks/{name}", delivery, secret="not-the-app-secret-0")).status == 401
    assert (await fake.deliver(f"{service.url}/webhooks/{name}", delivery, signature=None)).status == 401
    for fake, name, delivery in deliveries:
        answer = await fake.deliver(f"{service.url}/webhooks/{name}", delivery)
        assert answer.status == 200, answer.text

    # Each item in Slack once (Facebook's and Instagram's polls find the pushed ones again; Bluesky's finds its own).
    async def all_shown() -> dict[str, dict[str, Any]] | None:
        shown = {key: triage_messages(fakes.slack, text) for key, text in texts.items()}
        ready = all(len(found) == 1 and has_send(found[0]) for found in shown.values())
        # Copies: the fake updates its messages in place, and a second click comes from the message as first drawn.
        return {key: copy.deepcopy(found[0]) for key, found in shown.items()} if ready else None

    messages = await until("each item in Slack with a Send button", all_shown, WAIT)
    await until(
        "the comment never pushed found by a poll", lambda: _async(triage_messages(fakes.slack, missed_text)), WAIT
    )
    # The customers' names: Messenger's from its User Profile API (the event carries only the PSID), WhatsApp's
    # from the delivery's contacts[].profile.name.
    assert "(Luc Bernard)" in json.dumps(messages["messenger"]["blocks"])
    assert f"(Customer {WA_ID[-4:]})" in json.dumps(messages["whatsapp"]["blocks"])

    # Two more poll rounds of Facebook and Instagram read the pushed items again: still one message each.
    def polls() -> tuple[int, int]:
        return (
            len(facebook.calls_to("GET", f"{fb.PAGE_ID}/conversations")),
            len(instagram.calls_to("GET", f"{ig.IG_USER_ID}/conversations")),
        )

    before = polls()
    await until(
        "two more polls of each", lambda: _async(all(n >= b + 2 for n, b in zip(polls(), before, strict=True))), WAIT
    )
    assert (await all_shown()) is not None, "an item pushed and polled is in Slack more than once"
    for message in messages.values():
        assert await service.click_send(message) == 200

    async def all_replied() -> bool:
        counts = [
            len(facebook.replies) >= 2,
            len(instagram.replies) >= 1,
            len(whatsapp.replies) >= 1,
            len(bluesky.replies) >= 1,
        ]
        return all(counts)

    await until("one reply on each platform", all_replied, WAIT)

    # Sent state drawn in Slack for each (the Send button gone): the send is recorded, not pending.
    async def all_marked_sent() -> bool:
        return all((found := triage_messages(fakes.slack, text)) and not has_send(found[0]) for text in texts.values())

    await until("each Slack message shows its reply as sent", all_marked_sent, WAIT)

    # Clicking Send again on the message as first drawn (a double click): nothing more goes out, the agent is told.
    def told() -> list[str]:
        return [c.get("text", "") for c in fakes.slack.called("chat.postEphemeral") if c.get("user") == AGENT]

    told_before = len(told())
    for message in messages.values():
        assert await service.click_send(message) == 200

    async def told_twice() -> bool:
        return len(told()) >= told_before + len(messages)

    await until("the agent told about each second click", told_twice, WAIT)

    # WhatsApp reports the reply failed (its `statuses` webhook): the agent is told in the Slack thread.
    [sent] = whatsapp.replies
    failed = whatsapp.envelope([whatsapp.status_change(sent.details["id"], "failed", WA_ID, error=131026)])
    assert (await whatsapp.deliver(f"{service.url}/webhooks/acme-whatsapp", failed)).status == 200

    async def failure_shown() -> bool:
        thread = fakes.slack.posted(TRIAGE, in_thread=True)
        return any("did not deliver your reply" in json.dumps(m.get("blocks")) for m in thread)

    await until("the failed WhatsApp reply shown in Slack", failure_shown, WAIT)

    # Exactly one reply each, on the right endpoint, to the right recipient.
    replies = {(r.target, r.details["path"]) for r in facebook.replies}
    assert len(facebook.replies) == 2, facebook.replies
    assert (comment, f"/{fb.API_VERSION}/{comment}/comments") in replies
    assert (PSID, f"/{fb.API_VERSION}/{fb.PAGE_ID}/messages") in replies
    assert [(s["recipient"], s["messaging_type"]) for s in facebook.sends] == [({"id": PSID}, "RESPONSE")]
    assert [(r.target, r.details["path"]) for r in instagram.replies] == [
        (ig_comment, f"/{fb.API_VERSION}/{ig_comment}/replies")
    ]
    assert [(r.target, r.details["to"], r.details["type"]) for r in whatsapp.replies] == [(wamid, WA_ID, "text")]
    assert [(r.target, r.details["root"]) for r in bluesky.replies] == [(mention, mention)]
    # Every Slack message still there once.
    for text in texts.values():
        assert len(triage_messages(fakes.slack, text)) == 1


async def stored_once(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(Item.connector, Item.external_id))).all()
    finally:
        await engine.dispose()
    assert len(rows) == len(set(rows)) == 6, rows
    assert sorted(connector for connector, _ in rows) == [
        "acme-bluesky",
        "acme-facebook",
        "acme-facebook",
        "acme-facebook",
        "acme-instagram",
        "acme-whatsapp",
    ]


async def _async(value: T) -> T:
    return value
