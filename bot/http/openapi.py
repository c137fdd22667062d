"""The OpenAPI 3.1 document of the whole HTTP API, served at ``/v1/openapi.json``."""

from __future__ import annotations

from typing import Any

from bot.domain import JSON

_ERROR = {"$ref": "#/components/responses/Error"}


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: JSON, description: str = "OK") -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(name: str) -> JSON:
    return {
        "type": "object",
        "required": ["object", "data", "has_more"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref(name)},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _param(name: str, where: str, description: str, schema: JSON | None = None,
           required: bool = False) -> JSON:
    return {"name": name, "in": where, "required": required or where == "path",
            "description": description, "schema": schema or {"type": "string"}}


_ID = _param("id", "path", "the object's id")
_LIMIT = _param("limit", "query", "page size (1–100, default 20)",
                {"type": "integer", "minimum": 1, "maximum": 100})
_AFTER = _param("after", "query", "cursor: the last id of the previous page (`cursor` works too)")
_PREFIX = _param("external_id_prefix", "query", "only smiths whose external_id starts so, "
                 "e.g. `anon:` or `web:`")
_SMITH = _param("X-Smith-Id", "header", "with the admin token: the smith to act for")

_VISITOR: list[JSON] = [{"bearerAuth": []}, {"visitorSession": []}]
_ADMIN: list[JSON] = [{"bearerAuth": []}]


def _op(summary: str, responses: JSON, *, security: list[JSON], params: list[JSON] | None = None,
        body: JSON | None = None, description: str | None = None) -> JSON:
    op: JSON = {"summary": summary, "security": security, "parameters": params or [],
                "responses": {**responses, "4XX": _ERROR}}
    if description:
        op["description"] = description
    if body is not None:
        op["requestBody"] = body
    return op


def openapi_document(server_url: str | None = None) -> JSON:
    conv = _ref("Conversation")
    conv_body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "properties": {
            "title": {"type": ["string", "null"],
                      "description": "whitespace is collapsed and the title cut to 200 "
                                     "characters"},
            "metadata": {"type": ["object", "null"], "maxProperties": 16,
                         "propertyNames": {"maxLength": 64},
                         "additionalProperties": {"type": ["string", "null"],
                                                  "maxLength": 512}},
        }}}}}
    message_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "content": {"description": "the customer's text, or OpenAI-style parts "
                                       "(`input_text`, `input_file`/`input_image` with a file_id)",
                        "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
            "attachments": {"type": "array", "items": {"type": "string"},
                            "description": "ids of files uploaded with POST /v1/files"},
            "stream": {"type": "boolean", "description": "false → one JSON answer"},
            "client_message_id": {"type": "string",
                                  "description": "idempotency key: a retry is not a second turn"},
        }}}}}
    sse_description = (
        "Server-sent events, one per frame: `event: <name>` and `data: <JSON>` with `\"v\": 1` "
        "and `run_id`. Names: `run.started`, `message.delta` (`delta`), `message.reset` (the "
        "answer starts over — a fallback model replaces one that failed mid-answer: drop the "
        "text received so far; the deltas that follow replace it), `tool.executing`, "
        "`tool.completed`, then one of `run.completed` / `run.failed` (with `stop_reason`, "
        "`output_text`, `citations`, `conversation` {state, control, title}) or `run.skipped` "
        "(a person has taken over the conversation; the message is kept for them)."
    )
    responses_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object",
        "required": ["input"],
        "properties": {
            "conversation": {"description": "the conversation id (or `{\"id\": …}`); none → a "
                                            "new conversation, named in the response",
                             "oneOf": [{"type": "string"}, {"type": "object"}]},
            "input": {"description": "the customer's text, or input items: messages with "
                                     "`role: user` whose content is text or `input_text`, "
                                     "`input_image`/`input_file` parts (by `file_id`)",
                      "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]},
            "model": {"type": "string", "description": "ignored, unless it names an agent: "
                                                       "then it must be the conversation's"},
            "stream": {"type": "boolean"},
            "metadata": {"type": "object"},
        }}}}}
    responses_description = (
        "Stream events: `response.created`, `response.in_progress`, "
        "`response.output_item.added`, `response.content_part.added`, "
        "`response.output_text.delta`…, `response.output_text.done`, "
        "`response.content_part.done`, `response.output_item.done`, then `response.completed`, "
        "`response.failed` (`error`) or `response.incomplete` (a person has taken the "
        "conversation over: `incomplete_details.reason = \"human_handoff\"`). When the answer "
        "starts over (a fallback model replaces one that failed mid-answer) the message item "
        "ends with `response.output_item.done` and `status: \"incomplete\"`, then "
        "`response.output_item.added` opens it again under the same id and index: drop the "
        "text it had. `instructions`, `tools` and `previous_response_id` are refused (400): "
        "the agent defines them, the conversation holds the history."
    )
    paths: dict[str, Any] = {
        "/v1/conversations": {
            "post": _op("Create a conversation", {"200": _json(conv)}, security=_VISITOR,
                        params=[_SMITH], body=conv_body),
            "get": _op("List conversations, newest first", {"200": _json(_list_of("Conversation"))},
                       security=_VISITOR, params=[_LIMIT, _AFTER, _SMITH]),
        },
        "/v1/conversations/{id}": {
            "get": _op("Read a conversation", {"200": _json(conv)}, security=_VISITOR,
                       params=[_ID, _SMITH]),
            "post": _op("Rename it or merge metadata (a null value removes a key)",
                        {"200": _json(conv)}, security=_VISITOR, params=[_ID, _SMITH],
                        body=conv_body),
            "delete": _op("Delete the handle (the runs stay)",
                          {"200": _json(_ref("Deleted"))}, security=_VISITOR,
                          params=[_ID, _SMITH]),
        },
        "/v1/conversations/{id}/items": {
            "post": _op("Refused (400): items are read-only, the record of the turns",
                        {"400": _ERROR}, security=_VISITOR, params=[_ID, _SMITH]),
            "get": _op("The transcript, reconstructed from runs (oldest first)",
                       {"200": _json(_list_of("Item"))}, security=_VISITOR,
                       params=[_ID, _LIMIT, _AFTER, _SMITH,
                               _param("order", "query", "asc (default) or desc",
                                      {"enum": ["asc", "desc"]})]),
        },
        "/v1/conversations/{id}/items/{item_id}": {
            "get": _op("One item of the transcript (ids as `items` lists them)",
                       {"200": _json(_ref("Item"))}, security=_VISITOR,
                       params=[_ID, _param("item_id", "path", "the item's id"), _SMITH]),
        },
        "/v1/responses": {
            "post": _op(
                "OpenAI's Responses API: send the customer's message and run the turn",
                {"200": {"description": "OpenAI's response object, or with `\"stream\": true` "
                                        "its stream events (SSE)",
                         "content": {"application/json": {"schema": _ref("Response")},
                                     "text/event-stream": {"schema": {"type": "string"}}}}},
                security=_VISITOR, params=[_SMITH], body=responses_body,
                description=responses_description),
        },
        "/v1/conversations/{id}/messages": {
            "post": _op(
                "Send the customer's message and run the turn",
                {"200": {"description": "SSE stream (default), or one JSON answer with "
                                        "`Accept: application/json`, `?stream=false` or "
                                        "`\"stream\": false`",
                         "content": {"text/event-stream": {"schema": {"type": "string"}},
                                     "application/json": {"schema": _ref("MessageResult")}}}},
                security=_VISITOR,
                params=[_ID, _SMITH, _param("stream", "query", "false → one JSON answer",
                                            {"type": "boolean"})],
                body=message_body, description=sse_description),
        },
        "/v1/files": {
            "post": _op("Upload an attachment (multipart/form-data, part `file`)",
                        {"200": _json(_ref("File"))}, security=_VISITOR, params=[_SMITH],
                        description="Allowed types: `web.upload_types`; larger than "
                                    "`web.max_upload_bytes` → 413; another type → 415.",
                        body={"required": True, "content": {"multipart/form-data": {"schema": {
                            "type": "object", "properties": {
                                "file": {"type": "string", "format": "binary"}}}}}}),
        },
        "/v1/files/{id}/content": {
            "get": _op("Download a stored attachment (operators only)",
                       {"200": {"description": "the file's bytes",
                                "content": {"application/octet-stream": {}}}},
                       security=_ADMIN, params=[_ID]),
        },
        "/v1/smiths": {
            "get": _op("List smiths (operators)", {"200": _json(_list_of("Smith"))},
                       security=_ADMIN, params=[_PREFIX, _LIMIT, _AFTER]),
        },
        "/v1/smiths/{id}": {
            "get": _op("Read a smith", {"200": _json(_ref("Smith"))}, security=_ADMIN,
                       params=[_ID]),
            "patch": _op("Change display_name, customer_id, metadata (merged), auto_memory",
                         {"200": _json(_ref("Smith"))}, security=_ADMIN, params=[_ID],
                         body={"content": {"application/json": {"schema": {
                             "type": "object", "additionalProperties": False, "properties": {
                                 "display_name": {"type": ["string", "null"]},
                                 "customer_id": {"type": ["string", "null"]},
                                 "metadata": {"type": "object"},
                                 "auto_memory": {"type": "boolean"}}}}}}),
            "delete": _op(
                "Soft-archive a smith (frees its external_id), or erase it for good",
                {"200": _json(_ref("Deleted"))}, security=_ADMIN,
                params=[_ID, _param(
                    "erase", "query",
                    "`true`: remove the smith (archived or not) and everything of it — threads, "
                    "messages, runs, tool results, files, memory, aliases, inbox and outbox "
                    "rows — for good; the answer carries the audit record (`erasure`), which "
                    "holds no personal data. Default `false`: soft-archive only.",
                    {"type": "boolean", "default": False})],
                description="An erased smith is 404 afterwards, to both forms."),
        },
        "/v1/smiths/{id}/tokens": {
            "post": _op("Mint a smith-scoped bearer token", {"200": _json({"type": "object"})},
                        security=_ADMIN, params=[_ID],
                        body={"content": {"application/json": {"schema": {
                            "type": "object", "properties": {
                                "expires_in": {"type": "integer"},
                                "scopes": {"type": "array", "items": {
                                    "enum": ["conversations:read", "conversations:write"]}}}}}}}),
        },
        "/v1/runs": {
            "get": _op("Run history, newest first (operators)", {"200": _json(_list_of("Run"))},
                       security=_ADMIN,
                       params=[_PREFIX, _LIMIT, _param("thread_id", "query", "one thread"),
                               _param("smith_id", "query", "one smith")]),
        },
        "/v1/runs/{id}": {
            "get": _op("One run with input, tool calls and retrieved passages",
                       {"200": _json(_ref("Run"))}, security=_ADMIN, params=[_ID]),
        },
        "/v1/threads": {
            "get": _op("Threads, most recently active first (operators)",
                       {"200": _json(_list_of("Thread"))}, security=_ADMIN,
                       params=[_param("state", "query", "open, escalated or closed",
                                      {"enum": ["open", "escalated", "closed"]}),
                               _param("smith_id", "query", "one smith"), _LIMIT]),
        },
        "/v1/knowledge/documents": {
            "get": _op("Indexed knowledge documents, by source then title (operators)",
                       {"200": _json(_list_of("KnowledgeDocument"))}, security=_ADMIN,
                       params=[_param("source", "query", "one `[[knowledge.sources]]` name")]),
        },
        "/v1/knowledge/documents/{id}": {
            "get": _op("One knowledge document with its chunks (operators)",
                       {"200": _json(_ref("KnowledgeDocument"))}, security=_ADMIN,
                       params=[_ID]),
            "delete": _op("Remove a document from the index (operators)",
                          {"200": _json({"type": "object", "properties": {
                              "id": {"type": "string"}, "deleted": {"const": True}}})},
                          security=_ADMIN, params=[_ID],
                          description="A document its source still holds returns at that "
                                      "source's next sync."),
        },
        "/v1/knowledge/sync": {
            "post": _op(
                "Start a sync of the knowledge sources (operators)",
                {"202": _json(_ref("KnowledgeSyncJob"), "Accepted: the job, at `Location`")},
                security=_ADMIN,
                description="Runs in the background (poll `GET /v1/knowledge/sync/{id}`): "
                            "reads each source completely, then applies what changed; a "
                            "source that fails applies nothing and reports `error`. While a "
                            "job for the same sources runs here, that job is returned.",
                body={"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "source": {"type": ["string", "null"],
                                   "description": "only this source (null or absent: all)"}}}}}}),
        },
        "/v1/knowledge/sync/{id}": {
            "get": _op("A knowledge sync job: its status and each source's report (operators)",
                       {"200": _json(_ref("KnowledgeSyncJob"))}, security=_ADMIN,
                       params=[_ID]),
        },
        "/web/session": {
            "post": _op(
                "Web widget: who is this visitor (anonymous cookie or signed identity)",
                {"200": _json({"type": "object"})}, security=[{}],
                description="Sets the `sb_session` cookie (HttpOnly, SameSite=Lax) the "
                            "conversations API accepts. JSON only (else 415); a browser request "
                            "only from the bot's own origin or `web.allowed_origins` (else "
                            "403); any field but `identity` and `name` → 400 naming it; a "
                            "forged or expired identity → 401 with the reason.",
                body={"content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False, "properties": {
                        "identity": {"type": ["string", "null"],
                                     "description": "a JWT (HS256) with `sub`, `iat`, `exp` and "
                                                    "optionally `customer_id`, `email`, `name`; or "
                                                    "`<user_id>.<expires>.<hex HMAC-SHA256>`"},
                        "name": {"type": ["string", "null"],
                                 "description": "display only"}}}}}}),
        },
    }
    schemas: dict[str, Any] = {
        "Conversation": {"type": "object", "required": ["id", "object", "created_at"],
                         "properties": {
                             "id": {"type": "string"}, "object": {"const": "conversation"},
                             "created_at": {"type": "integer"}, "updated_at": {"type": "integer"},
                             "title": {"type": ["string", "null"]},
                             "smith_id": {"type": "string"}, "metadata": {"type": "object"},
                             "state": {"enum": ["open", "escalated", "closed"]},
                             "control": {"enum": ["bot", "human"]}}},
        "Deleted": {"type": "object", "required": ["id", "object", "deleted"],
                    "properties": {"id": {"type": "string"}, "object": {"type": "string"},
                                   "deleted": {"const": True},
                                   "erasure": _ref("Erasure")}},
        "Erasure": {"type": "object",
                    "required": ["id", "object", "smith_id", "agent_id", "erased_at", "counts",
                                 "requested_by"],
                    "properties": {
                        "id": {"type": "string"}, "object": {"const": "smith.erasure"},
                        "smith_id": {"type": "string"}, "agent_id": {"type": "string"},
                        "erased_at": {"type": "number"},
                        "counts": {"type": "object",
                                   "additionalProperties": {"type": "integer"},
                                   "description": "rows removed per table"},
                        "requested_by": {"enum": ["cli", "api", "retention"]}}},
        "Item": {"type": "object", "required": ["id", "type", "role", "content"], "properties": {
            "id": {"type": "string"}, "type": {"const": "message"},
            "role": {"enum": ["user", "assistant"]},
            "status": {"enum": ["completed", "in_progress"]},
            "created_at": {"type": "integer"},
            "content": {"type": "array", "items": {"type": "object"}}}},
        "Response": {"type": "object",
                     "required": ["id", "object", "created_at", "status", "model", "output"],
                     "properties": {
                         "id": {"type": "string"}, "object": {"const": "response"},
                         "created_at": {"type": "integer"},
                         "status": {"enum": ["completed", "failed", "incomplete",
                                             "in_progress"]},
                         "conversation": {"type": "object",
                                          "properties": {"id": {"type": "string"}}},
                         "model": {"type": "string", "description": "the agent's slug"},
                         "output": {"type": "array", "items": _ref("Item")},
                         "error": {"type": ["object", "null"]},
                         "incomplete_details": {"type": ["object", "null"]},
                         "usage": {"type": ["object", "null"]},
                         "metadata": {"type": "object"}}},
        "MessageResult": {"type": "object", "properties": {
            "status": {"enum": ["completed", "failed", "skipped"]},
            "run_id": {"type": ["string", "null"]}, "output_text": {"type": "string"},
            "stop_reason": {"type": ["string", "null"]},
            "citations": {"type": "array", "items": {"type": "object"}},
            "conversation": {"type": ["object", "null"]}}},
        "File": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "file"}, "filename": {"type": "string"},
            "bytes": {"type": "integer"}, "content_type": {"type": "string"},
            "created_at": {"type": "integer"}}},
        "Smith": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "smith"},
            "external_id": {"type": ["string", "null"]},
            "display_name": {"type": ["string", "null"]},
            "customer_id": {"type": ["string", "null"]}, "metadata": {"type": "object"},
            "auto_memory": {"type": "boolean"}, "created_at": {"type": "integer"}}},
        "KnowledgeDocument": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "knowledge.document"},
            "source": {"type": ["string", "null"],
                       "description": "the knowledge source's name; null for `kb ingest` files"},
            "title": {"type": "string"},
            "citation": {"type": "string", "description": "what citations show"},
            "url": {"type": ["string", "null"], "description": "the public link, if any"},
            "kind": {"type": "string"}, "chunks": {"type": "integer"},
            "updated_at": {"type": "number"},
            "section": {"type": ["string", "null"], "description":
                        "where the source files it, e.g. a Help Center article's "
                        "\"Collection › Section\""},
            "content": {"type": "array", "items": {"type": "object"},
                        "description": "one document: its chunks (heading, text)"}}},
        "KnowledgeSyncReport": {"type": "object", "properties": {
            "source": {"type": "string"}, "kind": {"type": "string"},
            "added": {"type": "integer"}, "updated": {"type": "integer"},
            "removed": {"type": "integer"}, "unchanged": {"type": "integer"},
            "requests": {"type": "integer"}, "error": {"type": ["string", "null"]}}},
        "KnowledgeSyncJob": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "knowledge.sync_job"},
            "source": {"type": ["string", "null"], "description": "one source; null: all"},
            "status": {"enum": ["queued", "running", "succeeded", "failed"]},
            "created_at": {"type": "number"}, "started_at": {"type": ["number", "null"]},
            "finished_at": {"type": ["number", "null"]},
            "sources": {"type": "array", "items": _ref("KnowledgeSyncReport"),
                        "description": "a report per source synced so far"},
            "error": {"type": ["string", "null"],
                      "description": "why the job failed: the sources that reported an error"}}},
        "Thread": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "thread"},
            "external_id": {"type": "string"}, "channel": {"type": "string"},
            "state": {"enum": ["open", "escalated", "closed"]},
            "control": {"enum": ["bot", "human"]}, "title": {"type": ["string", "null"]}}},
        "Run": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "run"},
            "thread_id": {"type": "string"}, "smith_id": {"type": "string"},
            "stop_reason": {"type": "string"}, "output_text": {"type": "string"},
            "tool_calls": {"type": "array", "items": {"type": "object"}},
            "rag_results": {"type": "array", "items": {"type": "object"}}}},
        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
            "message": {"type": "string"}, "type": {"type": "string"},
            "code": {"type": ["string", "null"]}}}}},
    }
    document: JSON = {
        "openapi": "3.1.0",
        "info": {
            "title": "supportbot HTTP API",
            "version": "1",
            "description": (
                "Conversations (shaped like OpenAI's Conversations API), the web widget's "
                "session, and the operator endpoints. Authenticate with `Authorization: Bearer` "
                "(the admin token, or a smith token) or the widget's session cookie. Another "
                "smith's objects are always 404."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {"Error": _json(_ref("Error"), "an error")},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "admin.token, or a smith token (`sbt.…`)"},
                "visitorSession": {"type": "apiKey", "in": "cookie", "name": "sb_session"},
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
