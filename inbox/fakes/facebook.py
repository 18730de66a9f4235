"""A local Graph API for one Facebook Page: posts and their comments (filter, since, cursors), comment replies,
Messenger conversations, and the Send API with Meta's windows (24 h RESPONSE, 7 days HUMAN_AGENT) and private
replies (one per comment, within 7 days). Webhook deliveries are built from the recorded payloads in
data/facebook/ (SOURCE.md there says where each shape came from) and signed as Meta signs them."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.data import payload
from inbox.fakes.meta import API_VERSION, GraphFake, graph_error_body
from inbox.fakes.vendor import SentReply

PAGE_ID = "448242228374517"
PAGE_NAME = "Acme Store"
TOKEN = "fake-page-token-0123456789"
APP_SECRET = "fake-app-secret-0123456789"
VERIFY_TOKEN = "fake-verify-token-0123456789"
POST_SUFFIX = "122131676912594941"
DAY = timedelta(days=1)
_LIMIT = re.compile(r"messages\.limit\((\d+)\)")


def graph_time(moment: datetime) -> str:
    """Graph's time format: `2025-03-22T18:20:04+0000`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def refused(code: int, message: str, subcode: int | None = None, status: int = 400) -> web.Response:
    """A Graph error answer."""
    return web.Response(
        status=status, text=graph_error_body(code, message, subcode=subcode), content_type="application/json"
    )


class MessengerFake(GraphFake):
    """Conversations and the Send API of one account (a Page, or an Instagram account): shared by both fakes."""

    account_id: ClassVar[str] = PAGE_ID
    account_name: ClassVar[str] = PAGE_NAME
    platform: ClassVar[str] = "messenger"
    # The answer to a send outside the window (a recorded payload of the platform's folder).
    platform_vendor: ClassVar[str] = "facebook"
    window_error: ClassVar[str] = "messenger_error_outside_window.json"

    def __init__(self, *, token: str = TOKEN, app_secret: str = APP_SECRET) -> None:
        super().__init__(token=token, app_secret=app_secret)
        self.clock: Callable[[], datetime] | None = None  # tests that move time point this at their clock
        self.conversations: dict[str, list[dict[str, Any]]] = {}  # customer id -> messages, oldest first
        self.sends: list[dict[str, Any]] = []  # Send API bodies taken
        self.private_replied: set[str] = set()
        self.sequence = 0
        self.people: dict[str, str] = {}  # a test's author name -> the id the platform gives them

    def current(self) -> datetime:
        """The fake's time: the test's clock when given."""
        return self.clock() if self.clock is not None else self.now

    def next_id(self) -> str:
        """A fresh numeric id."""
        self.sequence += 1
        return str(1213590067000000 + self.sequence)

    def messaging_routes(self, app: web.Application) -> None:
        """Conversations and the Send API."""
        self.route(app, "GET", f"/{self.account_id}/conversations", self._conversations)
        self.route(app, "GET", "/t_{customer}/messages", self._conversation_messages)
        for who in (self.account_id, "me"):
            self.route(app, "POST", f"/{who}/messages", self._send)
        self.route(app, "GET", "/{user}", self._profile)  # registered after the account's own path

    async def _profile(self, request: web.Request) -> web.Response:
        """A DM sender's profile: Messenger's User Profile API (first_name, last_name), or Instagram's (name,
        username), for someone who wrote to the account."""
        user = request.match_info["user"]
        sent = [m for m in self.conversations.get(user, []) if m["from"]["id"] == user]
        if not sent:
            return refused(100, f"(#100) Object with ID '{user}' does not exist", 33)
        name = str(sent[0]["from"].get("name") or "")
        if self.platform == "messenger":
            first, _, last = name.partition(" ")
            return web.json_response({"first_name": first, "last_name": last, "id": user})
        return web.json_response({"name": name, "username": name.lower().replace(" ", "."), "id": user})

    # -- seeding ----------------------------------------------------------------------------------------------------

    def add_message(self, customer: str, text: str, *, minutes_ago: float = 1, name: str = "Camille Martin") -> str:
        """A customer's message; returns its mid (the same id the webhook and the conversations edge give)."""
        mid = f"m_{self.next_id()}"
        at = self.current() - timedelta(minutes=minutes_ago)
        message = {"id": mid, "message": text, "created_time": at, "from": {"id": customer, "name": name}}
        self.conversations.setdefault(customer, []).append(message)
        self.conversations[customer].sort(key=lambda m: m["created_time"])
        return mid

    def message_delivery(self, mid: str) -> dict[str, Any]:
        """The `messages` webhook delivery of a stored customer message (messenger_message.json, ids replaced)."""
        customer, message = next((c, m) for c, ms in self.conversations.items() for m in ms if m["id"] == mid)
        delivery: dict[str, Any] = copy.deepcopy(payload("facebook", "messenger_message.json"))
        entry = delivery["entry"][0]
        entry["id"], entry["time"] = self.account_id, int(self.current().timestamp() * 1000)
        event = entry["messaging"][0]
        event["sender"], event["recipient"] = {"id": customer}, {"id": self.account_id}
        event["timestamp"] = int(message["created_time"].timestamp() * 1000)
        event["message"] = {"mid": mid, "text": message["message"]}
        delivery["object"] = "page" if self.platform == "messenger" else "instagram"
        return delivery

    def echo_delivery(self, customer: str, text: str) -> dict[str, Any]:
        """The echo of a message the account sent (messenger_echo.json, ids replaced)."""
        delivery: dict[str, Any] = copy.deepcopy(payload("facebook", "messenger_echo.json"))
        entry = delivery["entry"][0]
        entry["id"] = self.account_id
        event = entry["messaging"][0]
        event["sender"], event["recipient"] = {"id": self.account_id}, {"id": customer}
        event["timestamp"] = int(self.current().timestamp() * 1000)
        event["message"].update(mid=f"m_{self.next_id()}", text=text)
        delivery["object"] = "page" if self.platform == "messenger" else "instagram"
        return delivery

    # -- conversations ----------------------------------------------------------------------------------------------

    def _conversation(self, customer: str, limit: int) -> dict[str, Any]:
        messages = list(reversed(self.conversations[customer]))  # newest first, as Graph lists them
        page = [self._message(m) for m in messages[:limit]]
        listed: dict[str, Any] = {"data": page}
        if len(messages) > limit:
            base = self.version_path(f"t_{customer}/messages")
            listed["paging"] = {"next": f"{self.base_url}{base}?limit={limit}&after={limit}"}
        return {"id": f"t_{customer}", "updated_time": graph_time(messages[0]["created_time"]), "messages": listed}

    def _message(self, message: dict[str, Any]) -> dict[str, Any]:
        return {**message, "created_time": graph_time(message["created_time"])}

    async def _conversations(self, request: web.Request) -> web.Response:
        if request.query.get("platform") != self.platform:
            return refused(100, f"(#100) platform must be {self.platform}")
        match = _LIMIT.search(request.query.get("fields", ""))
        limit = int(match.group(1)) if match else 25
        customers = [c for c in self.conversations if request.query.get("user_id") in (None, c)]
        customers.sort(key=lambda c: self.conversations[c][-1]["created_time"], reverse=True)
        return self.list_page(request, [self._conversation(c, limit) for c in customers])

    async def _conversation_messages(self, request: web.Request) -> web.Response:
        messages = list(reversed(self.conversations.get(request.match_info["customer"], [])))
        return self.list_page(request, [self._message(m) for m in messages])

    # -- the Send API -----------------------------------------------------------------------------------------------

    def comment_for_private_reply(self, comment_id: str) -> dict[str, Any] | None:
        """The customer comment a private reply answers (the subclass's comments)."""
        return None

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        recipient, text = body.get("recipient") or {}, (body.get("message") or {}).get("text")
        if not isinstance(text, str) or not text or len(text) >= 2000:
            return refused(100, "(#100) message.text must be UTF-8 text under 2000 characters")
        now = self.current()
        if "comment_id" in recipient:
            comment = self.comment_for_private_reply(str(recipient["comment_id"]))
            if comment is None or comment["from"]["id"] == self.account_id:
                return refused(100, "(#100) No matching comment to reply to privately")
            if comment["id"] in self.private_replied:
                return refused(10, "(#10) This comment has already been replied to privately", 2018278)
            if now - comment["created_time"] > 7 * DAY:
                return refused(10, "(#10) This message is sent outside of allowed window.", 2018278)
            self.private_replied.add(comment["id"])
            customer, target = comment["from"]["id"], comment["id"]
        else:
            customer = str(recipient.get("id"))
            if customer not in self.conversations:
                return refused(100, "(#100) No matching user found", 2018001)
            kind, tag = body.get("messaging_type"), body.get("tag")
            if kind not in ("RESPONSE", "UPDATE", "MESSAGE_TAG") or (kind == "MESSAGE_TAG") != (tag is not None):
                return refused(100, "(#100) messaging_type must be RESPONSE, UPDATE or MESSAGE_TAG with a tag")
            inbound = [m for m in self.conversations[customer] if m["from"]["id"] != self.account_id]
            allowed = 7 * DAY if tag == "HUMAN_AGENT" else DAY
            if not inbound or now - inbound[-1]["created_time"] > allowed:
                window = payload(self.platform_vendor, self.window_error)
                return web.json_response(window, status=400)
            target = customer
        self.sends.append(body)
        mid = f"m_{self.next_id()}"
        own = {"id": self.account_id, "name": self.account_name}
        self.conversations.setdefault(customer, []).append(
            {"id": mid, "message": text, "created_time": now, "from": own}
        )
        details = {"path": request.path, "recipient": recipient, "messaging_type": body.get("messaging_type")}
        self.replies.append(SentReply(target, text, {**details, "tag": body.get("tag")}))
        return web.json_response({"recipient_id": customer, "message_id": mid})


class FacebookFake(MessengerFake):
    """A Page with one post (more with `add_post`), its comments and its Messenger conversations."""

    page_size: ClassVar[int] = 25
    fetch_paths: ClassVar[tuple[str, ...]] = (f"/{API_VERSION}/{PAGE_ID}/posts",)
    check_paths: ClassVar[tuple[str, ...]] = (f"/{API_VERSION}/{PAGE_ID}",)

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.post = self.add_post("Nouvelle collection !", POST_SUFFIX, days_ago=1)

    def graph_routes(self, app: web.Application) -> None:
        """The Page, its posts, comments, conversations and the Send API."""
        self.route(app, "GET", f"/{PAGE_ID}", self._page)
        self.route(app, "GET", f"/{PAGE_ID}/posts", self._posts)
        self.messaging_routes(app)
        self.route(app, "GET", "/{object}/comments", self._comments)
        self.route(app, "POST", "/{object}/comments", self._reply)

    # -- seeding ----------------------------------------------------------------------------------------------------

    def add_post(self, message: str, suffix: str | None = None, *, days_ago: float = 0) -> str:
        """A post of the Page; returns its id (`{page-id}_{post}`)."""
        at = self.current() - timedelta(days=days_ago)
        post = {
            "id": f"{PAGE_ID}_{suffix or self.next_id()}",
            "message": message,
            "created_time": at,
            "updated_time": at,
        }
        self.posts.append(post)
        return str(post["id"])

    def add_comment(
        self,
        text: str,
        *,
        author: str = "6543210987654321",
        name: str = "Camille Martin",
        minutes_ago: float = 1,
        reply_to: str | None = None,
        post: str | None = None,
        **extra: Any,
    ) -> str:
        """A comment (a reply when `reply_to` names a comment: Facebook puts it under the top-level one)."""
        parent = next((c for c in self.comments if c["id"] == reply_to), None)
        root = (parent["parent_id"] or parent["id"]) if parent else None
        post_id = parent["post_id"] if parent else post or self.post
        at = self.current() - timedelta(minutes=minutes_ago)
        comment = {
            "id": f"{post_id.split('_')[1]}_{self.next_id()}",
            "post_id": post_id,
            "parent_id": root,
            "from": {"id": author, "name": name},
            "message": text,
            "created_time": at,
            "can_reply_privately": author != PAGE_ID,
            **extra,
        }
        self.comments.append(comment)
        for one in self.posts:
            if one["id"] == post_id:
                one["updated_time"] = max(one["updated_time"], at)
        return str(comment["id"])

    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A customer's comment on the Page's post."""
        person = self.people.setdefault(author, str(6543210987000000 + len(self.people)))
        return self.add_comment(text, author=person, name=author, minutes_ago=minutes_ago, reply_to=reply_to)

    def add_brand_post(self, text: str) -> list[str]:
        """The Page's own comment: never an item."""
        return [self.add_comment(text, author=PAGE_ID, name=PAGE_NAME)]

    def add_existing_reply(self, target: str, text: str) -> None:
        """The Page's reply under a comment, as if sent before a crash."""
        self.add_comment(text, author=PAGE_ID, name=PAGE_NAME, minutes_ago=0, reply_to=target)

    def add_broken_item(self) -> None:
        """A comment without `from`."""
        self.add_comment("broken", minutes_ago=2, broken=True)

    def comment_delivery(self, comment_id: str, verb: str = "add") -> dict[str, Any]:
        """The `feed` webhook delivery of a stored comment (facebook_feed_comment_add.json, values replaced)."""
        comment = next(c for c in self.comments if c["id"] == comment_id)
        delivery: dict[str, Any] = copy.deepcopy(payload("facebook", "facebook_feed_comment_add.json"))
        entry = delivery["entry"][0]
        entry["id"], entry["time"] = PAGE_ID, int(self.current().timestamp())
        value = entry["changes"][0]["value"]
        value.update(
            verb=verb,
            comment_id=comment["id"],
            post_id=comment["post_id"],
            parent_id=comment["parent_id"] or comment["post_id"],
            message=comment["message"],
            created_time=int(comment["created_time"].timestamp()),
            **{"from": comment["from"]},
        )
        value["post"]["id"] = comment["post_id"]
        if verb == "remove":
            del value["message"], value["post"]
        return delivery

    def comment_for_private_reply(self, comment_id: str) -> dict[str, Any] | None:
        """A stored comment."""
        return next((c for c in self.comments if c["id"] == comment_id), None)

    # -- routes -----------------------------------------------------------------------------------------------------

    def _render(self, comment: dict[str, Any]) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": comment["id"],
            "created_time": graph_time(comment["created_time"]),
            "message": comment["message"],
            "can_reply_privately": comment["can_reply_privately"],
        }
        if not comment.get("broken"):
            shown["from"] = comment["from"]
        if comment["parent_id"]:
            shown["parent"] = {"id": comment["parent_id"]}
        return shown

    async def _page(self, request: web.Request) -> web.Response:
        return web.json_response({"id": PAGE_ID, "name": PAGE_NAME})

    async def _posts(self, request: web.Request) -> web.Response:
        posts = sorted(self.posts, key=lambda p: p["created_time"], reverse=True)
        shown = [
            {**p, "created_time": graph_time(p["created_time"]), "updated_time": graph_time(p["updated_time"])}
            for p in posts
        ]
        return self.list_page(request, shown)

    async def _comments(self, request: web.Request) -> web.Response:
        target, query = request.match_info["object"], request.query
        if any(p["id"] == target for p in self.posts):
            flat = query.get("filter") == "stream"
            found = [c for c in self.comments if c["post_id"] == target and (flat or c["parent_id"] is None)]
        elif any(c["id"] == target for c in self.comments):
            found = [c for c in self.comments if c["parent_id"] == target]
        else:
            return refused(100, f"(#100) Object with ID '{target}' does not exist", 33)
        if "since" in query:
            found = [c for c in found if c["created_time"].timestamp() >= float(query["since"])]
        found.sort(key=lambda c: c["created_time"], reverse=query.get("order") == "reverse_chronological")
        return self.list_page(request, [self._render(c) for c in found])

    async def _reply(self, request: web.Request) -> web.Response:
        target = request.match_info["object"]
        body = await request.json() if request.content_type == "application/json" else dict(await request.post())
        text = body.get("message")
        if not any(c["id"] == target for c in self.comments) or not isinstance(text, str) or not text:
            return refused(100, f"(#100) Unsupported post request. Object with ID '{target}' does not exist", 33)
        reply = self.add_comment(text, author=PAGE_ID, name=PAGE_NAME, minutes_ago=0, reply_to=target)
        self.replies.append(SentReply(target, text, {"path": request.path, "id": reply}))
        return web.json_response({"id": reply})
