"""A local Reddit: the password-grant token endpoint and the oauth.reddit.com listings, info, comment and user endpoints.

Shapes follow reddit.com/dev/api and the asyncpraw cassettes in inbox/fakes/data/reddit/ (recorded against
www.reddit.com and oauth.reddit.com); the recorded things are read from there, the templates below name the file they follow.
"""

from __future__ import annotations

import base64
import copy
import html
import itertools
import time
from datetime import timedelta
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.data import payload, recorded_body
from inbox.fakes.vendor import Fault, SentReply, VendorFake

CLIENT_ID = "p-jcoLKBynTLew"
CLIENT_SECRET = "gko_LXELoV07ZBNUXrvWZfzE3aI"
USERNAME = "acme_support"
PASSWORD = "hunter2-but-longer"
USER_AGENT = "linux:cx-inbox-tests:0.1 (by /u/acme_support)"
BRAND_SUB = "acme"

_ids = itertools.count(0x2_000_000)


# GET_message_mentions.body.json (GET /message/mentions, TestInbox.test_mentions.json), children[1].
RECORDED_MENTION: dict[str, Any] = payload("reddit", "GET_message_mentions.body.json")["data"]["children"][1]
_ALL = recorded_body("reddit", "TestInbox.test_all.json", 1)["data"]["children"]  # GET /message/inbox
# TestInbox.test_all.json (GET /message/inbox), the first comment_reply.
RECORDED_COMMENT_REPLY: dict[str, Any] = next(
    c for c in _ALL if c["kind"] == "t1" and c["data"]["type"] == "comment_reply"
)
# TestInbox.test_all.json (GET /message/inbox), the first t4 (a reply in a conversation).
RECORDED_MESSAGE_REPLY: dict[str, Any] = next(c for c in _ALL if c["kind"] == "t4")
# TestInbox.test_unread.json (GET /message/unread), the new conversation.
RECORDED_MESSAGE: dict[str, Any] = recorded_body("reddit", "TestInbox.test_unread.json", 1)["data"]["children"][0]


def base36(number: int) -> str:
    """Reddit's id alphabet."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def listing(children: list[dict[str, Any]], after: str | None, before: str | None = None) -> dict[str, Any]:
    """A Listing as in TestInbox.test_all.json."""
    return {
        "kind": "Listing",
        "data": {
            "after": after,
            "dist": len(children),
            "modhash": None,
            "geo_filter": "",
            "children": children,
            "before": before,
        },
    }


class RedditFake(VendorFake):
    """Reddit for the account u/acme_support, watching r/acme."""

    page_size: ClassVar[int] = 100
    fetch_paths: ClassVar[tuple[str, ...]] = ("/message/inbox", "/r/")
    check_paths: ClassVar[tuple[str, ...]] = ("/api/v1/me",)

    def __init__(self) -> None:
        super().__init__()
        self.things: dict[str, dict[str, Any]] = {}
        self.inbox: list[str] = []
        self.posts: list[str] = []
        self.comments: list[str] = []
        self.tokens: dict[str, float] = {}
        self.token_requests: list[dict[str, str]] = []
        self.token_ttl = 86400
        self.revoked = False
        self.comment_errors: list[list[str]] = []
        self.user_agents: set[str] = set()
        self.forbidden_subs: set[str] = set()  # private or banned: 403 whatever the token
        self._created: dict[str, float] = {}  # listing order, kept apart from the (breakable) payload
        self._links: dict[str, str] = {}  # comment -> its post (inbox listings do not show link_id)

    # -- routes ---------------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """www.reddit.com's token endpoint and the oauth.reddit.com paths, on one server."""
        app.router.add_post("/api/v1/access_token", self.access_token)
        app.router.add_get("/api/v1/me", self.me)
        app.router.add_get("/message/inbox", self.list_inbox)
        app.router.add_get("/message/sent", self.list_sent)
        app.router.add_get("/r/{subs}/new", self.list_posts)
        app.router.add_get("/r/{subs}/comments", self.list_comments)
        app.router.add_get("/api/info", self.info)
        app.router.add_get("/user/{username}/comments", self.user_comments)
        app.router.add_post("/api/comment", self.comment)

    async def access_token(self, request: web.Request) -> web.Response:
        """POST /api/v1/access_token: HTTP basic client credentials, form grant_type=password&username&password."""
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        self.user_agents.add(request.headers.get("User-Agent", ""))
        if self.revoked or request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if form.get("grant_type") != "password":
            return web.json_response({"error": "unsupported_grant_type"})
        # A wrong username or password is a 200 with an error body (www.reddit.com behaves so).
        if form.get("username") != USERNAME or form.get("password") != PASSWORD:
            return web.json_response({"error": "invalid_grant"})
        token = f"tok-{len(self.token_requests)}"
        self.tokens[token] = time.time() + self.token_ttl
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl, "scope": "*"}
        )

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        self.user_agents.add(request.headers.get("User-Agent", ""))
        auth = request.headers.get("Authorization", "")
        token = auth[len("bearer ") :] if auth.lower().startswith("bearer ") else ""
        if self.revoked or self.tokens.get(token, 0) < time.time():
            headers = {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"', **self._rate()}
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401, headers=headers)
        return None

    def _rate(self) -> dict[str, str]:
        # Reddit: used / remaining (a float) / seconds until the window resets, as in the cassettes.
        used = len(self.requests)
        return {
            "x-ratelimit-used": str(used),
            "x-ratelimit-remaining": f"{max(1, 1000 - used):.1f}",
            "x-ratelimit-reset": "420",
        }

    def _page(self, request: web.Request, names: list[str]) -> web.Response:
        """Newest first; after= pages back, before= pages forward (the page right before that thing)."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        query = request.query
        limit = max(1, min(int(query.get("limit", "25")), 100))
        ordered = sorted(names, key=lambda n: (self._created[n], self._number(n)), reverse=True)
        if "after" in query:
            if query["after"] not in ordered:
                return web.json_response(listing([], None), headers=self._rate())
            start = ordered.index(query["after"]) + (0 if self.duplicating else 1)
            page = ordered[start : start + limit]
        elif "before" in query:
            end = ordered.index(query["before"]) if query["before"] in ordered else 0
            page = ordered[max(0, end - limit) : end]
        else:
            page = ordered[:limit]
        more = bool(page) and ordered.index(page[-1]) < len(ordered) - 1
        before = page[0] if page and ordered.index(page[0]) > 0 else None
        return web.json_response(
            listing([self.things[n] for n in page], page[-1] if more else None, before), headers=self._rate()
        )

    async def list_inbox(self, request: web.Request) -> web.Response:
        """GET /message/inbox."""
        return self._page(request, self.inbox)

    async def list_sent(self, request: web.Request) -> web.Response:
        """GET /message/sent: messages the account sent."""
        return self._page(
            request, [n for n, t in self.things.items() if t["kind"] == "t4" and t["data"]["author"] == USERNAME]
        )

    async def list_posts(self, request: web.Request) -> web.Response:
        """GET /r/a+b/new."""
        subs = {s.lower() for s in request.match_info["subs"].split("+")}
        if subs & self.forbidden_subs:
            return web.json_response({"message": "Forbidden", "error": 403}, status=403, headers=self._rate())
        return self._page(request, [n for n in self.posts if self.things[n]["data"]["subreddit"].lower() in subs])

    async def list_comments(self, request: web.Request) -> web.Response:
        """GET /r/a+b/comments: the newest comments in those subreddits."""
        subs = {s.lower() for s in request.match_info["subs"].split("+")}
        return self._page(request, [n for n in self.comments if self.things[n]["data"]["subreddit"].lower() in subs])

    async def user_comments(self, request: web.Request) -> web.Response:
        """GET /user/{username}/comments."""
        user = request.match_info["username"].lower()
        return self._page(
            request, [n for n, t in self.things.items() if t["kind"] == "t1" and t["data"]["author"].lower() == user]
        )

    async def info(self, request: web.Request) -> web.Response:
        """GET /api/info?id=fullname,fullname."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        wanted = request.query.get("id", "").split(",")
        return web.json_response(
            listing([self.things[n] for n in wanted if n in self.things], None), headers=self._rate()
        )

    async def me(self, request: web.Request) -> web.Response:
        """GET /api/v1/me (trimmed from TestMessage.test_reply.json)."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        return web.json_response(
            {
                "name": USERNAME,
                "id": "3ebyblla",
                "is_employee": False,
                "has_verified_email": True,
                "created_utc": 1552433321.0,
                "link_karma": 1,
                "comment_karma": 12,
            },
            headers=self._rate(),
        )

    async def comment(self, request: web.Request) -> web.Response:
        """POST /api/comment: api_type=json, thing_id, text; refusals in json.errors (POST_api_comment.body.json)."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        form = {k: str(v) for k, v in (await request.post()).items()}
        target, text = form.get("thing_id", ""), form.get("text", "")
        errors: list[list[str]] = []
        if self.comment_errors:
            errors = [self.comment_errors.pop(0)]
        elif target not in self.things:
            errors = [["DELETED_COMMENT", "that comment has been deleted", "parent"]]
        elif len(text) > 10000:
            errors = [["TOO_LONG", "this is too long (max: 10000)", "text"]]
        if errors:
            return web.json_response({"json": {"errors": errors}}, headers=self._rate())
        created = self._reply_thing(target, text, USERNAME, time.time())
        self.replies.append(
            SentReply(
                target,
                text,
                {"name": created["data"]["name"], "kind": created["kind"], "api_type": form.get("api_type")},
            )
        )
        return web.json_response({"json": {"errors": [], "data": {"things": [created]}}}, headers=self._rate())

    # -- knobs ----------------------------------------------------------------------------------------------------

    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A username mention in the inbox, or a follow-up under `reply_to` (a comment, or a message for a message)."""
        when = self._when(minutes_ago)
        if reply_to is not None:
            thing = self._reply_thing(reply_to, text, author, when)
            if thing["kind"] == "t1":
                parent = self.things[reply_to]["data"]
                if parent["author"] == USERNAME:
                    thing["data"].update(type="comment_reply", subject="comment reply")
                else:
                    thing["data"].update(
                        type="username_mention", subject="username mention", body=f"u/{USERNAME} {text}"
                    )
            self.inbox.append(thing["data"]["name"])
            return str(thing["data"]["name"])
        post = self._post("helpme", "Anyone else?", "customer0", when - 60)
        thing = self._comment(f"u/{USERNAME} {text}", author, when, parent=post, message=True, type_="username_mention")
        self.inbox.append(thing["data"]["name"])
        return str(thing["data"]["name"])

    def add_private_message(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, subject: str = "order problem"
    ) -> str:
        """A new private message to the account."""
        thing = self._message(text, author, self._when(minutes_ago), subject=subject)
        self.inbox.append(thing["data"]["name"])
        return str(thing["data"]["name"])

    def add_subreddit_post(
        self, title: str, *, author: str = "customer1", minutes_ago: float = 1.0, sub: str = BRAND_SUB, body: str = ""
    ) -> str:
        """A post in a subreddit."""
        thing = self._post(sub, title, author, self._when(minutes_ago), body=body)
        self.posts.append(thing["data"]["name"])
        return str(thing["data"]["name"])

    def add_subreddit_comment(self, text: str, *, on: str, author: str = "customer1", minutes_ago: float = 1.0) -> str:
        """A comment in a subreddit (not addressed to us)."""
        thing = self._comment(text, author, self._when(minutes_ago), parent=on)
        self.comments.append(thing["data"]["name"])
        return str(thing["data"]["name"])

    def add_brand_post(self, text: str) -> list[str]:
        """Our own post in r/acme naming the brand, and someone's crosspost of it."""
        ours = self._post(BRAND_SUB, f"Acme: {text}", USERNAME, self._when(2))
        crosspost = self._post(BRAND_SUB, f"Acme: {text}", "reposter", self._when(1))
        crosspost["data"].update(crosspost_parent=ours["data"]["name"], crosspost_parent_list=[ours["data"]])
        self.posts += [ours["data"]["name"], crosspost["data"]["name"]]
        return [ours["data"]["name"], crosspost["data"]["name"]]

    def add_existing_reply(self, target: str, text: str) -> None:
        """Our reply already posted, as if sent before a crash."""
        self._reply_thing(target, text, USERNAME, time.time() - 30)

    def add_broken_item(self) -> None:
        """An inbox thing whose author is missing and whose created_utc is a string."""
        thing = self._comment(
            "broken", "nobody", self._when(2), parent=self._post("x", "x", "x", self._when(3)), message=True
        )
        thing["data"].pop("author")
        thing["data"]["created_utc"] = "yesterday"
        self.inbox.append(thing["data"]["name"])

    def add_recorded(self, thing: dict[str, Any]) -> None:
        """Serve a recorded inbox thing as is."""
        self._store(thing["kind"], copy.deepcopy(thing)["data"])
        self.inbox.append(thing["data"]["name"])

    def expire_tokens(self) -> None:
        """Every issued token stops working (as after its hour is up)."""
        self.tokens.clear()

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """Reddit's 429: nothing remaining, reset in seconds."""
        headers = {"x-ratelimit-used": "1000", "x-ratelimit-remaining": "0.0", "x-ratelimit-reset": str(int(reset_in))}
        return Fault(429, headers, '{"message": "Too Many Requests", "error": 429}')

    def fault_unauthorized(self) -> Fault:
        """The app's credentials were revoked: 401 now, and the token endpoint refuses a new token too."""
        self.revoked = True
        return Fault(
            401,
            {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
            '{"message": "Unauthorized", "error": 401}',
        )

    # -- things ---------------------------------------------------------------------------------------------------

    def _when(self, minutes_ago: float) -> float:
        # Reddit's timestamps are whole seconds held in floats.
        return float(int((self.now - timedelta(minutes=minutes_ago)).timestamp()))

    @staticmethod
    def _number(name: str) -> int:
        return int(name.split("_", 1)[1], 36)

    def _store(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        thing = {"kind": kind, "data": data}
        self.things[data["name"]] = thing
        self._created[data["name"]] = float(data["created_utc"])
        return thing

    def _post(self, sub: str, title: str, author: str, created: float, *, body: str = "") -> dict[str, Any]:
        # t3 fields as documented for /r/{sub}/new (no recorded listing in the fixtures: shape from the API reference).
        post_id = base36(next(_ids))
        slug = "_".join(title.lower().split())[:40]
        return self._store(
            "t3",
            {
                "id": post_id,
                "name": f"t3_{post_id}",
                "subreddit": sub,
                "subreddit_name_prefixed": f"r/{sub}",
                "title": title,
                "selftext": body,
                "selftext_html": None,
                "author": author,
                "author_fullname": f"t2_{author}",
                "created": created,
                "created_utc": created,
                "permalink": f"/r/{sub}/comments/{post_id}/{slug}/",
                "url": f"https://www.reddit.com/r/{sub}/comments/{post_id}/{slug}/",
                "num_comments": 0,
                "score": 1,
                "is_self": True,
                "over_18": False,
                "stickied": False,
                "locked": False,
                "distinguished": None,
            },
        )

    def _comment(
        self,
        text: str,
        author: str,
        created: float,
        *,
        parent: dict[str, Any] | str,
        message: bool = False,
        type_: str = "comment_reply",
    ) -> dict[str, Any]:
        parent_thing = self.things[parent] if isinstance(parent, str) else parent
        pdata = parent_thing["data"]
        link_id = pdata["name"] if parent_thing["kind"] == "t3" else self._links[pdata["name"]]
        post = self.things[link_id]["data"]
        comment_id = base36(next(_ids))
        permalink = f"{post['permalink']}{comment_id}/"
        data: dict[str, Any] = {
            "id": comment_id,
            "name": f"t1_{comment_id}",
            "author": author,
            "author_fullname": f"t2_{author}",
            "body": text,
            "body_html": f'<div class="md"><p>{html.escape(text)}</p>\n</div>',
            "created": created,
            "created_utc": created,
            "parent_id": pdata["name"],
            "link_id": link_id,
            "subreddit": post["subreddit"],
            "subreddit_name_prefixed": f"r/{post['subreddit']}",
            "permalink": permalink,
            "score": 1,
            "distinguished": None,
            "edited": False,
        }
        if message:
            # How an inbox listing shows a comment (TestInbox.test_all.json): no link_id, a context link instead.
            data = {
                "first_message": None,
                "first_message_name": None,
                "subreddit": post["subreddit"],
                "likes": None,
                "replies": "",
                "author_fullname": f"t2_{author}",
                "id": comment_id,
                "subject": type_.replace("_", " "),
                "associated_awarding_id": None,
                "score": 1,
                "author": author,
                "num_comments": 1,
                "parent_id": pdata["name"],
                "subreddit_name_prefixed": f"r/{post['subreddit']}",
                "new": True,
                "type": type_,
                "body": text,
                "link_title": post["title"],
                "dest": USERNAME,
                "was_comment": True,
                "body_html": f'<!-- SC_OFF --><div class="md"><p>{html.escape(text)}</p>\n</div><!-- SC_ON -->',
                "name": f"t1_{comment_id}",
                "created": created,
                "created_utc": created,
                "context": f"{permalink}?context=3",
                "distinguished": None,
            }
        self._links[data["name"]] = link_id
        return self._store("t1", data)

    def _message(
        self, text: str, author: str, created: float, *, subject: str, parent: str | None = None
    ) -> dict[str, Any]:
        # t4 as in TestInbox.test_unread.json / TestMessage.test_reply.json.
        message_id = base36(next(_ids))
        root = None
        if parent is not None:
            root = self.things[parent]["data"]["first_message_name"] or parent
        return self._store(
            "t4",
            {
                "first_message": int(root[3:], 36) if root else None,
                "first_message_name": root,
                "subreddit": None,
                "likes": None,
                "replies": "",
                "author_fullname": f"t2_{author}",
                "id": message_id,
                "subject": f"re: {subject}" if root else subject,
                "associated_awarding_id": None,
                "score": 0,
                "author": author,
                "num_comments": None,
                "parent_id": parent,
                "subreddit_name_prefixed": None,
                "new": True,
                "type": "unknown",
                "body": text,
                "dest": USERNAME if author != USERNAME else "customer",
                "was_comment": False,
                "body_html": f'<!-- SC_OFF --><div class="md"><p>{html.escape(text)}</p>\n</div><!-- SC_ON -->',
                "name": f"t4_{message_id}",
                "created": created,
                "created_utc": created,
                "context": "",
                "distinguished": None,
            },
        )

    def _reply_thing(self, target: str, text: str, author: str, created: float) -> dict[str, Any]:
        parent = self.things[target]
        if parent["kind"] == "t4":
            subject = str(parent["data"]["subject"]).removeprefix("re: ")
            return self._message(text, author, created, subject=subject, parent=target)
        return self._comment(text, author, created, parent=target, message=author != USERNAME)
