"""A fake Slack over real HTTP on 127.0.0.1: the Web API, file downloads and a Socket Mode
WebSocket endpoint. It records every call the daemon makes and can be told to fail
(``fail("chat.postMessage", status=429, retry_after=1)``). Also: signed Events API requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSMsgType, web

JSON = dict[str, Any]

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
SIGNING_SECRET = "test-signing-secret"
TEAM = "T0001"
BOT_USER = "UBOT"
BOT_ID = "BBOT"
# chat.postMessage, chat.update and each streaming call take this much `markdown_text`.
MARKDOWN_LIMIT = 12_000


@dataclass
class Call:
    """One Web API request as the fake received it."""

    method: str
    args: JSON
    http_method: str
    status: int = 200
    response: JSON = field(default_factory=dict)


@dataclass
class Failure:
    status: int
    error: str
    retry_after: int | None


class FakeSlack:
    """``async with FakeSlack() as slack:``; point ``slack.base_url`` at it."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[JSON]] = {}
        self.deleted: list[JSON] = []
        self.reactions: set[tuple[str, str, str]] = set()
        self.users: dict[str, JSON] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.files: dict[str, bytes] = {}
        self.file_downloads: list[str] = []
        self.acks: list[JSON] = []
        self._failures: dict[str, list[Failure]] = {}
        self._delays: dict[str, float] = {}
        self._ts = itertools.count(1)
        self._sockets: list[web.WebSocketResponse] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def file_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/files/{name}"

    # -- steering -----------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 429,
        error: str = "ratelimited",
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` fail like this."""
        self._failures.setdefault(method, []).extend([Failure(status, error, retry_after)] * times)

    def delay(self, method: str, seconds: float) -> None:
        """Every later call of ``method`` (or ``"files"``: every download of a file the fake
        has) answers only after ``seconds``."""
        self._delays[method] = seconds

    def add_user(self, user_id: str, real_name: str, email: str, title: str = "") -> None:
        self.users[user_id] = {
            "id": user_id,
            "name": real_name.split()[0].lower(),
            "real_name": real_name,
            "tz": "Europe/Berlin",
            "profile": {
                "real_name": real_name,
                "display_name": real_name.split()[0],
                "email": email,
                "title": title,
            },
        }

    def calls_to(self, method: str, *, ok_only: bool = True) -> list[JSON]:
        return [
            c.args
            for c in self.calls
            if c.method == method and (not ok_only or c.status == 200 and c.response.get("ok"))
        ]

    def thread(self, channel: str, root: str) -> list[JSON]:
        """The bot's messages in one thread (root excluded)."""
        return [m for m in self.messages.get(channel, []) if m.get("thread_ts") == root]

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    # -- the Web API --------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: JSON = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(dict(await request.post()))
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or args.get(
            "token"
        )
        call = Call(method, args, request.method)
        self.calls.append(call)
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        failures = self._failures.get(method)
        if failures:
            failure = failures.pop(0)
            call.status = failure.status
            call.response = {"ok": False, "error": failure.error}
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            return web.json_response(call.response, status=failure.status, headers=headers)
        wanted = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != wanted:
            call.response = {"ok": False, "error": "invalid_auth"}
        else:
            handler: Callable[[JSON], JSON] = getattr(
                self,
                "_" + method.replace(".", "_"),
                lambda a: {"ok": False, "error": "unknown_method"},
            )
            call.response = handler(args)
        return web.json_response(call.response)

    def _auth_test(self, args: JSON) -> JSON:
        return {
            "ok": True,
            "url": "https://acme.slack.com/",
            "team": "Acme",
            "user": "supportbot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    def _post(self, channel: str, message: JSON) -> JSON:
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "ts": self.next_ts(),
            **message,
        }
        self.messages.setdefault(channel, []).append(message)
        return message

    @staticmethod
    def _body(args: JSON) -> tuple[str, str] | str:
        """(text, format) of a posted or updated message, or Slack's error: ``markdown_text``
        (Markdown, up to 12,000 characters) or ``text`` (mrkdwn), never both."""
        if args.get("markdown_text"):
            if args.get("text") or args.get("blocks"):
                return "invalid_arguments"  # markdown_text goes without text and blocks
            if len(str(args["markdown_text"])) > MARKDOWN_LIMIT:
                return "markdown_text_too_long"
            return str(args["markdown_text"]), "markdown"
        if not args.get("text") and not args.get("blocks"):
            return "no_text"
        return str(args.get("text") or ""), "mrkdwn"

    def _chat_postMessage(self, args: JSON) -> JSON:
        body = self._body(args)
        if isinstance(body, str):
            return {"ok": False, "error": body}
        message: JSON = {"text": body[0], "format": body[1]}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        self._set_metadata(message, args)
        message = self._post(args["channel"], message)
        return {"ok": True, "channel": args["channel"], "ts": message["ts"], "message": message}

    def _find(self, channel: str, ts: str) -> JSON | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    @staticmethod
    def _set_metadata(message: JSON, args: JSON) -> None:
        if args.get("metadata"):
            metadata = args["metadata"]
            message["metadata"] = json.loads(metadata) if isinstance(metadata, str) else metadata

    def _chat_update(self, args: JSON) -> JSON:
        message = self._find(args["channel"], args["ts"])
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("streaming"):
            return {"ok": False, "error": "message_in_streaming_state"}
        body = self._body(args)
        if isinstance(body, str):
            return {"ok": False, "error": body}
        message["text"], message["format"] = body
        message["edited"] = True
        self._set_metadata(message, args)
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _chat_delete(self, args: JSON) -> JSON:
        message = self._find(args["channel"], args["ts"])
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.get("user") != BOT_USER:
            return {"ok": False, "error": "cant_delete_message"}
        self.messages[args["channel"]].remove(message)
        self.deleted.append(message)
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _chat_getPermalink(self, args: JSON) -> JSON:
        ts = str(args["message_ts"]).replace(".", "")
        return {
            "ok": True,
            "channel": args["channel"],
            "permalink": f"https://acme.slack.com/archives/{args['channel']}/p{ts}",
        }

    @staticmethod
    def _chunk_text(args: JSON) -> str:
        text = str(args.get("markdown_text") or "")
        for chunk in args.get("chunks") or []:
            if isinstance(chunk, dict) and chunk.get("type") == "markdown_text":
                text += chunk.get("text", "")
        return text

    def _chat_startStream(self, args: JSON) -> JSON:
        message = self._post(
            args["channel"],
            {
                "text": self._chunk_text(args),
                "format": "markdown",  # the streaming methods take Markdown only
                "thread_ts": args["thread_ts"],
                "streaming": True,
            },
        )
        return {"ok": True, "channel": args["channel"], "ts": message["ts"]}

    def _chat_appendStream(self, args: JSON) -> JSON:
        message = self._find(args["channel"], args["ts"])
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not message.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message["text"] += self._chunk_text(args)
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _chat_stopStream(self, args: JSON) -> JSON:
        message = self._find(args["channel"], args["ts"])
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if not message.get("streaming"):
            return {"ok": False, "error": "message_not_in_streaming_state"}
        message["text"] += self._chunk_text(args)
        message["streaming"] = False
        self._set_metadata(message, args)
        return {"ok": True, "channel": args["channel"], "ts": args["ts"], "message": message}

    def _reactions_add(self, args: JSON) -> JSON:
        key = (args["channel"], args["timestamp"], args["name"])
        if key in self.reactions:
            return {"ok": False, "error": "already_reacted"}
        self.reactions.add(key)
        return {"ok": True}

    def _reactions_remove(self, args: JSON) -> JSON:
        key = (args["channel"], args["timestamp"], args["name"])
        if key not in self.reactions:
            return {"ok": False, "error": "no_reaction"}
        self.reactions.discard(key)
        return {"ok": True}

    @staticmethod
    def _with_metadata(messages: list[JSON], args: JSON) -> list[JSON]:
        if str(args.get("include_all_metadata")) in ("1", "true", "True"):
            return messages
        return [{k: v for k, v in m.items() if k != "metadata"} for m in messages]

    def _conversations_replies(self, args: JSON) -> JSON:
        root = args["ts"]
        found = [
            m
            for m in self.messages.get(args["channel"], [])
            if m["ts"] == root or m.get("thread_ts") == root
        ]
        return {
            "ok": True,
            "messages": self._with_metadata(found, args),
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def _conversations_history(self, args: JSON) -> JSON:
        """Top-level messages, newest first, with ``reply_count``/``reply_users`` as Slack
        summarises their threads."""
        everything = self.messages.get(args["channel"], [])
        oldest = float(args.get("oldest") or 0)
        found = []
        for m in everything:
            if m.get("thread_ts") not in (None, m["ts"]) or float(m["ts"]) <= oldest:
                continue
            replies = [r for r in everything if r.get("thread_ts") == m["ts"] and r is not m]
            if replies:
                m = {**m, "reply_count": len(replies),
                     "reply_users": sorted({str(r.get("user")) for r in replies})}
            found.append(m)
        return {
            "ok": True,
            "messages": self._with_metadata(found[::-1], args),
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }

    def _conversations_info(self, args: JSON) -> JSON:
        channel = args["channel"]
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "is_im": channel.startswith("D"),
                "is_channel": channel.startswith("C"),
            },
        }

    def _users_info(self, args: JSON) -> JSON:
        user = self.users.get(args["user"])
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _usergroups_users_list(self, args: JSON) -> JSON:
        group = self.usergroups.get(args["usergroup"])
        if group is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": group}

    def _apps_connections_open(self, args: JSON) -> JSON:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    # -- files --------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            return web.Response(status=302, headers={"Location": "https://acme.slack.com/"})
        name = request.match_info["name"]
        self.file_downloads.append(name)
        if name not in self.files:
            return web.Response(status=404)
        if "files" in self._delays:
            await asyncio.sleep(self._delays["files"])
        return web.Response(body=self.files[name], content_type="application/octet-stream")

    # -- Socket Mode ----------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "connection_info": {"app_id": "A0001"},
                "debug_info": {"host": "fake", "approximate_connection_time": 3600},
            }
        )
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    self.acks.append(json.loads(msg.data))
        finally:
            self._sockets.remove(ws)
        return ws

    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    async def push_event(self, body: JSON) -> str:
        """Send an Events API payload down the Socket Mode connection; returns its envelope id."""
        envelope_id = str(uuid.uuid4())
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": "events_api",
                "payload": body,
                "accepts_response_payload": False,
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        return envelope_id


# -- Events API payloads ---------------------------------------------------------------------


def event_callback(event: JSON, *, event_id: str | None = None, team: str = TEAM) -> JSON:
    return {
        "token": "legacy",
        "team_id": team,
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
        "event": event,
        "authorizations": [{"team_id": team, "user_id": BOT_USER, "is_bot": True}],
    }


def message(
    channel: str,
    user: str,
    text: str,
    ts: str,
    *,
    thread_ts: str | None = None,
    parent_user: str | None = None,
    channel_type: str = "channel",
    kind: str = "message",
    **extra: Any,
) -> JSON:
    """A ``message`` (or ``app_mention``) event; a thread reply names its root's author in
    ``parent_user_id``, as Slack does."""
    event: JSON = {
        "type": kind,
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "team": TEAM,
        "event_ts": ts,
        **extra,
    }
    if kind == "message":
        event["channel_type"] = channel_type
    if thread_ts:
        event["thread_ts"] = thread_ts
        if parent_user:
            event["parent_user_id"] = parent_user
    return event


def signed_headers(
    body: bytes, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Slack sends: ``X-Slack-Signature`` is v0 HMAC-SHA256 of ``v0:ts:body``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/json",
    }


async def wait_until(
    condition: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it is truthy (and return it), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)
