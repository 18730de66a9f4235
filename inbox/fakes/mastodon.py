"""A local Mastodon instance: notifications with types[]/min_id/max_id/since_id and Link paging, statuses, context, streaming.

Shapes follow docs.joinmastodon.org and the Mastodon.py cassettes in inbox/fakes/data/mastodon/
(recorded against a real Mastodon server); the trimmed entities below name the file they come from.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.data import payload
from inbox.fakes.vendor import Fault, SentReply, VendorFake

TOKEN = "__MASTODON_PY_TEST_ACCESS_TOKEN"
BRAND_ID = "117020565693913441"
BRAND = "acme"

# notification_mention.json (GET /api/v1/notifications?types[]=mention, test_notifications_mentions_only.yaml).
RECORDED_MENTION: dict[str, Any] = payload("mastodon", "notification_mention.json")

# test_entity_notification.yaml (GET https://mastodon.social/api/v1/notifications), the direct mention, trimmed
# to the fields a client reads; content verbatim.
RECORDED_DIRECT: dict[str, Any] = {
    "id": "547915300",
    "type": "mention",
    "created_at": "2026-03-22T23:05:55.000Z",
    "account": {
        "id": "109446733121874654",
        "username": "latencyobs",
        "acct": "latencyobs@icosahedron.website",
        "display_name": "latency observer",
        "url": "https://icosahedron.website/@latencyobs",
    },
    "status": {
        "id": "116275331587890092",
        "created_at": "2026-03-22T23:05:54.682Z",
        "in_reply_to_id": None,
        "in_reply_to_account_id": None,
        "sensitive": False,
        "spoiler_text": "",
        "visibility": "direct",
        "uri": "https://icosahedron.website/users/latencyobs/statuses/116275331587890092",
        "url": "https://icosahedron.website/@latencyobs/116275331587890092",
        "content": '<p><span class="h-card" translate="no"><a href="https://mastodon.social/@halcy" class="u-url mention" '
        'rel="nofollow noopener" target="_blank">@<span>halcy@mastodon.social</span></a></span> <span class="h-card" '
        'translate="no"><a href="https://glitch.social/@halcy" class="u-url mention" rel="nofollow noopener" '
        'target="_blank">@<span>halcy@glitch.social</span></a></span> <span class="h-card" translate="no"><a '
        'href="https://hachyderm.io/@halcy" class="u-url mention" rel="nofollow noopener" target="_blank">@<span>'
        "halcy@hachyderm.io</span></a></span> ____________LATENCYPING____________1774220754.2367332____________"
        "LATENCYPING____________</p>",
        "reblog": None,
        "account": {
            "id": "109446733121874654",
            "username": "latencyobs",
            "acct": "latencyobs@icosahedron.website",
            "display_name": "latency observer",
            "url": "https://icosahedron.website/@latencyobs",
        },
        "mentions": [
            {"id": "43", "username": "halcy", "url": "https://mastodon.social/@halcy", "acct": "halcy"},
            {"id": "261937", "username": "halcy", "url": "https://glitch.social/@halcy", "acct": "halcy@glitch.social"},
        ],
    },
}


def iso(moment: datetime) -> str:
    """Mastodon's timestamp format: UTC, milliseconds, Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class MastodonFake(VendorFake):
    """The REST and streaming endpoints a support account uses, with the brand account `@acme`."""

    page_size: ClassVar[int] = 40
    fetch_paths: ClassVar[tuple[str, ...]] = ("/api/v1/notifications",)
    check_paths: ClassVar[tuple[str, ...]] = ("/api/v1/accounts/verify_credentials",)

    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.idempotent: dict[str, dict[str, Any]] = {}
        self.stream_queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.stream_failure: Fault | None = None
        self.max_characters = 500
        self.rate_remaining: int | None = (
            None  # what every answer announces as left, when set (else 300 less the requests so far)
        )
        self._next_notification = 100
        self._sequence = 0
        self.brand = self._account(BRAND_ID, BRAND, "Acme Support")

    # -- routes ---------------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The documented paths."""
        app.router.add_get("/api/v1/notifications", self.list_notifications)
        app.router.add_get("/api/v1/accounts/verify_credentials", self.verify_credentials)
        app.router.add_get("/api/v1/statuses/{id}", self.get_status)
        app.router.add_get("/api/v1/statuses/{id}/context", self.context)
        app.router.add_post("/api/v1/statuses", self.post_status)
        app.router.add_get("/api/v1/streaming/user", self.stream)
        app.router.add_get("/api/v1/streaming/user/notification", self.stream)

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "The access token is invalid"}, status=401, headers=self._rate())
        return None

    def _rate(self) -> dict[str, str]:
        # Mastodon: 300 requests per 5 minutes, reset as ISO 8601 (see the cassettes' x-ratelimit-* headers).
        used = len(self.requests)
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(max(1, 300 - used) if self.rate_remaining is None else self.rate_remaining),
            "X-RateLimit-Reset": iso(datetime.now(UTC) + timedelta(minutes=5)),
        }

    async def list_notifications(self, request: web.Request) -> web.Response:
        """GET /api/v1/notifications: newest first; min_id pages forward from a cursor, max_id backward."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        query = request.query
        types, excluded = query.getall("types[]", []), query.getall("exclude_types[]", [])
        limit = max(1, min(int(query.get("limit", "40")), 80))
        pool = [n for n in self.notifications if (not types or n["type"] in types) and n["type"] not in excluded]
        pool.sort(key=lambda n: int(n["id"]))
        # duplicate_across_pages(): the boundary notification of the previous page comes back on the next one.
        edge = 1 if self.duplicating else 0
        if "max_id" in query:
            pool = [n for n in pool if int(n["id"]) < int(query["max_id"]) + edge]
        if "since_id" in query:
            pool = [n for n in pool if int(n["id"]) > int(query["since_id"])]
        if "min_id" in query:
            pool = [n for n in pool if int(n["id"]) > int(query["min_id"]) - edge]
            page = pool[:limit]  # the page closest to min_id
        else:
            page = pool[-limit:]  # the newest page (below max_id, above since_id)
        page = sorted(page, key=lambda n: int(n["id"]), reverse=True)
        headers = self._rate()
        if page:
            keep = [(k, v) for k, v in query.items() if k not in ("max_id", "min_id", "since_id")]
            older = request.url.with_query([*keep, ("max_id", page[-1]["id"])])
            newer = request.url.with_query([*keep, ("min_id", page[0]["id"])])
            headers["Link"] = f'<{older}>; rel="next", <{newer}>; rel="prev"'
        return web.json_response(page, headers=headers)

    async def verify_credentials(self, request: web.Request) -> web.Response:
        """The brand's CredentialAccount."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        return web.json_response(
            {**self.brand, "source": {"privacy": "public", "note": "", "fields": []}}, headers=self._rate()
        )

    async def get_status(self, request: web.Request) -> web.Response:
        """One status."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        status = self.statuses.get(request.match_info["id"])
        if status is None:
            return web.json_response({"error": "Record not found"}, status=404, headers=self._rate())
        return web.json_response(status, headers=self._rate())

    async def context(self, request: web.Request) -> web.Response:
        """Ancestors (root first) and descendants of a status."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        status_id = request.match_info["id"]
        if status_id not in self.statuses:
            return web.json_response({"error": "Record not found"}, status=404, headers=self._rate())
        ancestors: list[dict[str, Any]] = []
        parent = self.statuses[status_id]["in_reply_to_id"]
        while parent in self.statuses:
            ancestors.insert(0, self.statuses[parent])
            parent = self.statuses[parent]["in_reply_to_id"]
        descendants, frontier = [], [status_id]
        while frontier:
            current = frontier.pop(0)
            children = [s for s in self.statuses.values() if s["in_reply_to_id"] == current]
            descendants += children
            frontier += [c["id"] for c in children]
        return web.json_response({"ancestors": ancestors, "descendants": descendants}, headers=self._rate())

    async def post_status(self, request: web.Request) -> web.Response:
        """POST /api/v1/statuses (form or JSON), honouring Idempotency-Key."""
        if (denied := self._unauthorized(request)) is not None:
            return denied
        if request.content_type == "application/json":
            form: dict[str, Any] = await request.json()
        else:
            form = dict(await request.post())
        key = request.headers.get("Idempotency-Key")
        if key and key in self.idempotent:
            return web.json_response(self.idempotent[key], headers=self._rate())
        text = str(form.get("status") or "")
        if not text.strip():
            return web.json_response({"error": "Validation failed: Text can't be blank"}, status=422)
        if len(text) > self.max_characters:
            return web.json_response(
                {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}, status=422
            )
        parent = form.get("in_reply_to_id")
        if parent and parent not in self.statuses:
            return web.json_response({"error": "Record not found"}, status=404)
        visibility = str(form.get("visibility") or "public")
        status = self._status(self.brand, text, datetime.now(UTC), parent=parent, visibility=visibility)
        if key:
            self.idempotent[key] = status
        # The contract compares the agent's text; the leading @mention is how Mastodon addresses the customer.
        self.replies.append(
            SentReply(
                str(parent),
                re.sub(r"^(@\S+\s+)+", "", text),
                {
                    "status": text,
                    "visibility": visibility,
                    "idempotency_key": key,
                    "content_type": request.content_type,
                    "id": status["id"],
                },
            )
        )
        return web.json_response(status, headers=self._rate())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: whatever the test queued, until it queues None."""
        if self.stream_failure is not None:
            fault = self.stream_failure
            return web.Response(
                status=fault.status, text=fault.body, headers=fault.headers, content_type="application/json"
            )
        if (denied := self._unauthorized(request)) is not None:
            return denied
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b":)\n")
        while (chunk := await self.stream_queue.get()) is not None:
            await response.write(chunk)
        return response

    async def close(self) -> None:
        """End any open stream, then stop."""
        self.stream_queue.put_nowait(None)
        await super().close()

    # -- knobs ----------------------------------------------------------------------------------------------------

    def add_customer_post(
        self,
        text: str,
        *,
        author: str = "customer1",
        minutes_ago: float = 1.0,
        reply_to: str | None = None,
        visibility: str = "public",
    ) -> str:
        """A customer's status mentioning @acme, and its mention notification; returns the status id."""
        account = self._customer(author)
        when = self.now - timedelta(minutes=minutes_ago)
        status = self._status(account, f"@{BRAND} {text}", when, parent=reply_to, visibility=visibility)
        self._notify("mention", account, status, when)
        return str(status["id"])

    def add_brand_post(self, text: str) -> list[str]:
        """Our own status (it even mentions us, as some servers notify self-mentions) and someone's boost of it."""
        status = self._status(self.brand, f"@{BRAND} {text}", self.now - timedelta(minutes=2))
        self._notify("mention", self.brand, status, self.now - timedelta(minutes=2))
        booster = self._customer("booster")
        boost = self._status(booster, "", self.now - timedelta(minutes=1), reblog=status)
        self._notify("reblog", booster, status, self.now - timedelta(minutes=1))
        return [str(status["id"]), str(boost["id"])]

    def add_existing_reply(self, target: str, text: str) -> None:
        """Our reply already in the thread, as if posted before a crash."""
        parent = self.statuses[target]
        self._status(
            self.brand,
            f"@{parent['account']['acct']} {text}",
            datetime.now(UTC),
            parent=target,
            visibility=parent["visibility"],
        )

    def add_broken_item(self) -> None:
        """A mention notification whose status has lost its timestamp and whose account is not an object."""
        account = self._customer("broken")
        status = self._status(account, "broken", self.now - timedelta(minutes=2))
        broken = {k: v for k, v in status.items() if k != "created_at"}
        broken["account"] = "broken"
        self.statuses.pop(status["id"])
        self._notify("mention", account, broken, self.now - timedelta(minutes=2))

    def add_recorded(self, notification: dict[str, Any]) -> None:
        """Serve a recorded notification as is (after the ones already there)."""
        self.notifications.append(copy.deepcopy(notification))
        if isinstance(notification.get("status"), dict):
            self.statuses[notification["status"]["id"]] = copy.deepcopy(notification["status"])

    def notification_for(self, status_id: str) -> dict[str, Any]:
        """The mention notification of a status."""
        return next(
            n for n in self.notifications if isinstance(n.get("status"), dict) and n["status"].get("id") == status_id
        )

    def push(self, chunk: str | bytes | None) -> None:
        """Queue raw bytes for the open stream (None ends it)."""
        self.stream_queue.put_nowait(chunk.encode() if isinstance(chunk, str) else chunk)

    def push_event(self, event: str, payload: Any) -> None:
        """Queue one server-sent event."""
        self.push(f"event: {event}\ndata: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n")

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """Mastodon's throttled answer (rack-attack): remaining 0 and the reset as ISO 8601."""
        reset = iso(datetime.now(UTC) + timedelta(seconds=reset_in))
        headers = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
        return Fault(429, headers, '{"error":"Too many requests"}')

    def fault_unauthorized(self) -> Fault:
        """Mastodon's answer to a revoked token."""
        return Fault(401, {}, '{"error":"The access token is invalid"}')

    # -- entities -------------------------------------------------------------------------------------------------

    @property
    def origin(self) -> str:
        """Where links point."""
        return self.base_url if self.server is not None else "http://localhost:3000"

    def _account(self, account_id: str, username: str, display_name: str = "") -> dict[str, Any]:
        # Account shape from test_status_reply.yaml (verify_credentials), trimmed.
        account = {
            "id": account_id,
            "username": username,
            "acct": username,
            "display_name": display_name,
            "locked": False,
            "bot": False,
            "group": False,
            "created_at": "2026-08-01T00:00:00.000Z",
            "note": "",
            "url": f"{self.origin}/@{username}",
            "uri": f"{self.origin}/ap/users/{account_id}",
            "avatar": f"{self.origin}/avatars/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": 0,
            "emojis": [],
            "fields": [],
        }
        self.accounts[username] = account
        return account

    def _customer(self, handle: str) -> dict[str, Any]:
        if handle not in self.accounts:
            self._account(str(117020566092212359 + len(self.accounts)), handle, handle.title())
        return self.accounts[handle]

    def _status(
        self,
        account: dict[str, Any],
        text: str,
        when: datetime,
        *,
        parent: str | None = None,
        visibility: str = "public",
        reblog: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # Snowflake-like ids: milliseconds << 16 plus a sequence, as Mastodon's are.
        self._sequence += 1
        status_id = str((int(when.timestamp() * 1000) << 16) + self._sequence)
        mentions = [self.accounts[m] for m in re.findall(r"(?:^|\s)@(\w+)", text) if m in self.accounts]
        body = re.sub(
            r"(^|\s)@(\w+)", lambda m: m.group(1) + self._mention_html(m.group(2)), html.escape(text, quote=False)
        )
        parent_status = self.statuses.get(parent) if parent else None
        status = {
            "id": status_id,
            "created_at": iso(when),
            "in_reply_to_id": parent,
            "in_reply_to_account_id": parent_status["account"]["id"] if parent_status else None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": visibility,
            "language": "en",
            "uri": f"{self.origin}/ap/users/{account['id']}/statuses/{status_id}",
            "url": f"{self.origin}/@{account['username']}/{status_id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "content": "" if reblog else "<p>" + body.replace("\n", "<br />") + "</p>",
            "reblog": reblog,
            "account": account,
            "media_attachments": [],
            "mentions": [
                {"id": m["id"], "username": m["username"], "url": m["url"], "acct": m["acct"]} for m in mentions
            ],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        self.statuses[status_id] = status
        return status

    def _mention_html(self, username: str) -> str:
        return (
            f'<span class="h-card" translate="no"><a href="{self.origin}/@{username}" class="u-url mention">'
            f"@<span>{username}</span></a></span>"
        )

    def _notify(self, type_: str, account: dict[str, Any], status: dict[str, Any], when: datetime) -> dict[str, Any]:
        self._next_notification += 1
        notification = {
            "id": str(self._next_notification),
            "type": type_,
            "created_at": iso(when + timedelta(milliseconds=600)),
            "group_key": f"ungrouped-{self._next_notification}",
            "account": account,
            "status": status,
        }
        self.notifications.append(notification)
        return notification
