"""The OpenAPI paths and schemas of ``bot.http.console_api`` (merged into ``openapi.py``'s
document): the inbox, transcripts, analytics, the knowledge search preview, agents and the
customer's feedback on an answer."""

from __future__ import annotations

from typing import Any

from bot.domain import JSON

_ERROR = {"$ref": "#/components/responses/Error"}
# The admin token, or the console's session cookie (with X-CSRF-Token on anything that writes).
_OPERATOR: list[JSON] = [{"bearerAuth": []}, {"consoleSession": []}]
_VISITOR: list[JSON] = [{"bearerAuth": []}, {"visitorSession": []}]


def _json(schema: JSON, description: str = "OK") -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: JSON, *, security: list[JSON], params: list[JSON] | None = None,
        body: JSON | None = None, description: str | None = None) -> JSON:
    op: JSON = {"summary": summary, "security": security, "parameters": params or [],
                "responses": {**responses, "4XX": _ERROR}}
    if description:
        op["description"] = description
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _path(name: str, description: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


def _query(name: str, description: str, schema: JSON | None = None) -> JSON:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_PERCENTILES = {"type": "object", "properties": {"p50": {"type": ["number", "null"]},
                                                 "p95": {"type": ["number", "null"]}}}
_RATIO = {"type": ["number", "null"], "description": "0..1; null without conversations"}
_LIST = {"type": "object", "required": ["object", "data", "has_more"], "properties": {
    "object": {"const": "list"}, "data": {"type": "array", "items": {"type": "object"}},
    "has_more": {"type": "boolean"}}}


def console_paths() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(paths, schemas, security schemes) to add to the document."""
    paths: dict[str, Any] = {
        "/v1/conversations/{id}/feedback": {
            "post": _op(
                "Thumbs up or down (and a comment) on one answer of the conversation",
                {"201": _json({"$ref": "#/components/schemas/Feedback"}, "recorded")},
                security=_VISITOR, params=[_path("id", "the conversation's id")],
                body={"type": "object", "required": ["run_id", "rating"],
                      "additionalProperties": False, "properties": {
                          "run_id": {"type": "string", "description": "the answer's run id"},
                          "rating": {"enum": ["up", "down"]},
                          "comment": {"type": ["string", "null"], "maxLength": 2000}}},
                description="Rating the same answer again replaces the earlier verdict. An "
                            "answer of another conversation (or visitor) is 404."),
        },
        "/v1/inbox": {
            "get": _op("Threads that need a person: most urgent first, then longest waiting",
                       {"200": _json(_LIST)}, security=_OPERATOR),
        },
        "/v1/threads/{id}/transcript": {
            "get": _op("A thread with every run in full (tool calls, passages and scores, "
                       "model, version, latency, tokens, cost) and its feedback",
                       {"200": _json({"type": "object"})}, security=_OPERATOR,
                       params=[_path("id", "the thread's id")],
                       description="Besides `runs`: `person_messages`, what people on the "
                                   "support side wrote, and `customer_messages`, the "
                                   "customer's messages no run answered (`status` `pending`: "
                                   "waiting for the bot; `skipped`: sent while a person held "
                                   "the thread)."),
        },
        "/v1/analytics": {
            "get": _op(
                "Resolution, escalation, response times, CSAT, cost and content gaps",
                {"200": _json({"$ref": "#/components/schemas/Analytics"})}, security=_OPERATOR,
                params=[
                    _query("since", "start (unix seconds or ISO 8601); default until − 30 days"),
                    _query("until", "end, exclusive (unix seconds or ISO 8601); default now"),
                    _query("channel", "only threads of this channel"),
                ],
                description="Threads are counted by when they started; a window is at most "
                            "366 days."),
        },
        "/v1/knowledge/search": {
            "get": _op("What the agent would retrieve for a question, with scores",
                       {"200": _json(_LIST)}, security=_OPERATOR,
                       params=[_query("q", "the question", {"type": "string",
                                                            "maxLength": 500})]),
        },
        "/v1/agents": {
            "get": _op("Configured agents with their published versions",
                       {"200": _json(_LIST)}, security=_OPERATOR),
        },
        "/v1/agents/{slug}/versions": {
            "post": _op("Publish the agent as configured now as its next version",
                        {"201": _json({"type": "object"}, "published")}, security=_OPERATOR,
                        params=[_path("slug", "the agent's slug")],
                        body={"type": "object", "additionalProperties": False, "properties": {
                            "note": {"type": "string", "maxLength": 500}}}),
        },
        "/v1/agents/{slug}/live": {
            "post": _op("Make a published version live (promote, or roll back)",
                        {"200": _json({"type": "object"})}, security=_OPERATOR,
                        params=[_path("slug", "the agent's slug")],
                        body={"type": "object", "required": ["version"],
                              "additionalProperties": False, "properties": {
                                  "version": {"type": "integer", "minimum": 1}}}),
        },
    }
    schemas: dict[str, Any] = {
        "Feedback": {"type": "object", "properties": {
            "id": {"type": "string"}, "object": {"const": "feedback"},
            "run_id": {"type": "string"}, "thread_id": {"type": "string"},
            "rating": {"enum": ["up", "down"]}, "comment": {"type": ["string", "null"]},
            "source": {"type": "string"}, "created_at": {"type": "integer"}}},
        "Analytics": {"type": "object", "properties": {
            "object": {"const": "analytics"},
            "conversations": {"type": "integer"},
            "automated_resolution_rate": _RATIO,
            "escalation_rate": _RATIO,
            "escalations_by_reason": {"type": "object",
                                      "additionalProperties": {"type": "integer"}},
            "first_response_seconds": _PERCENTILES,
            "resolution_seconds": _PERCENTILES,
            "csat": {"type": "object", "properties": {"up": {"type": "integer"},
                                                      "down": {"type": "integer"}}},
            "cost": {"type": "object", "properties": {
                "total": {"type": "number"}, "per_resolution": {"type": ["number", "null"]}}},
            "content_gaps": {"type": "array", "items": {"type": "object", "properties": {
                "question": {"type": "string"}, "count": {"type": "integer"},
                "thread_ids": {"type": "array", "items": {"type": "string"}}}}},
            "series": {"type": "array", "items": {"type": "object", "properties": {
                "date": {"type": "string"}, "channel": {"type": "string"},
                "conversations": {"type": "integer"}, "automated": {"type": "integer"},
                "escalated": {"type": "integer"}, "csat_up": {"type": "integer"},
                "csat_down": {"type": "integer"}, "cost": {"type": "number"}}}}}},
    }
    schemes = {"consoleSession": {
        "type": "apiKey", "in": "cookie", "name": "sb_console",
        "description": "the operator console's session (sign in at /console with the admin "
                       "token); a request that changes anything also sends X-CSRF-Token"}}
    return paths, schemas, schemes
