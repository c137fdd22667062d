"""Actions on Intercom conversations: one small handler per ``ActionKind``, found in a table.

Dry run is a second table, not a flag: the kinds a customer would see (a reply, a close, a
snooze) map to handlers that write an admin note saying what the bot would have done; tags,
notes, assignment and reopening are the team's own and run as usual.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.config import IntercomSettings
from bot.connector import ActionError, ConnectorRuntime
from bot.domain import JSON, Action, ActionKind
from connectors.intercom.client import IntercomClient, IntercomError
from connectors.intercom.model import Conversation, has_marker, html_to_text, marker, text_to_html

log = logging.getLogger(__name__)

RECENT_PARTS = 50  # how far back a resend looks for its earlier attempt
DRY_RUN_PREFIX = "[dry run] would reply: "

# (action, conversation id, the bot's admin id) → the id of the part it created, if any
Handler = Callable[[Action, str, str], Awaitable[str | None]]


class IntercomActions:
    """Carries out actions on conversations as the bot's admin; keeps the workspace's tag ids."""

    def __init__(
        self,
        settings: IntercomSettings,
        runtime: ConnectorRuntime,
        client: Callable[[], IntercomClient],
    ):
        self._settings = settings
        self._runtime = runtime
        # A getter: the connector opens its client in ``start``, after this is built.
        self._client = client
        self._tag_ids: dict[str, str] = {}
        self._tags_loaded = False
        self._tag_lock = asyncio.Lock()

    def handlers(self) -> dict[ActionKind, Handler]:
        """What each kind of action does on Intercom."""
        return {
            ActionKind.REPLY: self.reply,
            ActionKind.NOTE: self.note,
            ActionKind.TAG: self.tag,
            ActionKind.UNTAG: self.untag,
            ActionKind.ASSIGN: self.assign,
            ActionKind.CLOSE: self.close,
            ActionKind.SNOOZE: self.snooze,
            ActionKind.OPEN: self.open,
        }

    def dry_run_handlers(self) -> dict[ActionKind, Handler]:
        """``handlers`` with what the customer would see turned into admin notes."""
        return self.handlers() | {
            ActionKind.REPLY: self.note_would_reply,
            ActionKind.CLOSE: self.note_would_close,
            ActionKind.SNOOZE: self.note_would_snooze,
        }

    # -- handlers -------------------------------------------------------------------------

    async def reply(self, action: Action, conversation_id: str, admin: str) -> str | None:
        return await self.post(action, conversation_id, admin, "comment", action.text or "")

    async def note(self, action: Action, conversation_id: str, admin: str) -> str | None:
        return await self.post(action, conversation_id, admin, "note", action.text or "")

    async def tag(self, action: Action, conversation_id: str, admin: str) -> str | None:
        tag_id = await self._tag_id(_tag_name(action), create=True)
        assert tag_id is not None
        await self._client().tag_conversation(conversation_id, tag_id=tag_id, admin_id=admin)
        return tag_id

    async def untag(self, action: Action, conversation_id: str, admin: str) -> str | None:
        tag_id = await self._tag_id(_tag_name(action), create=False)
        if tag_id is None:
            return None  # a tag that does not exist is on no conversation
        try:
            await self._client().untag_conversation(conversation_id, tag_id=tag_id, admin_id=admin)
        except IntercomError as exc:
            if exc.status != 404:
                raise
        return tag_id

    async def assign(self, action: Action, conversation_id: str, admin: str) -> str | None:
        assignee = action.assignee or self._settings.escalation_assignee
        assignee_type, _, assignee_id = (assignee or "").partition(":")
        if assignee_type not in ("team", "admin") or not assignee_id:
            raise ActionError(
                f"cannot assign to {assignee!r}: expected 'team:<id>' or 'admin:<id>'",
                retryable=False,
            )
        result = await self._client().assign_conversation(
            conversation_id, admin_id=admin, assignee_type=assignee_type, assignee_id=assignee_id
        )
        return newest_part_id(result)

    async def close(self, action: Action, conversation_id: str, admin: str) -> str | None:
        client = self._client()
        if action.attempt > 0:
            current = Conversation.from_json(await client.find_conversation(conversation_id))
            if current.state == "closed":
                return None
        return newest_part_id(await client.close_conversation(conversation_id, admin_id=admin))

    async def snooze(self, action: Action, conversation_id: str, admin: str) -> str | None:
        if action.until is None:
            raise ActionError("snooze without 'until'", retryable=False)
        result = await self._client().snooze_conversation(
            conversation_id, admin_id=admin, until=int(action.until)
        )
        return newest_part_id(result)

    async def open(self, action: Action, conversation_id: str, admin: str) -> str | None:
        return newest_part_id(await self._client().open_conversation(conversation_id, admin_id=admin))

    # -- dry run ----------------------------------------------------------------------------

    async def note_would_reply(self, action: Action, conversation_id: str, admin: str) -> str | None:
        text = DRY_RUN_PREFIX + (action.text or "")
        return await self.post(action, conversation_id, admin, "note", text)

    async def note_would_close(self, action: Action, conversation_id: str, admin: str) -> str | None:
        text = "[dry run] would close this conversation"
        return await self.post(action, conversation_id, admin, "note", text)

    async def note_would_snooze(self, action: Action, conversation_id: str, admin: str) -> str | None:
        text = "[dry run] would snooze this conversation"
        return await self.post(action, conversation_id, admin, "note", text)

    # -- sending once -------------------------------------------------------------------------

    async def post(
        self, action: Action, conversation_id: str, admin: str, message_type: str, text: str
    ) -> str | None:
        """A comment or note, never twice: a resend first looks for the earlier attempt."""
        if action.attempt > 0:
            earlier = await self._find_sent(action, conversation_id, admin, text)
            if earlier is not None:
                log.info("action %s was delivered before (part %s); not resending", action.id, earlier)
                return earlier
        body = _with_marker(text_to_html(text), marker(action.id))
        result = await self._client().reply(
            conversation_id, admin_id=admin, message_type=message_type, body=body
        )
        posted = Conversation.from_json(result)
        for part in reversed(posted.parts):
            if has_marker(part.body, action.id):
                return part.id
        return newest_part_id(result)

    async def _find_sent(
        self, action: Action, conversation_id: str, admin: str, text: str
    ) -> str | None:
        """The part an earlier attempt of ``action`` created, if any: by its marker, else (a
        sanitizer could drop the marker) by its exact text written after the turn began."""
        current = Conversation.from_json(await self._client().find_conversation(conversation_id))
        recent = [p for p in current.parts[-RECENT_PARTS:] if p.author.id == admin]
        for part in reversed(recent):
            if has_marker(part.body, action.id):
                return part.id
        run = await self._runtime.find_run(action.run_id)
        if run is None:
            return None
        wanted = html_to_text(text_to_html(text))
        for part in reversed(recent):
            if part.created_at >= run.started_at - 60 and html_to_text(part.body) == wanted:
                return part.id
        return None

    async def _tag_id(self, name: str, *, create: bool) -> str | None:
        """The workspace's id for a tag name: listed once, created when missing, then cached."""
        key = name.lower()
        if key in self._tag_ids:
            return self._tag_ids[key]
        client = self._client()
        async with self._tag_lock:
            if not self._tags_loaded:
                for tag in await client.list_tags():
                    if tag.get("name") and tag.get("id"):
                        self._tag_ids.setdefault(str(tag["name"]).lower(), str(tag["id"]))
                self._tags_loaded = True
            if key not in self._tag_ids and create:
                created = await client.create_tag(name)
                self._tag_ids[key] = str(created["id"])
            return self._tag_ids.get(key)


def newest_part_id(conversation: JSON) -> str | None:
    parts = (conversation.get("conversation_parts") or {}).get("conversation_parts") or []
    if parts:
        return str(parts[-1].get("id"))
    return str(conversation["id"]) if conversation.get("id") is not None else None


def _tag_name(action: Action) -> str:
    if not action.tag:
        raise ActionError(f"{action.kind.value} without a tag name", retryable=False)
    return action.tag


def _with_marker(body: str, mark: str) -> str:
    if body.endswith("</p>"):
        return body[: -len("</p>")] + mark + "</p>"
    return body + mark
