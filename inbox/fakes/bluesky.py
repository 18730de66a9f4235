"""A local PDS with the Bluesky AppView and chat service behind it: sessions, notifications, threads, posts, DMs.

Shapes follow the lexicons (bluesky-social/atproto, copied in docs/notes/meta-bluesky/lexicons/) and the payloads in
inbox/fakes/data/bluesky/ (SOURCE.md says where each came from). One aiohttp app serves `/xrpc/{nsid}` as a PDS
does: the account's own calls, and the chat calls it proxies when they carry `atproto-proxy: did:web:api.bsky.chat#bsky_chat`.
"""

from __future__ import annotations

import copy
import itertools
import re
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import jwt
import regex
from aiohttp import web

from inbox.fakes.data import payload
from inbox.fakes.vendor import Fault, SentReply, VendorFake

HANDLE = "acme.bsky.social"
DID = "did:plc:acmebrand7x2k4q"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
# Scopes of an app password's access token: without and with "Allow access to your direct messages".
APP_PASS = "com.atproto.appPass"
APP_PASS_PRIVILEGED = "com.atproto.appPassPrivileged"
# Bluesky's PDS: 3000 requests per 5 minutes per IP (docs.bsky.app/docs/advanced-guides/rate-limits).
RATE_LIMIT = 3000
_KEY = "fake-pds-signing-key-not-a-secret"
_NOTIFICATIONS = "/xrpc/app.bsky.notification.listNotifications"

# The recorded shapes the fake's own objects follow (SOURCE.md).
RECORDED_NOTIFICATIONS: dict[str, Any] = payload("bluesky", "list_notifications.json")
RECORDED_MESSAGES: dict[str, Any] = payload("bluesky", "chat_get_messages.response.json")


def iso(moment: datetime) -> str:
    """The AT Protocol's datetime format: UTC, milliseconds, Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def graphemes(text: str) -> int:
    """Extended grapheme clusters, as the lexicon's maxGraphemes counts them."""
    return len(regex.findall(r"\X", text))


def _error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": name, "message": message}, status=status, headers=headers)


def _wanted(event: dict[str, Any], collections: set[str]) -> bool:
    commit = event.get("commit") or {}
    return not collections or event.get("kind") != "commit" or commit.get("collection") in collections


def _page(request: web.Request, key: str, pool: list[Any], *, overlap: bool = False) -> dict[str, Any]:
    """One page of a listing, `limit` long, and an opaque `cursor` to the next when there is one."""
    limit = max(1, min(int(request.query.get("limit", "50")), 100))
    start = int(request.query.get("cursor", "0") or 0)
    body: dict[str, Any] = {key: pool[max(0, start - overlap) : start + limit]}
    if start + limit < len(pool):
        body["cursor"] = str(start + limit)
    return body


class BlueskyFake(VendorFake):
    """The endpoints a brand account's support inbox uses, for the account @acme.bsky.social."""

    page_size: ClassVar[int] = 50
    fetch_paths: ClassVar[tuple[str, ...]] = (_NOTIFICATIONS,)
    check_paths: ClassVar[tuple[str, ...]] = ("/xrpc/com.atproto.server.getSession",)

    def __init__(self, *, dm_access: bool = True) -> None:
        super().__init__()
        self.dm_access = dm_access  # the app password was made with "Allow access to your direct messages"
        self.chat_service = True  # False: a PDS that proxies to no chat service (a self-hosted one without it)
        self.password = APP_PASSWORD
        self.calls: Counter[str] = Counter()  # by NSID, to count createSession and createRecord
        self.access: dict[str, dict[str, Any]] = {}  # live access tokens -> claims
        self.refresh: dict[str, dict[str, Any]] = {}  # live refresh tokens -> claims
        self.session_lifetime = timedelta(hours=2)  # the PDS's access token lifetime
        self.profiles: dict[str, dict[str, Any]] = {}
        self.posts: dict[str, dict[str, Any]] = {}  # uri -> postView
        self.notifications: list[dict[str, Any]] = []
        self.convos: dict[str, dict[str, Any]] = {}  # id -> convoView
        self.messages: dict[str, list[dict[str, Any]]] = {}  # convo id -> messageViews, oldest first
        self.rate_remaining: int | None = None  # what every answer announces as left, when set
        # Jetstream (the JSON firehose at /subscribe): every event sent, oldest first, and the sockets listening.
        self.jetstream: list[dict[str, Any]] = []
        self.jet_connections: list[dict[str, str]] = []  # each connection's query (wantedCollections, cursor)
        self._jet_sockets: list[web.WebSocketResponse] = []
        self._jet_wanted: dict[int, set[str]] = {}  # a socket's wanted collections (empty: all)
        self._ids = itertools.count(1)
        self.brand = self._profile(DID, HANDLE, "Acme Support")

    # -- routes ---------------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """Every NSID under /xrpc/, as a PDS serves them."""
        app.router.add_route("*", "/xrpc/{nsid}", self.xrpc)
        app.router.add_get("/subscribe", self.subscribe)

    async def subscribe(self, request: web.Request) -> web.WebSocketResponse:
        """Jetstream's `/subscribe` (github.com/bluesky-social/jetstream README): events as JSON text frames, those
        of `wantedCollections` only; with a `cursor` (microseconds), the events after it first, then live."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.jet_connections.append(dict(request.query))
        wanted = set(request.query.getall("wantedCollections", []))
        if "cursor" in request.query:
            after = int(request.query["cursor"])
            for event in list(self.jetstream):
                if event["time_us"] > after and _wanted(event, wanted):
                    await ws.send_json(event)
        self._jet_sockets.append(ws)
        self._jet_wanted[id(ws)] = wanted
        try:
            async for _ in ws:
                pass  # Jetstream takes only options updates from clients; none are sent here
        finally:
            self._jet_sockets.remove(ws)
            self._jet_wanted.pop(id(ws), None)
        return ws

    async def add_watched_post(self, text: str, *, author: str = "customer1") -> str:
        """Someone's post that names the brand without tagging it: in the network, and sent on Jetstream; its uri."""
        profile = self._customer(author)
        record = self._record(text, self.now)
        post = self._post(profile, record)
        last = self.jetstream[-1]["time_us"] if self.jetstream else 0
        event = {
            "did": profile["did"],
            "time_us": max(last + 1, int(time.time() * 1_000_000)),
            "kind": "commit",
            "commit": {
                "rev": f"3lrev{next(self._ids):09d}",
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": post["uri"].rsplit("/", 1)[1],
                "record": record,
                "cid": post["cid"],
            },
        }
        await self.send_jetstream(event)
        return str(post["uri"])

    async def send_jetstream(self, event: dict[str, Any]) -> None:
        """Send an event to every Jetstream subscriber that wants its collection (and keep it for cursors)."""
        self.jetstream.append(event)
        for ws in list(self._jet_sockets):
            if _wanted(event, self._jet_wanted.get(id(ws), set())) and not ws.closed:
                await ws.send_json(event)

    async def drop_jetstream(self) -> None:
        """Close every Jetstream connection (a restart of the instance)."""
        for ws in list(self._jet_sockets):
            await ws.close()

    async def xrpc(self, request: web.Request) -> web.Response:
        """Dispatch one XRPC call by its NSID; unknown ones are not served, as a PDS answers them."""
        nsid = request.match_info["nsid"]
        self.calls[nsid] += 1
        handler = self._handlers().get(nsid)
        if handler is None:
            return _error(501, "MethodNotImplemented", f"Method Not Implemented: {nsid}")
        if nsid.startswith("chat.bsky.") and (
            request.headers.get("atproto-proxy") != CHAT_PROXY or not self.chat_service
        ):
            return _error(501, "MethodNotImplemented", f"Method Not Implemented: {nsid}")
        response = await handler(request)
        response.headers.update(self._rate())
        return response

    def _handlers(self) -> dict[str, Callable[[web.Request], Awaitable[web.Response]]]:
        return {
            "com.atproto.server.createSession": self.create_session,
            "com.atproto.server.refreshSession": self.refresh_session,
            "com.atproto.server.getSession": self.get_session,
            "com.atproto.identity.resolveHandle": self.resolve_handle,
            "app.bsky.actor.getProfile": self.get_profile,
            "app.bsky.notification.listNotifications": self.list_notifications,
            "app.bsky.feed.getPostThread": self.get_post_thread,
            "app.bsky.feed.getPosts": self.get_posts,
            "com.atproto.repo.createRecord": self.create_record,
            "chat.bsky.convo.listConvos": self.list_convos,
            "chat.bsky.convo.getMessages": self.get_messages,
            "chat.bsky.convo.sendMessage": self.send_message,
        }

    def _rate(self) -> dict[str, str]:
        # The PDS's rate-limit headers (IETF draft): remaining in the window, its reset as epoch seconds.
        left = max(1, RATE_LIMIT - len(self.requests)) if self.rate_remaining is None else self.rate_remaining
        return {
            "ratelimit-limit": str(RATE_LIMIT),
            "ratelimit-remaining": str(left),
            "ratelimit-reset": str(int(time.time()) + 300),
            "ratelimit-policy": f"{RATE_LIMIT};w=300",
        }

    # -- sessions -------------------------------------------------------------------------------------------------

    def _tokens(self) -> dict[str, Any]:
        now = int(self.now.timestamp())
        scope = APP_PASS_PRIVILEGED if self.dm_access else APP_PASS
        access_claims = {"scope": scope, "sub": DID, "aud": "did:web:fake.pds", "iat": now}
        access_claims["exp"] = now + int(self.session_lifetime.total_seconds())
        refresh_claims = {"scope": "com.atproto.refresh", "sub": DID, "aud": "did:web:fake.pds", "iat": now}
        refresh_claims.update(exp=now + 90 * 86400, jti=secrets.token_hex(8))
        access, refresh = jwt.encode(access_claims, _KEY), jwt.encode(refresh_claims, _KEY)
        self.access[access] = access_claims
        self.refresh[refresh] = refresh_claims
        # The shape of com.atproto.server.createSession's output (create_session.response.json), without a didDoc:
        # the client then stays on the URL it was given.
        return {"accessJwt": access, "refreshJwt": refresh, "handle": HANDLE, "did": DID, "active": True}

    def _bearer(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return token if scheme == "Bearer" and token else None

    def _authed(self, request: web.Request) -> dict[str, Any] | web.Response:
        """The access token's claims, or the PDS's refusal."""
        token = self._bearer(request)
        if token is None:
            return _error(401, "AuthenticationRequired", "Authentication Required")
        claims = self.access.get(token)
        if claims is None:
            return _error(400, "InvalidToken", "Token could not be verified")
        if claims["exp"] <= self.now.timestamp():
            return _error(400, "ExpiredToken", "Token has expired")
        return claims

    async def create_session(self, request: web.Request) -> web.Response:
        """POST com.atproto.server.createSession {identifier, password}."""
        body = await request.json()
        if body.get("identifier") not in (HANDLE, DID) or body.get("password") != self.password:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        return web.json_response({**self._tokens(), "email": "support@acme.example", "emailConfirmed": True})

    async def refresh_session(self, request: web.Request) -> web.Response:
        """POST com.atproto.server.refreshSession with the refresh token: both tokens rotate, the old refresh token dies."""
        token = self._bearer(request)
        claims = self.refresh.pop(token or "", None)
        if claims is None:
            return _error(400, "InvalidToken", "Token has been revoked")
        if claims["exp"] <= self.now.timestamp():
            return _error(400, "ExpiredToken", "Token has expired")
        return web.json_response(self._tokens())

    async def get_session(self, request: web.Request) -> web.Response:
        """GET com.atproto.server.getSession."""
        claims = self._authed(request)
        if isinstance(claims, web.Response):
            return claims
        return web.json_response({"handle": HANDLE, "did": DID, "email": "support@acme.example", "active": True})

    async def resolve_handle(self, request: web.Request) -> web.Response:
        """GET com.atproto.identity.resolveHandle: what facet detection asks for a mention's DID."""
        handle = request.query.get("handle", "").lower()
        found = next((p["did"] for p in self.profiles.values() if p["handle"] == handle), None)
        if found is None:
            return _error(400, "InvalidRequest", "Unable to resolve handle")
        return web.json_response({"did": found})

    async def get_profile(self, request: web.Request) -> web.Response:
        """GET app.bsky.actor.getProfile."""
        claims = self._authed(request)
        if isinstance(claims, web.Response):
            return claims
        actor = request.query.get("actor", "")
        profile = next((p for p in self.profiles.values() if actor in (p["did"], p["handle"])), None)
        if profile is None:
            return _error(400, "InvalidRequest", "Profile not found")
        return web.json_response({**profile, "followersCount": 0, "followsCount": 0, "postsCount": 0})

    # -- notifications and posts ------------------------------------------------------------------------------------

    async def list_notifications(self, request: web.Request) -> web.Response:
        """GET app.bsky.notification.listNotifications: newest first, `reasons` filtered, an opaque cursor to older pages."""
        claims = self._authed(request)
        if isinstance(claims, web.Response):
            return claims
        reasons = request.query.getall("reasons", [])
        pool = [n for n in self.notifications if not reasons or n.get("reason") in reasons]
        pool.sort(key=lambda n: str(n.get("indexedAt", "")), reverse=True)
        # duplicate_across_pages(): the boundary notification of the previous page comes again.
        body = _page(request, "notifications", pool, overlap=self.duplicating)
        return web.json_response({**body, "priority": False, "seenAt": iso(self.now)})

    def _thread_view(self, uri: str, depth: int, parents: int) -> dict[str, Any]:
        post = self.posts.get(uri)
        if post is None:
            return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}
        view: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": post}
        reply = post["record"].get("reply")
        if reply and parents > 0:
            view["parent"] = self._thread_view(reply["parent"]["uri"], 0, parents - 1)
        if depth > 0:
            children = [
                p for p in self.posts.values() if (p["record"].get("reply") or {}).get("parent", {}).get("uri") == uri
            ]
            view["replies"] = [self._thread_view(c["uri"], depth - 1, 0) for c in children]
        return view

    async def get_post_thread(self, request: web.Request) -> web.Response:
        """GET app.bsky.feed.getPostThread {uri, depth, parentHeight}."""
        claims = self._authed(request)
        if isinstance(claims, web.Response):
            return claims
        uri = request.query.get("uri", "")
        if uri not in self.posts:
            return _error(400, "NotFound", f"Post not found: {uri}")
        depth, parents = int(request.query.get("depth", "6")), int(request.query.get("parentHeight", "80"))
        return web.json_response({"thread": self._thread_view(uri, depth, parents)})

    async def get_posts(self, request: web.Request) -> web.Response:
        """GET app.bsky.feed.getPosts {uris[]}."""
        claims = self._authed(request)
        if isinstance(claims, web.Response):
            return claims
        return web.json_response(
            {"posts": [self.posts[u] for u in request.query.getall("uris", []) if u in self.posts]}
        )

    async def create_record(self, request: web.Request) -> web.Response:
        """POST com.atproto.repo.createRecord of an app.bsky.feed.post, validated as the lexicon says."""
        claims = self._authed(request)
        if isinstance(claims, web.Response):
            return claims
        body = await request.json()
        record = body.get("record") or {}
        if body.get("repo") not in (DID, HANDLE) or body.get("collection") != "app.bsky.feed.post":
            return _error(400, "InvalidRequest", "this fake takes posts in the account's own repo")
        text = record.get("text")
        if record.get("$type") != "app.bsky.feed.post" or not isinstance(text, str) or "createdAt" not in record:
            return _error(400, "InvalidRecord", "Record/text must be a string, Record/createdAt is required")
        if graphemes(text) > 300 or len(text.encode()) > 3000:
            return _error(400, "InvalidRecord", "Record/text must not be longer than 300 graphemes")
        size = len(text.encode())
        for facet in record.get("facets") or []:
            index = facet.get("index") or {}
            if not 0 <= index.get("byteStart", -1) < index.get("byteEnd", -1) <= size:
                return _error(400, "InvalidRecord", "Record/facets: byte slice outside the text")
        reply = record.get("reply")
        if reply is not None:
            for ref in ("root", "parent"):
                strong = reply.get(ref) or {}
                if strong.get("uri") not in self.posts or self.posts[strong["uri"]]["cid"] != strong.get("cid"):
                    return _error(400, "InvalidRequest", f"Record/reply/{ref} is not a post of this network")
        post = self._post(self.brand, record)
        self.replies.append(
            SentReply(
                (reply or {}).get("parent", {}).get("uri", ""),
                text,
                {
                    "uri": post["uri"],
                    "root": (reply or {}).get("root", {}).get("uri"),
                    "facets": record.get("facets") or [],
                    "langs": record.get("langs"),
                },
            )
        )
        return web.json_response(
            {
                "uri": post["uri"],
                "cid": post["cid"],
                "commit": {"cid": f"bafyreicommit{next(self._ids)}", "rev": f"3lrev{next(self._ids):09d}"},
                "validationStatus": "valid",
            }
        )

    # -- chat -------------------------------------------------------------------------------------------------------

    def _chat_authed(self, request: web.Request) -> dict[str, Any] | web.Response:
        claims = self._authed(request)
        if isinstance(claims, dict) and claims["scope"] == APP_PASS:
            # What the chat service answers an app password made without DM access (social-app PR #8954).
            return _error(400, "InvalidToken", "Bad token method")
        return claims

    async def list_convos(self, request: web.Request) -> web.Response:
        """GET chat.bsky.convo.listConvos: the most recently active first."""
        claims = self._chat_authed(request)
        if isinstance(claims, web.Response):
            return claims
        return web.json_response(_page(request, "convos", sorted(self.convos.values(), key=lambda c: c["rev"])[::-1]))

    async def get_messages(self, request: web.Request) -> web.Response:
        """GET chat.bsky.convo.getMessages: newest first."""
        claims = self._chat_authed(request)
        if isinstance(claims, web.Response):
            return claims
        convo = request.query.get("convoId", "")
        if convo not in self.convos:
            return _error(400, "InvalidConvo", "Convo not found")
        return web.json_response(_page(request, "messages", self.messages[convo][::-1]))

    async def send_message(self, request: web.Request) -> web.Response:
        """POST chat.bsky.convo.sendMessage {convoId, message: messageInput}."""
        claims = self._chat_authed(request)
        if isinstance(claims, web.Response):
            return claims
        body = await request.json()
        convo, message = body.get("convoId"), body.get("message") or {}
        if convo not in self.convos:
            return _error(400, "InvalidConvo", "Convo not found")
        text = message.get("text")
        if not isinstance(text, str) or graphemes(text) > 1000 or len(text.encode()) > 10000:
            return _error(400, "InvalidRequest", "Input/message/text must not be longer than 1000 graphemes")
        view = self._message(convo, DID, text, self.now)
        self.replies.append(SentReply(convo, text, {"id": view["id"], "facets": message.get("facets") or []}))
        return web.json_response(view)

    # -- knobs ------------------------------------------------------------------------------------------------------

    def add_customer_post(
        self,
        text: str,
        *,
        author: str = "customer1",
        minutes_ago: float = 1.0,
        reply_to: str | None = None,
        reason: str | None = None,
        langs: list[str] | None = None,
    ) -> str:
        """A customer's post tagging @acme (a reply when `reply_to` is given) and its notification; returns its uri."""
        profile = self._customer(author)
        when = self.now - timedelta(minutes=minutes_ago)
        mention = f"@{HANDLE}"
        full = f"{mention} {text}"
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": full,
            "facets": [
                {
                    "index": {"byteStart": 0, "byteEnd": len(mention.encode())},
                    "features": [{"$type": "app.bsky.richtext.facet#mention", "did": DID}],
                }
            ],
            "langs": langs or ["en"],
            "createdAt": iso(when),
        }
        if reply_to is not None:
            parent = self.posts[reply_to]
            root = (parent["record"].get("reply") or {}).get("root") or {"uri": parent["uri"], "cid": parent["cid"]}
            record["reply"] = {"root": root, "parent": {"uri": parent["uri"], "cid": parent["cid"]}}
        post = self._post(profile, record, indexed=when + timedelta(seconds=1))
        parent_author = self.posts[reply_to]["author"]["did"] if reply_to else None
        self._notify(reason or ("reply" if parent_author == DID else "mention"), profile, post)
        return str(post["uri"])

    def add_brand_post(self, text: str) -> list[str]:
        """Our own post tagging ourselves (notified as a mention) and a customer's repost of it."""
        post = self._post(self.brand, self._record(f"@{HANDLE} {text}", self.now - timedelta(minutes=2)))
        self._notify("mention", self.brand, post)
        booster = self._customer("booster")
        repost_uri = f"at://{booster['did']}/app.bsky.feed.repost/3lrp{next(self._ids):09d}"
        repost = {**post, "uri": repost_uri, "cid": f"bafyreirepost{next(self._ids)}"}
        self._notify(
            "repost", booster, repost, record={"$type": "app.bsky.feed.repost", "subject": {"uri": post["uri"]}}
        )
        return [str(post["uri"]), repost_uri]

    def add_existing_reply(self, target: str, text: str) -> None:
        """Our reply already in the thread, as if posted before a crash."""
        parent = self.posts[target]
        root = (parent["record"].get("reply") or {}).get("root") or {"uri": parent["uri"], "cid": parent["cid"]}
        record = self._record(text, self.now)
        record["reply"] = {"root": root, "parent": {"uri": parent["uri"], "cid": parent["cid"]}}
        self._post(self.brand, record)

    def add_broken_item(self) -> None:
        """A mention whose author is not an object and whose post has lost its text and time."""
        profile = self._customer("broken")
        post = self._post(profile, self._record("broken", self.now - timedelta(minutes=2)))
        notification = self._notify("mention", profile, post)
        notification["author"] = "broken"
        notification["record"] = {"$type": "app.bsky.feed.post"}

    def add_recorded(self, notification: dict[str, Any]) -> None:
        """Serve a recorded notification as is, and its post in threads."""
        self.notifications.append(copy.deepcopy(notification))
        author = notification.get("author") or {}
        if isinstance(author, dict) and "did" in author:
            self.profiles.setdefault(author["did"], {k: v for k, v in author.items() if k != "labels"})
        post: dict[str, Any] = {
            k: notification[k] for k in ("uri", "cid", "author", "record", "indexedAt") if k in notification
        }
        self.posts[notification["uri"]] = {**post, "replyCount": 0, "repostCount": 0, "likeCount": 0, "labels": []}

    def add_dm(self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0) -> str:
        """A customer's direct message (in their conversation with us); returns the message id."""
        profile = self._customer(author)
        convo = next((c for c in self.convos.values() if profile["did"] in [m["did"] for m in c["members"]]), None)
        if convo is None:
            convo_id = f"3lconvo{next(self._ids):06d}"
            convo = {
                "id": convo_id,
                "rev": "0",
                "members": [self._basic(self.brand), self._basic(profile)],
                "muted": False,
                "status": "request",
                "unreadCount": 0,
            }
            self.convos[convo_id] = convo
            self.messages[convo_id] = []
        return str(self._message(convo["id"], profile["did"], text, self.now - timedelta(minutes=minutes_ago))["id"])

    def add_existing_dm_reply(self, convo_id: str, text: str) -> None:
        """Our message already in the conversation, as if sent before a crash."""
        self._message(convo_id, DID, text, self.now)

    def convo_of(self, message_id: str) -> str:
        """The conversation a message is in."""
        return next(c for c, messages in self.messages.items() if any(m["id"] == message_id for m in messages))

    def revoke(self) -> None:
        """The account revoked the app password: every session ends and the password no longer logs in."""
        self.password = "revoked-" + secrets.token_hex(4)
        self.access.clear()
        self.refresh.clear()

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """The PDS's 429: RateLimitExceeded with the window's reset as epoch seconds."""
        reset = str(int(time.time() + reset_in))
        headers = {"ratelimit-limit": str(RATE_LIMIT), "ratelimit-remaining": "0", "ratelimit-reset": reset}
        headers["ratelimit-policy"] = f"{RATE_LIMIT};w=300"
        return Fault(429, headers, '{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}')

    def fault_unauthorized(self) -> Fault:
        """A revoked app password: the call is refused, and logging in again fails too."""
        self.revoke()
        return Fault(401, {}, '{"error":"AuthenticationRequired","message":"Authentication Required"}')

    # -- entities ---------------------------------------------------------------------------------------------------

    def _profile(self, did: str, handle: str, name: str) -> dict[str, Any]:
        profile = {
            "did": did,
            "handle": handle,
            "displayName": name,
            "labels": [],
            "createdAt": "2024-02-01T10:00:00.000Z",
        }
        self.profiles[did] = profile
        return profile

    def _customer(self, author: str) -> dict[str, Any]:
        slug = re.sub(r"[^a-z0-9]", "", author.lower()) or "someone"
        did = f"did:plc:{slug}"
        return self.profiles.get(did) or self._profile(did, f"{slug}.bsky.social", author.title())

    @staticmethod
    def _basic(profile: dict[str, Any]) -> dict[str, Any]:
        return {k: profile[k] for k in ("did", "handle", "displayName") if k in profile}

    @staticmethod
    def _record(text: str, when: datetime) -> dict[str, Any]:
        return {"$type": "app.bsky.feed.post", "text": text, "langs": ["en"], "createdAt": iso(when)}

    def _post(self, profile: dict[str, Any], record: dict[str, Any], indexed: datetime | None = None) -> dict[str, Any]:
        number = next(self._ids)
        uri = f"at://{profile['did']}/app.bsky.feed.post/3l{number:011d}"
        post = {
            "uri": uri,
            "cid": f"bafyreipost{number:08d}",
            "author": self._basic(profile),
            "record": record,
            "replyCount": 0,
            "repostCount": 0,
            "likeCount": 0,
            "indexedAt": iso(indexed or self.now),
            "labels": [],
        }
        self.posts[uri] = post
        return post

    def _notify(
        self, reason: str, profile: dict[str, Any], post: dict[str, Any], record: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # The #notification shape of list_notifications.json.
        notification: dict[str, Any] = {
            "uri": post["uri"],
            "cid": post["cid"],
            "author": dict(profile),
            "reason": reason,
            "record": record or post["record"],
            "isRead": False,
            "indexedAt": post["indexedAt"],
            "labels": [],
        }
        reply = post["record"].get("reply")
        if reason in ("reply", "quote") and reply:
            notification["reasonSubject"] = reply["parent"]["uri"]
        self.notifications.append(notification)
        return notification

    def _message(self, convo_id: str, sender: str, text: str, when: datetime) -> dict[str, Any]:
        # The #messageView shape of chat_get_messages.response.json; revs grow with every event in the convo.
        number = next(self._ids)
        message = {
            "$type": "chat.bsky.convo.defs#messageView",
            "id": f"3lmsg{number:08d}",
            "rev": f"{number:013d}",
            "text": text,
            "sender": {"did": sender},
            "sentAt": iso(when),
        }
        self.messages[convo_id].append(message)
        convo = self.convos[convo_id]
        convo.update(rev=message["rev"], lastMessage=message)
        if sender == DID:
            convo["status"] = "accepted"  # replying accepts a message request
        return message
