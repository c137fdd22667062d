"""The widget and the chat page are served with no configuration beyond the defaults."""

from __future__ import annotations

from bot.app import Application
from bot.domain import Action, ActionKind
from connectors.web import WebConnector
from tests.conftest import make_settings
from tests.http.harness import running


async def test_chat_page_widget_and_assets(sqlite_url: str) -> None:
    async with running(sqlite_url, web={}, admin={}) as daemon, daemon.client() as browser:
        async with browser.get("/chat") as page:
            assert page.status == 200 and page.content_type == "text/html"
            html = await page.text()
        for needle in ('<label class="sr-only" for="sb-input">', 'id="sb-new"', 'type="file"',
                       'role="status"', 'name="viewport"', "/web/static/chat.js"):
            assert needle in html
        async with browser.get("/widget.js") as widget:
            assert widget.status == 200 and "javascript" in widget.content_type
            assert "Supportbot" in await widget.text()
        for name in ("chat.js", "chat.css"):
            async with browser.get(f"/web/static/{name}") as asset:
                assert asset.status == 200
        async with browser.get("/web/static/../../pyproject.toml") as escape:
            assert escape.status == 404


async def test_the_web_connector_is_on_by_default_and_can_be_turned_off(sqlite_url: str) -> None:
    on = Application(make_settings(sqlite_url, connectors=None), serve_http=False,
                     run_pipeline=False)
    await on.start()
    try:
        assert isinstance(on.connectors.get("web"), WebConnector)
        thread = await on.store.ensure_thread(
            await on.store.ensure_smith("anon:x" * 4, (await on.store.get_agent("support")).id),
            "web:cnv_1", "web")
        action = Action(id="act_1", run_id="run_1", thread_id=thread.id, channel="web",
                        kind=ActionKind.REPLY, text="hi")
        assert await on.connectors["web"].execute(action, thread) is None
    finally:
        await on.stop()
    off = Application(make_settings(sqlite_url, connectors=None, web={"enabled": False}),
                      serve_http=False, run_pipeline=False)
    await off.start()
    try:
        assert "web" not in off.connectors
    finally:
        await off.stop()
