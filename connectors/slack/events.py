"""``POST /slack/events``: the Events API over HTTP, verified before Bolt sees it.

Bolt parses a request's body when the request object is built, before its own signature
middleware runs, so an unsigned ``5`` or a body nested 100,000 deep used to be a 500 from
anyone on the internet; and its middleware logs the full body of a request it refuses. So
the route checks, in order: size (413) → ``X-Slack-Signature`` over the raw bytes with
slack_sdk's ``SignatureVerifier`` (401, whatever the body; nothing parsed, nothing logged) →
the body parsed as Bolt would parse it, bounded in depth and required to be an object (400)
→ Bolt, with its own verification turned off (``request_verification_enabled=False``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import jsonschema
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.http.bodies import BodyRefused, parse_json, read_body

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"

_TEXT = {"type": "string"}
_FILE = {"type": "object", "properties": {
    **{key: _TEXT for key in ("id", "name", "title", "mimetype", "url_private",
                              "url_private_download")},
    "size": {"type": "integer", "minimum": 0},
}}
# The fields the connector reads, in the types Slack sends them (api.slack.com/events): a signed
# payload of other shapes is refused here rather than failing inside a listener.
EVENT_CALLBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "team_id": _TEXT,
        "event_id": _TEXT,
        "authorizations": {"type": "array", "items": {"type": "object"}},
        "event": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": _TEXT},
            "allOf": [
                {"if": {"properties": {"type": {"enum": ["message", "app_mention"]}}},
                 "then": {"properties": {
                     **{key: _TEXT for key in ("subtype", "channel", "user", "ts", "thread_ts",
                                               "text", "channel_type", "bot_id", "team",
                                               "parent_user_id")},
                     "reply_users": {"type": "array", "items": _TEXT},
                     "files": {"type": "array", "items": _FILE},
                 }}},
                {"if": {"properties": {"type": {"enum": ["reaction_added", "reaction_removed"]}}},
                 "then": {"properties": {
                     "user": _TEXT, "reaction": _TEXT,
                     "item": {"type": "object", "properties": {
                         key: _TEXT for key in ("type", "channel", "ts")}},
                 }}},
            ],
        },
    },
}
_EVENT_CALLBACK = jsonschema.Draft202012Validator(EVENT_CALLBACK_SCHEMA)
Dispatch = Callable[[AsyncBoltRequest], Awaitable[BoltResponse]]


class EventsRoute:
    """The route's handler; ``dispatch`` is the Bolt app's ``async_dispatch``."""

    def __init__(self, *, signing_secret: str | None, max_body_bytes: int, dispatch: Dispatch):
        self._verifier = SignatureVerifier(signing_secret) if signing_secret else None
        self._max_body = max_body_bytes
        self._dispatch = dispatch

    def routes(self) -> list[web.RouteDef]:
        return [web.post(EVENTS_PATH, self.post)]

    async def post(self, request: web.Request) -> web.Response:
        try:
            raw = await read_body(request, self._max_body)
        except BodyRefused as refused:
            return _refused(refused.status, refused.reason)
        text = self._verified(raw, request)
        if text is None:
            # Neither the body nor the signature goes to the log: the body is the sender's
            # data, and a request that is not Slack's tells us nothing worth keeping.
            log.warning("Slack request refused: bad or missing X-Slack-Signature")
            return _refused(401, "invalid request signature")
        try:
            _payload(text, request.headers.get("Content-Type"))
        except BodyRefused as refused:
            return _refused(refused.status, refused.reason)
        try:
            bolt_request = AsyncBoltRequest(
                body=text,
                query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]
            )
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            # Building the request reads ids out of the payload and assumes Slack's shapes
            # (``event.user`` an object or a string, …): a signed body of other shapes is the
            # sender's mistake, not ours.
            return _refused(400, f"a payload of a shape Slack does not send ({type(exc).__name__})")
        return await to_aiohttp_response(await self._dispatch(bolt_request))

    def _verified(self, raw: bytes, request: web.Request) -> str | None:
        """The body as text when it carries Slack's signature; None otherwise."""
        if self._verifier is None:
            return None
        try:
            text = raw.decode("utf-8")  # Slack signs text; other bytes cannot be Slack's
            valid = self._verifier.is_valid(
                body=text,
                timestamp=request.headers.get("X-Slack-Request-Timestamp"),
                signature=request.headers.get("X-Slack-Signature"),
            )
        except (UnicodeDecodeError, ValueError):  # not UTF-8, or a timestamp that is no number
            return None
        return text if valid else None


def _payload(text: str, content_type_header: str | None) -> dict[str, Any]:
    """The body as Bolt's ``parse_body`` reads it (JSON, or a form with a ``payload`` field
    holding JSON, or plain form fields), refused unless it is an object of bounded depth.
    The content type is taken from the header exactly as Bolt takes it (not lower-cased), so
    both read the same body the same way."""
    if not text:
        return {}
    content_type = content_type_header.split(";")[0] if content_type_header else None
    if content_type == "application/json" or text.startswith("{"):
        value = parse_json(text.encode("utf-8"))
    elif "payload" in text:
        payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
        value = parse_json(payload.encode("utf-8")) if payload is not None else {}
    else:
        return {}  # plain form fields: strings only, nothing to bound
    if not isinstance(value, dict):
        raise BodyRefused(400, "the payload must be a JSON object", "invalid_json")
    if value.get("type") == "event_callback":
        problem = jsonschema.exceptions.best_match(_EVENT_CALLBACK.iter_errors(value))
        if problem is not None:
            where = "/".join(str(p) for p in problem.absolute_path) or "the payload"
            raise BodyRefused(400, f"{where}: not what Slack sends ({problem.validator})",
                              "invalid_event")
    return value


def _refused(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)
