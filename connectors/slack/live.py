"""Live replies on Slack: the answer appears in the thread while the model writes it.

The dispatcher feeds a turn's text deltas to a ``SlackLiveReply``, which starts a streaming
message (``chat.startStream``) at the first words and sends what has piled up every
``slack.stream_interval_seconds`` (``chat.appendStream``), so a slow Slack never holds the turn
up. The message is not the reply's record, though: when the turn is committed, its REPLY
action carries the message's ``ts`` and a fingerprint of the text shown, and whichever worker
sends that action completes this message (``chat.stopStream`` with the action's metadata)
instead of posting another. A turn that ends without a reply, fails or loses its lease takes
the message down again.

When the turn's answer starts over (``reset``: a fallback model answers after one that failed
mid-stream), the message that showed the abandoned answer is stopped and deleted, and the new
answer streams into a fresh message: the thread never shows two answers run together.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.connector import LiveReply
from bot.domain import JSON
from connectors.slack.mrkdwn import markdown_reply

log = logging.getLogger(__name__)

# appendStream takes up to 12,000 characters of markdown per call; stay well inside it.
STREAM_CHUNK_CHARS = 4000
SLACK_ERRORS = (SlackClientError, aiohttp.ClientError, TimeoutError)


def fingerprint(text: str) -> str:
    """A short digest of the text a live reply showed (kept on the REPLY action)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def chunks(text: str, size: int = STREAM_CHUNK_CHARS) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


class SlackLiveReply(LiveReply):
    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        thread_ts: str,
        recipient: JSON,
        interval: float,
        slot: Callable[[str], contextlib.AbstractAsyncContextManager[None]],
        spawn: Callable[[Awaitable[None], str], asyncio.Task[None]],
    ):
        self._client = client
        self._channel = channel
        self._thread_ts = thread_ts
        self._recipient = recipient
        self._interval = interval
        self._slot = slot
        self._pending: list[str] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._failed = False
        self._restart = False  # a reset is waiting: take the shown message down first
        self.ts: str | None = None
        self.shown = ""
        self._task = spawn(self._pump(), f"slack-live:{thread_ts}")

    def append(self, delta: str) -> None:
        if delta and not self._closing.is_set() and not self._failed:
            self._pending.append(delta)
            self._wake.set()

    def reset(self) -> None:
        if self._closing.is_set() or self._failed:
            # A failed stream is left as it is: the REPLY action sees that its text differs
            # from what showed and replaces it (chat.update).
            return
        self._pending.clear()
        self._restart = True
        self._wake.set()

    async def finish(self) -> JSON:
        await self._close()
        if self.ts is None:
            return {}
        # The reply's text is stripped: compare it with what showed, less trailing whitespace.
        shown = self.shown.rstrip()
        return {
            "stream_ts": self.ts,
            "stream_shown": fingerprint(shown),
            "stream_chars": len(shown),
            "stream_trailing": len(self.shown) - len(shown),
        }

    async def discard(self) -> None:
        self._pending.clear()
        await self._close()
        await self._take_down()

    async def _take_down(self) -> None:
        ts, self.ts = self.ts, None
        self.shown = ""
        if ts is None:
            return
        # Stop it first (a message still streaming may refuse deletion), then delete it.
        with contextlib.suppress(*SLACK_ERRORS):
            await self._client.chat_stopStream(channel=self._channel, ts=ts)
        try:
            await self._client.chat_delete(channel=self._channel, ts=ts)
            log.info("took down the unfinished live reply %s in %s", ts, self._channel)
        except SLACK_ERRORS as exc:
            log.warning("could not take down the unfinished live reply %s: %s", ts, _error(exc))

    async def _close(self) -> None:
        self._closing.set()
        self._wake.set()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _pump(self) -> None:
        """Send what piled up, at most once per interval, until closed and drained."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            text = "".join(self._pending)
            self._pending.clear()
            if text.endswith("<") and not self._closing.is_set():
                # It may open Slack markup the next words finish: held back until they come,
                # so ``markdown_reply`` sees it whole, as it does in a posted reply.
                text = text[:-1]
                self._pending.append("<")
            if self._restart:
                # Everything pending was appended after the reset: it opens the new message.
                self._restart = False
                await self._take_down()
            if text and not await self._send(text):
                return
            if self._closing.is_set() and not self._pending:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval)

    async def _send(self, text: str) -> bool:
        text = markdown_reply(text)
        try:
            if self.ts is None:
                text = text.lstrip()
                if not text:
                    return True  # whitespace alone does not open a message
                pieces = chunks(text)
                async with self._slot(self._channel):
                    response = await self._client.chat_startStream(
                        channel=self._channel,
                        thread_ts=self._thread_ts,
                        markdown_text=pieces[0],
                        **self._recipient,
                    )
                self.ts = str(response["ts"])
                self.shown = pieces[0]
                rest = pieces[1:]
            else:
                rest = chunks(text)
            for piece in rest:
                await self._client.chat_appendStream(
                    channel=self._channel, ts=self.ts, markdown_text=piece
                )
                self.shown += piece
        except SLACK_ERRORS as exc:
            # Whatever did show stays; the REPLY action completes or replaces it.
            self._failed = True
            log.warning("live reply in %s stopped streaming: %s", self._channel, _error(exc))
            return False
        return True


def _error(exc: Any) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error"))
    return type(exc).__name__
