"""The operator endpoints the console is built on (admin token, or a console session with its
CSRF token; see ``bot.http.auth.require_admin``): the inbox of threads that need a person, a
thread's transcript with everything its runs recorded, the analytics report, a knowledge search
preview, and the agents' versions (publish, make live: promote or roll back). Plus the one
customer-facing route here: feedback on an answer (``POST /v1/conversations/{id}/feedback``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from aiohttp import web

from bot.agent.definition import definition_from_settings
from bot.config import AnalyticsSettings
from bot.domain import JSON, InboundMessage, NotFound, now
from bot.http.auth import WRITE, api_error, require_scope
from bot.http.context import CONTEXT_KEY, ApiContext
from bot.http.conversations import _json_body
from bot.http.operator import OperatorApi, run_json, thread_json
from bot.store.analytics import Analytics, Window, run_cost
from bot.store.attention import needing_a_person
from bot.store.feedback import COMMENT_MAX, RATINGS
from bot.store.inbox import lane_key
from bot.store.messages import PersonMessages

DEFAULT_DAYS = 30
MAX_DAYS = 366
NOTE_MAX = 500
QUERY_MAX = 500


def _instant(name: str, raw: str) -> float:
    """Unix seconds, or an ISO 8601 date or date-time (UTC unless it says otherwise)."""
    try:
        value = float(raw)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            raise api_error(400, f"{name} is unix seconds or an ISO 8601 date",
                            code="invalid_field") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        value = parsed.timestamp()
    if not math.isfinite(value) or not 0 <= value < 1e11:
        raise api_error(400, f"{name} is out of range", code="invalid_field")
    return value


def window_of(request: web.Request) -> Window:
    query = request.query
    until = _instant("until", query["until"]) if query.get("until") else now()
    since = (_instant("since", query["since"]) if query.get("since")
             else until - DEFAULT_DAYS * 86400)
    if since >= until:
        raise api_error(400, "since must be before until", code="invalid_field")
    if until - since > MAX_DAYS * 86400:
        raise api_error(400, f"the window is at most {MAX_DAYS} days", code="invalid_field")
    channel = query.get("channel") or None
    if channel is not None and len(channel) > 32:
        raise api_error(400, "channel is a channel name", code="invalid_field")
    return Window(since, until, channel)


class ConsoleApi(OperatorApi):
    """The handlers; routes are added by ``bot.http.api``."""

    async def inbox(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        items = await needing_a_person(ctx.store.db, at=now())
        return web.json_response({"object": "list", "data": items, "has_more": False})

    async def transcript(self, request: web.Request) -> web.Response:
        """The thread, its customer, and every run in full (tool calls, passages and scores,
        model, version, latency, tokens, cost) with the feedback given on it; what people on
        the support side wrote (``person_messages``); and the customer's messages no run
        answered (``customer_messages``): waiting for the bot, or kept while a person held
        the thread. Without those the person holding a thread could not read what the customer
        said to them."""
        ctx = self._admin(request)
        try:
            thread = await ctx.store.get_thread(request.match_info["id"])
        except NotFound:
            raise api_error(404, "no such thread", code="not_found") from None
        smith = await ctx.store.get_smith(thread.smith_id, include_archived=True)
        agent = await ctx.store.get_agent_by_id(thread.agent_id)
        found = await ctx.store.thread_runs(thread.id, limit=500)
        rated: dict[str, list[JSON]] = {}
        for given in await ctx.store.feedback.of_thread(thread.id):
            rated.setdefault(given.run_id, []).append(given.to_json())
        prices = ctx.settings.analytics
        turns = []
        for run in sorted(found, key=lambda r: (r.started_at, r.id)):
            data = run_json(run, detail=True)
            data["cost"] = _cost(run.model, run.usage.to_json(), prices)
            data["feedback"] = rated.get(run.id, [])
            turns.append(data)
        return web.json_response({
            "object": "thread.transcript",
            "thread": thread_json(thread),
            "agent": {"id": agent.id, "slug": agent.slug, "name": agent.name},
            "customer": {"id": smith.id, "display_name": smith.display_name,
                         "external_id": smith.external_id},
            "runs": turns,
            "person_messages": [
                m.to_json() for m in await PersonMessages(ctx.store.db).of_thread(thread.id)
            ],
            "customer_messages": [
                _customer_message(row)
                for row in await ctx.web.unanswered(lane_key(agent.slug, thread.external_id))
            ],
        })

    async def analytics(self, request: web.Request) -> web.Response:
        ctx = self._admin(request)
        report = await Analytics(ctx.store.db, ctx.settings.analytics).report(window_of(request))
        return web.json_response(report)

    async def search_knowledge(self, request: web.Request) -> web.Response:
        """What the agent would retrieve for a question: passages with their scores."""
        ctx = self._admin(request)
        query = request.query.get("q", "")
        if len(query) > QUERY_MAX:
            raise api_error(400, f"q is at most {QUERY_MAX} characters", code="invalid_field")
        passages = await ctx.app.knowledge_sync.kb.search(query, limit=5)
        return web.json_response({"object": "list", "data": [
            {"document_id": p.document_id, "title": p.title, "heading": p.heading,
             "source": p.source, "score": round(float(p.score), 4), "text": p.text[:600]}
            for p in passages
        ], "has_more": False})

    # -- agents ---------------------------------------------------------------------------------

    async def list_agents(self, request: web.Request) -> web.Response:
        """Every configured agent, with its published versions and which one is live."""
        ctx = self._admin(request)
        data: list[JSON] = []
        for configured in ctx.settings.agents:
            try:
                agent = await ctx.store.get_agent(configured.slug)
            except NotFound:  # configured, but no turn or publish has stored it yet
                data.append({"object": "agent", "id": None, "slug": configured.slug,
                             "name": configured.name, "live_version": None, "versions": []})
                continue
            versions = await ctx.store.agent_versions(configured.slug)
            data.append({
                "object": "agent", "id": agent.id, "slug": agent.slug, "name": agent.name,
                "live_version": agent.live_version,
                "versions": [{"version": v.version, "note": v.note,
                              "model": v.definition.model, "created_at": int(v.created_at)}
                             for v in reversed(versions)],
            })
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def publish_agent(self, request: web.Request) -> web.Response:
        """Freeze the agent as configured now as its next version (``{"note"}``)."""
        ctx = self._admin(request)
        body = await _json_body(request)
        note = body.get("note", "")
        if not isinstance(note, str) or len(note) > NOTE_MAX:
            raise api_error(400, f"note is a string of at most {NOTE_MAX} characters",
                            code="invalid_field")
        try:
            definition = definition_from_settings(ctx.settings, request.match_info["slug"])
        except KeyError:
            raise api_error(404, "no such agent", code="not_found") from None
        version = await ctx.store.publish_agent(definition, note)
        agent = await ctx.store.get_agent(definition.slug)
        return web.json_response({"object": "agent.version", "slug": agent.slug,
                                  "version": version.version, "note": version.note,
                                  "live_version": agent.live_version}, status=201)

    async def make_live(self, request: web.Request) -> web.Response:
        """Make a published version the live one (``{"version"}``): promoting a new one and
        rolling back to an earlier one are the same move."""
        ctx = self._admin(request)
        body = await _json_body(request)
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise api_error(400, "version is a published version number", code="invalid_field")
        slug = request.match_info["slug"]
        if slug not in {a.slug for a in ctx.settings.agents}:
            raise api_error(404, "no such agent", code="not_found")
        try:
            await ctx.store.set_live_version(slug, version)
        except NotFound:
            raise api_error(404, f"agent {slug} has no version {version}",
                            code="not_found") from None
        return web.json_response({"object": "agent", "slug": slug, "live_version": version})

    # -- feedback (the customer's) ----------------------------------------------------------------

    async def feedback(self, request: web.Request) -> web.Response:
        """A thumbs up or down (and a comment) on one answer of the caller's conversation."""
        ctx: ApiContext = request.app[CONTEXT_KEY]
        principal = await ctx.principal(request)
        require_scope(principal, WRITE)
        body = await _json_body(request)
        unknown = sorted(set(body) - {"run_id", "rating", "comment"})
        if unknown:
            raise api_error(400, f"unknown field: {unknown[0]}", code="unknown_field")
        run_id, rating, comment = body.get("run_id"), body.get("rating"), body.get("comment")
        if not isinstance(run_id, str) or not run_id or len(run_id) > 40:
            raise api_error(400, "run_id names an answer of this conversation",
                            code="invalid_field")
        if rating not in RATINGS:
            raise api_error(400, "rating is up or down", code="invalid_field")
        if comment is not None and (not isinstance(comment, str) or len(comment) > COMMENT_MAX):
            raise api_error(400, f"comment is a string of at most {COMMENT_MAX} characters",
                            code="invalid_field")
        smith = await ctx.smith(principal)
        try:
            conversation = await ctx.web.get_conversation(request.match_info["id"], smith.id)
            given = await ctx.store.feedback.rate(
                run_id, rater=f"smith:{smith.id}", rating="up" if rating == "up" else "down",
                comment=comment, source="conversation", thread_id=conversation.thread_id,
            )
        except NotFound:
            raise api_error(404, "no such conversation or answer", code="not_found") from None
        return web.json_response(given.to_json(), status=201)


def _customer_message(row: JSON) -> JSON:
    """An inbox row no run answered, as the transcript shows it (``status``: ``pending`` while
    it waits for the bot, ``skipped`` when it came while a person held the thread)."""
    message = InboundMessage.from_json(row["payload"])
    return {"id": f"msg_{row['id']}", "role": "customer", "content": message.text,
            "attachments": [a.to_json() for a in message.attachments],
            "status": row["status"], "created_at": row["received_at"]}


def _cost(model: str, usage: JSON, settings: AnalyticsSettings) -> float:
    return round(run_cost(model, usage, settings), 6)
