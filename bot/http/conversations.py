"""The conversations API, shaped like OpenAI's Conversations so its client library can list and
read them: create, list (newest first, ``limit`` + cursor), read, rename / merge metadata,
delete (the handle only; runs stay), items reconstructed from runs, and the message endpoint
that runs a turn and streams it (SSE) or answers in one JSON object. Plus file uploads.

Every request acts for exactly one smith: a smith token's, a visitor session's, or the one an
admin names in ``X-Smith-Id``. Anything of another smith is "not found".
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from bot.domain import JSON, InboundMessage, InboxStatus, NotFound, Run
from bot.http.auth import READ, WRITE, Principal, api_error, require_scope
from bot.http.bodies import BodyRefused, json_object
from bot.http.context import CONTEXT_KEY, ApiContext
from bot.http.live import live_events, live_snapshot, parse_cursor, person_item
from bot.http.turns import StreamEvent, citations, customer_message, submitted, write_sse
from bot.store.inbox import lane_key
from bot.store.web import Conversation, StoredFile

log = logging.getLogger(__name__)

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
TITLE_MAX = 200

# Declared type → the bytes such a file starts with (checked, so a renamed .exe is refused).
UPLOAD_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
    "text/plain": (),
    "text/csv": (),
}


def items_are_read_only() -> web.HTTPException:
    """The answer to any attempt to write conversation items (OpenAI's API allows it; here a
    conversation's items are the record of its turns, reconstructed from runs)."""
    return api_error(
        400,
        "conversation items are read-only: they are the record of the conversation's turns. "
        "Send the customer's message with POST /v1/responses (conversation, input) or "
        "POST /v1/conversations/{id}/messages",
        code="items_read_only",
    )


def conversation_json(conversation: Conversation) -> JSON:
    return {
        "id": conversation.id,
        "object": "conversation",
        "created_at": int(conversation.created_at),
        "updated_at": int(conversation.updated_at),
        "title": conversation.title,
        "smith_id": conversation.smith_id,
        "metadata": conversation.metadata,
        "state": conversation.state,
        "control": conversation.control,
    }


def file_json(stored: StoredFile) -> JSON:
    return {
        "id": stored.id,
        "object": "file",
        "filename": stored.filename,
        "bytes": stored.bytes,
        "content_type": stored.content_type,
        "created_at": int(stored.created_at),
        "purpose": "attachment",
    }


async def _json_body(request: web.Request) -> JSON:
    """The request's JSON object ({} without a body), bounded by ``http.max_body_bytes``."""
    limit = request.app[CONTEXT_KEY].settings.http.max_body_bytes
    try:
        body = await json_object(request, limit)
    except BodyRefused as refused:
        raise api_error(refused.status, refused.reason, code=refused.code) from None
    return body if body is not None else {}


def _title(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise api_error(400, "title must be a string", code="invalid_title")
    title = " ".join(value.split())[:TITLE_MAX]
    return title or None


def _metadata(value: Any) -> JSON | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 16:
        raise api_error(400, "metadata must be an object of at most 16 keys", code="invalid_metadata")
    for key, item in value.items():
        if len(key) > 64 or (item is not None and (not isinstance(item, str) or len(item) > 512)):
            raise api_error(400, "metadata keys are ≤ 64 chars, values strings ≤ 512 chars",
                            code="invalid_metadata")
    return dict(value)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise api_error(400, "limit must be an integer", code="invalid_limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise api_error(400, f"limit must be between 1 and {MAX_LIMIT}", code="invalid_limit")
    return limit


class ConversationsApi:
    """The handlers; routes are added by ``bot.http.api``."""

    async def _caller(self, request: web.Request, scope: str) -> tuple[ApiContext, Principal]:
        ctx = request.app[CONTEXT_KEY]
        principal = await ctx.principal(request)
        require_scope(principal, scope)
        return ctx, principal

    async def _conversation(
        self, ctx: ApiContext, principal: Principal, conversation_id: str
    ) -> Conversation:
        smith = await ctx.smith(principal)
        try:
            return await ctx.web.get_conversation(conversation_id, smith.id)
        except NotFound:
            raise api_error(404, "no such conversation", code="not_found") from None

    async def create(self, request: web.Request) -> web.Response:
        ctx, principal = await self._caller(request, WRITE)
        body = await _json_body(request)
        if body.get("items"):
            raise items_are_read_only()
        smith = await ctx.smith(principal)
        conversation = await ctx.web.create_conversation(
            smith, title=_title(body.get("title")), metadata=_metadata(body.get("metadata"))
        )
        return web.json_response(conversation_json(conversation))

    async def list(self, request: web.Request) -> web.Response:
        ctx, principal = await self._caller(request, READ)
        smith = await ctx.smith(principal)
        after = request.query.get("after") or request.query.get("cursor") or None
        try:
            page, more = await ctx.web.list_conversations(smith.id, limit=_limit(request), after=after)
        except NotFound:
            raise api_error(400, "unknown cursor", code="invalid_cursor") from None
        data = [conversation_json(c) for c in page]
        return web.json_response({
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
            "next_cursor": data[-1]["id"] if more and data else None,
        })

    async def get(self, request: web.Request) -> web.Response:
        ctx, principal = await self._caller(request, READ)
        conversation = await self._conversation(ctx, principal, request.match_info["id"])
        return web.json_response(conversation_json(conversation))

    async def update(self, request: web.Request) -> web.Response:
        ctx, principal = await self._caller(request, WRITE)
        body = await _json_body(request)
        conversation = await self._conversation(ctx, principal, request.match_info["id"])
        updated = await ctx.web.update_conversation(
            conversation.id, conversation.smith_id,
            title=_title(body.get("title")), metadata=_metadata(body.get("metadata")),
        )
        return web.json_response(conversation_json(updated))

    async def delete(self, request: web.Request) -> web.Response:
        ctx, principal = await self._caller(request, WRITE)
        conversation = await self._conversation(ctx, principal, request.match_info["id"])
        await ctx.web.delete_conversation(conversation.id, conversation.smith_id)
        return web.json_response(
            {"id": conversation.id, "object": "conversation.deleted", "deleted": True}
        )

    async def items(self, request: web.Request) -> web.Response:
        ctx, principal = await self._caller(request, READ)
        conversation = await self._conversation(ctx, principal, request.match_info["id"])
        order = request.query.get("order", "asc")
        if order not in ("asc", "desc"):
            raise api_error(400, "order is asc or desc", code="invalid_order")
        limit = _limit(request)
        every = await transcript(ctx, conversation)
        if order == "desc":
            every.reverse()
        after = request.query.get("after")
        if after:
            ids = [item["id"] for item in every]
            if after not in ids:
                raise api_error(400, "unknown cursor", code="invalid_cursor")
            every = every[ids.index(after) + 1:]
        page = every[:limit]
        return web.json_response({
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(every) > limit,
        })

    async def upload(self, request: web.Request) -> web.Response:
        """``multipart/form-data`` with one ``file`` part; type allowlist and size cap."""
        ctx, principal = await self._caller(request, WRITE)
        smith = await ctx.smith(principal)
        cap = ctx.settings.web.max_upload_bytes
        if request.content_type != "multipart/form-data":
            raise api_error(415, "send the file as multipart/form-data", code="invalid_upload")
        # A known length bounds everything read below, the parts before ``file`` included.
        if request.content_length is None:
            raise api_error(411, "uploads need a Content-Length", code="length_required")
        if request.content_length > cap + 64 * 1024:
            raise api_error(413, f"files are limited to {cap} bytes", code="file_too_large")
        try:
            part = await _file_part(await request.multipart())
            content_type = (part.headers.get("Content-Type") or "application/octet-stream")
            content_type = content_type.split(";")[0].strip().lower()
            if content_type not in allowed_types(ctx):
                raise api_error(415, f"{content_type} files are not accepted",
                                code="unsupported_type")
            chunks: list[bytes] = []
            size = 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > cap:
                    raise api_error(413, f"files are limited to {cap} bytes", code="file_too_large")
                chunks.append(chunk)
        except (ValueError, HttpProcessingError, BadContentDispositionHeader,
                BadContentDispositionParam) as exc:
            # aiohttp's reader says what is wrong (no boundary, truncated part, bad header). A
            # bad Content-Disposition is only a warning to aiohttp, raised where warnings are
            # errors (``-W error``, the test suite): the same refusal either way.
            raise api_error(400, f"malformed multipart body: {exc}", code="invalid_upload") from None
        data = b"".join(chunks)
        if not _looks_like(content_type, data):
            raise api_error(415, f"the file is not a valid {content_type}", code="unsupported_type")
        filename = (part.filename or "attachment").replace("/", "_").replace("\\", "_")[:200]
        stored = await ctx.web.put_file(
            smith.id, filename=filename, content_type=content_type, data=data
        )
        return web.json_response(file_json(stored))

    async def message(self, request: web.Request) -> web.StreamResponse:
        """Send the customer's message and run the turn; SSE by default, or one JSON answer
        with ``Accept: application/json``, ``?stream=false`` or ``"stream": false``."""
        ctx, principal = await self._caller(request, WRITE)
        body = await _json_body(request)
        conversation = await self._conversation(ctx, principal, request.match_info["id"])
        smith = await ctx.smith(principal)
        text, file_ids = _message_input(body)
        message = await customer_message(
            ctx, smith, conversation, text=text, file_ids=file_ids,
            client_message_id=body.get("client_message_id"),
        )
        async with submitted(ctx, message, conversation) as frames:
            if _wants_stream(request, body):
                return await write_sse(request, frames)
            final: StreamEvent | None = None
            async for frame in frames:
                final = frame
        return web.json_response(_answer(final, conversation.id))


    async def events(self, request: web.Request) -> web.StreamResponse:
        """What a person writes in the conversation and how it changes hands, live (SSE):
        ``thread.updated`` and ``person.message``; ``?after=<cursor>`` resumes. With
        ``Accept: application/json``, one answer at once instead (for polling)."""
        ctx, principal = await self._caller(request, READ)
        conversation = await self._conversation(ctx, principal, request.match_info["id"])
        after = parse_cursor(request.query.get("after"))
        accept = request.headers.get("Accept", "")
        if "application/json" in accept and "text/event-stream" not in accept:
            # Polling instead of a stream: where things stand now, at once.
            return web.json_response(await live_snapshot(ctx, conversation.thread_id, after=after))
        return await write_sse(request, live_events(ctx, conversation.thread_id, after=after))


async def _file_part(reader: MultipartReader) -> BodyPartReader:
    """The form's ``file`` part; 400 when there is none."""
    while True:
        part = await reader.next()
        if part is None:
            raise api_error(400, "no 'file' part in the upload", code="invalid_upload")
        if isinstance(part, BodyPartReader) and part.name == "file":
            return part


def _message_input(body: JSON) -> tuple[str, list[str]]:
    """Text and file ids from ``content`` (text or OpenAI-style parts) and ``attachments``."""
    texts: list[str] = []
    file_ids: list[str] = []
    content = body.get("content", body.get("input"))
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                raise api_error(400, "content parts are objects", code="invalid_content")
            kind = part.get("type")
            if kind in ("text", "input_text") and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind in ("input_file", "input_image", "file", "image") and part.get("file_id"):
                file_ids.append(str(part["file_id"]))
            else:
                raise api_error(400, f"unsupported content part {kind!r}", code="invalid_content")
    elif content is not None:
        raise api_error(400, "content is a string or a list of parts", code="invalid_content")
    extra = body.get("attachments") or []
    if not isinstance(extra, list) or not all(isinstance(f, str) for f in extra):
        raise api_error(400, "attachments is a list of file ids", code="invalid_attachments")
    file_ids.extend(extra)
    if len(file_ids) > 10:
        raise api_error(400, "at most 10 attachments per message", code="invalid_attachments")
    return "\n\n".join(t.strip() for t in texts if t.strip()), file_ids


def _wants_stream(request: web.Request, body: JSON) -> bool:
    if isinstance(body.get("stream"), bool):
        return bool(body["stream"])
    flag = request.query.get("stream")
    if flag is not None:
        return flag.lower() not in ("0", "false", "no")
    accept = request.headers.get("Accept", "")
    return not ("application/json" in accept and "text/event-stream" not in accept)


def _answer(final: StreamEvent | None, conversation_id: str) -> JSON:
    data = final.data if final else {}
    status = {"run.completed": "completed", "run.failed": "failed",
              "run.skipped": "skipped"}.get(final.name if final else "", "failed")
    return {
        "object": "conversation.message.result",
        "conversation_id": conversation_id,
        "status": status,
        "run_id": data.get("run_id"),
        "output_text": data.get("output_text", ""),
        "stop_reason": data.get("stop_reason"),
        "citations": data.get("citations", []),
        "conversation": data.get("conversation"),
        "error": data.get("error") or data.get("reason"),
    }


def allowed_types(ctx: ApiContext) -> set[str]:
    return {t.lower() for t in ctx.settings.web.upload_types}


def _looks_like(content_type: str, data: bytes) -> bool:
    if not data:
        return False
    if content_type.startswith("text/"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    signatures = UPLOAD_MAGIC.get(content_type)
    if not signatures:
        return True  # an operator-added type we have no signature for
    if content_type == "image/webp":
        return data.startswith(b"RIFF") and data[8:12] == b"WEBP"
    return any(data.startswith(sig) for sig in signatures)


async def transcript(ctx: ApiContext, conversation: Conversation) -> list[JSON]:
    """Messages reconstructed from the thread's runs, plus messages waiting or skipped (while a
    human held the thread), oldest first. Item ids are stable: ``<run id>.i<n>``/``.o``."""
    thread = await ctx.store.get_thread(conversation.thread_id)
    agent = await ctx.store.get_agent_by_id(thread.agent_id)
    runs = await ctx.store.thread_runs(thread.id, limit=10_000)
    timed: list[tuple[float, int, JSON]] = []
    for run in runs:
        for n, item in enumerate(_user_inputs(run)):
            timed.append((run.started_at, len(timed), {"id": f"{run.id}.i{n}", **item}))
        if run.output_text:
            timed.append((run.finished_at, len(timed), {
                "id": f"{run.id}.o",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "created_at": int(run.finished_at),
                "content": [{"type": "output_text", "text": run.output_text,
                             "annotations": [_annotation(c, run.output_text)
                                             for c in citations(run)]}],
            }))
    for row in await ctx.web.unanswered(lane_key(agent.slug, thread.external_id)):
        message = InboundMessage.from_json(row["payload"])
        status = "in_progress" if row["status"] == InboxStatus.PENDING.value else "completed"
        timed.append((row["received_at"], len(timed), {
            "id": f"msg_{row['id']}",
            "type": "message",
            "role": "user",
            "status": status,
            "created_at": int(row["received_at"]),
            "content": _user_content(message.text, [a.to_json() for a in message.attachments]),
        }))
    for said in await ctx.operator.messages(thread.id):
        timed.append((said.created_at, len(timed), person_item(said)))
    timed.sort(key=lambda entry: (entry[0], entry[1]))
    return [item for _, _, item in timed]


def _user_inputs(run: Run) -> list[JSON]:
    items = []
    for entry in run.input:
        if not isinstance(entry, dict) or entry.get("role", "user") != "user":
            continue
        content = entry.get("content")
        text = content if isinstance(content, str) else ""
        if isinstance(content, list):
            text = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        items.append({
            "type": "message",
            "role": "user",
            "status": "completed",
            "created_at": int(run.started_at),
            "content": _user_content(text, list(entry.get("attachments") or [])),
        })
    return items


def _user_content(text: str, attachments: list[JSON]) -> list[JSON]:
    parts: list[JSON] = []
    if text:
        parts.append({"type": "input_text", "text": text})
    for attachment in attachments:
        kind = "input_image" if str(attachment.get("content_type", "")).startswith("image/") \
            else "input_file"
        parts.append({"type": kind, "file_id": attachment.get("file_id"),
                      "filename": attachment.get("name")})
    return parts


def _annotation(citation: JSON, text: str) -> JSON:
    """OpenAI's ``url_citation`` (indices point at where the text names the passage), plus the
    passage's ``source`` and a ``snippet`` for documents that have no URL of their own."""
    start = max(text.find(citation["title"]), 0)
    return {"type": "url_citation", "url": citation["url"], "title": citation["title"],
            "start_index": start, "end_index": start + len(citation["title"]),
            "source": citation["source"], "snippet": citation["snippet"]}
