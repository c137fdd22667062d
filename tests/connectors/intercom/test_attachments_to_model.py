"""Intercom attachments reach the model: the upload's URL (on Intercom's file host, served by
the fake on 127.0.0.1) is fetched when the turn starts, without the access token, and the
image arrives at the model as an image part; a text file arrives as its text."""

from __future__ import annotations

import base64

from tests.connectors.intercom.conftest import deliver, running_app, settled, wait_until
from tests.fakes.files import png
from tests.fakes.intercom import FakeIntercom
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply


async def test_an_image_and_a_log_reach_the_model(sqlite_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    image = png(4, 4)
    fake.files["error.png"] = image
    fake.files["export.log"] = b"ERROR 42: export failed at row 7\n"
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    fake.user_reply(conversation, "<p>Here is the error</p>", attachments=[
        {"type": "upload", "name": "error.png", "url": fake.file_url("error.png"),
         "content_type": "image/png", "filesize": len(image), "width": 4, "height": 4},
        {"type": "upload", "name": "export.log", "url": fake.file_url("export.log"),
         "content_type": "text/plain", "filesize": 33},
    ])
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("Row 7 has an invalid date; fix it and export again."))
        model = {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                 "fallback": [], "timeout_seconds": 10, "stream": False, "vision": True}
        async with running_app(sqlite_url, fake, real_engine=True, model=model) as (app, _):
            await deliver(app, fake.notification("conversation.user.replied", conversation))
            await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
            await wait_until(lambda: settled(app), what="a quiet pipeline")
        [request] = server.chat_requests

    user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    text, picture = user
    assert text["type"] == "text" and text["text"].startswith("Here is the error\n\n")
    assert "[attachment: export.log (text/plain), its text:]\nERROR 42: export failed at row 7" \
        in text["text"]
    assert picture == {"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(image).decode()}}
    # Fetched from the file host without Intercom's access token.
    assert sorted(fake.file_downloads) == [("error.png", None), ("export.log", None)]
    assert "Row 7 has an invalid date" in fake.replies(conversation)[0]["body"]


async def test_an_attachment_off_the_allowed_hosts_is_not_fetched(
    sqlite_url: str, fake_intercom: FakeIntercom
) -> None:
    """The same file host under a name ``intercom.attachment_hosts`` does not list: never
    asked, the model told why, the turn answered as usual."""
    fake = fake_intercom
    fake.files["secrets.log"] = b"root:hunter2\n"
    elsewhere = fake.file_url("secrets.log").replace("127.0.0.1", "localhost")
    contact = fake.add_contact()
    conversation = fake.start_conversation(contact, "<p>Hi</p>")
    fake.user_reply(conversation, "<p>See the log</p>", attachments=[
        {"type": "upload", "name": "secrets.log", "url": elsewhere,
         "content_type": "text/plain", "filesize": 13},
    ])
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("I could not open that file; can you paste the error?"))
        model = {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
                 "fallback": [], "timeout_seconds": 10, "stream": False}
        async with running_app(sqlite_url, fake, real_engine=True, model=model) as (app, _):
            await deliver(app, fake.notification("conversation.user.replied", conversation))
            await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
            await wait_until(lambda: settled(app), what="a quiet pipeline")
        [request] = server.chat_requests

    user = [m for m in request.messages if m["role"] == "user"][-1]["content"]
    text = user if isinstance(user, str) else user[0]["text"]
    assert "[attachment not fetched: secrets.log (text/plain): localhost is not an allowed " \
        "file host]" in text
    assert "hunter2" not in text
    assert fake.file_downloads == []
    assert "could not open that file" in fake.replies(conversation)[0]["body"]
