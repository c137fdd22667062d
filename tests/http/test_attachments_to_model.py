"""The web channel's uploads reach the model: a screenshot as an image part, a PDF as its
text, and a model that cannot see images told what was sent instead. The real engine, the
OpenAI-compatible provider, and the scripted model server recording each request."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp

from tests.fakes.files import pdf, png
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.http.harness import ask, json_call, running, session


def remote(server: ScriptedModelServer, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "base_url": server.url, "api_key": "k", "name": "m",
            "fallback": [], "timeout_seconds": 10, "stream": False, **extra}


async def upload(client: aiohttp.ClientSession, name: str, data: bytes, content_type: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    uploaded = await json_call(client, "POST", "/v1/files", data=form)
    return str(uploaded["id"])


def user_content(server: ScriptedModelServer) -> Any:
    [request] = server.chat_requests
    return [m for m in request.messages if m["role"] == "user"][-1]["content"]


async def test_a_screenshot_arrives_at_the_model_as_an_image_part(sqlite_url: str) -> None:
    image = png(3, 2)
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("That is the export error; retry after midnight."))
        async with running(sqlite_url, real_engine=True, model=remote(server, vision=True)) as daemon, \
                daemon.client() as visitor:
            await session(visitor)
            file_id = await upload(visitor, "error.png", image, "image/png")
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            answer = await ask(visitor, conversation["id"], "What does this mean?",
                               attachments=[file_id])
        content = user_content(server)

    assert answer["output_text"].startswith("That is the export error")
    assert content == [
        {"type": "text", "text": "What does this mean?"},
        {"type": "image_url",
         "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}},
    ]


async def test_a_pdf_arrives_as_its_text(sqlite_url: str) -> None:
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("Your invoice total is 19.99 EUR."))
        async with running(sqlite_url, real_engine=True, model=remote(server)) as daemon, \
                daemon.client() as visitor:
            await session(visitor)
            file_id = await upload(visitor, "invoice.pdf", pdf("Invoice 42", "Total due: 19.99 EUR"),
                                   "application/pdf")
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            await ask(visitor, conversation["id"], "Is this right?", attachments=[file_id])
        content = user_content(server)

    assert isinstance(content, str)
    assert content.startswith("Is this right?\n\n[attachment: invoice.pdf (application/pdf), its text:]")
    assert "Invoice 42\nTotal due: 19.99 EUR" in content


async def test_a_model_without_vision_is_told_an_image_was_sent(sqlite_url: str) -> None:
    """``model.vision`` unset on a self-hosted server: taken as no vision."""
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("I can't see images; what does the screen say?"))
        async with running(sqlite_url, real_engine=True, model=remote(server)) as daemon, \
                daemon.client() as visitor:
            await session(visitor)
            file_id = await upload(visitor, "error.png", png(), "image/png")
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            await ask(visitor, conversation["id"], "What does this mean?", attachments=[file_id])
        content = user_content(server)

    assert isinstance(content, str)  # no image part at all
    assert content.startswith("What does this mean?\n\n[image: error.png (image/png). You cannot see")
    assert "base64" not in content


async def test_images_over_the_caps_are_named_not_sent(sqlite_url: str) -> None:
    small, other, big = png(1, 1), png(2, 1), png(64, 64) + b"\x00" * 4096
    async with ScriptedModelServer() as server:
        server.enqueue(ScriptedReply.say("I see two screenshots."))
        model = remote(server, vision=True, max_images=2, max_image_bytes=2048)
        async with running(sqlite_url, real_engine=True, model=model) as daemon, \
                daemon.client() as visitor:
            await session(visitor)
            ids = [await upload(visitor, name, data, "image/png") for name, data in
                   (("one.png", small), ("huge.png", big), ("two.png", other), ("three.png", small))]
            conversation = await json_call(visitor, "POST", "/v1/conversations", json={})
            await ask(visitor, conversation["id"], "Screens attached", attachments=ids)
        content = user_content(server)

    text, *images = content
    assert [i["image_url"]["url"] for i in images] == [
        "data:image/png;base64," + base64.b64encode(data).decode() for data in (small, other)]
    assert text["text"] == (
        "Screens attached\n\n"
        "[image not shown: huge.png (4 KB, over model.max_image_bytes)]\n\n"
        "[image not shown: three.png (more than 2 images in one turn)]"
    )
