"""What a person on the support side does to a thread through the daemon: answer the customer,
hand the thread back to the bot, close it. The operator API (``bot.http.threads``) and the
console call the same ``Operator``.

A person's reply makes them hold the thread (``Handoff.person_took``): the bot stays silent
there, and the customer's messages are kept and shown, until the thread is handed back. The
reply reaches the customer where the channel shows the thread's stored messages (the web
widget, live: ``PERSON_MESSAGE`` on the thread's events). On a channel with a helpdesk of its
own, a person answers there (that tells the core through the connector's signals), and a reply
here is refused with a reason rather than sent as the bot under a person's name.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from bot.connector import Connector
from bot.domain import Thread
from bot.pipeline.events import TurnEvent, TurnEvents
from bot.pipeline.handoff import Handoff
from bot.store.messages import PersonMessage, PersonMessages
from bot.store.store import Store

log = logging.getLogger(__name__)

# Events on a thread's ``TurnEvents`` besides a turn's (their ``run_id`` is empty).
PERSON_MESSAGE = "person.message"
THREAD_UPDATED = "thread.updated"
MESSAGE_MAX_CHARS = 20_000
AUTHOR_MAX_CHARS = 100


class OperatorRefused(Exception):
    """What a person asked cannot be done on this thread (``reason`` says why; ``code`` is
    for machines)."""

    def __init__(self, reason: str, *, code: str):
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class Replied:
    message: PersonMessage
    thread: Thread


class Operator:
    """A person's actions on threads. Unknown threads raise ``bot.domain.NotFound``."""

    def __init__(
        self,
        *,
        store: Store,
        handoff: Handoff,
        events: TurnEvents,
        connectors: Mapping[str, Connector],
    ):
        self._store = store
        self._handoff = handoff
        self._events = events
        self._connectors = connectors
        self._messages = PersonMessages(store.db)

    async def reply(self, thread_id: str, *, text: str, author_name: str) -> Replied:
        """``text`` to the thread's customer from ``author_name``; the person holds the thread
        from now on."""
        text = text.strip()
        author_name = " ".join(author_name.split())
        if not text or len(text) > MESSAGE_MAX_CHARS:
            raise ValueError(f"content is 1…{MESSAGE_MAX_CHARS} characters")
        if not author_name or len(author_name) > AUTHOR_MAX_CHARS:
            raise ValueError(f"author.name is 1…{AUTHOR_MAX_CHARS} characters")
        thread = await self._store.get_thread(thread_id)
        connector = self._connectors.get(thread.channel)
        if connector is None or not connector.shows_person_messages:
            raise OperatorRefused(
                f"threads on {thread.channel} are answered in {thread.channel} itself: a "
                "person's reply there hands the thread to them, and the bot stays silent; "
                "handback and close work here",
                code="reply_in_channel",
            )
        message = await self._messages.add(thread.id, author_name=author_name, text=text)
        thread = await self._handoff.person_took(thread)
        log.info("a person replied on %s through the daemon; they hold it", thread.id)
        await self._events.publish(TurnEvent(PERSON_MESSAGE, "", thread.id, message.to_json()))
        await self._updated(thread)
        return Replied(message, thread)

    async def hand_back(self, thread_id: str) -> Thread:
        """The bot answers the customer's next message."""
        thread = await self._handoff.handed_back(await self._store.get_thread(thread_id))
        log.info("%s handed back to the bot", thread.id)
        await self._updated(thread)
        return thread

    async def close(self, thread_id: str) -> Thread:
        """The thread is closed (the customer writing again reopens it, see ``[handoff]``)."""
        thread = await self._handoff.closed_by_person(await self._store.get_thread(thread_id))
        log.info("%s closed by a person", thread.id)
        await self._updated(thread)
        return thread

    async def messages(self, thread_id: str, *, after: float | None = None) -> list[PersonMessage]:
        return await self._messages.of_thread(thread_id, after=after)

    async def _updated(self, thread: Thread) -> None:
        await self._events.publish(TurnEvent(THREAD_UPDATED, "", thread.id, {
            "state": thread.state.value, "control": thread.control.value,
        }))
