"""A local Slack Web API over real HTTP: answers like Slack (shared fixtures), records every call, injects faults."""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

# Copied from the shared fixture set with their source note (data/slack/SOURCE.md), so an installed package has them.
FIXTURES = Path(__file__).resolve().parent / "data" / "slack"
TOKEN = "xoxb-test-token"
TEAM = "T12345678"
BOT_USER = "UBOT0001"
BOT_ID = "B19LU7CSY"
_JSON_ARGS = ("blocks", "view", "metadata", "attachments")


def fixture(name: str) -> dict[str, Any]:
    """A Slack answer from the shared fixtures (openapi examples, as on Slack's method pages)."""
    answer: dict[str, Any] = json.loads(_fixture_text(name))
    return answer


@functools.cache
def _fixture_text(name: str) -> str:
    # Read once: the crash test's ten thousand posts would otherwise read the file ten thousand times.
    return (FIXTURES / "openapi-examples" / f"{name}.json").read_text()


@dataclass
class Call:
    """One request the fake answered."""

    method: str
    args: dict[str, Any]
    status: int = 200
    ok: bool = True
    at: float = field(default_factory=time.time)  # when it arrived (wall clock, comparable across processes)


@dataclass
class Fault:
    """An answer to give instead of the real one; `happen` still performs the call first (a lost answer)."""

    status: int = 429
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    happen: bool = False
    disconnect: bool = False


class FakeSlack:
    """Slack's Web API and response_url endpoint, in memory."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.responses: list[dict[str, Any]] = []  # POSTs to response_url
        self.messages: dict[str, list[dict[str, Any]]] = {}
        # The same messages by (channel, ts): an update or a permalink does not read the whole channel (O(n) each,
        # 10,000 messages in the crash test). Kept by `_keep` and chat.delete, the only writers of `messages`.
        self._by_ts: dict[tuple[str, str], dict[str, Any]] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.files: dict[str, dict[str, Any]] = {}  # uploaded files by id: name, title, bytes, where they were shared
        self.down = False
        self.socket_acks: list[dict[str, Any]] = []  # what the app answered over Socket Mode
        self._sockets: list[web.WebSocketResponse] = []
        self.now: Callable[[], float] = time.time  # Slack's clock; tests set it to their fake clock
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Serve on a free local port; returns the base URL (with a trailing slash)."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{key}", self._respond)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/_state", self._state)
        app.router.add_get("/link", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)  # a started TCPSite serves on an asyncio.Server
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ test helpers

    def fail(self, method: str, fault: Fault | None = None, times: int = 1) -> None:
        """Answer the next `times` calls of `method` with `fault` (default: 429 ratelimited, Retry-After 1)."""
        fault = fault or Fault(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
        self.faults.setdefault(method, []).extend([fault] * times)

    def called(self, method: str) -> list[dict[str, Any]]:
        """Arguments of every successful call of `method`, in order."""
        return [c.args for c in self.calls if c.method == method and c.status == 200 and c.ok]

    def posted(self, channel: str, *, in_thread: bool | None = None) -> list[dict[str, Any]]:
        """Messages currently in `channel` (top-level only, replies only, or both)."""
        found = self.messages.get(channel, [])
        if in_thread is None:
            return found
        return [m for m in found if bool(m.get("thread_ts") and m["thread_ts"] != m["ts"]) == in_thread]

    def response_url(self, key: str = "r1") -> str:
        """A response_url pointing here."""
        return f"{self.url}respond/{key}"

    # ------------------------------------------------------------------ HTTP

    async def send_envelope(self, envelope: dict[str, Any]) -> None:
        """Deliver a Socket Mode envelope to every connected app."""
        for ws in self._sockets:
            await ws.send_json(envelope)

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(message.data))
        self._sockets.remove(ws)
        return ws

    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"{self.url.replace('http://', 'ws://')}link"}

    async def _state(self, request: web.Request) -> web.Response:
        """For a fake in another process (the benchmark): what it holds and was asked."""
        methods: dict[str, int] = {}
        for call in self.calls:
            methods[call.method] = methods.get(call.method, 0) + 1
        return web.json_response({"messages": self.messages, "calls": methods})

    async def _upload(self, request: web.Request) -> web.Response:
        """Step 2 of an external upload: the bytes, POSTed to the URL files.getUploadURLExternal gave."""
        pending = self.files.get(request.match_info["file_id"])
        if pending is None or pending["data"] is not None:
            return web.Response(status=404, text="upload url not found")
        data = await request.read()
        if len(data) != pending["length"]:
            return web.Response(status=400, text=f"expected {pending['length']} bytes, got {len(data)}")
        pending["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await _args(request)
        if self.down:
            self.calls.append(Call(method, args, 503))
            return web.Response(status=503, text="upstream connect error")
        fault = self.faults.get(method, []).pop(0) if self.faults.get(method) else None
        if fault is not None and fault.disconnect:
            self.calls.append(Call(method, args, 0))
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        auth = request.headers.get("Authorization", "")
        if method not in ("apps.connections.open",) and auth != f"Bearer {TOKEN}":
            self.calls.append(Call(method, args, 200, False))
            return web.json_response(fixture("auth.test.error"))
        if fault is not None and not fault.happen:
            self.calls.append(Call(method, args, fault.status))
            return web.json_response(fault.body or {"ok": False}, status=fault.status, headers=fault.headers)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        answer = handler(args) if handler else {"ok": False, "error": "unknown_method"}
        if fault is not None:
            self.calls.append(Call(method, args, fault.status))
            return web.json_response(fault.body or {"ok": False}, status=fault.status, headers=fault.headers)
        self.calls.append(Call(method, args, 200, bool(answer.get("ok"))))
        return web.json_response(answer)

    # ------------------------------------------------------------------ methods

    def _next_ts(self) -> str:
        return f"{int(self.now())}.{next(self._ts):06d}"

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return self._by_ts.get((channel, ts))

    def _keep(self, channel: str, message: dict[str, Any]) -> None:
        self.messages.setdefault(channel, []).append(message)
        self._by_ts[(channel, message["ts"])] = message  # a ts is never given twice (`_next_ts`)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = fixture("auth.test")
        answer.update(user_id=BOT_USER, user="inbox", bot_id=BOT_ID, team_id=TEAM)
        return answer

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel or str(channel).startswith("CMISSING"):
            return fixture("chat.postMessage.error")
        message = {
            "type": "message",
            "subtype": "bot_message",
            "ts": self._next_ts(),
            "text": args.get("text", ""),
            "blocks": args.get("blocks") or [],
            "bot_id": BOT_ID,
            "user": BOT_USER,
        }
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        self._keep(channel, message)
        answer = fixture("chat.postMessage")
        answer.update(channel=channel, ts=message["ts"], message={k: v for k, v in message.items() if k != "metadata"})
        return answer

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self._find(args.get("channel", ""), args.get("ts", ""))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.update(text=args.get("text", ""), blocks=args.get("blocks") or [])
        answer = fixture("chat.update")
        answer.update(
            channel=args["channel"],
            ts=message["ts"],
            text=message["text"],
            message={"text": message["text"], "user": BOT_USER},
        )
        return answer

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel", ""), args.get("ts", "")
        message = self._find(channel, ts)
        if message is None:
            return fixture("chat.delete.error")
        self.messages[channel].remove(message)
        del self._by_ts[(channel, ts)]
        answer = fixture("chat.delete")
        answer.update(channel=channel, ts=ts)
        return answer

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = fixture("chat.postEphemeral")
        answer["message_ts"] = self._next_ts()
        return answer

    def _chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = args.get("channel", ""), args.get("message_ts", "")
        if self._find(channel, ts) is None:
            return fixture("chat.getPermalink.error")
        answer = fixture("chat.getPermalink")
        answer.update(channel=channel, permalink=f"https://acme.slack.com/archives/{channel}/p{ts.replace('.', '')}")
        return answer

    def _files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        """Step 1 of an external upload: a file id and the URL to POST its bytes to."""
        length = str(args.get("length") or "")
        if not args.get("filename") or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{len(self.files) + 1:09d}"
        self.files[file_id] = {
            "name": args["filename"],
            "length": int(length),
            "alt_txt": args.get("alt_txt"),
            "data": None,
            "title": None,
            "channels": [],
        }
        return {"ok": True, "upload_url": f"{self.url}upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        """Step 3: the uploaded files titled and, with `channel_id`, shared there in one message (private without)."""
        try:
            listed = json.loads(args.get("files") or "")
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(listed, list) or not listed:
            return {"ok": False, "error": "invalid_arguments"}
        found = []
        for entry in listed:
            stored = self.files.get(entry.get("id", "")) if isinstance(entry, dict) else None
            if stored is None or stored["data"] is None:
                return {"ok": False, "error": "file_not_found"}  # never uploaded (step 2 missing)
            stored["title"] = entry.get("title") or stored["name"]
            found.append({"id": entry["id"], "name": stored["name"], "title": stored["title"]})
        channel = args.get("channel_id")
        if channel:
            if str(channel).startswith("CMISSING"):
                return {"ok": False, "error": "channel_not_found"}
            message = {
                "type": "message",
                "ts": self._next_ts(),
                "text": args.get("initial_comment") or "",
                "files": found,
                "upload": True,
                "user": BOT_USER,
                "bot_id": BOT_ID,
            }
            if args.get("thread_ts"):
                message["thread_ts"] = args["thread_ts"]
            self._keep(channel, message)
            for entry in found:
                self.files[entry["id"]]["channels"].append(channel)
        return {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in found]}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("trigger_id"):
            return fixture("views.open.error")
        return self._store_view(args["view"])

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("view_id") not in self.views:
            return fixture("views.update.error")
        return self._store_view(args["view"], args["view_id"])

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._store_view(args["view"])

    def _store_view(self, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
        answer = fixture("views.open")
        stored = {
            **answer["view"],
            **copy.deepcopy(view),
            "id": view_id or f"V{len(self.views) + 1:08d}",
            "hash": self._next_ts(),
        }
        self.views[stored["id"]] = stored
        answer["view"] = stored
        return answer

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = fixture("users.info")
        user = answer["user"]
        user.update(id=args.get("user"), team_id=TEAM, profile={**user["profile"], "team": TEAM})
        user.update(self.users.get(args.get("user", ""), {}))
        return answer

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": self.groups.get(args.get("usergroup", ""), [])}

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        found = [m for m in self.messages.get(args.get("channel", ""), []) if "thread_ts" not in m]
        return self._window(list(reversed(found)), args)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        parent = args.get("ts", "")
        found = [
            m
            for m in self.messages.get(args.get("channel", ""), [])
            if m["ts"] == parent or m.get("thread_ts") == parent
        ]
        if not found:
            return fixture("conversations.replies.error")
        return self._window(found, args)

    def _window(self, messages: list[dict[str, Any]], args: dict[str, Any]) -> dict[str, Any]:
        """Slack's paging of history and replies: oldest/latest (exclusive unless inclusive), limit, cursor."""
        inclusive = str(args.get("inclusive")).lower() in ("1", "true")
        oldest, latest = float(args.get("oldest") or 0), float(args.get("latest") or "inf")
        inside = [
            m
            for m in messages
            if ((oldest <= float(m["ts"]) <= latest) if inclusive else (oldest < float(m["ts"]) < latest))
        ]
        start = int(str(args.get("cursor") or "0").removeprefix("page:") or 0)
        limit = min(int(args.get("limit") or 100), 999)
        page = inside[start : start + limit]
        more = start + limit < len(inside)
        answer: dict[str, Any] = {"ok": True, "messages": [self._shown(m, args) for m in page], "has_more": more}
        answer["response_metadata"] = {"next_cursor": f"page:{start + limit}" if more else ""}
        return answer

    @staticmethod
    def _shown(message: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        # Slack returns message metadata only when asked for it.
        if str(args.get("include_all_metadata")).lower() in ("1", "true"):
            return message
        return {k: v for k, v in message.items() if k != "metadata"}


async def _args(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            args.update(await request.json())
        else:
            args.update(dict(await request.post()))
    for key in _JSON_ARGS:
        if isinstance(args.get(key), str):
            args[key] = json.loads(args[key])
    return args
