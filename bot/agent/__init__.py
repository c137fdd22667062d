"""The agent engine: context assembly, the model ⇄ tools loop, tools, guardrails, memory."""
