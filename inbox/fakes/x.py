"""A local X API v2: mentions, the brand's timeline, DM events, posting, with X's paging, auth, rate headers and errors.

Shapes follow the recorded tweepy cassettes in inbox/fakes/data/x (named at each constant) and
X's API reference: `data` newest first, `includes.users` for expansions, `meta` with result_count,
newest_id, oldest_id and next_token (no `data` at all on an empty page), error bodies
{"title", "detail", "type", "status"}, and x-rate-limit-limit/-remaining/-reset (epoch seconds) on
every answer. Only the fields a request asks for (`tweet.fields`, `dm_event.fields`) are served,
as X does, so a connector that forgets to ask does not pass by luck.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web
from oauthlib.oauth1 import Client as OAuthClient
from oauthlib.oauth1.rfc5849 import signature, utils

from inbox.fakes.data import payload
from inbox.fakes.vendor import Fault, SentReply, VendorFake

# GET /2/users/me, verbatim from test_asyncclient_get_me.yaml: the account the tokens belong to.
TWEEPY_DEV = {"id": "1072250532645998596", "name": "Tweepy Testing", "username": "TweepyDev"}
# GET /2/users/by/username/Twitter, verbatim from test_asyncclient_get_user.yaml.
TWITTER = {"id": "783214", "name": "Twitter", "username": "Twitter"}
# The DM peer of TweepyDev in test_asyncclient_manage_and_lookup_direct_messages.yaml (ids verbatim, names made up).
DM_PEER = {"id": "750362064426721281", "name": "Harmon", "username": "Harmon758"}

# GET /2/users/783214/mentions, the body of test_asyncclient_get_users_mentions.yaml (tweepy asked for no
# fields, so X sent only id, text and edit_history_tweet_ids).
RECORDED_MENTIONS: dict[str, Any] = payload("x", "GET_2_users_783214_mentions.body.json")
# Rate limits as the cassettes recorded them (x-rate-limit-limit per 15-minute window).
LIMITS = {
    "mentions": 450,
    "users_me": 75,
    "users_tweets": 1500,
    "create_tweet": 200,
    "dm_events": 300,
    "dm_create": 200,
}

CONSUMER_KEY, CONSUMER_SECRET = "fake-consumer-key", "fake-consumer-secret"
ACCESS_TOKEN, ACCESS_TOKEN_SECRET = f"{TWEEPY_DEV['id']}-fake-access-token", "fake-access-token-secret"
BEARER_TOKEN = "fake-app-bearer-token"
X_HOST = "https://api.twitter.com"  # what OAuth 1.0a signatures cover, wherever the request was sent
TWEPOCH_MS = 1288834974657  # X's snowflake epoch: an id's top bits are its creation time in ms since then

DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
DEFAULT_DM_FIELDS = ("id", "event_type", "text")
DEFAULT_USER_FIELDS = ("id", "name", "username")


def snowflake_time(tweet_id: str | int) -> datetime:
    """The creation time an X id carries."""
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWEPOCH_MS) / 1000, UTC)


def x_time(moment: datetime) -> str:
    """X's timestamp format: 2022-10-07T23:07:41.000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def problem(status: int, title: str, detail: str, type_: str = "about:blank", **extra: Any) -> web.Response:
    """X's error body."""
    body = {**extra, "title": title, "detail": detail, "type": type_, "status": status}
    return web.json_response(body, status=status)


def invalid_request(parameter: str, value: str, message: str) -> web.Response:
    """X's 400 for a bad query parameter."""
    return web.json_response(
        {
            "errors": [{"parameters": {parameter: [value]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        },
        status=400,
    )


@dataclass(slots=True)
class Tweet:
    """A post as the fake stores it: every field X can serve, plus whether it names the brand."""

    fields: dict[str, Any]
    mentions_brand: bool
    # The id as a number, read once: every timeline answer filters and sorts all posts by it (10,000 in the crash test).
    id: int = field(init=False)

    def __post_init__(self) -> None:
        self.id = int(self.fields["id"])


@dataclass(slots=True)
class Window:
    """One endpoint's rate window."""

    limit: int
    remaining: int
    reset: int = field(default_factory=lambda: int(time.time()) + 900)


class XFake(VendorFake):
    """X API v2 for one brand account; customers are made up on demand."""

    page_size: ClassVar[int] = 100
    fetch_paths: ClassVar[tuple[str, ...]] = (f"/2/users/{TWEEPY_DEV['id']}/mentions", "/2/dm_events")
    check_paths: ClassVar[tuple[str, ...]] = ("/2/users/me",)

    def __init__(self, brand: dict[str, str] = TWEEPY_DEV) -> None:
        super().__init__()
        self.brand = brand
        self.users: dict[str, dict[str, str]] = {brand["id"]: brand, DM_PEER["id"]: DM_PEER}
        # Accounts by username, kept beside `users` so that making up a customer does not read every account.
        self._by_username = {user["username"]: user for user in self.users.values()}
        self.tweets: dict[int, Tweet] = {}
        self.dm_events: list[dict[str, Any]] = []
        self.windows = {name: Window(limit, limit) for name, limit in LIMITS.items()}
        self._sequence = itertools.count(1)
        self._user_ids = itertools.count(4_000_000_001)
        self.html_pages = 0  # answers of the mentions endpoint replaced by an HTML page (a captive portal or proxy)

    # --- the contract's knobs ---

    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A customer's post naming the brand, optionally replying in an existing conversation."""
        user = self.user(author)
        fields: dict[str, Any] = {"author_id": user["id"], "text": f"@{self.brand['username']} {text}"}
        if reply_to is not None:
            parent = self.tweets[int(reply_to)].fields
            fields.update(
                conversation_id=parent["conversation_id"],
                in_reply_to_user_id=parent["author_id"],
                referenced_tweets=[{"type": "replied_to", "id": reply_to}],
            )
        return self.post(fields, self.now - timedelta(minutes=minutes_ago))

    def add_brand_post(self, text: str) -> list[str]:
        """The brand's own post naming itself, and a customer's retweet of it (both reach the mentions timeline)."""
        own = self.post(
            {"author_id": self.brand["id"], "text": f"{text} Questions? Ask @{self.brand['username']}"}, self.now
        )
        fan = self.user("fan_of_sales")
        # Retweet text as X truncates it, cf. the "RT @t6dr1ve: ..." post in test_asyncclient_search_recent_tweets.yaml.
        retweet_text = f"RT @{self.brand['username']}: {text} Questions? Ask @{self.brand['username']}"[:140]
        retweet = self.post(
            {"author_id": fan["id"], "text": retweet_text, "referenced_tweets": [{"type": "retweeted", "id": own}]},
            self.now,
        )
        return [own, retweet]

    def add_existing_reply(self, target: str, text: str) -> None:
        """A reply the brand already posted (or a DM it already sent) before a crash."""
        if target in {e["id"] for e in self.dm_events}:
            event = next(e for e in self.dm_events if e["id"] == target)
            self.dm(self.brand["id"], event["dm_conversation_id"], text, datetime.now(UTC))
            return
        self.reply_tweet(target, text)

    def add_broken_item(self) -> None:
        """A mention with no created_at and a numeric text."""
        user = self.user("broken_shape")
        tweet_id = self.post(
            {"author_id": user["id"], "text": f"@{self.brand['username']} soon broken"}, self.now - timedelta(minutes=2)
        )
        fields = self.tweets[int(tweet_id)].fields
        fields["text"] = 12345
        fields["created_at"] = None

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """X's 429: remaining 0 and the window's reset in epoch seconds, no Retry-After."""
        headers = {
            "x-rate-limit-limit": str(LIMITS["mentions"]),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(time.time() + reset_in)),
        }
        body = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
        return Fault(429, headers, json.dumps(body))

    def fault_unauthorized(self) -> Fault:
        """X's 401 for a revoked or wrong token."""
        return Fault(
            401,
            {},
            json.dumps({"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}),
        )

    # --- building the platform's state ---

    def user(self, username: str) -> dict[str, str]:
        """The account with this username, made up on first use."""
        if username in self._by_username:
            return self._by_username[username]
        user = {"id": str(next(self._user_ids)), "name": username.replace("_", " ").title(), "username": username}
        self.users[user["id"]] = self._by_username[username] = user
        return user

    def new_id(self, moment: datetime) -> str:
        """A snowflake id for `moment`: ids grow with creation time, as on X."""
        ms = int(moment.timestamp() * 1000) - TWEPOCH_MS
        return str((ms << 22) | (next(self._sequence) & 0x3FFFFF))

    def post(self, fields: dict[str, Any], moment: datetime, tweet_id: str | None = None) -> str:
        """Store a post; it is in the brand's mentions when its text names the brand."""
        tweet_id = tweet_id or self.new_id(moment)
        full = {
            "id": tweet_id,
            "edit_history_tweet_ids": [tweet_id],
            "created_at": x_time(moment),
            "conversation_id": tweet_id,
            **fields,
        }
        mentions = f"@{self.brand['username']}".lower() in str(full["text"]).lower()
        self.tweets[int(tweet_id)] = Tweet(full, mentions)
        return tweet_id

    def reply_tweet(self, target: str, text: str) -> str:
        """The brand's reply; X shows it with the @handle it answers in front."""
        parent = self.tweets[int(target)].fields
        handle = self.users[parent["author_id"]]["username"]
        return self.post(
            {
                "author_id": self.brand["id"],
                "text": f"@{handle} {text}",
                "conversation_id": parent["conversation_id"],
                "in_reply_to_user_id": parent["author_id"],
                "referenced_tweets": [{"type": "replied_to", "id": target}],
            },
            datetime.now(UTC),
        )

    def add_dm(self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0) -> str:
        """A customer's DM to the brand in their one-to-one conversation; returns the DM event id."""
        sender = self.user(author)
        low, high = sorted((sender["id"], self.brand["id"]), key=int)
        return self.dm(sender["id"], f"{low}-{high}", text, self.now - timedelta(minutes=minutes_ago))

    def dm(self, sender_id: str, conversation: str, text: str, moment: datetime) -> str:
        """Store a MessageCreate event."""
        event = {
            "id": self.new_id(moment),
            "event_type": "MessageCreate",
            "text": text,
            "sender_id": sender_id,
            "dm_conversation_id": conversation,
            "created_at": x_time(moment),
        }
        self.dm_events.append(event)
        return event["id"]

    def load_recorded_mentions(self) -> None:
        """The two posts of the recorded mentions page, with the fields the connector asks for.

        id and text are verbatim; created_at is what each id's snowflake says; author ids,
        usernames and conversation ids were not recorded and are made up.
        """
        authors = [
            ("1463276403553046530", "dsa_member", "DSA member"),
            ("1296179286101311489", "newswatcher", "News Watcher"),
        ]
        for post, (author_id, username, name) in zip(RECORDED_MENTIONS["data"], authors, strict=True):
            self.users[author_id] = self._by_username[username] = {"id": author_id, "name": name, "username": username}
            moment = snowflake_time(post["id"])
            fields = {"author_id": author_id, "text": post["text"]}
            if post["text"].startswith("@GerardDalbon"):
                fields.update(
                    conversation_id="1578519883393372160",
                    in_reply_to_user_id="1171554398",
                    referenced_tweets=[{"type": "replied_to", "id": "1578519883393372160"}],
                )
            self.post(fields, moment, tweet_id=post["id"])

    def exhaust(self, endpoint: str, reset_in: float) -> None:
        """The next answer of `endpoint` says its window is spent until `reset_in` seconds from now."""
        window = self.windows[endpoint]
        window.remaining, window.reset = 1, int(time.time() + reset_in)

    # --- the HTTP side ---

    def routes(self, app: web.Application) -> None:
        """X API v2 endpoints the connector uses."""
        app.router.add_get("/2/users/me", self.users_me)
        app.router.add_get("/2/users/{id}/mentions", self.mentions)
        app.router.add_get("/2/users/{id}/tweets", self.user_tweets)
        app.router.add_post("/2/tweets", self.create_tweet)
        app.router.add_get("/2/dm_events", self.list_dm_events)
        app.router.add_get("/2/dm_conversations/{conversation}/dm_events", self.list_dm_events)
        app.router.add_post("/2/dm_conversations/{conversation}/messages", self.create_dm)

    @property
    def replies_by_kind(self) -> dict[str, list[SentReply]]:
        """Replies as received, split into posts and DMs."""
        result: dict[str, list[SentReply]] = {"tweet": [], "dm": []}
        for reply in self.replies:
            result[reply.details["kind"]].append(reply)
        return result

    async def users_me(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request, user_only=True)
        return denied or self._answer("users_me", {"data": self.brand})

    async def mentions(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request, user_only=False)
        if denied:
            return denied
        if self.html_pages:
            self.html_pages -= 1
            return web.Response(
                text="<html><body>Please sign in to the network</body></html>", content_type="text/html"
            )
        user_id = request.match_info["id"]
        if user_id != self.brand["id"]:
            return problem(403, "Forbidden", "This fake only knows the brand's own mentions.")
        posts = [t for t in self.tweets.values() if t.mentions_brand]
        return self._timeline(request, "mentions", posts)

    async def user_tweets(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request, user_only=False)
        if denied:
            return denied
        posts = [t for t in self.tweets.values() if t.fields["author_id"] == request.match_info["id"]]
        return self._timeline(request, "users_tweets", posts)

    async def create_tweet(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request, user_only=True)
        if denied:
            return denied
        body = await request.json()
        text, target = body.get("text"), (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if not isinstance(text, str) or not text:
            return invalid_request("text", str(text), "text is required")
        if target is None or int(target) not in self.tweets:
            return problem(400, "Invalid Request", "This fake only takes replies to posts it knows.")
        for tweet in self.tweets.values():
            refs = tweet.fields.get("referenced_tweets") or []
            if (
                tweet.fields["author_id"] == self.brand["id"]
                and {"type": "replied_to", "id": target} in refs
                and tweet.fields["text"].endswith(text)
            ):
                return problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        tweet_id = self.reply_tweet(target, text)
        self.replies.append(SentReply(target, text, {"kind": "tweet", "id": tweet_id}))
        # POST /2/tweets answer, shape of test_asyncclient_create_and_delete_tweet.yaml.
        return self._answer("create_tweet", {"data": {"id": tweet_id, "text": text}}, status=201)

    async def list_dm_events(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request, user_only=True)
        if denied:
            return denied
        query = request.rel_url.query
        events = self.dm_events
        if "conversation" in request.match_info:
            events = [e for e in events if e["dm_conversation_id"] == request.match_info["conversation"]]
        wanted = set(query.get("event_types", "MessageCreate,ParticipantsJoin,ParticipantsLeave").split(","))
        events = [e for e in events if e["event_type"] in wanted]
        limit = self._max_results(query, low=1, high=100, default=100)
        if isinstance(limit, web.Response):
            return limit
        ordered = sorted(events, key=lambda e: int(e["id"]), reverse=True)
        page, token, error = self._page(query, ordered, limit)
        if error:
            return error
        fields = set(DEFAULT_DM_FIELDS) | set(filter(None, query.get("dm_event.fields", "").split(",")))
        body: dict[str, Any] = {}
        if page:
            body["data"] = [{k: v for k, v in e.items() if k in fields} for e in page]
            if "sender_id" in query.get("expansions", ""):
                body["includes"] = {"users": self._users(query, {e["sender_id"] for e in page})}
        # GET /2/dm_events meta, shape of test_asyncclient_manage_and_lookup_direct_messages.yaml.
        body["meta"] = {"result_count": len(page), **({"next_token": token} if token else {})}
        return self._answer("dm_events", body)

    async def create_dm(self, request: web.Request) -> web.StreamResponse:
        denied = self._auth(request, user_only=True)
        if denied:
            return denied
        conversation = request.match_info["conversation"]
        if self.brand["id"] not in conversation.split("-") and not any(
            e["dm_conversation_id"] == conversation for e in self.dm_events
        ):
            return problem(403, "Forbidden", "You are not a participant of this conversation.")
        text = (await request.json()).get("text")
        if not isinstance(text, str) or not text:
            return invalid_request("text", str(text), "text is required")
        event_id = self.dm(self.brand["id"], conversation, text, datetime.now(UTC))
        self.replies.append(SentReply(conversation, text, {"kind": "dm", "id": event_id}))
        # POST /2/dm_conversations/:id/messages answer, verbatim shape of the DM cassette.
        return self._answer(
            "dm_create", {"data": {"dm_conversation_id": conversation, "dm_event_id": event_id}}, status=201
        )

    def _timeline(self, request: web.Request, endpoint: str, posts: list[Tweet]) -> web.StreamResponse:
        query = request.rel_url.query
        limit = self._max_results(query, low=5, high=100, default=10)
        if isinstance(limit, web.Response):
            return limit
        since = query.get("since_id")
        if since is not None and not since.isdigit():
            return invalid_request("since_id", since, f"The `since_id` query parameter value [{since}] is not valid")
        if since is not None:
            posts = [t for t in posts if t.id > int(since)]
        if start := query.get("start_time"):
            cutoff = datetime.fromisoformat(start.replace("Z", "+00:00"))
            posts = [
                t
                for t in posts
                if not isinstance(t.fields["created_at"], str)
                or datetime.fromisoformat(t.fields["created_at"].replace("Z", "+00:00")) >= cutoff
            ]
        ordered = sorted(posts, key=lambda t: t.id, reverse=True)
        page, token, error = self._page(query, ordered, limit)
        if error:
            return error
        fields = set(DEFAULT_TWEET_FIELDS) | set(filter(None, query.get("tweet.fields", "").split(",")))
        body: dict[str, Any] = {}
        if page:
            body["data"] = [{k: v for k, v in t.fields.items() if k in fields} for t in page]
            if "author_id" in query.get("expansions", ""):
                body["includes"] = {"users": self._users(query, {t.fields["author_id"] for t in page})}
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta.update(newest_id=page[0].fields["id"], oldest_id=page[-1].fields["id"])
        if token:
            meta["next_token"] = token
        body["meta"] = meta
        return self._answer(endpoint, body)

    def _page(self, query: Any, ordered: list[Any], limit: int) -> tuple[list[Any], str | None, web.Response | None]:
        """Newest-first paging by an opaque token naming the last id served (stable while new posts arrive)."""
        raw = query.get("pagination_token")
        start = 0
        if raw is not None:
            try:
                before = int(base64.b32decode(raw.upper() + "=" * (-len(raw) % 8)).decode())
            except ValueError:
                return (
                    [],
                    None,
                    invalid_request(
                        "pagination_token", raw, f"The `pagination_token` query parameter value [{raw}] is not valid"
                    ),
                )
            ids = [self._id(x) for x in ordered]
            start = next((i for i, value in enumerate(ids) if value < before), len(ids))
            if self.duplicating and start > 0:
                start -= 1  # the previous page's last item again
        page = ordered[start : start + limit]
        more = start + limit < len(ordered)
        token = (
            base64.b32encode(str(self._id(page[-1])).encode()).decode().rstrip("=").lower() if page and more else None
        )
        return page, token, None

    @staticmethod
    def _id(entry: Any) -> int:
        return entry.id if isinstance(entry, Tweet) else int(entry["id"])

    @staticmethod
    def _max_results(query: Any, *, low: int, high: int, default: int) -> int | web.Response:
        raw = query.get("max_results")
        if raw is None:
            return default
        if not raw.isdigit() or not low <= int(raw) <= high:
            return invalid_request(
                "max_results", raw, f"The `max_results` query parameter value [{raw}] is not between {low} and {high}"
            )
        return int(raw)

    def _users(self, query: Any, ids: set[str]) -> list[dict[str, str]]:
        fields = set(DEFAULT_USER_FIELDS) | set(filter(None, query.get("user.fields", "").split(",")))
        return [{k: v for k, v in self.users[i].items() if k in fields} for i in sorted(ids) if i in self.users]

    def _answer(self, endpoint: str, body: dict[str, Any], status: int = 200) -> web.Response:
        window = self.windows[endpoint]
        if window.reset <= time.time():
            window.remaining, window.reset = window.limit, int(time.time()) + 900
        if window.remaining <= 0:
            response = problem(429, "Too Many Requests", "Too Many Requests")
        else:
            window.remaining -= 1
            response = web.json_response(body, status=status)
        response.headers.update(
            {
                "x-rate-limit-limit": str(window.limit),
                "x-rate-limit-remaining": str(window.remaining),
                "x-rate-limit-reset": str(window.reset),
            }
        )
        return response

    def _auth(self, request: web.Request, *, user_only: bool) -> web.Response | None:
        """App-only bearer where X allows it, else a valid OAuth 1.0a signature for the brand's keys."""
        header = request.headers.get("Authorization", "")
        unauthorized = problem(401, "Unauthorized", "Unauthorized")
        if header.startswith("Bearer "):
            if header.removeprefix("Bearer ") != BEARER_TOKEN:
                return unauthorized
            if user_only:
                return problem(
                    403,
                    "Unsupported Authentication",
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
                    "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                    "https://api.twitter.com/2/problems/unsupported-authentication",
                )
            return None
        if not header.startswith("OAuth "):
            return unauthorized
        oauth = {key: utils.unescape(value) for key, value in utils.parse_authorization_header(header)}
        if oauth.get("oauth_consumer_key") != CONSUMER_KEY or oauth.get("oauth_token") != ACCESS_TOKEN:
            return unauthorized
        # The signature covers X's own URL: a proxy at api_url forwards there unchanged.
        params = signature.collect_parameters(
            uri_query=request.rel_url.raw_query_string, headers={"Authorization": header}, exclude_oauth_signature=True
        )
        base = signature.signature_base_string(
            request.method,
            signature.base_string_uri(X_HOST + request.rel_url.raw_path),
            signature.normalize_parameters(params),
        )
        client = OAuthClient(CONSUMER_KEY, client_secret=CONSUMER_SECRET, resource_owner_secret=ACCESS_TOKEN_SECRET)
        if signature.sign_hmac_sha1_with_client(base, client) != oauth.get("oauth_signature"):
            return unauthorized
        return None
