"""Operator endpoints (admin token only): smiths by ``external_id_prefix``, the run history of a
segment, one run with its tool calls and retrieved passages, threads by state, patching and
soft-archiving or erasing smiths, minting smith tokens, downloading stored attachments, and the
knowledge base (``/v1/knowledge``: documents listed, shown, removed; sources synced).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot.domain import JSON, NotFound, Run, Smith, Thread, ThreadState
from bot.http.auth import ALL_SCOPES, api_error, mint_smith_token, require_admin
from bot.http.context import CONTEXT_KEY, ApiContext
from bot.http.conversations import _json_body, _limit
from bot.knowledge import sync as knowledge
from bot.store.erasure import Erasures

TOKEN_TTL_MAX = 30 * 24 * 3600


def smith_json(smith: Smith) -> JSON:
    return {
        "id": smith.id,
        "object": "smith",
        "agent_id": smith.agent_id,
        "external_id": smith.external_id,
        "display_name": smith.display_name,
        "customer_id": smith.customer_id,
        "metadata": smith.metadata,
        "auto_memory": smith.auto_memory,
        "pinned_version": smith.pinned_version,
        "archived_at": int(smith.archived_at) if smith.archived_at else None,
        "created_at": int(smith.created_at),
        "updated_at": int(smith.updated_at),
    }


def thread_json(thread: Thread) -> JSON:
    return {
        "id": thread.id,
        "object": "thread",
        "smith_id": thread.smith_id,
        "agent_id": thread.agent_id,
        "external_id": thread.external_id,
        "channel": thread.channel,
        "state": thread.state.value,
        "control": thread.control.value,
        "title": thread.title,
        "metadata": thread.metadata,
        "created_at": int(thread.created_at),
        "updated_at": int(thread.updated_at),
    }


def run_json(run: Run, *, detail: bool) -> JSON:
    data: JSON = {
        "id": run.id,
        "object": "run",
        "thread_id": run.thread_id,
        "smith_id": run.smith_id,
        "agent_id": run.agent_id,
        "agent_version": run.agent_version,
        "stop_reason": run.stop_reason.value,
        "model": run.model,
        "output_text": run.output_text,
        "error": run.error,
        "usage": run.usage.to_json(),
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "latency_ms": round((run.finished_at - run.started_at) * 1000, 1),
        "tool_call_count": len(run.tool_calls),
    }
    if detail:
        data["input"] = run.input
        data["rag_results"] = run.rag_results
        data["tool_calls"] = [call.to_json() for call in run.tool_calls]
    return data


def _list(data: list[JSON], more: bool) -> JSON:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
        "next_cursor": data[-1]["id"] if more and data else None,
    }


class OperatorApi:
    """The handlers; routes are added by ``bot.http.api``."""

    def _admin(self, request: web.Request) -> ApiContext:
        ctx = request.app[CONTEXT_KEY]
        require_admin(request, ctx.settings)
        return ctx

    async def list_smiths(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        limit = _limit(request)
        found = await ctx.store.list_smiths(
            external_id_prefix=request.query.get("external_id_prefix") or None,
            limit=limit + 1,
            after=request.query.get("after") or request.query.get("cursor") or None,
        )
        return web.json_response(_list([smith_json(s) for s in found[:limit]], len(found) > limit))

    async def get_smith(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        return web.json_response(smith_json(await self._smith(ctx, request.match_info["id"])))

    async def _smith(self, ctx: ApiContext, smith_id: str) -> Smith:
        try:
            return await ctx.store.get_smith(smith_id)
        except NotFound:
            raise api_error(404, "no such smith", code="not_found") from None

    async def patch_smith(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        body = await _json_body(request)
        allowed = {"display_name", "customer_id", "metadata", "auto_memory"}
        unknown = set(body) - allowed
        if unknown:
            raise api_error(400, f"cannot change: {', '.join(sorted(unknown))} "
                                 "(external_id is immutable)", code="invalid_field")
        if "auto_memory" in body and not isinstance(body["auto_memory"], bool):
            raise api_error(400, "auto_memory is a boolean", code="invalid_field")
        if "metadata" in body and not isinstance(body["metadata"], dict):
            raise api_error(400, "metadata is an object", code="invalid_field")
        for key in ("display_name", "customer_id"):
            if key in body and body[key] is not None and not isinstance(body[key], str):
                raise api_error(400, f"{key} is a string", code="invalid_field")
        smith = await self._smith(ctx, request.match_info["id"])
        if body:
            smith = await ctx.store.patch_smith(smith.id, **body)
        return web.json_response(smith_json(smith))

    async def delete_smith(self, request: web.Request) -> web.Response:
        """Soft-archive; with ``?erase=true`` remove the smith and all its data for good (an
        archived smith too), leaving only the audit record that is returned."""
        ctx = self._admin(request)
        erase = request.query.get("erase", "false").lower()
        if erase not in ("true", "false"):
            raise api_error(400, "erase is true or false", code="invalid_field")
        if erase == "true":
            try:
                erasure = await Erasures(ctx.store.db).erase_smith(
                    request.match_info["id"], requested_by="api"
                )
            except NotFound:
                raise api_error(404, "no such smith", code="not_found") from None
            return web.json_response({"id": erasure.smith_id, "object": "smith.erased",
                                      "deleted": True, "erasure": erasure.to_json()})
        smith = await self._smith(ctx, request.match_info["id"])
        await ctx.store.archive_smith(smith.id)
        return web.json_response({"id": smith.id, "object": "smith.deleted", "deleted": True})

    async def smith_token(self, request: web.Request) -> web.Response:
        """A bearer token scoped to one smith (for a backend that proxies one user)."""
        ctx = self._admin(request)
        body = await _json_body(request)
        smith = await self._smith(ctx, request.match_info["id"])
        ttl = body.get("expires_in", 3600)
        scopes = body.get("scopes", list(ALL_SCOPES))
        if not isinstance(ttl, int) or not 60 <= ttl <= TOKEN_TTL_MAX:
            raise api_error(400, f"expires_in is 60…{TOKEN_TTL_MAX} seconds", code="invalid_field")
        if not isinstance(scopes, list) or not set(scopes) <= set(ALL_SCOPES) or not scopes:
            raise api_error(400, f"scopes are some of {', '.join(ALL_SCOPES)}", code="invalid_field")
        token = mint_smith_token(await ctx.token_key(), smith.id, ttl_seconds=ttl,
                                 scopes=tuple(scopes))
        return web.json_response({"object": "smith.token", "smith_id": smith.id, "token": token,
                                  "scopes": scopes, "expires_in": ttl})

    async def list_runs(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        limit = _limit(request)
        found = await ctx.store.list_runs(
            external_id_prefix=request.query.get("external_id_prefix") or None,
            thread_id=request.query.get("thread_id") or None,
            smith_id=request.query.get("smith_id") or None,
            limit=limit + 1,
        )
        return web.json_response(
            _list([run_json(r, detail=False) for r in found[:limit]], len(found) > limit)
        )

    async def get_run(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        try:
            run = await ctx.store.get_run(request.match_info["id"])
        except NotFound:
            raise api_error(404, "no such run", code="not_found") from None
        return web.json_response(run_json(run, detail=True))

    async def list_threads(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        limit = _limit(request)
        state: Any = request.query.get("state")
        if state is not None:
            try:
                state = ThreadState(state)
            except ValueError:
                raise api_error(400, "state is open, escalated or closed",
                                code="invalid_state") from None
        found = await ctx.store.list_threads(
            state=state, smith_id=request.query.get("smith_id") or None, limit=limit + 1
        )
        return web.json_response(
            _list([thread_json(t) for t in found[:limit]], len(found) > limit)
        )

    async def file_content(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        try:
            stored, data = await ctx.web.file_content(request.match_info["id"])
        except NotFound:
            raise api_error(404, "no such file", code="not_found") from None
        # Header-safe: no quotes, control characters or non-ASCII in the download name.
        safe_name = re.sub(r"[^A-Za-z0-9._ -]", "_", stored.filename) or "attachment"
        return web.Response(
            body=data,
            headers={
                "Content-Type": stored.content_type,
                "Content-Disposition": f'attachment; filename="{safe_name}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    # -- knowledge ------------------------------------------------------------------------------

    async def list_documents(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        kb = ctx.app.knowledge_sync.kb
        found = await knowledge.list_documents(kb, source=request.query.get("source") or None)
        return web.json_response(_list([_document_json(d) for d in found], False))

    async def get_document(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        kb = ctx.app.knowledge_sync.kb
        document = await self._document(ctx, request.match_info["id"])
        data = _document_json(document)
        data["content"] = [
            {"heading": heading, "text": text}
            for heading, text in await knowledge.document_chunks(kb, document.id)
        ]
        return web.json_response(data)

    async def delete_document(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        document = await self._document(ctx, request.match_info["id"])
        await knowledge.delete_document(ctx.app.knowledge_sync.kb, document.id)
        return web.json_response({"id": document.id, "object": "knowledge.document",
                                  "deleted": True})

    async def _document(self, ctx: ApiContext, document_id: str) -> knowledge.DocumentInfo:
        try:
            document = await knowledge.find_document(ctx.app.knowledge_sync.kb, document_id)
        except LookupError:
            document = None
        if document is None or document.id != document_id:
            raise api_error(404, "no such document", code="not_found")
        return document

    async def sync_knowledge(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        body = await _json_body(request)
        unknown = sorted(set(body) - {"source"})
        if unknown:
            raise api_error(400, f"unknown field: {unknown[0]}", code="unknown_field")
        name = body.get("source")
        if name is not None and not isinstance(name, str):
            raise api_error(400, "source is a source name", code="invalid_source")
        try:
            job = await ctx.app.knowledge_jobs.start(name)
        except KeyError:
            raise api_error(404, "no such knowledge source", code="not_found") from None
        return web.json_response(
            job.as_json(), status=202, headers={"Location": f"/v1/knowledge/sync/{job.id}"}
        )

    async def sync_job(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        job = await ctx.app.knowledge_jobs.get(request.match_info["id"])
        if job is None:
            raise api_error(404, "no such sync job", code="not_found")
        return web.json_response(job.as_json())


def _document_json(document: knowledge.DocumentInfo) -> JSON:
    return {"object": "knowledge.document", **document.as_json()}
