"""A local Instagram Graph API for one professional account: media and their comments (with replies), comment
replies, mentioned comments, conversations and the Send API (windows, private replies). Webhook deliveries are built
from the recorded payloads in data/instagram/ (SOURCE.md there says where each shape came from)."""

from __future__ import annotations

import copy
import re
from datetime import timedelta
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.data import payload
from inbox.fakes.facebook import MessengerFake, graph_time, refused
from inbox.fakes.meta import API_VERSION
from inbox.fakes.vendor import SentReply

IG_USER_ID = "17841405309211844"
USERNAME = "acme.store"
TOKEN = "fake-instagram-token-0123456789"
APP_SECRET = "fake-ig-app-secret-0123456789"
VERIFY_TOKEN = "fake-ig-verify-token-0123456789"
MEDIA_ID = "17920112008063024"
_MENTIONED = re.compile(r"mentioned_comment\.comment_id\((\w+)\)")


class InstagramFake(MessengerFake):
    """A professional account with one media (more with `add_media`), its comments, DMs and mentions."""

    account_id: ClassVar[str] = IG_USER_ID
    account_name: ClassVar[str] = USERNAME
    platform: ClassVar[str] = "instagram"
    platform_vendor: ClassVar[str] = "instagram"
    window_error: ClassVar[str] = "instagram_error_outside_window.json"
    page_size: ClassVar[int] = 25
    fetch_paths: ClassVar[tuple[str, ...]] = (f"/{API_VERSION}/{IG_USER_ID}/media",)
    check_paths: ClassVar[tuple[str, ...]] = (f"/{API_VERSION}/{IG_USER_ID}",)

    def __init__(self) -> None:
        super().__init__(token=TOKEN, app_secret=APP_SECRET)
        self.media: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.mentioned: dict[str, dict[str, Any]] = {}  # comments of other accounts' media that mention us
        self.media_id = self.add_media(MEDIA_ID, days_ago=1)

    def graph_routes(self, app: web.Application) -> None:
        """The account, its media, comments, replies, mentions, conversations and the Send API."""
        self.route(app, "GET", f"/{IG_USER_ID}", self._account)
        self.route(app, "GET", f"/{IG_USER_ID}/media", self._media)
        self.route(app, "POST", f"/{IG_USER_ID}/mentions", self._answer_mention)
        self.messaging_routes(app)
        self.route(app, "GET", "/{media}/comments", self._comments)
        self.route(app, "GET", "/{comment}/replies", self._replies)
        self.route(app, "POST", "/{comment}/replies", self._reply)

    # -- seeding ----------------------------------------------------------------------------------------------------

    def add_media(self, media_id: str | None = None, *, days_ago: float = 0) -> str:
        """A post of the account."""
        media = {"id": media_id or self.next_id(), "timestamp": self.current() - timedelta(days=days_ago)}
        self.media.append(media)
        return str(media["id"])

    def add_comment(
        self,
        text: str,
        *,
        username: str = "camille.mtn",
        user_id: str | None = None,
        minutes_ago: float = 1,
        reply_to: str | None = None,
        **extra: Any,
    ) -> str:
        """A comment on the media (a reply under the top-level comment when `reply_to` names a comment)."""
        parent = next((c for c in self.comments if c["id"] == reply_to), None)
        comment = {
            "id": str(17865799348089039 + self.sequence),
            "text": text,
            "timestamp": self.current() - timedelta(minutes=minutes_ago),
            "from": {
                "id": user_id or self.people.setdefault(username, str(1234567890123456 + len(self.people))),
                "username": username,
            },
            "username": username,
            "parent_id": (parent["parent_id"] or parent["id"]) if parent else None,
            "media": parent["media"] if parent else self.media_id,
            **extra,
        }
        self.sequence += 1
        self.comments.append(comment)
        return str(comment["id"])

    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A customer's comment on the account's media."""
        return self.add_comment(text, username=author, minutes_ago=minutes_ago, reply_to=reply_to)

    def add_brand_post(self, text: str) -> list[str]:
        """The account's own comment: never an item."""
        return [self.add_comment(text, username=USERNAME, user_id=IG_USER_ID)]

    def add_existing_reply(self, target: str, text: str) -> None:
        """The account's reply under a comment, as if sent before a crash."""
        self.add_comment(text, username=USERNAME, user_id=IG_USER_ID, minutes_ago=0, reply_to=target)

    def add_broken_item(self) -> None:
        """A comment without a timestamp."""
        self.add_comment("broken", minutes_ago=2, broken=True)

    def add_mention(self, text: str, *, username: str = "ioana.pop", minutes_ago: float = 1) -> tuple[str, str]:
        """A comment on another account's media that @mentions us: (comment id, media id)."""
        comment_id, media_id = str(17894227972186120 + self.sequence), str(17918195224117851 + self.sequence)
        self.sequence += 1
        at = self.current() - timedelta(minutes=minutes_ago)
        self.mentioned[comment_id] = {
            "id": comment_id,
            "text": text,
            "timestamp": graph_time(at),
            "username": username,
            "from": {
                "id": self.people.setdefault(username, str(1234567890123456 + len(self.people))),
                "username": username,
            },
            "media_id": media_id,
        }
        return comment_id, media_id

    def comment_delivery(self, comment_id: str) -> dict[str, Any]:
        """The `comments` webhook delivery of a stored comment (instagram_comment.json, values replaced)."""
        comment = next(c for c in self.comments if c["id"] == comment_id)
        delivery: dict[str, Any] = copy.deepcopy(payload("instagram", "instagram_comment.json"))
        entry = delivery["entry"][0]
        entry["id"], entry["time"] = IG_USER_ID, int(comment["timestamp"].timestamp())
        value = entry["changes"][0]["value"]
        value.update(id=comment["id"], text=comment["text"], **{"from": comment["from"]})
        value["media"]["id"] = comment["media"]
        if comment["parent_id"]:
            value["parent_id"] = comment["parent_id"]
        return delivery

    def mention_delivery(self, comment_id: str) -> dict[str, Any]:
        """The `mentions` webhook delivery (instagram_mention.json, ids replaced)."""
        delivery: dict[str, Any] = copy.deepcopy(payload("instagram", "instagram_mention.json"))
        delivery["entry"][0]["id"] = IG_USER_ID
        delivery["entry"][0]["changes"][0]["value"] = {
            "comment_id": comment_id,
            "media_id": self.mentioned[comment_id]["media_id"],
        }
        return delivery

    def comment_for_private_reply(self, comment_id: str) -> dict[str, Any] | None:
        """A stored comment, with the time the Send API checks."""
        found = next((c for c in self.comments if c["id"] == comment_id), None)
        return {**found, "created_time": found["timestamp"]} if found else None

    # -- routes -----------------------------------------------------------------------------------------------------

    def _render(self, comment: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in comment.items() if k not in ("media", "broken", "timestamp")}
        if not comment.get("broken"):
            shown["timestamp"] = graph_time(comment["timestamp"])
        if not shown["parent_id"]:
            del shown["parent_id"]
        return shown

    async def _account(self, request: web.Request) -> web.Response:
        match = _MENTIONED.search(request.query.get("fields", ""))
        if match:
            found = self.mentioned.get(match.group(1))
            if found is None:
                return refused(100, "(#100) Invalid comment_id")
            return web.json_response({"id": IG_USER_ID, "mentioned_comment": found})
        return web.json_response({"id": IG_USER_ID, "username": USERNAME})

    async def _media(self, request: web.Request) -> web.Response:
        media = sorted(self.media, key=lambda m: m["timestamp"], reverse=True)
        shown = [
            {"id": m["id"], "timestamp": graph_time(m["timestamp"]), "comments_count": self._count(m["id"])}
            for m in media
        ]
        return self.list_page(request, shown)

    def _count(self, media: str) -> int:
        return sum(1 for c in self.comments if c["media"] == media)

    async def _comments(self, request: web.Request) -> web.Response:
        media = request.match_info["media"]
        if not any(m["id"] == media for m in self.media):
            return refused(100, f"(#100) Object with ID '{media}' does not exist", 33)
        top = [c for c in self.comments if c["media"] == media and c["parent_id"] is None]
        shown = []
        for comment in sorted(top, key=lambda c: c["timestamp"], reverse=True):
            rendered = self._render(comment)
            if "replies" in request.query.get("fields", ""):
                replies = [self._render(c) for c in self.comments if c["parent_id"] == comment["id"]]
                rendered["replies"] = {"data": replies}
            shown.append(rendered)
        return self.list_page(request, shown)

    async def _replies(self, request: web.Request) -> web.Response:
        parent = request.match_info["comment"]
        return self.list_page(request, [self._render(c) for c in self.comments if c["parent_id"] == parent])

    async def _reply(self, request: web.Request) -> web.Response:
        target = request.match_info["comment"]
        body = await request.json() if request.content_type == "application/json" else dict(await request.post())
        text = body.get("message") or request.query.get("message")
        if not any(c["id"] == target for c in self.comments) or not isinstance(text, str) or not text:
            return refused(100, f"(#100) Object with ID '{target}' does not exist", 33)
        reply = self.add_comment(text, username=USERNAME, user_id=IG_USER_ID, minutes_ago=0, reply_to=target)
        self.replies.append(SentReply(target, text, {"path": request.path, "id": reply}))
        return web.json_response({"id": reply})

    async def _answer_mention(self, request: web.Request) -> web.Response:
        body = await request.json() if request.content_type == "application/json" else dict(await request.post())
        comment, text = str(body.get("comment_id")), body.get("message")
        if comment not in self.mentioned or str(body.get("media_id")) != self.mentioned[comment]["media_id"]:
            return refused(100, "(#100) Invalid comment_id or media_id")
        self.replies.append(SentReply(comment, str(text), {"path": request.path, "media_id": body.get("media_id")}))
        return web.json_response({"id": self.next_id()})
