"""Slack files reach the model: ``url_private`` fetched with the bot token when the turn
starts, a screenshot sent as an image part, a PDF as its text; the run's record keeps
references only."""

from __future__ import annotations

import base64
import json
from typing import Any

from bot.app import Application
from bot.store.migrate import upgrade
from tests.conftest import make_settings
from tests.connectors.slack.conftest import CUSTOMER, deliver, settled
from tests.fakes.files import pdf, png
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.fakes.slack import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    event_callback,
    message,
    wait_until,
)


async def test_a_screenshot_and_a_pdf_reach_the_model(sqlite_url: str, slack: FakeSlack) -> None:
    image = png(5, 3)
    slack.files["shot.png"] = image
    slack.files["invoice.pdf"] = pdf("Invoice 42", "Total due: 19.99 EUR")
    files = [
        {"id": "F1", "name": "shot.png", "mimetype": "image/png", "size": len(image),
         "url_private": slack.file_url("shot.png")},
        {"id": "F2", "name": "invoice.pdf", "mimetype": "application/pdf",
         "size": len(slack.files["invoice.pdf"]), "url_private": slack.file_url("invoice.pdf")},
    ]
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("The total on invoice 42 is right: 19.99 EUR."))
        section: dict[str, Any] = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                                   "base_url": slack.base_url, "post_interval_seconds": 0,
                                   "file_hosts": ["127.0.0.1"]}
        model = {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                 "fallback": [], "timeout_seconds": 10, "stream": False, "vision": True}
        app = Application(make_settings(sqlite_url, slack=section, model=model, connectors=["slack"]))
        await upgrade(app.db.engine)
        async with app:
            ts = slack.next_ts()
            await deliver(app, event_callback(message(
                "D0DM", CUSTOMER, "is this invoice right?", ts, channel_type="im",
                subtype="file_share", files=files)))
            await wait_until(lambda: slack.thread("D0DM", ts))
            await wait_until(lambda: settled(app))
            [run] = await app.store.list_runs()
        [request] = server.chat_requests

    text, picture = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    assert text["text"].startswith("is this invoice right?")
    assert "[attachment: invoice.pdf (application/pdf), its text:]\nInvoice 42\nTotal due: 19.99 EUR" \
        in text["text"]
    assert picture == {"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(image).decode()}}
    assert sorted(slack.file_downloads) == ["invoice.pdf", "shot.png"]  # with the bot token
    assert slack.thread("D0DM", ts)[0]["text"] == "The total on invoice 42 is right: 19.99 EUR."
    assert "base64" not in json.dumps(run.input)
