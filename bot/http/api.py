"""The ``/v1`` HTTP API: conversations, files, operator endpoints and the OpenAPI document.

``mount_api`` is called by ``bot.http.server.build_http_app``; the handlers live in
``conversations``, ``responses`` and ``operator``, the callers' checks in ``auth``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.http.context import CONTEXT_KEY, ApiContext
from bot.http.conversations import ConversationsApi
from bot.http.openapi import openapi_document
from bot.http.operator import OperatorApi
from bot.http.responses import ResponsesApi

if TYPE_CHECKING:
    from bot.daemon import Daemon


def mount_api(http: web.Application, daemon: Daemon) -> ApiContext:
    """Add every ``/v1`` route to ``http``; returns the context the handlers share."""
    ctx = ApiContext(daemon)
    http[CONTEXT_KEY] = ctx
    conversations = ConversationsApi()
    operator = OperatorApi()
    responses = ResponsesApi()
    document = openapi_document(daemon.settings.http.public_url)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    http.router.add_routes([
        web.get("/v1/openapi.json", openapi),
        web.post("/v1/conversations", conversations.create),
        web.get("/v1/conversations", conversations.list),
        web.get("/v1/conversations/{id}", conversations.get),
        web.post("/v1/conversations/{id}", conversations.update),
        web.delete("/v1/conversations/{id}", conversations.delete),
        web.get("/v1/conversations/{id}/items", conversations.items),
        web.post("/v1/conversations/{id}/items", responses.create_items),
        web.get("/v1/conversations/{id}/items/{item_id}", responses.item),
        web.post("/v1/conversations/{id}/messages", conversations.message),
        web.post("/v1/responses", responses.create),
        web.post("/v1/files", conversations.upload),
        web.get("/v1/files/{id}/content", operator.file_content),
        web.get("/v1/smiths", operator.list_smiths),
        web.get("/v1/smiths/{id}", operator.get_smith),
        web.patch("/v1/smiths/{id}", operator.patch_smith),
        web.delete("/v1/smiths/{id}", operator.delete_smith),
        web.post("/v1/smiths/{id}/tokens", operator.smith_token),
        web.get("/v1/runs", operator.list_runs),
        web.get("/v1/runs/{id}", operator.get_run),
        web.get("/v1/threads", operator.list_threads),
        web.get("/v1/knowledge/documents", operator.list_documents),
        web.get("/v1/knowledge/documents/{id}", operator.get_document),
        web.delete("/v1/knowledge/documents/{id}", operator.delete_document),
        web.post("/v1/knowledge/sync", operator.sync_knowledge),
        web.get("/v1/knowledge/sync/{id}", operator.sync_job),
    ])
    return ctx
