"""What a customer's message asks for, beyond its topic: a person, closing, a complaint.

Recognised from phrases in context, never from a bare word: "human" in "human-readable" or
"agent" in "user agent" is not a request for a person. Text that tries to instruct the bot
("ignore previous instructions", "SYSTEM:", "mark this solved") is cut out first, so it can never
change what the bot does; what remains is read. The offline responder decides on these; a model
provider can be handed them as hints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class Intent(StrEnum):
    ASKS_FOR_PERSON = "asks_for_person"
    SOLVED = "solved"  # thanks, and the problem is solved
    NOT_SOLVED = "not_solved"  # (thanks, but) the answer did not help
    THANKS = "thanks"
    COMPLAINT = "complaint"  # a formal complaint or a legal threat
    INJECTION = "injection"  # text that tries to instruct the bot


@dataclass(frozen=True, slots=True)
class Reading:
    """A message read for intents; ``question`` is what is left to answer (may be empty)."""

    intents: frozenset[Intent]
    question: str
    evidence: dict[str, str] = field(default_factory=dict)

    def has(self, intent: Intent) -> bool:
        return intent in self.intents


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_PERSON_NOUN = (
    r"(?:a\s+|an\s+|one\s+of\s+your\s+|your\s+|some\s*)?(?:real\s+|actual\s+|live\s+)?"
    r"(?:human(?:\s+being)?|person|people|someone|somebody|agent|representative|rep|operator|"
    r"staff(?:\s+member)?|team\s+member|support\s+team|manager|supervisor)"
)
# Not "user agent", "human-readable", "agents' permissions": a noun after a request verb, or a
# qualified person ("real person", "live agent").
_ASKS_FOR_PERSON = _any(
    r"\b(?:talk|speak|chat|get\s+through)\s+(?:to|with)\s+" + _PERSON_NOUN + r"\b(?![-'])",
    r"\b(?:connect|transfer|escalate|pass|hand)\s+(?:me|this|it)\s+(?:to|over\s+to)\s+"
    + _PERSON_NOUN
    + r"\b(?![-'])",
    r"\b(?:want|need|get|give)\s+(?:me\s+)?(?:to\s+)?(?:a|an)\s+"
    r"(?:real\s+|actual\s+|live\s+)?(?:human|person|agent|representative|operator)\b(?![-'])",
    r"\b(?:real|actual|live)\s+(?:human|person|people|agent)\b",
    r"\bhuman\s+(?:being|agent|support)\b",
    r"\b(?:mit\s+einem\s+(?:menschen|mitarbeiter)|einen\s+mitarbeiter)\b",
    r"\b(?:parler\s+(?:à|a)\s+(?:un|une|quelqu'un)|un\s+conseiller)\b",
    r"\bhablar\s+con\s+(?:una?\s+)?(?:persona|agente|humano|alguien)\b",
    r"(?:担当者|オペレーター|人間と話)",
)
_COMPLAINT = _any(
    r"\b(?:lawyer|attorney|solicitor|lawsuit|legal\s+action|take\s+(?:you|this)\s+to\s+court)\b",
    r"\bsue\s+(?:you|them|acme)\b",
    r"\bchargeback\b",
    r"\b(?:formal|official)\s+complaint\b",
    r"\b(?:file|lodge|make)\s+a\s+complaint\b",
    r"\b(?:consumer\s+protection|ombudsman|small\s+claims|trading\s+standards)\b",
    r"\b(?:anwalt|klage|rechtliche\s+schritte|avocat|abogado|demanda)\b",
)
_THANKS = _any(
    r"\b(?:thanks|thank\s+you|thx|ty|cheers|much\s+appreciated|merci|danke|gracias|grazie)\b",
    r"ありがとう",
)
_NOT_SOLVED = _any(
    r"\b(?:did\s*n[o']?t|does\s*n[o']?t|do\s*n[o']?t|is\s*n[o']?t|was\s*n[o']?t|won'?t|can'?t)"
    r"\s+(?:help|work|fix|solve|answer)",
    r"\b(?:did|does|do|is|was)\s+not\s+(?:help|work|fix|solve|answer)",
    r"\bstill\s+(?:not|no|nothing|does\s*n|do\s*n|is\s*n|wo\s*n|won|can|broken|the\s+same|"
    r"getting|happening|failing|stuck|waiting)",
    r"\bnot\s+(?:working|solved|fixed|resolved|helpful)\b",
    r"\b(?:already\s+(?:tried|did|done)|no\s+luck|same\s+(?:problem|error|issue))\b",
)
_SOLVED = _any(
    r"\b(?:that|this|it)\s+(?:did\s+it|did\s+the\s+trick|worked|works|fixed\s+it|solved\s+it|"
    r"helped|sorted\s+it)\b",
    r"\b(?:got\s+it\s+(?:sorted|working|fixed)|all\s+sorted|sorted\s+now|(?:all\s+)?good\s+now|"
    r"works\s+now|working\s+now|(?:problem|issue)\s+(?:solved|resolved|fixed)|figured\s+it\s+out|"
    r"found\s+it|you\s+can\s+close)\b",
    r"^\W*(?:perfect|great|awesome|brilliant|excellent|solved|sorted|fixed|done)\b[\s,.!]*"
    r"(?:thanks|thank\s+you|cheers|works|it\s+works|that\s+works)",
    r"\b(?:hat\s+geklappt|funktioniert\s+jetzt|ça\s+marche|c'est\s+bon|ya\s+funciona)\b",
)
# Sentences that address the bot's instructions instead of asking something.
_INJECTION = _any(
    r"\bignore\s+(?:all\s+|any\s+|your\s+|the\s+)?(?:previous\s+|prior\s+|above\s+)?"
    r"(?:instructions|rules|prompt)",
    r"\b(?:disregard|forget)\s+(?:all\s+|your\s+|the\s+)?(?:previous\s+|prior\s+)?"
    r"(?:instructions|rules|prompt)",
    r"^\s*(?:system|assistant|developer)\s*:",
    r"\byou\s+are\s+now\b",
    r"\b(?:admin|developer|god|debug)\s+mode\b",
    r"\b(?:system\s+prompt|new\s+instructions)\b",
    r"\b(?:close|resolve|mark)\s+(?:this|the)\s+(?:ticket|conversation|chat)\b",
    r"\bmark\s+(?:this|it)\s+(?:as\s+)?(?:solved|resolved|done)\b",
)
_SENTENCES = re.compile(r"(?<=[.!?。！？])\s*|\n+")
# What a question looks like once thanks and confirmations are cut out.
_QUESTION_WORD = re.compile(
    # "？" is the full-width question mark of Japanese and Chinese.
    r"[?？]|\b(?:how|what|where|when|why|which|who|can|could|is|are|do|does|will|should)\b",
    re.IGNORECASE,
)
_LEADING_LINK = re.compile(r"^\W*(?:also|and|oh|btw|by\s+the\s+way|one\s+more\s+thing)\b\W*", re.IGNORECASE)


def read(text: str) -> Reading:
    """The intents of one customer message and the question left in it."""
    evidence: dict[str, str] = {}
    kept: list[str] = []
    for sentence in (s.strip() for s in _SENTENCES.split(text)):
        if not sentence:
            continue
        found = _INJECTION.search(sentence)
        if found:
            evidence.setdefault(Intent.INJECTION.value, found.group(0))
            continue
        kept.append(sentence)
    clean = " ".join(kept)
    intents: set[Intent] = {Intent.INJECTION} if Intent.INJECTION.value in evidence else set()
    checks = (
        (Intent.ASKS_FOR_PERSON, _ASKS_FOR_PERSON),
        (Intent.COMPLAINT, _COMPLAINT),
        (Intent.NOT_SOLVED, _NOT_SOLVED),
        (Intent.THANKS, _THANKS),
    )
    for intent, pattern in checks:
        found = pattern.search(clean)
        if found:
            intents.add(intent)
            evidence[intent.value] = found.group(0)
    if Intent.NOT_SOLVED not in intents:
        found = _SOLVED.search(clean)
        if found:
            intents.add(Intent.SOLVED)
            evidence[Intent.SOLVED.value] = found.group(0)
    question = _question(kept)
    return Reading(frozenset(intents), question, evidence)


def _question(sentences: list[str]) -> str:
    """The sentences that still ask something once thanks and confirmations are removed."""
    left = []
    for sentence in sentences:
        stripped = _THANKS.sub(" ", sentence)
        stripped = _SOLVED.sub(" ", stripped)
        stripped = _LEADING_LINK.sub("", stripped.strip(" ,.!-"))
        if len(re.findall(r"\w+", stripped)) >= 2 or re.search(r"[\u3040-\u9fff]{2,}", stripped):
            left.append(stripped.strip())
    return " ".join(left)


def asks_something(reading: Reading) -> bool:
    """Whether what is left reads as a question or request (not a bare remark)."""
    return bool(reading.question and _QUESTION_WORD.search(reading.question))


def strip_instructions(text: str) -> tuple[str, int]:
    """``text`` that is material, not the customer's words (a file's contents), with every
    sentence that tries to instruct the bot cut out and marked; lines kept as they were. Also
    how many were cut."""
    cut = 0
    lines = []
    for line in text.split("\n"):
        if not _INJECTION.search(line):
            lines.append(line)
            continue
        kept = []
        for sentence in _SENTENCES.split(line):
            if _INJECTION.search(sentence):
                cut += 1
                kept.append("[instruction removed]")
            elif sentence:
                kept.append(sentence)
        lines.append(" ".join(kept))
    return "\n".join(lines), cut
