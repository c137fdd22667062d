"""The offline responder: the embedded default model and the last-resort fallback. No network.

It reads the request the way a model would and drives the same tool loop with the same tool
calls: on the first message of a thread that greets, it calls USER_INFO_LOOKUP and greets the
customer by name; a question is answered from the best-matching knowledge passage, cited, when
the passage's article holds the question's words the knowledge base knows (``_judge``); when
nothing does, when the question is about the customer's own record, or when the customer asks for
a person, it calls ESCALATE; when the customer confirms the problem is solved, CLOSE.

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
from bot.providers.offline_answer import (
    answer_for,
    cite,
    clip,
    pieces,
    rag_record,
    solved_summary,
    with_greeting,
)
from bot.providers.offline_reading import is_question

if TYPE_CHECKING:
    from bot.knowledge import Passage

# ``cite`` is imported from here by the agent's context; it lives with the answer's wording.
__all__ = ["CLARIFY", "MODEL_NAME", "KnowledgeSearch", "OfflineProvider", "cite", "phrase_pattern"]

MODEL_NAME = "offline"
DELTA_PIECES = 4
SEARCH_LIMIT = 3
# Out of scope: under half of the question's content words are words the knowledge base uses,
# and what matched scores under this (see ``Passage.score``: unknown words count against it).
SCOPE_SHARE = 0.5
SCOPE_SCORE = 0.15
# The share of the question's known words (idf-weighted) the best article must contain: less,
# and it shares a word or two with the question, not its topic.
TOPIC_COVERAGE = 0.4
# The share the best article must contain drops to ``LOW_TOPIC_COVERAGE`` when the rest of the
# question does not dilute it with words of no topic:
# - a long message (this many content terms or more) tells a story around its question, and
#   the best article leads the next by ``LEAD_MARGIN`` ("why am i only getting 80% back now??
#   my boy turned 9 this year and the last payout was way short of the bill");
# - every word of the question is one the knowledge base knows ("can i change the date the
#   money comes out"): it is asked in the help center's own words, spread over its articles;
#   the article then holds more than one word's worth of three (``ALL_KNOWN_COVERAGE``).
LONG_QUESTION_TERMS = 9
LOW_TOPIC_COVERAGE = 0.3
LEAD_MARGIN = 0.15
ALL_KNOWN = 0.99
ALL_KNOWN_COVERAGE = 0.34
# Sentences that ask, searched without the story around them, need this many terms of their own.
ASKED_ALONE_TERMS = 3
# Sentences that ask, all of whose terms the best article holds, need this many.
ASKED_IN_BEST_TERMS = 2
# The one request for more detail when a remark matches nothing clearly.
CLARIFY = "Could you tell me a bit more — what are you trying to do, or what happens?"
# What the responder asks back when there is no question, or (without ESCALATE) no answer.
ASK_HOW = "How can I help you today?"
UNSURE = "I'm not sure about that one. Could you rephrase it, or tell me more?"
NOT_HELPED = "The answer given did not solve the customer's problem."
# A best article this far ahead of the next (its score at least twice the next one's) is the
# topic, not a chance match, once it holds this share of the question's known words: the rest
# of the question is the customer's own story ("found cheaper cover somewhere else, how do i
# end mine with you"). A share of the score, so it reads the same on any knowledge base.
CLEAR_LEAD = 0.5
CLEAR_LEAD_COVERAGE = 0.25
# A request without a question word ("please remove my account", "I need the invoice").
# A question word anywhere ("the app crashes when I open a lesson") also says more than a
# remark: it is not asked to tell more.
_REQUEST = re.compile(
    r"\b(?:please|pls|need|want|help|trying|would\s+like|how|what|where|when|why|which|who|can|"
    r"could|is|are|do|does|will|should)\b|[?？]",
    re.IGNORECASE,
)
# A remark that reports a problem rather than wraps up.
_PROBLEM = re.compile(
    r"\b(?:fail\w*|error\w*|wrong|problem\w*|issue\w*|broken|stuck|can'?t|cannot|won'?t|"
    r"does\s*n'?t|did\s*n'?t|is\s*n'?t|not|no\s+longer|charged|missing|never|still|again|nothing|"
    r"but)\b",
    re.IGNORECASE,
)
# A remark that asks for something more ("but I also need to change the card").
_WANTS = re.compile(
    r"(?<!\bno\s)\b(?:need|want|would\s+like|'d\s+like|please|pls|trying|how|where|can|could)\b",
    re.IGNORECASE,
)
# What an offer's price is called ("student prices", "a senior discount", "group rates").
_PRICE_WORDS = frozenset(
    ["price", "prices", "pricing", "rate", "rates", "discount", "discounts", "deal", "deals",
     "fare", "fares", "concession", "concessions", "reduction", "reductions", "offer", "offers"]
)
# Earlier customer messages a follow-up is read with.
FOLLOW_UP_TURNS = 3


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
        # No model ran: the figures are the usual character estimate, marked as such.
        usage = Usage(
            input_tokens=sum(len(m.content) for m in request.messages) // 4,
            output_tokens=len(decision.text) // 4,
            estimated=True,
        )
        if decision.text and on_delta is not None:
            for piece in pieces(decision.text, DELTA_PIECES):
                await on_delta(piece)
        return ModelResponse(
            text=decision.text,
            tool_calls=decision.tool_calls,
            usage=usage,
            model=MODEL_NAME,
            finish_reason="tool_calls" if decision.tool_calls else "stop",
            # Kept on the run: the candidates and why the responder decided, even when no
            # passage was good enough to answer from.
            rag_results=(decision.diagnosis,) if decision.diagnosis else (),
        )

    # -- the rules ----------------------------------------------------------------------------

    async def _decide(self, request: ModelRequest) -> _Decision:
        # The rules' vocabularies (compiled patterns, stemmers) load when the responder first
        # answers: as the fallback behind a model it may never answer in a process.
        from bot.agent import intents
        from bot.agent.attachments import typed_text
        from bot.agent.intents import Intent
        from bot.knowledge import analysis

        messages = request.messages
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
        # What the customer wrote: a file's text never decides the action (an "it works, close
        # it" inside a log is not the customer's).
        text = typed_text(messages[last_user].content) if last_user >= 0 else ""
        after = messages[last_user + 1 :]
        called, results = _this_turn_tools(after)
        offered = {t.name for t in request.tools}
        earlier = [m.content for m in messages[:last_user] if m.role == "user" and m.content]
        answered_before = any(m.role == "assistant" and m.content for m in messages[:last_user])
        first_turn = not any(m.role == "assistant" for m in messages[:last_user])
        reading = intents.read(text)
        diagnosis: dict[str, Any] = {
            "kind": "offline_decision",
            "intents": sorted(i.value for i in reading.intents),
            "evidence": reading.evidence,
        }

        def escalate(reason: str, priority: str = "normal") -> _Decision:
            diagnosis.update(action="escalate", reason=reason)
            if "ESCALATE" not in offered:
                return _Decision(UNSURE, (), diagnosis)
            return _Decision(
                "", (_call("ESCALATE", {"reason": reason, "priority": priority}),), diagnosis
            )

        clean = reading.question if reading.has(Intent.INJECTION) else text
        if reading.has(Intent.ASKS_FOR_PERSON) or (self._escalate and self._escalate.search(clean)):
            return escalate("The customer asked to talk to a person.")
        if reading.has(Intent.COMPLAINT):
            return escalate("The customer complains or mentions legal steps.", "high")
        if reading.has(Intent.SAFETY):
            return escalate("The customer reports a threat to their safety.", "high")
        if reading.has(Intent.BUSINESS_ENQUIRY):
            return escalate("A business enquiry (partnership, supplier, press): a person replies.")
        new_question = intents.asks_something(reading)
        # Not solved, after an answer (or a question asked back), with nothing new asked ("ta but
        # the line test says no fault and still nothing works"): a person takes it from here.
        # With a question, it is answered, unless from an article already given (below).
        not_solved = reading.has(Intent.NOT_SOLVED) and answered_before
        if not_solved and not new_question:
            return escalate(NOT_HELPED)
        solved = reading.has(Intent.SOLVED) or bool(self._close and self._close.search(clean))
        # Thanks after an answer, with a remark and no question or problem ("paid it, thanks",
        # "done, moved it to Monday. Thanks!"): the customer is wrapping up.
        # As the first message, the remark must be a glad one ("brilliant, got in fine this
        # morning. thanks for the help": replying to help given elsewhere), not news of a problem.
        thanked_only = (
            reading.has(Intent.THANKS)
            and (answered_before or (first_turn and intents.glad(reading.question)))
            and not _PROBLEM.search(reading.question)
            and not _WANTS.search(reading.question)
        )
        # A short positive acknowledgement ("perfect, all done now", "lovely ta x"): after an
        # answer, or as the first message, replying to something outside this conversation.
        acknowledged = reading.has(Intent.ACKNOWLEDGED) and (answered_before or first_turn)
        if (solved or thanked_only or acknowledged) and not new_question and "CLOSE" in offered:
            diagnosis.update(action="close", reason="The customer confirmed it is solved.")
            return _Decision(
                "Glad that's sorted! I'll close this conversation now — write again any time.",
                (_call("CLOSE", {"resolution_summary": solved_summary(messages, last_user)}),),
                diagnosis,
            )
        if reading.has(Intent.INJECTION) and not reading.question:
            return escalate("The message tries to instruct the bot instead of asking something.")
        if reading.has(Intent.ACCOUNT_SPECIFIC):
            # An article can say how charges or orders work, not what happened to this one.
            return escalate("The customer asks about their own account or order; a person checks.")

        base = reading.question if (reading.has(Intent.INJECTION) or new_question) else text
        greeted = bool(self._greeting and self._greeting.match(base))
        question = self._greeting.sub("", base, count=1) if self._greeting and greeted else base
        if (
            greeted
            and first_turn
            and "USER_INFO_LOOKUP" in offered
            and "USER_INFO_LOOKUP" not in called
        ):
            return _Decision("", (_call("USER_INFO_LOOKUP", {}),), diagnosis)

        hello = ""
        info = results.get("USER_INFO_LOOKUP")
        name = info.get("name") if isinstance(info, dict) and info.get("found") else None
        if greeted:
            hello = f"Hi {str(name).split()[0]}! " if name else "Hi! "

        if not is_question(question):
            diagnosis.update(action="ask", reason="No question in the message.")
            return _Decision(f"{hello}{ASK_HOW}", (), diagnosis)

        found, query = await self._search(question, earlier)
        asked = intents.asking_sentences(question)
        # What it asks, without the story, is all in the best article ("…still hasnt come home,
        # im in bits. do you help with posters or a reward or anything"): the story's words, no
        # article's, do not make the question out of scope.
        asked_in_best = False
        if asked != question and found and not self._judge(found)[0]:
            asked_terms = set(analysis.analyze(asked))
            if len(asked_terms) >= ASKED_IN_BEST_TERMS:
                best = found[0]
                held = set(analysis.analyze(f"{best.title}\n{best.heading or ''}\n{best.text}"))
                asked_in_best = asked_terms <= held
            if len(asked_terms) >= ASKED_ALONE_TERMS and self._knowledge is not None:
                # The story around a question can bury it in words no article uses: the
                # sentences that ask, alone, may be what the help center answers — when they
                # name a topic of their own ("is there a plan where the company pays?", not
                # "any idea what to do?").
                alone = await self._knowledge.search(asked, limit=SEARCH_LIMIT)
                if self._judge(alone)[0]:
                    found, query, asked_in_best = alone, asked, False
        confidence, margin = _confidence(found)
        language = analysis.detect_language(query)
        diagnosis.update(
            query=query,
            confidence=confidence,
            margin=margin,
            candidates=[_candidate(p) for p in found],
        )
        diagnosis.update(language=language)
        documents_in = {p.language for p in found if p.language}
        answerable, judged = self._judge(found, len(set(analysis.analyze(query))))
        if documents_in and language not in documents_in and not answerable:
            # No matching article is in the customer's language. A link to the right article
            # beats waiting for a person: one judged as an English question's would be (what
            # the question's support words mean in English, ``crosslingual``, and the words the
            # languages share: names, cognates, "internet", "vidéos") is answered as one; so is
            # one that clearly points to an article; otherwise a person who reads the language
            # does better than a quote the customer may not understand.
            if self._across_languages(found):
                diagnosis.update(
                    action="answer",
                    reason=f"The customer writes in '{language}'; no article is in that language "
                    "and the best one in another clearly matches.",
                    answered=rag_record(found[0]),
                )
                return _Decision(with_greeting(hello, answer_for(found[0], language)), (), diagnosis)
            return escalate(
                f"The customer writes in '{language}'; no matching article is in that language."
            )
        if not answerable and asked_in_best:
            answerable, judged = True, "What it asks, without the story, is all in the best article."
        # The help center's words ("delivery drivers") in a question that is no support
        # question: only an article that is clearly about it answers.
        off_topic = reading.has(Intent.OUT_OF_SCOPE)
        if answerable and off_topic and not self._about_it(found):
            answerable, judged = False, "Not a support question, and no article is about it"
        thing = intents.offered_thing(question)
        if answerable and thing and not _mentions(found, thing):
            # "do you do home insurance as well?": the help center's words ("home", "insurance")
            # but no article names the thing; what the company does not document, a person says.
            answerable, judged = False, f"No article mentions '{thing}', asked about as an offer"
        if answerable and not_solved and _given(messages[:last_user], found[0]):
            # "I tried that and it still doesn't work, what now?": the article given again won't
            # help; another one may ("it never came, what do i do now" after a payment answer).
            return escalate(NOT_HELPED)
        if answerable:
            # The passage answered from: the runner's retrieval searched the latest message
            # alone, a follow-up is answered from the conversation's search (its citation).
            diagnosis.update(action="answer", reason=judged, answered=rag_record(found[0]))
            return _Decision(with_greeting(hello, answer_for(found[0], language)), (), diagnosis)
        asked_before = any(
            m.role == "assistant" and CLARIFY in m.content for m in messages[:last_user]
        )
        if not (intents.asks_something(reading) or _REQUEST.search(text)) and not asked_before:
            # "I cancelled my annual plan last week" sets the scene; the question usually
            # follows. A person would ask, not hand the conversation on — once.
            diagnosis.update(
                action="ask",
                reason="A remark with no question that the knowledge base does not clearly answer.",
            )
            return _Decision(hello + CLARIFY, (), diagnosis)
        return escalate(f"{judged}: {clip(' '.join(question.split()), 160)}")

    def _judge(self, found: Sequence[Passage], terms: int = 0) -> tuple[bool, str]:
        """Whether the best passage answers the question, and why (or why not).

        A support inbox's questions mostly are what its help center is about, so a question
        whose words the knowledge base knows is answered from the best article — when two
        articles are close, the better one is still the customer's best bet. It is not when:

        - nothing matched, or the question is mostly words no article uses and what matched
          weighs little (out of scope: "a good recipe for banana bread");
        - the best article holds too small a share of the question's known words (it shares a
          word or two, not the topic): ``TOPIC_COVERAGE``, or ``LOW_TOPIC_COVERAGE`` for a long
          story with a clear lead, or a question wholly in the knowledge base's words (``terms``:
          how many content terms the question has).

        A best article ``CLEAR_LEAD`` ahead of the next (a share of its own score, the same on
        any knowledge base) is the topic, not a chance match: it needs only
        ``CLEAR_LEAD_COVERAGE``.

        Candidates with no keyword evidence (found by the dense side alone) are judged on their
        score: ``confidence_threshold``, or ``confidence_floor`` with ``confidence_margin``.
        """
        if not found:
            return False, "Nothing in the knowledge base covers"
        settings = self._settings
        top = found[0]
        confidence, margin = _confidence(found)
        if confidence >= settings.confidence_threshold:
            return True, "A confident match in the knowledge base."
        evidence = top.evidence
        if evidence is None:
            if confidence >= settings.confidence_floor and margin >= settings.confidence_margin:
                return True, "A fair match well ahead of the next article."
            return False, "No confident answer in the knowledge base for"
        # A lead over the next article; over nothing, it is no lead.
        leads = margin if len(found) > 1 else 0.0
        if evidence.known_share < SCOPE_SHARE and confidence < SCOPE_SCORE:
            return False, "Nothing in the knowledge base covers"
        if evidence.coverage < TOPIC_COVERAGE:
            if leads >= CLEAR_LEAD and evidence.coverage >= CLEAR_LEAD_COVERAGE:
                return True, "The best article is far ahead of the next and holds part of it."
            long_story = terms >= LONG_QUESTION_TERMS and leads >= LEAD_MARGIN
            all_known = (
                evidence.known_share >= ALL_KNOWN and evidence.coverage >= ALL_KNOWN_COVERAGE
            )
            if evidence.coverage < LOW_TOPIC_COVERAGE or not (long_story or all_known):
                return False, "No article covers enough of the question"
            if long_story:
                return True, "A long message; the best article covers its topic, well ahead."
            return True, "All the question's words are the help center's; the best article has most."
        return True, "The best article covers the question's words the knowledge base knows."

    def _about_it(self, found: Sequence[Passage]) -> bool:
        """Whether the best article is clearly about the question: a confident match that holds
        the question's most specific word. Closeness in meaning alone is not enough: "recommend
        a decent hotel near the airport branch" is close to the airport pick-up article, and
        "how do i sign up to deliver for you" to the one on placing an order."""
        if not found or found[0].evidence is None or not found[0].evidence.specific:
            return False
        return _confidence(found)[0] >= self._settings.confidence_threshold

    def _across_languages(self, found: Sequence[Passage]) -> bool:
        """Whether the best article, in another language than the question's, clearly answers
        it: it holds the question's words the knowledge base knows (few: the ones the languages
        share, and the support words ``crosslingual`` translates) and scores
        ``confidence_margin`` ahead of the next article — or ``LEAD_MARGIN`` ahead while also
        holding more of those words than any article after it (two signals that agree, as for
        a long story in ``_judge``).

        Measured on the development sets' non-English questions (both embeddings backends):
        a wrong best article led the next by 0.13 at most; a right one by 0.15 or more, save
        one at 0.07. Between 0.15 and 0.2 (two, both right) the one ahead on coverage answers.
        """
        evidence = found[0].evidence if found else None
        if evidence is None or evidence.coverage < TOPIC_COVERAGE:
            return False
        margin = _confidence(found)[1]
        if margin >= self._settings.confidence_margin:
            return True
        return margin >= LEAD_MARGIN and evidence.lead > 0

    async def _search(self, question: str, earlier: list[str]) -> tuple[list[Passage], str]:
        """Search with the latest message, read with the customer's earlier messages when it
        leans on them.

        The conversation so far is searched too. It wins when the latest message is a
        follow-up ("and what if I'm renting?", "how do I stop it?", "how do I cancel?": two
        content words or fewer) or answers nothing alone;
        and when the article it finds also matches the latest message alone (the same topic,
        said with more context: "a question about the monthly pass" then "how do I cancel?").
        A latest message that clearly asks about something else is searched alone, and so is
        one that announces a request of its own ("I also need to…") and matches alone.
        """
        from bot.agent import followups, intents
        from bot.knowledge import analysis

        if self._knowledge is None:
            return [], question
        latest = " ".join(question.split())
        found = await self._knowledge.search(latest, limit=SEARCH_LIMIT)
        # Earlier messages that only thanked, closed or asked for a person are no topic; one
        # that reports a problem ("the code never arrives when I register") is the topic.
        context = [
            m
            for m in earlier[-FOLLOW_UP_TURNS:]
            if not intents.read(m).intents - {intents.Intent.NOT_SOLVED}
        ]
        if not context:
            return found, latest
        if followups.opens_new_topic(latest) and self._judge(found)[0]:
            # "thanks, but I also need to change the card it comes out of": a request of its
            # own, whatever its pronoun points back to; alone it matches its article.
            return found, latest
        joined = " ".join(" ".join([*context, latest]).split())
        with_context = await self._knowledge.search(joined, limit=SEARCH_LIMIT)
        if not with_context or (self._judge(found)[0] and not self._judge(with_context)[0]):
            # Read with the conversation it matches nothing clearly, alone it does ("can I get
            # a vegan plan?" after a promo code): it is a question of its own.
            return found, latest
        # Two content words or fewer ("how do I cancel?") name an action, not its topic.
        leans = followups.leans_on_earlier(latest) or len(analysis.analyze(latest)) <= 2
        if leans or not self._judge(found)[0]:
            if leans or _confidence(with_context)[0] >= _confidence(found)[0]:
                return with_context, joined
            return found, latest
        if any(p.document_id == with_context[0].document_id for p in found):
            return with_context, joined
        return found, latest


def _confidence(found: Sequence[Passage]) -> tuple[float, float]:
    """The best passage's score and its lead over the next document (0..1 of the best)."""
    if not found:
        return 0.0, 0.0
    top = found[0].score
    second = found[1].score if len(found) > 1 else 0.0
    return top, round(1.0 - second / top, 4) if top > 0 else 0.0


def _mentions(found: Sequence[Passage], thing: str) -> bool:
    """Whether a found passage names ``thing``: its terms, in order, side by side (hyphens read
    as spaces on both sides: "sign-on" is "sign on", whichever way it is written)."""
    from bot.knowledge import analysis

    for passage in found:
        text = f"{passage.title}\n{passage.heading or ''}\n{passage.text}".replace("-", " ")
        lang = passage.language or analysis.detect_language(text)
        wanted = analysis.analyze(thing.replace("-", " "), lang)
        if not wanted:
            return True
        terms = analysis.analyze(text, lang)
        if _side_by_side(terms, wanted):
            return True
        # A price by another name: "student prices" where the article offers a student discount.
        words = thing.lower().split()
        if len(words) > 1 and words[-1] in _PRICE_WORDS:
            head = analysis.analyze(" ".join(words[:-1]).replace("-", " "), lang)
            priced = analysis.analyze(" ".join(sorted(_PRICE_WORDS)), lang)
            if _side_by_side(terms, head) and not set(priced).isdisjoint(terms):
                return True
    return False


def _side_by_side(terms: list[str], wanted: list[str]) -> bool:
    return any(terms[i : i + len(wanted)] == wanted for i in range(len(terms) - len(wanted) + 1))


def _candidate(passage: Passage) -> dict[str, Any]:
    """A candidate as the run record keeps it: where, its score, and how it met the words."""
    out: dict[str, Any] = {
        "document": passage.source,
        "title": passage.title,
        "section": passage.heading,
        "score": passage.score,
    }
    evidence = passage.evidence
    if evidence is not None:
        out.update(
            known_share=evidence.known_share,
            coverage=evidence.coverage,
            specific=evidence.specific,
            lead=evidence.lead,
            missing=list(evidence.missing),
        )
    return out


class _Decision:
    __slots__ = ("diagnosis", "text", "tool_calls")

    def __init__(self, text: str, tool_calls: tuple[ToolCall, ...], diagnosis: JSON | None = None):
        self.text = text
        self.tool_calls = tool_calls
        self.diagnosis = diagnosis


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


def _given(earlier: Sequence[ChatMessage], passage: Passage) -> bool:
    """Whether an earlier reply answered from ``passage``'s article (its citation names it)."""
    cited = f"({passage.source})"
    return any(m.role == "assistant" and cited in m.content for m in earlier)
