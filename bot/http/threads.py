"""People answering threads through the daemon (admin token): ``POST /v1/threads/{id}/messages``
(a reply from a named person; they hold the thread), ``…/handback`` (the bot answers again)
and ``…/close``. The handlers only check the request and shape the answer; what happens is
``bot.pipeline.operator.Operator``'s, which the console calls too.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.domain import JSON, NotFound, Thread
from bot.http.auth import api_error, require_admin
from bot.http.context import CONTEXT_KEY, ApiContext
from bot.http.conversations import _json_body
from bot.http.operator import thread_json
from bot.pipeline.operator import AUTHOR_MAX_CHARS, MESSAGE_MAX_CHARS, OperatorRefused

MESSAGE_FIELDS = frozenset({"content", "author"})


def _message_body(body: JSON) -> tuple[str, str]:
    unknown = sorted(set(body) - MESSAGE_FIELDS)
    if unknown:
        raise api_error(400, f"unknown field: {unknown[0]} (send content and author)",
                        code="unknown_field")
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise api_error(400, "content is the message's text, a non-empty string",
                        code="invalid_content")
    if len(content) > MESSAGE_MAX_CHARS:
        raise api_error(400, f"content is at most {MESSAGE_MAX_CHARS} characters",
                        code="invalid_content")
    author = body.get("author")
    if isinstance(author, dict) and set(author) - {"name"}:
        raise api_error(400, f"unknown field: author.{min(set(author) - {'name'})}",
                        code="unknown_field")
    name: Any = author.get("name") if isinstance(author, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > AUTHOR_MAX_CHARS:
        raise api_error(400, f'author is {{"name": "…"}}, the person\'s name (1…'
                             f"{AUTHOR_MAX_CHARS} characters), shown to the customer",
                        code="invalid_author")
    return content, name


class ThreadsApi:
    """The handlers; routes are added by ``bot.http.api``."""

    def _admin(self, request: web.Request) -> ApiContext:
        ctx = request.app[CONTEXT_KEY]
        require_admin(request, ctx.settings)
        return ctx

    async def message(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        text, author = _message_body(await _json_body(request))
        try:
            replied = await ctx.operator.reply(
                request.match_info["id"], text=text, author_name=author
            )
        except NotFound:
            raise api_error(404, "no such thread", code="not_found") from None
        except OperatorRefused as refused:
            raise api_error(409, refused.reason, code=refused.code) from None
        except ValueError as exc:
            raise api_error(400, str(exc), code="invalid_message") from None
        return web.json_response(
            {**replied.message.to_json(), "thread": thread_json(replied.thread)}, status=201
        )

    async def handback(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        await self._no_body(request)
        return web.json_response(thread_json(await self._act(ctx.operator.hand_back, request)))

    async def close(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        await self._no_body(request)
        return web.json_response(thread_json(await self._act(ctx.operator.close, request)))

    async def _no_body(self, request: web.Request) -> None:
        body = await _json_body(request)
        if body:
            raise api_error(400, f"unknown field: {min(body)} (no body is needed)",
                            code="unknown_field")

    async def _act(self, act: Any, request: web.Request) -> Thread:
        try:
            thread: Thread = await act(request.match_info["id"])
        except NotFound:
            raise api_error(404, "no such thread", code="not_found") from None
        return thread
