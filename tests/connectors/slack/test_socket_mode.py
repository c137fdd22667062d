"""Socket Mode: the connector gets its WebSocket URL from apps.connections.open on the fake Web
API, receives an events_api envelope over a real local WebSocket, acknowledges it, and answers."""

from __future__ import annotations

from tests.connectors.slack.conftest import CUSTOMER, Daemon, inbound, settled
from tests.fakes.slack import APP_TOKEN, FakeSlack, event_callback, message, wait_until


async def test_socket_mode_receives_acknowledges_and_answers(daemon: Daemon, slack: FakeSlack) -> None:
    async with daemon(app_token=APP_TOKEN, signing_secret=None) as app:
        connector = app.connectors["slack"]
        await wait_until(lambda: slack.socket_connected and connector.ready())
        assert slack.calls_to("apps.connections.open")

        ts = slack.next_ts()
        body = event_callback(message("D0DM", CUSTOMER, "hello over the socket", ts,
                                      channel_type="im"))
        envelope = await slack.push_event(body)
        await wait_until(lambda: any(a.get("envelope_id") == envelope for a in slack.acks))
        # The envelope is acknowledged only once the message is in the inbox.
        assert [m.ref["ts"] for m in await inbound(app)()] == [ts]

        await wait_until(lambda: slack.thread("D0DM", ts))
        await wait_until(lambda: settled(app))
        assert slack.thread("D0DM", ts)[0]["text"] == "**Echo:** hello over the socket"

        # An event nobody acts on is acknowledged too, so Slack does not redeliver it.
        other = await slack.push_event(event_callback({"type": "team_join", "user": {"id": "UNEW"}}))
        await wait_until(lambda: any(a.get("envelope_id") == other for a in slack.acks))
    await wait_until(lambda: not slack.socket_connected)  # closed on stop
