"""Actions out to Slack: each ``ActionKind`` has its handler in a table, and every message
the bot posts carries ``metadata`` with its action id and part, so an uncertain send is looked
up in the thread (``find_sent``) before it is ever sent again.

Slack threads have no tags, assignees, snooze or open state: those kinds have no handler and
succeed as no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SlackSettings
from bot.connector import ActionError
from bot.domain import JSON, Action, ActionKind, Thread
from connectors.slack.errors import CALL_ERRORS, log_api_failure, web_api_call
from connectors.slack.inbound import CLOSE_EMOJI, BotIdentity
from connectors.slack.live import STREAM_CHUNK_CHARS, fingerprint
from connectors.slack.mrkdwn import MARKDOWN_CHARS, markdown_reply, split_message, to_mrkdwn

log = logging.getLogger(__name__)

METADATA_EVENT_TYPE = "supportbot_action"
LOOKUP_PAGES = 5

Handler = Callable[[Action, str, str], Awaitable[str | None]]


def mention_markup(value: str) -> str:
    """``S…`` (a user group) → ``<!subteam^S…>``, ``U…``/``W…`` → ``<@U…>``, ``here`` →
    ``<!here>``; anything already in Slack markup is used as it is."""
    value = value.strip()
    if value.startswith("<"):
        return value
    value = value.removeprefix("@")
    if value in ("here", "channel", "everyone"):
        return f"<!{value}>"
    if value.startswith("S"):
        return f"<!subteam^{value}>"
    return f"<@{value}>"


class ChannelPacer:
    """At most one post per channel every ``interval`` seconds (chat.postMessage allows ~1/s
    per channel; going faster only earns 429s)."""

    def __init__(self, interval: float):
        self._interval = interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, channel: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            wait = self._last.get(channel, 0.0) + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._last[channel] = time.monotonic()


class SlackOutbound:
    """Executes actions in Slack through a table of handlers keyed by ``ActionKind``."""

    def __init__(self, client: AsyncWebClient, settings: SlackSettings, pacer: ChannelPacer):
        self._client = client
        self._settings = settings
        self._pacer = pacer
        self._handlers: dict[ActionKind, Handler] = {
            ActionKind.REPLY: self._reply,
            ActionKind.REACT: self._reaction,
            ActionKind.CLOSE: self._close,
            ActionKind.ESCALATION_POST: self._escalation_post,
            ActionKind.NOTE: self._note,
        }

    async def execute(self, action: Action, thread: Thread) -> str | None:
        """Carry ``action`` out in ``thread``; the ts of the message it posted, if any."""
        channel, root = action_location(action, thread)
        handler = self._handlers.get(action.kind)
        if handler is None:
            log.debug("%s has no Slack equivalent; done without a call", action.kind.value)
            return None
        return await handler(action, channel, root)

    async def _reaction(self, action: Action, channel: str, root: str) -> str | None:
        ts = str(action.ref.get("ts") or root)
        await self.react(channel, ts, (action.emoji or "").strip(":"))
        return None

    async def _close(self, action: Action, channel: str, root: str) -> str | None:
        await self.react(channel, root, CLOSE_EMOJI)
        return None

    async def take_down_unfinished(self, channel: str, root: str, me: BotIdentity) -> None:
        """An earlier try of this turn died while streaming: its message never got an action's
        metadata (only a completed reply has it). Delete such leftovers before streaming again."""
        try:
            response = await web_api_call(
                "conversations.replies",
                self._client.conversations_replies(
                    channel=channel, ts=root, include_all_metadata=True, limit=200
                ),
            )
        except ActionError as exc:
            log.warning("could not look for unfinished replies in %s: %s", root, exc)
            return
        for message in response.get("messages") or []:
            mine = message.get("user") == me.user_id or (
                me.bot_id is not None and message.get("bot_id") == me.bot_id
            )
            tagged = (message.get("metadata") or {}).get("event_type") == METADATA_EVENT_TYPE
            if mine and not tagged and message.get("ts") != root:
                try:
                    await web_api_call(
                        "chat.delete", self._client.chat_delete(channel=channel, ts=message["ts"])
                    )
                    log.info("deleted an unfinished reply %s left by an earlier try", message["ts"])
                except ActionError as exc:
                    log.warning("could not delete the unfinished reply %s: %s", message["ts"], exc)

    async def unreact(self, channel: str, ts: str, emoji: str) -> None:
        """Take a reaction off; one already gone is fine, any other failure is logged."""
        try:
            await self._client.reactions_remove(channel=channel, timestamp=ts, name=emoji)
        except SlackApiError as exc:
            if exc.response.get("error") != "no_reaction":
                log_api_failure("reactions.remove", exc)
        except CALL_ERRORS as exc:
            log_api_failure("reactions.remove", exc)

    async def post_digest(self, channel: str, text: str) -> None:
        """Post a triage sweep's digest to ``channel`` (paced; raises ``ActionError``)."""
        async with self._pacer.slot(channel):
            await web_api_call(
                "chat.postMessage",
                self._client.chat_postMessage(channel=channel, text=to_mrkdwn(text), unfurl_links=False),
            )

    async def _reply(self, action: Action, channel: str, root: str) -> str | None:
        """The customer's answer, in the one form a live reply has too (``markdown_reply``)."""
        text = markdown_reply(action.text or "")
        if not text.strip():
            return None
        sent = await self._find_sent(action, channel, root) if action.attempt > 0 else {}
        live = action.ref.get("stream_ts")
        if live:
            if 0 in sent:
                return sent[0]  # a live reply is one message, however long
            completed = await self._complete_live(action, channel, str(live), text)
            if completed is not None:
                return completed
            # The live message is gone (taken down by a retry of the turn): post it afresh.
        first: str | None = None
        for part, piece in enumerate(split_message(text, MARKDOWN_CHARS)):
            ts = sent.get(part) or await self.post(
                action.id, part, channel=channel, thread_ts=root, markdown_text=piece
            )
            first = first or ts
        return first

    async def _complete_live(self, action: Action, channel: str, ts: str, text: str) -> str | None:
        """Make the message a live reply streamed into this reply: stop it with the action's
        metadata, adding the part of ``text`` it has not shown; or, when it showed something
        else (words the model said before calling a tool), replace its text. None: the
        message is gone and the reply is to be posted afresh."""
        shown = int(action.ref.get("stream_chars") or 0)
        rest = text[shown:]
        # Whitespace that ended the streamed text is in the message already.
        trailing = int(action.ref.get("stream_trailing") or 0)
        rest = rest[trailing:] if rest[:trailing].isspace() else rest.lstrip()
        # The usual case: it showed the reply's beginning (most often all of it).
        completes = (
            fingerprint(text[:shown]) == action.ref.get("stream_shown")
            and len(rest) <= STREAM_CHUNK_CHARS
        )
        try:
            await web_api_call(
                "chat.stopStream",
                self._client.chat_stopStream(
                    channel=channel,
                    ts=ts,
                    markdown_text=rest if completes and rest else None,
                    metadata=_metadata(action.id, 0) if completes else None,
                ),
            )
        except ActionError as exc:
            if "message_not_found" in str(exc):
                return None
            if "message_not_in_streaming_state" not in str(exc):
                raise
            # Already stopped (an earlier try of this action, or Slack's own timeout): what it
            # shows is unknown, so set its text outright.
            completes = False
        if completes:
            return ts
        if len(text) > MARKDOWN_CHARS:
            await web_api_call("chat.delete", self._client.chat_delete(channel=channel, ts=ts))
            return None
        try:
            await web_api_call(
                "chat.update",
                self._client.chat_update(
                    channel=channel, ts=ts, markdown_text=text, metadata=_metadata(action.id, 0)
                ),
            )
        except ActionError as exc:
            if "message_not_found" in str(exc):
                return None
            raise
        return ts

    async def post(self, action_id: str, part: int, *, channel: str, **fields: Any) -> str:
        async with self._pacer.slot(channel):
            response = await web_api_call(
                "chat.postMessage",
                self._client.chat_postMessage(
                    channel=channel,
                    metadata=_metadata(action_id, part),
                    unfurl_links=False,
                    **fields,
                ),
            )
        return str(response["ts"])

    async def _find_sent(
        self, action: Action, channel: str, root: str | None
    ) -> dict[int, str]:
        """Parts of this action Slack already has (found by their metadata), by part number."""
        found: dict[int, str] = {}
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            if root is not None:
                call = self._client.conversations_replies(
                    channel=channel, ts=root, include_all_metadata=True, limit=200, cursor=cursor
                )
                response = await web_api_call("conversations.replies", call)
            else:
                call = self._client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=100, cursor=cursor
                )
                response = await web_api_call("conversations.history", call)
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == METADATA_EVENT_TYPE
                    and payload.get("action_id") == action.id
                ):
                    found[int(payload.get("part") or 0)] = str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or root is None:
                break
        if found:
            log.info("action %s already reached Slack; not sending it again", action.id)
        return found

    async def react(self, channel: str, ts: str, emoji: str) -> None:
        """Add a reaction; one already there is fine."""
        if not emoji:
            raise ActionError("a reaction needs an emoji name", retryable=False)
        try:
            await web_api_call(
                "reactions.add",
                self._client.reactions_add(channel=channel, timestamp=ts, name=emoji),
            )
        except ActionError as exc:
            if "already_reacted" not in str(exc):
                raise

    async def _permalink(self, channel: str, ts: str) -> str | None:
        try:
            response = await web_api_call(
                "chat.getPermalink", self._client.chat_getPermalink(channel=channel, message_ts=ts)
            )
        except ActionError as exc:
            log.warning("no permalink for the escalated thread: %s", exc)
            return None
        return response.get("permalink")

    async def _escalation_post(self, action: Action, channel: str, root: str) -> str | None:
        """Tell the people on call: to ``slack.escalation_channel``, else inside the thread."""
        mention = self._settings.escalation_mention
        lines = [f"{mention_markup(mention)} {action.text or ''}".strip() if mention else action.text or ""]
        target = self._settings.escalation_channel
        if target:
            link = await self._permalink(channel, root)
            lines.append(f"<{link}|Open the thread>" if link else f"Thread: {channel} / {root}")
            thread_ts = None
        else:
            target, thread_ts = channel, root
        sent = await self._find_sent(action, target, thread_ts) if action.attempt > 0 else {}
        if 0 in sent:
            return sent[0]
        fields: JSON = {"text": "\n".join(lines)}
        if thread_ts:
            fields["thread_ts"] = thread_ts
        return await self.post(action.id, 0, channel=target, **fields)

    async def announce(self, action: Action) -> str | None:
        """Another channel's escalation, posted in ``slack.escalation_channel``: priority,
        reason, a short summary and the link to the thread in the console."""
        target = self._settings.escalation_channel
        if not target:
            log.info("escalation of %s not announced: no slack.escalation_channel",
                     action.thread_id)
            return None
        event = action.ref
        where = (event.get("thread") or {}).get("channel") or "another channel"
        head = f"*Escalation* ({event.get('priority') or 'normal'}) on {where}: " \
               f"{event.get('reason') or 'no reason given'}"
        mention = self._settings.escalation_mention
        lines = [f"{mention_markup(mention)} {head}" if mention else head]
        summary = " ".join(str(event.get("summary") or "").split())
        if summary:
            lines.append("> " + (summary if len(summary) <= 500 else summary[:499] + "…"))
        link = str(event.get("console_url") or "")
        if link.startswith(("http://", "https://")):
            lines.append(f"<{link}|Open in the console>")
        elif link:
            lines.append(f"Console: {link}")
        sent = await self._find_sent(action, target, None) if action.attempt > 0 else {}
        if 0 in sent:
            return sent[0]
        return await self.post(action.id, 0, channel=target, text="\n".join(lines))

    async def _note(self, action: Action, channel: str, root: str) -> str | None:
        """Slack has no private notes: a note goes to the escalation channel, linked to the
        thread, or is skipped (done, nothing sent) when no escalation channel is set."""
        target = self._settings.escalation_channel
        if not target or not action.text:
            log.info("note on %s/%s not posted: no slack.escalation_channel", channel, root)
            return None
        sent = await self._find_sent(action, target, None) if action.attempt > 0 else {}
        if 0 in sent:
            return sent[0]
        link = await self._permalink(channel, root)
        text = to_mrkdwn(action.text) + (f"\n<{link}|Open the thread>" if link else "")
        return await self.post(action.id, 0, channel=target, text=text)


def _metadata(action_id: str, part: int) -> JSON:
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"action_id": action_id, "part": part}}


def thread_location(thread: Thread) -> tuple[str, str]:
    """The channel and root message of a Slack thread."""
    return _location_of(thread.metadata, thread)


def action_location(action: Action, thread: Thread) -> tuple[str, str]:
    """The channel and thread root an action goes to."""
    return _location_of({**thread.metadata, **action.ref}, thread)


def _location_of(ref: JSON, thread: Thread) -> tuple[str, str]:
    channel, root = ref.get("channel"), ref.get("thread_ts") or ref.get("ts")
    if not channel or not root:
        parts = thread.external_id.split(":")
        if len(parts) != 4 or parts[0] != "slack":
            raise ActionError(f"{thread.external_id!r} is not a Slack thread", retryable=False)
        channel, root = parts[2], parts[3]
    return str(channel), str(root)
