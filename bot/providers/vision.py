"""Which providers see images, and what one that does not gets instead.

A request carries a customer's images as image parts (``bot.agent.attachments``). A model that
cannot see them (a text-only model on llama.cpp, most small local models) either rejects the
request or drops the parts without a word, and then answers as if nothing had been sent. So a
provider that takes no images gets each image as a line naming it, and the model can say it
cannot see it and ask the customer to describe it.

``model.vision`` says whether the configured model takes images. Unset, it is taken to on
OpenAI's own API and on xAI and Ingram, whose APIs take images, and not on any other
OpenAI-compatible server: what model a self-hosted server runs cannot be known from here, and a
wrong "yes" costs a failed turn where a wrong "no" costs only the picture.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from bot.providers.base import (
    ChatMessage,
    DeltaSink,
    ModelProvider,
    ModelRequest,
    ModelResponse,
)

OPENAI_HOST = "api.openai.com"


def sees_images(provider: str, base_url: str | None, vision: bool | None) -> bool:
    """Whether ``provider`` at ``base_url`` is sent images (``vision``: the setting, if set)."""
    if vision is not None:
        return vision
    if provider == "openai":
        return base_url is None or urlsplit(base_url).hostname == OPENAI_HOST
    return provider in ("xai-support-agent", "ingram")


def image_line(name: str, content_type: str) -> str:
    return (
        f"[image: {name} ({content_type}). You cannot see images: if it matters, ask the "
        "customer to describe it or to paste the text it shows.]"
    )


def without_images(request: ModelRequest) -> ModelRequest:
    """``request`` with every image part replaced by a line naming the image."""
    if not any(part.kind == "image" for m in request.messages for part in m.parts):
        return request
    messages: list[ChatMessage] = []
    for message in request.messages:
        images = [p for p in message.parts if p.kind == "image"]
        if not images:
            messages.append(message)
            continue
        lines = [message.content] if message.content else []
        lines.extend(image_line(p.name, p.content_type) for p in images)
        messages.append(
            replace(
                message,
                content="\n\n".join(lines),
                parts=tuple(p for p in message.parts if p.kind != "image"),
            )
        )
    return replace(request, messages=tuple(messages))


class TextOnlyProvider:
    """A provider that is sent no images: each becomes a line naming it."""

    def __init__(self, inner: ModelProvider) -> None:
        self.inner = inner
        self.name = inner.name

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        return await self.inner.complete(without_images(request), on_delta)

    async def aclose(self) -> None:
        await self.inner.aclose()
