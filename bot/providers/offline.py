"""The offline responder: the embedded default model and the last-resort fallback. No network.

It reads the request the way a model would and drives the same tool loop with the same tool
calls: on the first message of a thread that greets, it calls USER_INFO_LOOKUP and greets the
customer by name; a question is answered from the best-matching knowledge passage, cited; with no
confident passage (best score below ``offline.confidence_threshold``) or when the customer asks
for a person, it calls ESCALATE; when the customer confirms the problem is solved, CLOSE.

Knowledge comes from a search object injected at construction (the runner passes the same cached
retriever it uses itself, so a turn searches once); the responder searches with the customer's
latest message, its greeting stripped. Phrase lists match on word boundaries ("agent" does not
match "agents'" inside "reagent"), case-insensitively.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bot.config import OfflineSettings
from bot.domain import JSON, Usage
from bot.providers.base import ChatMessage, DeltaSink, ModelRequest, ModelResponse, ToolCall

if TYPE_CHECKING:
    from bot.knowledge import Passage

MODEL_NAME = "offline"
ANSWER_CHARS = 700
DELTA_PIECES = 4
SEARCH_LIMIT = 3

# Words that carry no question on their own: small talk after a greeting is not a question.
_FILLER = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "about",
        "any",
        "anybody",
        "anyone",
        "at",
        "be",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "good",
        "got",
        "hello",
        "hey",
        "hi",
        "how",
        "i",
        "im",
        "i'm",
        "is",
        "it",
        "its",
        "it's",
        "just",
        "me",
        "morning",
        "afternoon",
        "evening",
        "my",
        "of",
        "ok",
        "okay",
        "on",
        "or",
        "please",
        "so",
        "thank",
        "thanks",
        "that",
        "the",
        "there",
        "this",
        "to",
        "today",
        "u",
        "up",
        "us",
        "we",
        "what",
        "whats",
        "what's",
        "with",
        "would",
        "you",
        "your",
        "yo",
    ]
)
_WORD = re.compile(r"[\w']+")


class KnowledgeSearch(Protocol):
    """Anything that finds knowledge passages for a query (the knowledge base, or a cache)."""

    async def search(self, query: str, *, limit: int = 5) -> list[Passage]: ...


def phrase_pattern(phrases: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any phrase as whole words."""
    parts = []
    for phrase in phrases:
        words = phrase.split()
        if words:
            parts.append(r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)")
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def cite(passage: Passage) -> str:
    """``Title › Heading (source)``; a heading that already starts with the title (a heading
    path) is not prefixed twice."""
    where = passage.title
    heading = passage.heading or ""
    if heading.startswith(f"{passage.title} › "):
        where = heading
    elif heading and heading != passage.title:
        where = f"{where} › {heading}"
    return f"{where} ({passage.source})"


class OfflineProvider:
    """A ``ModelProvider`` that answers from the knowledge base with rules, not a model."""

    name = MODEL_NAME

    def __init__(self, settings: OfflineSettings, knowledge: KnowledgeSearch | None):
        self._settings = settings
        self._knowledge = knowledge
        self._escalate = phrase_pattern(settings.escalate_phrases)
        self._close = phrase_pattern(settings.close_phrases)
        greetings = sorted(settings.greeting_phrases, key=len, reverse=True)
        pattern = phrase_pattern(greetings)
        self._greeting = (
            re.compile(
                r"^\W*(?:" + pattern.pattern + r")(?:\s+(?:there|all|team))?[\s,.!:;-]*",
                re.IGNORECASE,
            )
            if pattern
            else None
        )

    async def aclose(self) -> None:
        """Nothing to close: the responder holds no connections."""

    async def complete(
        self, request: ModelRequest, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        decision = await self._decide(request)
        usage = Usage(
            input_tokens=sum(len(m.content) for m in request.messages) // 4,
            output_tokens=len(decision.text) // 4,
        )
        if decision.text and on_delta is not None:
            for piece in _pieces(decision.text, DELTA_PIECES):
                await on_delta(piece)
        return ModelResponse(
            text=decision.text,
            tool_calls=decision.tool_calls,
            usage=usage,
            model=MODEL_NAME,
            finish_reason="tool_calls" if decision.tool_calls else "stop",
        )

    # -- the rules ----------------------------------------------------------------------------

    async def _decide(self, request: ModelRequest) -> _Decision:
        messages = request.messages
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        text = messages[last_user].content if last_user >= 0 else ""
        after = messages[last_user + 1 :]
        called, results = _this_turn_tools(after)
        offered = {t.name for t in request.tools}
        first_turn = not any(m.role == "assistant" for m in messages[:last_user])

        if self._close and self._close.search(text) and "CLOSE" in offered:
            return _Decision(
                "Glad that's sorted! I'll close this conversation now — write again any time.",
                (_call("CLOSE", {"resolution_summary": _summary(messages, last_user)}),),
            )
        if self._escalate and self._escalate.search(text) and "ESCALATE" in offered:
            return _Decision(
                "",
                (
                    _call(
                        "ESCALATE",
                        {
                            "reason": "The customer asked to talk to a person.",
                            "priority": "normal",
                        },
                    ),
                ),
            )

        greeted = bool(self._greeting and self._greeting.match(text))
        question = self._greeting.sub("", text, count=1) if self._greeting and greeted else text
        if (
            greeted
            and first_turn
            and "USER_INFO_LOOKUP" in offered
            and "USER_INFO_LOOKUP" not in called
        ):
            return _Decision("", (_call("USER_INFO_LOOKUP", {}),))

        hello = ""
        info = results.get("USER_INFO_LOOKUP")
        name = info.get("name") if isinstance(info, dict) and info.get("found") else None
        if greeted:
            hello = f"Hi {str(name).split()[0]}! " if name else "Hi! "

        if not _is_question(question):
            return _Decision(f"{hello or ''}How can I help you today?".strip(), ())

        passage = await self._best(question)
        if passage is not None and passage.score >= self._settings.confidence_threshold:
            return _Decision(hello + _answer(passage), ())
        if "ESCALATE" in offered:
            return _Decision(
                "",
                (
                    _call(
                        "ESCALATE",
                        {
                            "reason": "No confident answer in the knowledge base for: "
                            + _clip(" ".join(question.split()), 160),
                            "priority": "normal",
                        },
                    ),
                ),
            )
        return _Decision(
            hello + "I'm not sure about that one. Could you rephrase it, or tell me more?", ()
        )

    async def _best(self, question: str) -> Passage | None:
        if self._knowledge is None:
            return None
        found = await self._knowledge.search(" ".join(question.split()), limit=SEARCH_LIMIT)
        return max(found, key=lambda p: p.score) if found else None


class _Decision:
    __slots__ = ("text", "tool_calls")

    def __init__(self, text: str, tool_calls: tuple[ToolCall, ...]):
        self.text = text
        self.tool_calls = tool_calls


def _call(name: str, arguments: JSON) -> ToolCall:
    return ToolCall(
        id=f"call_{uuid.uuid4().hex[:16]}",
        name=name,
        raw_arguments=json.dumps(arguments),
        arguments=arguments,
    )


def _this_turn_tools(after: Sequence[ChatMessage]) -> tuple[set[str], dict[str, Any]]:
    """Tools already called since the customer's latest message, and their parsed results."""
    names: dict[str, str] = {}
    results: dict[str, Any] = {}
    for message in after:
        for call in message.tool_calls:
            names[call.id] = call.name
        if message.role == "tool" and message.tool_call_id:
            name = message.name or names.get(message.tool_call_id, "")
            try:
                results[name] = json.loads(message.content)
            except ValueError:
                results[name] = message.content
    return set(names.values()), results


def _is_question(text: str) -> bool:
    return any(w.lower() not in _FILLER for w in _WORD.findall(text))


def _answer(passage: Passage) -> str:
    """The passage as an answer: heading lines dropped, lines (lists) kept, cut near
    ``ANSWER_CHARS`` at a sentence end, and the citation."""
    lines = [
        " ".join(ln.split())
        for ln in passage.text.strip().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    body = "\n".join(lines)
    if len(body) > ANSWER_CHARS:
        cut = body[:ANSWER_CHARS]
        end = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("! "), cut.rfind("? "))
        body = cut[: end + 1] if end > ANSWER_CHARS // 3 else cut.rsplit(" ", 1)[0] + "…"
    return f"{body}\n\nSource: {cite(passage)}"


def _summary(messages: Sequence[ChatMessage], last_user: int) -> str:
    asked = [m.content for m in messages[:last_user] if m.role == "user" and m.content]
    topic = _clip(" ".join(asked[0].split()), 160) if asked else "the customer's question"
    return f"Customer confirmed the issue is solved ({topic})."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _pieces(text: str, count: int) -> list[str]:
    """``text`` in about ``count`` pieces split after spaces, so joining them gives it back."""
    size = max(1, len(text) // count)
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        space = text.find(" ", end)
        end = len(text) if space == -1 or len(text) - space < size // 2 else space + 1
        pieces.append(text[start:end])
        start = end
    return pieces
