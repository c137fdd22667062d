"""The store behind the connector runtime: ``ConnectorRecords`` and ``VisitorRecords``
(``bot.connector``) answered by the store, and ``connector_runtime``, which puts a runtime
together from a store.

Only what the two protocols name is reachable from here, so a connector holding its runtime
cannot write a thread, a run or the outbox: those changes are the pipeline's and handoff's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.config import Settings
from bot.connector import ConnectorRuntime, RawDelivery
from bot.domain import JSON, Agent, InboundMessage, NotFound, Rating, Run, Smith, Thread
from bot.pipeline.events import TurnEvents
from bot.pipeline.handoff import Handoff
from bot.store.store import Store
from bot.store.web import WebStore


class StoreRecords:
    """``ConnectorRecords`` and ``VisitorRecords`` over one ``Store``."""

    def __init__(self, store: Store):
        self._store = store
        self._web = WebStore(store)

    # -- ConnectorRecords ---------------------------------------------------------------------

    async def get_cursor(self, name: str) -> JSON | None:
        return await self._store.get_cursor(name)

    async def set_cursor(self, name: str, value: JSON) -> None:
        await self._store.set_cursor(name, value)

    async def inbox_seen(self, source: str, dedup_key: str) -> bool:
        return await self._store.inbox_seen(source, dedup_key)

    async def get_run(self, run_id: str) -> Run:
        return await self._store.get_run(run_id)

    async def find_threads_by_external(self, external_id: str) -> list[Thread]:
        return await self._store.find_threads_by_external(external_id)

    async def run_of_message(self, channel: str, remote_id: str) -> str | None:
        return await self._store.feedback.run_of_message(channel, remote_id)

    async def latest_run(self, thread_id: str) -> str | None:
        latest = await self._store.thread_runs(thread_id, limit=1)
        return latest[-1].id if latest else None

    async def rate(
        self, run_id: str, *, rater: str, rating: Rating, comment: str | None, source: str
    ) -> None:
        await self._store.feedback.rate(run_id, rater=rater, rating=rating, comment=comment,
                                        source=source)

    async def withdraw_rating(self, run_id: str, *, rater: str, rating: Rating) -> None:
        await self._store.feedback.withdraw(run_id, rater=rater, rating=rating)

    async def find_smith(self, external_id: str, agent_id: str) -> Smith | None:
        return await self._store.find_smith(external_id, agent_id)

    async def get_smith(self, smith_id: str, *, include_archived: bool = False) -> Smith:
        return await self._store.get_smith(smith_id, include_archived=include_archived)

    # -- VisitorRecords -----------------------------------------------------------------------

    async def ensure_agent(self, slug: str, name: str) -> Agent:
        return await self._store.ensure_agent(slug, name)

    async def ensure_smith(
        self,
        external_id: str | None,
        agent_id: str,
        *,
        display_name: str | None = None,
        customer_id: str | None = None,
        metadata: JSON | None = None,
        auto_memory: bool | None = None,
    ) -> Smith:
        return await self._store.ensure_smith(
            external_id, agent_id, display_name=display_name, customer_id=customer_id,
            metadata=metadata, auto_memory=auto_memory,
        )

    async def patch_smith(self, smith_id: str, **fields: Any) -> Smith:
        return await self._store.patch_smith(smith_id, **fields)

    async def alias_smith(self, agent_id: str, external_id: str) -> Smith | None:
        return await self._web.alias_smith(agent_id, external_id)

    async def is_claimed(self, smith_id: str) -> bool:
        return await self._web.is_claimed(smith_id)

    async def add_alias(self, agent_id: str, external_id: str, smith_id: str) -> bool:
        return await self._web.add_alias(agent_id, external_id, smith_id)

    async def token_key(self) -> bytes:
        return await self._web.token_key()

    async def stored_file(self, file_id: str, *, smith_id: str) -> bytes | None:
        try:
            stored, data = await self._web.file_content(file_id)
        except NotFound:
            return None
        return data if stored.smith_id == smith_id else None


def connector_runtime(
    settings: Settings,
    store: Store,
    *,
    submit: Callable[[InboundMessage], Awaitable[bool]],
    events: TurnEvents | None = None,
    handoff: Handoff | None = None,
    submit_delivery: Callable[[Sequence[InboundMessage]], Awaitable[list[bool]]] | None = None,
    channel: str | None = None,
    store_delivery: Callable[[str, RawDelivery], Awaitable[bool]] | None = None,
) -> ConnectorRuntime:
    """A runtime over ``store``; without ``handoff``, one built from the settings (a connector
    on its own, as in tests)."""
    records = StoreRecords(store)
    return ConnectorRuntime(
        settings=settings,
        records=records,
        submit=submit,
        events=events if events is not None else TurnEvents(),
        handoff=handoff if handoff is not None else Handoff(
            store, settings.handoff, default_agent=settings.default_agent
        ),
        submit_delivery=submit_delivery,
        visitors=records,
        channel=channel,
        store_delivery=store_delivery,
    )
