"""``build_provider``: the configured provider, wrapped in retries and a circuit breaker, with
its fallback chain."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.config import Settings
from bot.providers.base import ChatMessage, ModelRequest
from bot.providers.factory import build_provider
from bot.providers.ingram import IngramProvider
from bot.providers.openai import OpenAIProvider
from bot.providers.resilience import (
    BreakerState,
    CircuitBreaker,
    FallbackProvider,
    ResilientProvider,
)
from bot.providers.xai import XaiSupportAgentProvider
from tests.fakes.model_server import ScriptedModelServer, ScriptedReply
from tests.fakes.xai_server import XaiReply, XaiSupportAgentServer
from tests.providers.conftest import API_KEY, CannedProvider

REQUEST = ModelRequest(
    messages=(ChatMessage("user", "hello"),), stream=True, thread_key="web:1", smith_key="web:u1"
)


def settings(**model: Any) -> Settings:
    return Settings.model_validate({"model": model})


def test_offline_is_the_offline_instance() -> None:
    offline = CannedProvider()
    assert build_provider(settings(), offline=offline) is offline


def resilient(provider: object) -> ResilientProvider:
    """The retrying provider behind a remote provider's circuit breaker."""
    assert isinstance(provider, CircuitBreaker)
    assert isinstance(provider.inner, ResilientProvider)
    return provider.inner


async def test_each_remote_provider_is_wrapped_in_retries_and_a_breaker() -> None:
    offline = CannedProvider()
    built = build_provider(settings(provider="ingram", api_key="k", fallback=[]), offline=offline)
    assert isinstance(built, CircuitBreaker)
    assert (built.failures, built.cooldown_seconds) == (3, 30.0)
    assert isinstance(resilient(built).inner, IngramProvider)
    await built.aclose()
    built = build_provider(
        settings(
            provider="xai-support-agent",
            api_key="k",
            agent_id="sa_1",
            max_retries=5,
            timeout_seconds=7,
        ),
        offline=offline,
    )
    assert isinstance(built, FallbackProvider)
    primary, last = built.providers
    assert isinstance(resilient(primary).inner, XaiSupportAgentProvider)
    assert (resilient(primary).max_retries, resilient(primary).timeout_seconds) == (5, 7)
    assert last is offline
    await built.aclose()


def test_a_remote_fallback_needs_its_endpoint() -> None:
    with pytest.raises(ValueError, match="model.endpoints"):
        build_provider(
            settings(provider="openai", fallback=["ingram", "offline"]), offline=CannedProvider()
        )
    with pytest.raises(ValueError, match="agent_id"):
        build_provider(
            settings(provider="xai-support-agent", fallback=[]), offline=CannedProvider()
        )


async def test_configured_chain_answers_end_to_end(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    offline = CannedProvider()
    async with ScriptedModelServer() as openai, XaiSupportAgentServer() as xai:
        openai.enqueue(ScriptedReply.say("from openai", model="gpt-test"), ScriptedReply.error(401))
        xai.enqueue(XaiReply(text="from xai"))
        built = build_provider(
            settings(
                provider="openai",
                base_url=openai.url,
                api_key=API_KEY,
                name="gpt-test",
                temperature=0.2,
                max_retries=1,
                fallback=["xai-support-agent", "offline"],
                endpoints={
                    "xai-support-agent": {
                        "base_url": xai.url,
                        "api_key": "xai-" + API_KEY,
                        "agent_id": "sa_9",
                    }
                },
            ),
            offline=offline,
        )
        assert isinstance(built, FallbackProvider)
        assert [p.name for p in built.providers] == ["openai", "xai-support-agent", "offline"]
        first = await built.complete(REQUEST)
        second = await built.complete(REQUEST)
        # neither openai nor xai has a reply left (500s, retried once each) → offline
        third = await built.complete(REQUEST)
        await built.aclose()
    assert first.text == "from openai" and first.model == "openai:gpt-test"
    assert second.text == "from xai" and second.model == "xai-support-agent:sa_9"
    assert third.model == "offline"
    assert offline.closed
    sent = openai.chat_requests[0].json
    assert sent["model"] == "gpt-test" and sent["temperature"] == 0.2
    assert xai.requests[0].json["support_agent_id"] == "sa_9"
    assert API_KEY not in caplog.text


async def test_openai_defaults() -> None:
    built = build_provider(settings(provider="openai", fallback=[]), offline=CannedProvider())
    inner = resilient(built).inner
    assert isinstance(inner, OpenAIProvider)
    assert inner.model == "gpt-4o-mini"
    await built.aclose()


async def test_breaker_settings_and_listener() -> None:
    heard: list[tuple[str, BreakerState]] = []
    built = build_provider(
        settings(
            provider="openai",
            fallback=["ingram", "offline"],
            breaker_failures=5,
            breaker_cooldown_seconds=12,
            endpoints={"ingram": {"api_key": "k"}},
        ),
        offline=CannedProvider(),
        on_breaker_change=lambda name, state: heard.append((name, state)),
    )
    assert isinstance(built, FallbackProvider)
    openai, ingram, _ = built.providers
    for breaker in (openai, ingram):
        assert isinstance(breaker, CircuitBreaker)
        assert (breaker.failures, breaker.cooldown_seconds) == (5, 12)
    # Each remote provider starts closed, and says so for the metrics.
    assert heard == [("openai", BreakerState.CLOSED), ("ingram", BreakerState.CLOSED)]
    await built.aclose()


async def test_no_breaker_with_breaker_failures_0() -> None:
    built = build_provider(
        settings(provider="openai", fallback=[], breaker_failures=0), offline=CannedProvider()
    )
    assert isinstance(built, ResilientProvider)
    await built.aclose()
