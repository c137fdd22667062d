"""Batch triage: sweep conversations waiting for an answer through the same inbox as webhooks.

``sweep`` lists each connector's pending work, submits it and waits for the turns and their
actions; ``digest`` sums a sweep up (a table, JSON, a short text a connector posts); ``command``
is ``supportbot triage``, one sweep (``--once``) or sweeps on the configured schedule in the
foreground. ``supportbot serve`` runs scheduled sweeps itself (see ``bot.scheduler``), and both
go through ``Sweeper``.
"""

from bot.triage.command import (
    ProgressBar,
    TriageCommand,
    command_options,
    command_settings,
    run_command,
)
from bot.triage.digest import ConversationResult, Digest, Outcome, Progress, post_digest
from bot.triage.sweep import ALREADY_HANDLED, Sweeper, SweepOptions, parse_since, scheduled_sweep

__all__ = [
    "ALREADY_HANDLED",
    "ConversationResult",
    "Digest",
    "Outcome",
    "Progress",
    "ProgressBar",
    "SweepOptions",
    "Sweeper",
    "TriageCommand",
    "command_options",
    "command_settings",
    "parse_since",
    "post_digest",
    "run_command",
    "scheduled_sweep",
]
