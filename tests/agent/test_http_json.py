"""``http_json``, the one HTTP call under the tools, over aiohttp against a real local server:
the wording of its errors, redirects not followed, JSON or text answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.agent.tools import RESULT_TEXT_CHARS, ToolError, http_json


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1)
        return web.json_response({})

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/json")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"query": dict(request.query)})

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="é" * (RESULT_TEXT_CHARS + 10))

    async def bad_json(request: web.Request) -> web.Response:
        return web.Response(text="{not", content_type="application/json")

    app = web.Application()
    app.router.add_get("/json", echo)
    app.router.add_get("/text", text)
    app.router.add_get("/bad-json", bad_json)
    app.router.add_get("/slow", slow)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_json_and_text_answers(server: str, session: aiohttp.ClientSession) -> None:
    assert await http_json(session, "GET", server + "/json?a=1", headers={}, timeout=5) == {
        "query": {"a": "1"}
    }
    text = await http_json(session, "GET", server + "/text", headers={}, timeout=5)
    assert text == {"text": "é" * RESULT_TEXT_CHARS}
    # Labelled JSON that is not: the text, as it came.
    assert await http_json(session, "GET", server + "/bad-json", headers={}, timeout=5) == {
        "text": "{not"
    }


async def test_a_redirect_is_an_answer_not_followed(server: str, session: aiohttp.ClientSession) -> None:
    # The 302's own body, as before with httpx: a tool's URL never leads somewhere else.
    answer = await http_json(session, "GET", server + "/moved", headers={}, timeout=5)
    assert answer == {"text": "302: Found"}


async def test_a_slow_service_is_a_timeout(server: str, session: aiohttp.ClientSession) -> None:
    with pytest.raises(ToolError, match=r"^the service did not answer within 0.2s$"):
        await http_json(session, "GET", server + "/slow", headers={}, timeout=0.2)


async def test_an_unreachable_service_names_the_failure_only(session: aiohttp.ClientSession) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ToolError, match=r"^the service could not be reached \(Client\w*Error\)$"):
        await http_json(session, "GET", f"http://127.0.0.1:{port}/x", headers={}, timeout=5)
