"""What still waits in Slack's support channels (for triage): top-level messages the bot would
have answered and nobody but their author has replied to, read from channel history."""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackSettings
from bot.domain import InboundMessage
from connectors.slack.errors import CALL_ERRORS, log_api_failure
from connectors.slack.inbound import BotIdentity, inbound_message, waiting_sender
from connectors.slack.outbound import LOOKUP_PAGES


async def waiting_messages(
    client: AsyncWebClient, settings: SlackSettings, me: BotIdentity, *, since: float | None
) -> list[InboundMessage]:
    """The waiting messages of every support channel, oldest first (so all channels are read
    before the first one is handed on). A channel whose history cannot be read is logged and
    skipped."""
    channels = dict.fromkeys([*settings.support_channels, *settings.channels])
    found: list[InboundMessage] = []
    for channel in channels:
        rule = settings.channel(channel)
        assert rule is not None
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            call = client.conversations_history(
                channel=channel, oldest=str(since) if since else None, limit=200, cursor=cursor
            )
            try:
                response = await call
            except CALL_ERRORS as exc:
                log_api_failure("conversations.history", exc)
                break
            for event in response.get("messages") or []:
                sender = waiting_sender(event, rule.mode, rule.allow_bots, me)
                if sender is not None:
                    found.append(
                        inbound_message(me.team_id, channel, event, sender, me, settings.agent)
                    )
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
    found.sort(key=lambda m: m.sent_at or 0.0)
    return found
