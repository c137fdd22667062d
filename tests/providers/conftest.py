"""Fixtures for the provider tests: the scripted servers and a local stand-in provider."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.providers.base import DeltaSink, ModelRequest, ModelResponse
from tests.fakes.model_server import ScriptedModelServer

API_KEY = "sk-test-SECRET-0123456789abcdef"


class CannedProvider:
    """A local provider that always answers the same text (stands in for ``offline``)."""

    def __init__(self, text: str = "offline answer", name: str = "offline") -> None:
        self.name = name
        self.text = text
        self.calls: list[ModelRequest] = []
        self.closed = False

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        self.calls.append(request)
        if on_delta is not None:
            await on_delta(self.text)
        return ModelResponse(text=self.text, model=self.name)

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
async def model_server() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer() as server:
        yield server
