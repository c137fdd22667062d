"""The model sections: which provider answers, its fallbacks and wire contract (``[model]``),
and the embedded offline responder (``[offline]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from bot.config.base import EnvList, Section

ProviderName = Literal["offline", "openai", "xai-support-agent", "ingram"]


class ModelEndpoint(Section):
    """Where a remote provider used as a fallback lives (``[model.endpoints.<provider>]``)."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    name: str | None = None
    agent_id: str | None = None


class ModelSettings(Section):
    provider: ProviderName = "offline"
    base_url: str | None = None
    api_key: SecretStr | None = None
    name: str | None = None
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    # One deadline for a whole turn (model calls, tool calls, guardrail judging); after it the
    # offline responder answers, so a hung provider cannot hold a customer longer than this.
    turn_timeout_seconds: float = Field(default=30.0, gt=0)
    # Per remote provider and per process: this many transient failures in a row open its
    # breaker (0: never), turns then skip it for the cool-down, then one trial call decides.
    breaker_failures: int = Field(default=3, ge=0)
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    stream: bool = True
    fallback: EnvList[ProviderName] = ["offline"]
    temperature: float | None = None
    # xAI: the support_agent_id (falls back to ``name``); Ingram: the agent (agt_…) smiths run.
    agent_id: str | None = None
    # xAI Support Agents only.
    deployment_id: str = "LATEST"
    environment: Literal["ENVIRONMENT_PROD", "ENVIRONMENT_STAGING"] = "ENVIRONMENT_PROD"
    # Remote providers named in ``fallback`` other than ``provider`` take their endpoint here.
    endpoints: dict[ProviderName, ModelEndpoint] = {}

    # -- the wire contract with OpenAI-compatible servers (tools, output cap) --
    # Sent with every request that offers tools: llama-cpp-python takes a missing
    # ``tool_choice`` as "none" and never calls a tool.
    tool_choice: Literal["auto", "none", "required"] = "auto"
    # false: turns that offer tools run non-streamed (servers that cannot stream tool calls,
    # e.g. llama-cpp-python; detected on first failure anyway, this skips the failed try).
    stream_tools: bool = True
    # Cap on the tokens of one answer (``max_tokens``; ``max_completion_tokens`` on OpenAI).
    max_output_tokens: int = Field(default=1024, ge=1)

    # -- attachments (bot/agent/attachments.py) --
    # Whether the model takes images; None: yes on OpenAI's own API, xAI and Ingram, no on any
    # other OpenAI-compatible server (a text-only model there fails or ignores them).
    vision: bool | None = None
    max_images: int = Field(default=4, ge=0, le=20)
    max_image_bytes: int = Field(default=5_242_880, ge=0)
    # Text read out of one text file or PDF; the rest is cut.
    max_attachment_chars: int = Field(default=8_000, ge=0)


class OfflineSettings(Section):
    """The embedded responder: phrase lists and the confidence it needs to answer."""

    # A keyword match is judged on the question's words (``OfflineProvider._judge``); a score of
    # ``confidence_threshold`` always answers. Passages found only by embeddings answer at
    # ``confidence_threshold``, or at ``confidence_floor`` while leading the next document by
    # ``confidence_margin`` (a share of its score); otherwise escalate.
    confidence_threshold: float = Field(default=0.45, ge=0, le=1)
    # Chosen on the bundled example KB's eval set (examples/eval/), where 0.15–0.2 with a 0.2
    # margin answered the most cases right; 0.2 is the cautious end (a wrong answer costs more
    # than an escalation).
    confidence_floor: float = Field(default=0.2, ge=0, le=1)
    confidence_margin: float = Field(default=0.2, ge=0, le=1)
    # Extra phrases, on top of the built-in intents (bot/agent/intents.py).
    escalate_phrases: EnvList[str] = []
    close_phrases: EnvList[str] = []
    greeting_phrases: EnvList[str] = ["hi", "hello", "hey", "good morning", "good afternoon"]
