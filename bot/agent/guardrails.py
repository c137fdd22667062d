"""Guardrails, configured per agent (``[agents.guardrails]``):

- input rules — keywords (whole words), regular expressions, or a yes/no question a remote model
  answers about the message — each with a ``triggered_text`` and an action: ``block`` (reply
  with the text, the turn stops with ``guardrail``) or ``escalate`` (reply with the text and hand
  the thread to a human);
- PII redaction of everything sent to a REMOTE model: emails, phone numbers, card numbers (only
  digit runs that pass the Luhn check) and extra patterns. The offline responder runs in-process,
  so it sees the customer's text unredacted; the run's audit record always keeps the original;
- an output rule: blocked terms (the whole reply is replaced: a half-censored answer can still
  say the wrong thing) and a maximum length (cut at a word boundary).

Example::

    [agents.guardrails]
    input = [{ name = "threats", keywords = ["bomb", "kill"], action = "escalate",
               triggered_text = "I'm passing this to our team." }]
    pii = { emails = true, phones = true, cards = true }
    output = { blocked_terms = ["CompetitorCo"], max_chars = 1500 }
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

log = logging.getLogger(__name__)

Judge = Callable[[str, str], Awaitable[bool]]

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# Candidate card numbers: 13–19 digits, optionally grouped by spaces or dashes.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# Candidate phone numbers: an optional +, then digits with the usual separators.
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d[\d ().-]{6,}\d(?!\w)")
# What every match of the two above holds. Each starts with a digit, which the regular
# expression engine finds by a quick scan; the patterns themselves, which start with a
# look-behind, try every position of the text. A text without one (most of a system prompt
# and its passages) is not scanned by them.
_CARD_CORE = re.compile(r"\d(?:[ -]?\d){12}")
_PHONE_CORE = re.compile(r"\d[\d ().-]{6,}\d")


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return patterns


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputRule(_Model):
    """One input check; it triggers when any of its keywords, patterns or its judge match."""

    name: str = "input rule"
    keywords: list[str] = []
    patterns: list[str] = []
    judge: str | None = Field(
        default=None,
        description="A yes/no question about the customer's message, answered by the model.",
    )
    triggered_text: str
    action: Literal["block", "escalate"] = "block"
    priority: Literal["low", "normal", "high", "urgent"] = "normal"

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        return _check_patterns(patterns)

    @model_validator(mode="after")
    def _has_a_test(self) -> InputRule:
        if not (self.keywords or self.patterns or self.judge):
            raise ValueError(f"guardrail {self.name!r} needs keywords, patterns or a judge")
        return self

    @cached_property
    def _matcher(self) -> re.Pattern[str] | None:
        alternatives = [rf"(?<!\w){re.escape(k)}(?!\w)" for k in self.keywords if k.strip()]
        alternatives += [f"(?:{p})" for p in self.patterns]
        return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

    def matches(self, text: str) -> bool:
        matcher = self._matcher
        return matcher is not None and matcher.search(text) is not None


class PiiSettings(_Model):
    enabled: bool = True
    emails: bool = True
    phones: bool = True
    cards: bool = True
    patterns: list[str] = []

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        return _check_patterns(patterns)


class OutputRule(_Model):
    blocked_terms: list[str] = []
    blocked_text: str = (
        "I'm sorry, I can't help with that here. A member of our team can follow up if needed."
    )
    max_chars: int | None = Field(default=None, ge=20)

    @cached_property
    def _blocked(self) -> re.Pattern[str] | None:
        terms = [rf"(?<!\w){re.escape(t)}(?!\w)" for t in self.blocked_terms if t.strip()]
        return re.compile("|".join(terms), re.IGNORECASE) if terms else None

    @property
    def active(self) -> bool:
        return bool(self.blocked_terms) or self.max_chars is not None


class Guardrails(_Model):
    input: list[InputRule] = []
    pii: PiiSettings = PiiSettings()
    output: OutputRule = OutputRule()

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Guardrails:
        return cls.model_validate(data or {})

    # -- input ------------------------------------------------------------------------------

    async def check_input(self, text: str, judge: Judge | None) -> InputRule | None:
        """The first rule the message triggers, or None. Model-judged rules are asked only when a
        ``judge`` is given (a remote model); a judge that fails lets the message through."""
        for rule in self.input:
            if rule.matches(text):
                return rule
        if judge is None:
            return None
        for rule in self.input:
            if rule.judge is None:
                continue
            try:
                if await judge(rule.judge, text):
                    return rule
            except Exception as exc:  # noqa: BLE001 - fail open, and say so
                log.warning(
                    "guardrail %r could not be judged (%s); letting the message through",
                    rule.name,
                    type(exc).__name__,
                )
        return None

    # -- PII --------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with the configured kinds of personal data replaced by placeholders."""
        pii = self.pii
        if not pii.enabled or not text:
            return text
        if pii.emails and "@" in text:  # an address has one: a text without is not scanned
            text = _EMAIL.sub("[email]", text)
        if pii.cards and _CARD_CORE.search(text):
            text = _CARD.sub(_card_or_keep, text)
        if pii.phones and _PHONE_CORE.search(text):
            text = _PHONE.sub(_phone_or_keep, text)
        for pattern in pii.patterns:
            text = re.sub(pattern, "[redacted]", text)
        return text

    # -- output -----------------------------------------------------------------------------

    def check_output(self, text: str) -> OutputVerdict:
        rule = self.output
        blocked = rule._blocked
        if blocked is not None and blocked.search(text):
            return OutputVerdict(rule.blocked_text, blocked=True)
        if rule.max_chars is not None and len(text) > rule.max_chars:
            cut = text[: rule.max_chars - 1]
            if " " in cut[len(cut) // 2 :]:
                cut = cut.rsplit(" ", 1)[0]
            return OutputVerdict(cut.rstrip() + "…", truncated=True)
        return OutputVerdict(text)


@dataclass(frozen=True, slots=True)
class OutputVerdict:
    text: str
    blocked: bool = False
    truncated: bool = False


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_or_keep(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "[card number]"
    return match.group(0)


def _phone_or_keep(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = re.sub(r"\D", "", candidate)
    # 9–15 digits: shorter runs are order numbers, dates and prices more often than phones.
    if 9 <= len(digits) <= 15 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", candidate.strip()):
        return "[phone]"
    return candidate
