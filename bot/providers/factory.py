"""Builds the configured model provider: the remote one wrapped in retries and a deadline and
behind a circuit breaker, followed by the fallback chain (``model.fallback``; ``"offline"`` is the offline instance the
caller passes in). With ``model.provider = "offline"`` it is just that instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.config import ModelSettings, ProviderName, Settings
from bot.providers.base import ModelProvider
from bot.providers.resilience import (
    BreakerListener,
    CircuitBreaker,
    FallbackProvider,
    ResilientProvider,
)
from bot.providers.vision import TextOnlyProvider, sees_images

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Endpoint:
    base_url: str | None
    api_key: str | None
    name: str | None
    agent_id: str | None


def _primary_endpoint(model: ModelSettings) -> _Endpoint:
    return _Endpoint(
        base_url=model.base_url,
        api_key=model.api_key.get_secret_value() if model.api_key else None,
        name=model.name,
        agent_id=model.agent_id,
    )


def _fallback_endpoint(model: ModelSettings, provider: ProviderName) -> _Endpoint:
    endpoint = model.endpoints.get(provider)
    if endpoint is None:
        raise ValueError(
            f"model.fallback names {provider!r} but [model.endpoints.{provider}] is not configured"
        )
    return _Endpoint(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else None,
        name=endpoint.name,
        agent_id=endpoint.agent_id,
    )


def build_remote(
    provider: ProviderName, endpoint: _Endpoint, model: ModelSettings
) -> ModelProvider:
    """One bare remote provider (no retries) for ``provider`` at ``endpoint``."""
    if provider == "openai":
        from bot.providers.openai import OpenAIProvider

        return OpenAIProvider(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            model=endpoint.name,
            timeout_seconds=model.timeout_seconds,
            stream=model.stream,
            temperature=model.temperature,
            tool_choice=model.tool_choice,
            stream_tools=model.stream_tools,
            max_output_tokens=model.max_output_tokens,
        )
    if provider == "xai-support-agent":
        from bot.providers.xai import XaiSupportAgentProvider

        agent = endpoint.agent_id or endpoint.name
        if not agent:
            raise ValueError("xai-support-agent needs model.agent_id (the support_agent_id)")
        return XaiSupportAgentProvider(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            support_agent_id=agent,
            deployment_id=model.deployment_id,
            environment=model.environment,
            timeout_seconds=model.timeout_seconds,
            stream=model.stream,
        )
    if provider == "ingram":
        from bot.providers.ingram import IngramProvider

        return IngramProvider(
            api_key=endpoint.api_key,
            base_url=endpoint.base_url,
            agent_id=endpoint.agent_id,
            timeout_seconds=model.timeout_seconds,
            stream=model.stream,
        )
    raise ValueError(f"{provider!r} is not a remote model provider")


def _resilient(
    provider: ModelProvider, model: ModelSettings, on_breaker_change: BreakerListener | None
) -> ModelProvider:
    resilient = ResilientProvider(
        provider, timeout_seconds=model.timeout_seconds, max_retries=model.max_retries
    )
    if model.breaker_failures == 0:
        return resilient
    return CircuitBreaker(
        resilient,
        failures=model.breaker_failures,
        cooldown_seconds=model.breaker_cooldown_seconds,
        on_change=on_breaker_change,
    )


def _for_eyes(provider: ModelProvider, sees: bool) -> ModelProvider:
    """``provider`` as it is, or sent image parts as lines naming them when it sees none."""
    return provider if sees else TextOnlyProvider(provider)


def build_provider(
    settings: Settings,
    *,
    offline: ModelProvider,
    on_breaker_change: BreakerListener | None = None,
) -> ModelProvider:
    """The provider the daemon talks to, built from ``settings.model``.

    The result owns every provider in it, ``offline`` included: close it with ``aclose``.
    Each remote provider has its own circuit breaker; ``on_breaker_change(name, state)``
    hears their transitions.
    """
    model = settings.model
    if model.provider == "offline":
        return offline
    primary = _primary_endpoint(model)
    chain: list[ModelProvider] = [
        _for_eyes(
            _resilient(build_remote(model.provider, primary, model), model, on_breaker_change),
            sees_images(model.provider, primary.base_url, model.vision),
        )
    ]
    seen: set[str] = {model.provider}
    for name in model.fallback:
        if name in seen:
            continue
        seen.add(name)
        if name == "offline":
            chain.append(offline)
        else:
            endpoint = _fallback_endpoint(model, name)
            chain.append(
                _for_eyes(
                    _resilient(build_remote(name, endpoint, model), model, on_breaker_change),
                    # model.vision is the primary model's; a fallback's is told by its kind.
                    sees_images(name, endpoint.base_url, None),
                )
            )
    log.info("model provider: %s", " -> ".join(p.name for p in chain))
    return chain[0] if len(chain) == 1 else FallbackProvider(chain)
