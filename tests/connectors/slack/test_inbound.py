"""The listening rules at the seam: events dispatched through Bolt (signed, as over HTTP) into a
connector whose inbox is the real store, with no dispatcher running — so threads are not created
yet, which is the window between a customer's first message and the bot's first turn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.config import DatabaseSettings
from bot.domain import Control, InboundMessage
from bot.records import connector_runtime
from bot.store.database import Database
from bot.store.migrate import upgrade
from bot.store.store import Store
from connectors.slack import SlackConnector
from tests.conftest import make_settings
from tests.connectors.slack.conftest import AGENT, CUSTOMER, SUPPORT
from tests.fakes.slack import (
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    event_callback,
    message,
    signed_headers,
)


class Inbox:
    def __init__(self, connector: SlackConnector, store: Store):
        self.connector = connector
        self.store = store
        self.accepted: list[InboundMessage] = []

    async def submit(self, msg: InboundMessage) -> bool:
        new = await self.store.inbox_put(msg, "support")
        if new:
            self.accepted.append(msg)
        return new

    async def deliver(self, event: dict[str, Any]) -> int:
        body = json.dumps(event_callback(event))
        request = AsyncBoltRequest(body=body, headers=signed_headers(body.encode()))
        response = await self.connector.bolt.async_dispatch(request)
        return response.status


@pytest.fixture
async def inbox(sqlite_url: str, slack: FakeSlack) -> AsyncIterator[Inbox]:
    db = Database(DatabaseSettings(url=sqlite_url))
    await upgrade(db.engine)
    store = Store(db)
    settings = make_settings(sqlite_url, slack={
        "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "base_url": slack.base_url,
        "support_channels": [SUPPORT], "working_reaction": "",
    })
    holder: list[Inbox] = []

    async def submit(msg: InboundMessage) -> bool:
        return await holder[0].submit(msg)

    connector = SlackConnector(connector_runtime(settings, store, submit=submit, channel="slack"))
    holder.append(Inbox(connector, store))
    await connector.start()
    try:
        yield holder[0]
    finally:
        await connector.stop()
        await db.dispose()


async def test_a_follow_up_before_the_first_turn_joins_the_thread(inbox: Inbox, slack: FakeSlack) -> None:
    root = slack.next_ts()
    assert await inbox.deliver(message(SUPPORT, CUSTOMER, "Export fails", root)) == 200
    assert await inbox.deliver(message(SUPPORT, CUSTOMER, "with a 500", slack.next_ts(),
                                       thread_ts=root, parent_user=CUSTOMER)) == 200
    # Someone else in that window is not taken for the customer.
    assert await inbox.deliver(message(SUPPORT, AGENT, "same here", slack.next_ts(),
                                       thread_ts=root, parent_user=CUSTOMER)) == 200
    assert [m.text for m in inbox.accepted] == ["Export fails", "with a 500"]
    assert {m.thread_external_id for m in inbox.accepted} == {f"slack:{TEAM}:{SUPPORT}:{root}"}


async def test_replies_in_threads_the_bot_is_not_part_of_are_ignored(inbox: Inbox, slack: FakeSlack) -> None:
    root = slack.next_ts()  # a message the bot never saw (before it joined, or not for it)
    await inbox.deliver(message(SUPPORT, CUSTOMER, "follow-up", slack.next_ts(),
                                thread_ts=root, parent_user=AGENT))
    assert inbox.accepted == []
    # … unless it is mentioned there: that starts a thread for the one who mentioned it.
    ts = slack.next_ts()
    await inbox.deliver(message(SUPPORT, CUSTOMER, f"<@{BOT_USER}> can you help?", ts,
                                thread_ts=root, kind="app_mention"))
    [msg] = inbox.accepted
    assert msg.thread_external_id == f"slack:{TEAM}:{SUPPORT}:{root}"
    assert msg.smith_external_id == f"slack:{TEAM}:{CUSTOMER}"
    assert msg.ref == {"channel": SUPPORT, "thread_ts": root, "ts": ts, "team": TEAM, "user": CUSTOMER}
    assert msg.dedup_key == f"{TEAM}:{SUPPORT}:{ts}"


async def test_a_store_failure_is_answered_500_so_slack_delivers_again(
    inbox: Inbox, slack: FakeSlack
) -> None:
    async def broken(msg: InboundMessage) -> bool:
        raise ConnectionError("database unreachable")

    inbox.submit = broken  # type: ignore[method-assign]
    assert await inbox.deliver(message(SUPPORT, CUSTOMER, "hello", slack.next_ts())) == 500


async def test_with_a_support_group_only_its_members_take_a_thread_over(
    inbox: Inbox, slack: FakeSlack
) -> None:
    connector = inbox.connector
    connector._settings = connector._settings.model_copy(update={"support_group": "S0SUPPORT"})
    slack.usergroups["S0SUPPORT"] = [AGENT]
    root = slack.next_ts()
    key = f"slack:{TEAM}:{SUPPORT}:{root}"
    agent = await inbox.store.ensure_agent("support", "Support bot")
    smith = await inbox.store.ensure_smith(f"slack:{TEAM}:{CUSTOMER}", agent.id)
    await inbox.store.ensure_thread(smith, key, "slack")

    # A bystander chiming in does not silence the bot …
    await inbox.deliver(message(SUPPORT, "UBYSTANDER", "+1", slack.next_ts(), thread_ts=root,
                                parent_user=CUSTOMER))
    [thread] = await inbox.store.find_threads_by_external(key)
    assert thread.control is Control.BOT
    # … a member of the support group does.
    await inbox.deliver(message(SUPPORT, AGENT, "looking", slack.next_ts(), thread_ts=root,
                                parent_user=CUSTOMER))
    [thread] = await inbox.store.find_threads_by_external(key)
    assert thread.control is Control.HUMAN
    assert len(slack.calls_to("usergroups.users.list")) == 1  # cached


async def test_payloads_that_are_not_events_get_a_2xx(inbox: Inbox) -> None:
    for body in (
        {"token": "t", "team_id": TEAM, "api_app_id": "A0001", "type": "app_rate_limited",
         "minute_rate_limited": 1518467820},
        {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": CUSTOMER},
         "actions": [{"action_id": "a1", "block_id": "b1", "type": "button", "value": "v",
                      "action_ts": "1700000000.1"}], "token": "t"},
    ):
        raw = json.dumps(body)
        request = AsyncBoltRequest(body=raw, headers=signed_headers(raw.encode()))
        assert (await inbox.connector.bolt.async_dispatch(request)).status == 200
    assert inbox.accepted == []
