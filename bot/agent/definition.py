"""An agent's configured definition: what ``agents publish`` (the CLI or the console) freezes
as a new version."""

from __future__ import annotations

from bot.config import Settings
from bot.domain import AgentDefinition


def definition_from_settings(settings: Settings, slug: str) -> AgentDefinition:
    """The agent ``slug`` as the settings describe it (KeyError if none is configured)."""
    agent = settings.agent(slug)
    return AgentDefinition(
        slug=agent.slug,
        name=agent.name,
        instructions=agent.instructions,
        model=agent.model or settings.model.name or "",
        tools=tuple(agent.tools),
        knowledge=tuple(agent.knowledge),
        guardrails=dict(agent.guardrails),
        max_tool_loops=agent.max_tool_loops,
    )
