"""What a question means beyond its literal words: support vocabulary and negated topics.

- Customers and help centers name the same things differently ("stop my membership" / "Cancel
  your subscription", "money back" / "refund"). ``EQUIVALENTS`` is a small hand-written table of
  interchangeable English support phrasings, written from general support language (no product,
  no domain): a question that uses one member also searches the others, at a lower weight, so a
  paraphrase with no shared word still finds its article and a literal match still wins.
- "I don't want a refund, I want to switch" is about switching: the words a customer says they
  do *not* want (after "don't want", "not looking to", "instead of", "rather than") are marked,
  and the index weighs them less.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Container
from dataclasses import dataclass

from bot.knowledge import analysis

# Groups of interchangeable phrasings. A member is matched in a question word by word after
# stemming ("cancelling my membership" has "cancel" and "membership"); multi-word members match
# as a run of words ("money back", "log in"). Keep entries general: they run on help centers in
# domains nobody has seen, so a word belongs here only if support questions use it that way in
# any product.
EQUIVALENTS: tuple[tuple[str, ...], ...] = (
    ("cancel", "cancellation", "terminate", "termination", "unsubscribe", "discontinue",
     "quit"),
    ("subscription", "membership"),
    ("refund", "reimburse", "reimbursement", "money back", "repay", "paid back"),
    ("sign in", "log in", "login", "signin", "logon", "log on", "logging in"),
    ("sign up", "signup", "register", "registration", "create an account", "open an account",
     "enrol", "enroll"),
    ("password", "passcode", "passphrase"),
    ("invoice", "receipt", "bill", "billing statement", "expenses", "expense report"),
    ("delete", "remove", "erase", "close my account", "deactivate"),
    ("broken", "not working", "doesn't work", "does not work", "stopped working", "faulty",
     "malfunction", "won't work"),
    ("overcharged", "overcharge", "charged twice", "double charged", "wrong amount",
     "incorrect charge", "dispute"),
    ("price", "cost", "fee", "pricing", "how much", "charge"),
    ("colleague", "coworker", "co-worker", "teammate", "team member", "staff", "employee"),
    ("invite", "add a user", "add users", "add members", "add people", "add a colleague",
     "add colleagues", "add someone"),
    ("book", "booking", "reserve", "reservation"),
    ("change", "update", "edit", "modify"),
    ("upgrade", "downgrade", "switch plan", "change plan", "cheaper plan", "pay less"),
    ("email", "e-mail"),
    ("phone number", "mobile number", "cell number"),
    ("card", "credit card", "debit card", "payment method", "payment details"),
    ("expired", "expiry", "expiration", "expires"),
    ("forgot", "forgotten", "reset", "recover", "locked out"),
    ("slow", "laggy", "lag", "sluggish", "buffering"),
    ("crash", "crashes", "freezes", "frozen", "hangs"),
    ("export", "download a copy", "backup"),
    ("two-factor", "2fa", "two-step", "mfa", "authenticator", "verification code"),
    ("contact", "get in touch", "reach you", "speak to", "talk to", "call us", "call"),
    ("delivery", "shipping", "shipment", "dispatch"),
    ("purchase", "buy", "bought", "order"),
    ("discount", "coupon", "promo code", "promotion code", "voucher"),
    ("outage", "down", "offline", "unavailable"),
    ("notification", "alert", "reminder"),
    ("pause", "suspend", "put on hold", "freeze my"),
    ("transfer", "move", "migrate"),
    ("username", "user name"),
    ("lost", "stolen", "missing"),
    ("renew", "renewal", "renewing", "auto-renew", "recurring"),
    ("trial", "free trial", "try it", "demo"),
    ("history", "past", "statement", "activity"),
    ("upload", "attach", "import"),
    ("app", "application", "mobile app"),
    ("end", "finish"),
    ("repair", "fix"),
    ("error", "bug", "glitch"),
    ("child", "kid", "son", "daughter", "minor", "teenager"),
    ("late", "delay", "delayed"),
    ("arrive", "arrival"),
    ("choose", "select", "pick"),
    ("turn off", "disable", "switch off"),
    ("turn on", "enable", "switch on", "activate"),
    ("reactivate", "reactivation", "resume", "restart", "rejoin", "resubscribe"),
    ("died", "deceased", "bereavement", "death"),
    ("declined", "decline", "rejected", "reject", "refused", "denied"),
    ("appeal", "ask for a review", "reconsider"),
    ("increase", "increased", "rise", "risen", "more expensive"),
    ("payment date", "billing date", "payment day", "collection date", "payday", "pay day"),
)

# One-way: how customers put a thing that help centers name with a group's words. A phrasing
# here makes a question search its group (the group holding the second word), but an article
# that happens to use the phrasing is not searched for when a question uses the group's words:
# "stop paying" means cancelling, while "stop" and "pay" alone mean nothing in particular.
# A phrasing's words may have this many other words between them ("start getting boxes again").
PHRASING_GAP = 2
PHRASINGS: tuple[tuple[str, str], ...] = (
    ("stop paying", "cancel"),
    ("stop renewing", "cancel"),
    ("stop the renewal", "cancel"),
    ("stop being charged", "cancel"),
    ("stop charging", "cancel"),
    ("get anything back", "refund"),
    ("anything back", "refund"),
    ("owed", "refund"),
    ("compensation", "refund"),
    ("compensate", "refund"),
    ("on hold", "pause"),
    ("take a break", "pause"),
    ("never came", "arrive"),
    ("didn't come", "arrive"),
    ("hasn't come", "arrive"),
    ("not come", "arrive"),
    ("turn up", "arrive"),
    ("turned up", "arrive"),
    ("show up", "arrive"),
    ("showed up", "arrive"),
    ("no show", "arrive"),
    ("passed away", "died"),
    ("put to sleep", "died"),
    ("new hire", "colleague"),
    ("new hires", "colleague"),
    ("new starter", "colleague"),
    ("crawling", "slow"),
    ("takes forever", "slow"),
    ("speed up", "slow"),
    ("faster", "slow"),
    ("quicker", "slow"),
    ("come back", "reactivate"),
    ("start again", "reactivate"),
    ("sign up again", "reactivate"),
    ("take the money", "charge"),
    ("take money", "charge"),
    ("take payment", "charge"),
    ("comes out of", "payment method"),
    ("turned down", "declined"),
    ("gone up", "increase"),
    ("went up", "increase"),
    ("go up", "increase"),
    ("goes up", "increase"),
    ("going up", "increase"),
    ("end", "cancel"),  # "how do I end mine with you"
    ("changed my mind", "cancel"),
    ("change my mind", "cancel"),
    ("cooling off", "cancel"),
    ("challenge", "appeal"),
    ("contest", "appeal"),
    ("disagree", "appeal"),
    ("come out of", "payment method"),
)

# English verbs and nouns that carry little of a question's topic on their own: "can my
# deliveries come on saturdays", "what time does the courier come" are not about an article
# titled "Coming back". They still count, less (the index's ``LIGHT_WEIGHT``).
# fmt: off
LIGHT_WORDS = frozenset([
    "come", "comes", "came", "coming", "take", "takes", "took", "taken", "taking", "put", "puts",
    "putting", "give", "gives", "gave", "given", "giving", "keep", "keeps", "kept", "keeping",
    "start", "starts", "started", "starting", "happen", "happens", "happened", "happening",
    "see", "sees", "saw", "seen", "look", "looks", "looked", "looking", "find", "finds", "found",
    "say", "says", "said", "thing", "things", "stuff", "bit", "lot", "lots", "sort", "kind",
    "done",
])
# fmt: on

# After one of these, the next words name something the customer does not want.
_NEGATION = re.compile(
    r"\b(?:(?:do|does|did)\s*n[o']?t|dont|didnt|not|never|no\s+longer)\s+"
    r"(?:(?:really|actually|even|just)\s+)?"
    r"(?:want|wanna|need|looking|trying|asking|planning|going|mean|intend|wish|interested)\b"
    r"|\binstead\s+of\b|\brather\s+than\b",
    re.IGNORECASE,
)
# A negation's reach ends with its clause.
_CLAUSE = re.compile(r"[,.;:!?\n]+|\s(?:but|so|because)\s", re.IGNORECASE)
# Words that start what the customer does want ("…a refund, I want to switch").
_SCOPE_ENDS = frozenset(["i", "we", "but", "just", "only", "instead", "rather"])
NEGATION_REACH = 2  # content words
# Not wanting to go on doing something is wanting to stop it: "I don't want to keep paying"
# asks how to stop paying, and "paying" is what it is about, not what the customer rejects.
_GOING_ON = re.compile(r"\s+(?:to\s+)?(?:keep|continue|carry\s+on|go\s+on)\b", re.IGNORECASE)
# Skipped when a phrasing is matched: "add my colleagues" is "add colleagues".
_DETERMINERS = frozenset(["a", "an", "the", "my", "our", "your", "his", "her", "their", "this"])


@dataclass(frozen=True, slots=True)
class Expansion:
    """A term the question did not use, searched because an equivalent phrasing was."""

    term: str
    weight: float  # share of a word's own weight, before the index's EXPANSION_WEIGHT
    sources: tuple[str, ...]  # the question's terms it stands in for
    # Found only through a one-way phrasing (``PHRASINGS``): the sources' literal senses are
    # not what the customer means ("passed away" is about neither passing nor being away).
    idiom: bool = False


# Where a customer moves on to a new question: "thanks, but I also need…", "that worked! also,
# how do I…", "one more thing:". What they said before it is settled.
_MOVES_ON = re.compile(
    r"\b(?:thanks|thank\s+you|cheers|great|perfect|that\s+(?:worked|did\s+it|helped))\b"
    r"[\s,.!]*(?:(?:but|and|ok|okay)\b[\s,]*)?(?:(?:i|we)\s+)?(?:also|another|one\s+more)\b"
    r"|(?:^|[.!?]\s+)(?:one\s+more\s+thing|another\s+question|also)\b[\s,:]*"
    r"(?=(?:how|what|where|when|why|which|who|can|could|is|are|do|does|will|should"
    r"|(?:i|we)\s+(?:also\s+)?(?:need|want|have))\b)",
    re.IGNORECASE,
)


def settled_end(text: str) -> int:
    """Where the part of ``text`` a customer has moved on from ends (0 when they have not)."""
    found = None
    for found in _MOVES_ON.finditer(text):
        pass
    return found.start() if found is not None else 0


def marked_tokens(text: str, lang: str) -> list[tuple[str, bool]]:
    """``analysis.tokens`` of ``text`` with, per token, whether a negation covers it."""
    out: list[tuple[str, bool]] = []
    for clause in _CLAUSE.split(text):
        match = _NEGATION.search(clause)
        if match is None:
            out.extend((t, False) for t in analysis.tokens(clause))
            continue
        # (Only after a "not": "pause rather than keep paying" turns paying away.)
        going_on = _GOING_ON.match(clause, match.end())
        if going_on is not None and not match.group().lower().startswith(("instead", "rather")):
            out.extend((t, False) for t in analysis.tokens(clause[: match.start()]))
            out.append(("stop", False))
            out.extend((t, False) for t in analysis.tokens(clause[going_on.end() :]))
            continue
        out.extend((t, False) for t in analysis.tokens(clause[: match.end()]))
        reach = NEGATION_REACH
        for token in analysis.tokens(clause[match.end() :]):
            if token in _SCOPE_ENDS:
                reach = 0
            content = len(token) >= 2 and not analysis.is_stop_word(token, lang)
            out.append((token, content and reach > 0))
            if content:
                reach -= 1
    return out


@functools.lru_cache(maxsize=1)
def _members() -> list[_Member]:
    """(stemmed words, group, content terms, one-way) per member of ``EQUIVALENTS`` and per
    phrasing of ``PHRASINGS``."""
    out: list[_Member] = []
    group_of: dict[str, int] = {}
    for group, members in enumerate(EQUIVALENTS):
        for member in members:
            group_of.setdefault(member, group)
            out.append(_member(member, group, one_way=False))
    for phrasing, member in PHRASINGS:
        out.append(_member(phrasing, group_of[member], one_way=True))
    return out


def _member(text: str, group: int, *, one_way: bool) -> _Member:
    plain = text.replace("-", "")
    words = tuple(
        stem
        for stem in (analysis.stem(t, "en") for t in re.findall(r"[^\W_]+", plain.lower()))
        if stem not in _DETERMINERS
    )
    return (words, group, tuple(dict.fromkeys(analysis.analyze(plain, "en"))), one_way)


_Member = tuple[tuple[str, ...], int, tuple[str, ...], bool]


@functools.lru_cache(maxsize=1)
def _lookups() -> tuple[dict[str, list[_Member]], dict[int, list[_Member]]]:
    """The members by their first word, and the two-way members by their group."""
    by_first: dict[str, list[_Member]] = {}
    by_group: dict[int, list[_Member]] = {}
    for member in _members():
        if member[0]:
            by_first.setdefault(member[0][0], []).append(member)
        if not member[3]:
            by_group.setdefault(member[1], []).append(member)
    return by_first, by_group


def expansions(stems: list[str], known: Container[str]) -> list[Expansion]:
    """The equivalents of the phrasings a question uses, given its words' English stems in order
    (stop words included, so "log in" and "money back" match as runs), among the terms ``known``
    (the knowledge base's). The equivalents of one phrasing share one word's weight: a group
    with three known members must not outweigh the word the customer wrote."""
    stems = [s for s in stems if s not in _DETERMINERS]
    own = set(stems)
    out: dict[str, Expansion] = {}
    by_first, by_group = _lookups()
    used = [
        (words, g, terms, one_way)
        for first in own
        for words, g, terms, one_way in by_first.get(first, ())
        if _occurs(words, stems, PHRASING_GAP if one_way else 0)
    ]
    for group in sorted({g for _, g, _, _ in used}):
        sources = tuple(
            sorted({t for words, g, terms, _ in used if g == group for t in terms or words})
        )
        # Only a phrasing of several words is an idiom: "compensation" still means itself.
        idiom = all(one_way and len(w) > 1 for w, g, _, one_way in used if g == group)
        weights: dict[str, float] = {}
        for member_words, _, terms, _ in by_group[group]:
            if not terms or set(member_words) <= own:
                continue
            for term in terms:
                if term not in own and term in known:
                    weights[term] = max(weights.get(term, 0.0), 1.0 / len(terms))
        share = 1.0 / math.sqrt(len(weights)) if weights else 0.0
        for term, weight in weights.items():
            previous = out.get(term)
            if previous is None or previous.weight < weight * share:
                out[term] = Expansion(term, weight * share, sources, idiom)
    return list(out.values())


def _occurs(words: tuple[str, ...], stems: list[str], gap: int = 0) -> bool:
    """Whether ``words`` occur in ``stems`` in order, with at most ``gap`` other words between
    neighbours ("stop my membership from renewing" says "stop renewing")."""
    n = len(words)
    if n == 0:
        return False
    if gap == 0 or n == 1:
        return any(tuple(stems[i : i + n]) == words for i in range(len(stems) - n + 1))
    for i, stem in enumerate(stems):
        if stem != words[0]:
            continue
        at, matched = i, 1
        while matched < n:
            window = stems[at + 1 : at + 2 + gap]
            if words[matched] not in window:
                break
            at = at + 1 + window.index(words[matched])
            matched += 1
        if matched == n:
            return True
    return False
