"""Webhook deliveries are stored before the answer and parsed after it: a parse that blocks
does not hold the answer back, a delivery stored but never parsed (the process died) is parsed
by the next start and answered once, a redelivery is one row, and a conversation's
notifications reach the inbox in the order they came."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import Application
from bot.connector import RawDelivery
from bot.store.schema import deliveries
from tests.connectors.intercom.conftest import deliver, running_app, settled, wait_until
from tests.fakes.intercom import FakeIntercom

Parse = Callable[[RawDelivery], Awaitable[None]]


def hold_parsing(app: Application, gate: asyncio.Event, *, first_delay: float = 0.0) -> list[str]:
    """Make the Intercom connector's parse wait for ``gate`` (the first one ``first_delay``
    more); returns the dedup keys in the order their parse finished."""
    connector = app.connectors["intercom"]
    parse: Parse = connector.parse_delivery
    finished: list[str] = []

    async def held(delivery: RawDelivery) -> None:
        await gate.wait()
        if not finished and first_delay:
            await asyncio.sleep(first_delay)
        await parse(delivery)
        finished.append(delivery.dedup_key)

    connector.parse_delivery = held  # type: ignore[method-assign]
    return finished


async def test_the_answer_does_not_wait_for_the_parse(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>Where is my <b>order</b>?</p>")
    source_id = fake.conversations[conversation].source["id"]
    async with running_app(db_url, fake) as (app, _runner):
        gate = asyncio.Event()
        hold_parsing(app, gate)
        notification = fake.notification("conversation.user.created", conversation)
        status, answer = await asyncio.wait_for(deliver(app, notification, parsed=False), 10)
        assert (status, answer["reason"]) == (200, "stored")
        assert (await app.store.deliveries.counts()) == {"pending": 1}
        assert not await app.store.inbox_seen("intercom", f"{conversation}:source:{source_id}")
        gate.set()
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        await wait_until(lambda: settled(app), what="the inbox to settle")
        assert (await app.store.deliveries.counts()) == {"done": 1}
        (item,) = await app.store.inbox_items()
        assert item["payload"]["text"] == "Where is my order?"


async def test_a_delivery_stored_before_a_crash_is_parsed_by_the_next_start(
    db_url: str, fake_intercom: FakeIntercom
) -> None:
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>Hello?</p>")
    notification = fake.notification("conversation.user.created", conversation)
    # A short lease, as the crashed process's would have run out; no drain, so stopping cancels
    # the held parse as a kill would (its claim is never given back).
    pipeline = {"lease_seconds": 1.0, "drain_timeout_seconds": 0}
    async with running_app(db_url, fake, pipeline=pipeline) as (app, _runner):
        hold_parsing(app, asyncio.Event())  # never parses
        assert (await deliver(app, notification, parsed=False))[0] == 200
        assert (await app.store.deliveries.counts()) == {"pending": 1}
    assert fake.replies(conversation) == []

    async with running_app(db_url, fake, pipeline=pipeline) as (app, runner):
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        # Intercom delivers it again a minute later: acknowledged, not stored twice.
        status, answer = await deliver(app, notification)
        assert (status, answer["reason"]) == (200, "notification already stored")
        await wait_until(lambda: settled(app), what="the inbox to settle")
        await asyncio.sleep(0.2)
        assert len(fake.replies(conversation)) == 1
        assert len(runner.seen) == 1
        assert (await app.store.inbox_counts()) == {"done": 1}
        assert (await app.store.deliveries.counts()) == {"done": 1}


async def test_a_redelivery_is_one_row(db_url: str, fake_intercom: FakeIntercom) -> None:
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>Hi</p>")
    notification = fake.notification("conversation.user.created", conversation)
    async with running_app(db_url, fake) as (app, runner):
        gate = asyncio.Event()
        hold_parsing(app, gate)
        answers = await asyncio.gather(
            *(deliver(app, notification, parsed=False) for _ in range(5))
        )
        assert sorted(a["reason"] for _, a in answers) == ["notification already stored"] * 4 + [
            "stored"
        ]
        gate.set()
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        await wait_until(lambda: settled(app), what="the inbox to settle")
        assert (await app.store.deliveries.counts()) == {"done": 1}
        assert (await app.store.inbox_counts()) == {"done": 1}
        assert len(runner.seen) == 1


@pytest.mark.parametrize("claimed", ["one by one", "together"])
async def test_a_conversations_notifications_are_parsed_in_order(
    db_url: str, fake_intercom: FakeIntercom, claimed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One by one: each delivery is claimed as it is stored, and a later one waits behind the
    earlier one's lease. Together: the parser takes all four in one claim."""
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>one</p>")
    async with running_app(db_url, fake) as (app, _runner):
        if claimed == "together":
            claim = app.deliveries._claim

            async def nothing_yet(limit: int) -> list[Any]:
                return []

            monkeypatch.setattr(app.deliveries, "_claim", nothing_yet)
        gate = asyncio.Event()
        # The first parse is the slowest: parsed side by side, it would finish last.
        finished = hold_parsing(app, gate, first_delay=0.3)
        keys = []
        notification = fake.notification("conversation.user.created", conversation)
        keys.append(notification["id"])
        assert (await deliver(app, notification, parsed=False))[0] == 200
        for text in ("two", "three", "four"):
            fake.user_reply(conversation, f"<p>{text}</p>")
            notification = fake.notification("conversation.user.replied", conversation)
            keys.append(notification["id"])
            assert (await deliver(app, notification, parsed=False))[0] == 200
        if claimed == "together":
            monkeypatch.setattr(app.deliveries, "_claim", claim)
            app.deliveries.wake()
        gate.set()
        await wait_until(lambda: len(finished) == 4, what="every delivery parsed")
        assert finished == keys
        await wait_until(lambda: settled(app), what="the inbox to settle")
        items = await app.store.inbox_items()
        assert [i["payload"]["text"] for i in items] == ["one", "two", "three", "four"]
        assert {i["status"] for i in items} <= {"done", "skipped"}


async def test_an_unreadable_conversation_is_acknowledged_then_kept_as_failed(
    db_url: str, fake_intercom: FakeIntercom, caplog: pytest.LogCaptureFixture
) -> None:
    """The conversation item is read after the answer: one that cannot be read is stored and
    answered 200 (Intercom would not send it again anyway), then logged and kept, marked
    failed with the reason, without holding back the conversation's next notification."""
    fake = fake_intercom
    conversation = fake.start_conversation(fake.add_contact(), "<p>one</p>")
    async with running_app(db_url, fake) as (app, _runner):
        broken = fake.notification("conversation.user.created", conversation)
        broken["data"]["item"]["conversation_parts"] = {"conversation_parts": [{"body": "x"}]}
        with caplog.at_level(logging.ERROR, logger="bot.pipeline.deliveries"):
            status, answer = await deliver(app, broken)
        assert (status, answer["reason"]) == (200, "stored")
        assert (await app.store.deliveries.counts()) == {"failed": 1}
        query = select(deliveries.c.dedup_key, deliveries.c.error, deliveries.c.body)
        ((key, error, body),) = await app.store.deliveries.db.run_read(
            lambda conn: conn.execute(query).all()
        )
        assert key == broken["id"] and bytes(body) == json.dumps(broken).encode()
        assert error.startswith("unreadable conversation item: KeyError('id')")
        assert any(
            broken["id"] in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records
        )

        fake.user_reply(conversation, "<p>two</p>")
        notification = fake.notification("conversation.user.replied", conversation)
        assert (await deliver(app, notification))[0] == 200
        await wait_until(lambda: len(fake.replies(conversation)) == 1, what="the reply")
        assert (await app.store.deliveries.counts()) == {"failed": 1, "done": 1}
