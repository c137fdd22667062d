"""Prometheus metrics, on a registry owned by the app (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.inbound = Counter(
            "supportbot_inbound_total",
            "Inbound messages offered to the inbox, by source and whether they were new.",
            ["source", "result"],
            registry=self.registry,
        )
        self.turns = Counter(
            "supportbot_turns_total", "Turns finished, by stop reason.", ["stop_reason"],
            registry=self.registry,
        )
        self.turn_seconds = Histogram(
            "supportbot_turn_seconds", "Wall time of a turn, model and tools included.",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.skipped = Counter(
            "supportbot_inbound_skipped_total", "Inbound messages not answered, by reason.",
            ["reason"], registry=self.registry,
        )
        self.actions = Counter(
            "supportbot_actions_total", "Outbox actions by channel, kind and outcome.",
            ["channel", "kind", "outcome"], registry=self.registry,
        )

        self.model_breaker = Enum(
            "supportbot_model_breaker",
            "Circuit breaker of each remote model provider, in this process: open sends turns "
            "straight to the fallback.",
            ["provider"], states=["closed", "open", "half_open"], registry=self.registry,
        )
        self.turn_deadlines = Counter(
            "supportbot_turn_deadlines_total",
            "Turns whose model.turn_timeout_seconds passed, so the fallback answered.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
