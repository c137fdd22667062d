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

from bot.agent.demands import DAMAGE_CLAIM as _DAMAGE_CLAIM
from bot.agent.demands import DATA_RIGHTS as _DATA_RIGHTS
from bot.agent.demands import DEMAND as _DEMAND
from bot.agent.demands import DOUBLE_CHARGE as _DOUBLE_CHARGE
from bot.agent.demands import LOOKUP as _LOOKUP
from bot.agent.demands import MONEY as _MONEY
from bot.agent.demands import NOT_ME as _NOT_ME
from bot.agent.demands import OUTRAGE as _OUTRAGE
from bot.agent.demands import THREAT as _THREAT
from bot.agent.handover import CASE as _CASE
from bot.agent.handover import PERSON as _PERSON
from bot.agent.outcomes import NOT_SOLVED as _NOT_SOLVED
from bot.agent.outcomes import SOLVED as _SOLVED
from bot.agent.outcomes import THANKS as _THANKS
from bot.agent.phrases import any_of
from bot.agent.scope import BUSINESS_ENQUIRY as _BUSINESS_ENQUIRY
from bot.agent.scope import OUT_OF_SCOPE as _OUT_OF_SCOPE
from bot.agent.sensitive import COMPANY_ACTED as _COMPANY_ACTED
from bot.agent.sensitive import CRISIS as _CRISIS
from bot.agent.sensitive import HARM as _HARM
from bot.agent.sensitive import MISCONDUCT as _MISCONDUCT
from bot.agent.sensitive import SAFETY as _SAFETY
from bot.agent.sensitive import STRANDED as _STRANDED


class Intent(StrEnum):
    ASKS_FOR_PERSON = "asks_for_person"
    SOLVED = "solved"  # thanks, and the problem is solved
    NOT_SOLVED = "not_solved"  # (thanks, but) the answer did not help
    THANKS = "thanks"
    # A short positive acknowledgement with nothing new in it ("perfect, all done now"): after
    # an answer, the customer is wrapping up.
    ACKNOWLEDGED = "acknowledged"
    COMPLAINT = "complaint"  # a formal complaint or a legal threat
    SAFETY = "safety"  # someone threatened or hurt the customer; they do not feel safe
    # About the customer's own record, which no article can know: "check my account", an order
    # or booking number, a specific amount on a specific day.
    ACCOUNT_SPECIFIC = "account_specific"
    INJECTION = "injection"  # text that tries to instruct the bot
    # Not a customer's support question however many of the help center's words it uses: a job
    # application ("are you hiring delivery drivers?").
    OUT_OF_SCOPE = "out_of_scope"
    # A business writing, not a customer: a partnership, a supplier, the press ("we're a vet
    # practice and want to join your direct billing network"). A person answers those.
    BUSINESS_ENQUIRY = "business_enquiry"


@dataclass(frozen=True, slots=True)
class Reading:
    """A message read for intents; ``question`` is what is left to answer (may be empty)."""

    intents: frozenset[Intent]
    question: str
    evidence: dict[str, str] = field(default_factory=dict)

    def has(self, intent: Intent) -> bool:
        return intent in self.intents


_PERSON_NOUN = (
    r"(?:a\s+|an\s+|one\s+of\s+your\s+|your\s+|the\s+|some\s*)?(?:real\s+|actual\s+|live\s+)?"
    r"(?:human(?:\s+being)?|person|people|someone|somebody|agent|representative|rep|operator|"
    r"staff(?:\s+member)?|team\s+member|(?:customer\s+)?support(?:\s+team)?|customer\s+service|"
    r"customer\s+care|help\s*desk|(?:branch\s+|store\s+|duty\s+|area\s+|station\s+)?manager|"
    r"supervisor|advis[eo]r|whoever\s+(?:deals|handles|looks\s+after))"
)
# A person wanted, not a product noun: "an agent seat", "a person's role", "human-readable".
_NOT_PRODUCT = r"\b(?![-'’]|\s+(?:seat|licen[cs]e|account|role|permission|access|view|field)s?\b)"
# Not "user agent", "human-readable", "agents' permissions", "give an agent access": a noun after
# a request verb, or a qualified person ("real person", "live agent").
_ASKS_FOR_PERSON = any_of(
    r"\b(?:talk|speak|chat|get\s+through)\s+(?:to|with)\s+" + _PERSON_NOUN + _NOT_PRODUCT,
    r"\b(?:connect|transfer|escalate|pass|hand|put|get)\s+me\s+(?:through\s+|in\s+touch\s+)?"
    r"(?:to|with|over\s+to)\s+" + _PERSON_NOUN + _NOT_PRODUCT,
    # The case handed on to staff, not the thing to a third party: "can I transfer it to someone
    # else", "hand it over to somebody to collect" are about the customer's booking or parcel.
    # A department by name: "pass me on to billing", "put me through to the complaints team".
    r"\b(?:pass|put|transfer|send|forward|connect)\s+me\s+(?:on\s+|through\s+|over\s+|back\s+)?"
    r"to\s+"
    r"(?:the\s+|your\s+)?(?:billing|accounts?|sales|technical|tech|complaints|retentions?|"
    r"cancellations?|customer\s+relations|claims|loyalty|disputes|fraud)\b",
    r"\b(?:transfer|escalate|pass|hand|put)\s+(?:this|it)\s+(?:through\s+)?(?:to|with|over\s+to)\s+"
    r"(?!(?:a\s+|an\s+)?(?:someone|somebody|person|people)\b)" + _PERSON_NOUN + r"(?!\s+else\b)"
    + _NOT_PRODUCT,
    r"\b(?:i\s+(?:want|need|would\s+like|'d\s+like)|get\s+me|give\s+me|can\s+i\s+(?:get|have))"
    r"\s+(?:to\s+(?:talk|speak)\s+to\s+)?(?:a|an|your)\s+(?:real\s+|actual\s+|live\s+)?"
    r"(?:human|person|agent|representative|operator|manager|supervisor|advis[eo]r)" + _NOT_PRODUCT,
    # Not "a real person's name", nor asked whether one reviews something ("does a real person
    # check the photos I upload?").
    r"\b(?:real|actual|live)\s+(?:human|person|people|agent)\b(?![-'’])(?!\s+(?:actually\s+)?"
    r"(?:check|read|review|see|look|process|approve|handle|verif)\w*)",
    r"\bhuman\s+(?:being|agent|support)\b",
    # Not when it asks when, or whether for free, someone can be reached ("is there someone I can
    # speak to tonight without paying for the emergency vet"): that asks about a service.
    r"\b(?:human|person|someone|somebody|agent)\s+(?:i|we)\s+(?:can|could)\s+(?:talk|speak|chat)"
    r"(?![^.?!]*\b(?:tonight|overnight|at\s+night|out\s+of\s+hours|after\s+hours|24/7|"
    r"24\s+hours|at\s+(?:the\s+)?weekends?|on\s+(?:the\s+)?weekends?|for\s+free|"
    r"free\s+of\s+charge|without\s+paying)\b)",
    r"\bcontact\s+(?:a\s+)?(?:real\s+)?(?:human|person)\b",
    # A message that is only the noun: "human please", "agent!", "operator".
    r"^\W*(?:a\s+)?(?:real\s+)?(?:human|person|agent|operator|representative)"
    r"(?:\s+(?:please|pls|plz|now))?\W*$",
    r"\b(?:can|could|would|will|please|pls)\s+(?:someone|somebody|a\s+(?:person|human|"
    r"representative|manager|rep)|an\s+agent|you|u|one\s+of\s+(?:you|your\s+\w+))\b[^.?!]{0,30}?"
    r"\b(?:(?:call|phone|ring)\s+me|give\s+me\s+a\s+(?:call|ring|bell))\b",
    r"\b(?:have|get)\s+(?:someone|somebody|a\s+person)\s+(?:to\s+)?(?:call|contact|email|phone|"
    r"get\s+back\s+to)\s+me\b",
    r"\b(?:get|request|arrange|want|need|like)\s+a\s+call[\s-]?back\b",
    r"\b(?:someone|somebody)\s+(?:does\s*n['’]?t|doesnt|does\s+not|to)\s+(?:call|ring|phone)\s+"
    r"(?:me|us)\s+back\b",
    r"\b(?:need|want|like)\s+(?:someone|somebody|a\s+person)\s+to\s+(?:call|phone|ring)\s+me\b",
    r"\b(?:get|have|speak\s+to)\s+(?:someone|somebody|a\s+person|an?\s+agent)\s+on\s+the\s+"
    r"(?:phone|line)\b",
    r"(?:\bnot|n[’']t|\bno\s+more)\s+(?:want\s+to\s+)?(?:talk|speak|chat)(?:ing)?\s+(?:to|with)\s+"
    r"(?:a\s+|the\s+|this\s+)?(?:bot|robot|machine|ai)\b",
    r"\b(?:please\s+escalate|escalate\s+(?:this|it|me|my\s+(?:case|ticket|issue)))\b",
    r"\b(?:get|give|find|send)\s+me\s+(?:someone|somebody|a\s+person)\b",
    r"\b(?:someone|somebody|anyone|anybody|a\s+person)\s+(?:from|on|in)\s+your\s+(?:\w+\s+)?"
    r"(?:team|staff|company|support|department|office)\b",
    r"\bsomeone\s+who\s+can\s+(?:actually\s+|really\s+)?(?:help|look|check|sort)\b",
    # Wanted to look at their case, not told how: "the app rejected my claim. i want someone to
    # actually look at it" (not "can someone else collect it for me").
    r"\b(?:want|need|get)\s+(?:someone|somebody|a\s+person)\s+to\s+(?:actually\s+|really\s+|"
    r"properly\s+)?(?:look\s+(?:at|into)|check|review|investigate|sort\s+out)\s+(?:it|this|that|"
    r"my\s+(?:case|claim|complaint|account))\b",
    # The answers themselves are rejected: "stop sending me help articles".
    r"\bstop\s+sending\s+(?:me\s+(?:the\s+same\s+|more\s+|these\s+|those\s+)?(?:help\s+)?|"
    r"(?:the\s+same\s+)?help\s+)(?:articles?|links?)\b",
    r"\b(?:mit\s+einem\s+(?:menschen|mitarbeiter)|einen\s+mitarbeiter)\b",
    r"\b(?:parler\s+(?:à|a)\s+(?:un|une|quelqu'un)|un\s+conseiller)\b",
    r"\bhablar\s+con\s+(?:una?\s+)?(?:persona|agente|humano|alguien)\b",
    r"\bparlare\s+con\s+(?:un\s+|una\s+|qualcuno)(?:operatore|persona|umano)?",
    r"\bfalar\s+com\s+(?:um\s+|uma\s+|alguém)(?:atendente|pessoa|humano)?",
    r"\bmet\s+een\s+(?:medewerker|mens)\b",
    r"(?:担当者|オペレーター|人間と話)",
)
_COMPLAINT = any_of(
    r"\b(?:lawyer|attorney|solicitor|lawsuit|legal\s+action|take\s+(?:you|this|it)\s+to\s+court)\b",
    r"\bsue\s+(?:you|them|your)\b",
    r"\b(?:going\s+to|gonna|will|'ll)\s+sue\b",
    # Announced, not asked about ("should i just do a chargeback?" asks how disputes work), nor
    # reported with a question about it ("i raised a chargeback last week, roughly how long
    # does that usually take").
    r"(?:^|[.!?]\s+)(?!(?:should|shall|can|could|do|does|would|will|how|what|is|are)\b)"
    r"[^.!?]*?\bchargeback\b(?![^.!?]*\b(?:how|what|when|where|why|which)\b)",
    r"\b(?:i['’]?ll|i\s+will|going\s+to|gonna|otherwise|or\s+else)\b[^.!?]*?\bchargeback\b",
    r"\b(?:formal|official)\s+complaint\b",
    # Not asked how: "how do i make a complaint?" is answered by the complaints article.
    r"(?<!\bhow\sdo\si\s)(?<!\bhow\scan\si\s)(?<!\bhow\sto\s)(?<!\bwhere\sdo\si\s)"
    r"(?<!\bwhere\scan\si\s)(?<!\bhow\sdo\swe\s)"
    r"\b(?:fil|lodg|mak|rais|submitt?)(?:e|es|ed|ing)\s+(?:a\s+|an\s+)?(?:formal\s+|official\s+)?"
    r"complaint\b",
    r"\breport\s+(?:you|this|your\s+company)\s+to\b",
    # Announced: "I'm reporting you", "I'll be reporting your company" (not "I'm reporting a
    # fault", "I'll report you the meter reading").
    r"\b(?:i['’]?m|i\s+am|i['’]?ll|i\s+will|going\s+to|gonna)\s+(?:be\s+)?report(?:ing)?\s+"
    r"(?:you|your\s+(?:company|business|firm))\b(?!\s+(?:a|an|the|my|our)\b)",
    r"\b(?:disput|revers)(?:e|ed|ing)\s+(?:this|it|the\s+(?:charge|payment))\s+with\s+(?:my\s+)?"
    r"(?:bank|card)",
    r"\b(?:consumer\s+protection|ombudsman|small\s+claims|trading\s+standards)\b",
    # A demand, not a question about a policy: "I want compensation for the damage".
    r"\b(?:want|demand|expect|deserve|claim|entitled\s+to)\s+(?:some\s+|full\s+|financial\s+|"
    r"proper\s+)?compensation\b|\bcompensate\s+(?:me|us)\b",
    # About how a person treated them: "the woman I spoke to was really rude and hung up on me".
    r"\b(?:was|were|been|being)\s+(?:really\s+|very\s+|so\s+|extremely\s+|incredibly\s+|"
    r"quite\s+)?(?:rude|dismissive|condescending|patroni[sz]ing)\b",
    r"\b(?:hung|hangs?|put\s+(?:the\s+)?(?:phone|receiver)\s+down)\s+(?:up\s+)?on\s+me\b",
    r"\bwhat\s+(?:exactly\s+)?(?:are|will)\s+you\s+(?:going\s+to\s+|gonna\s+)?do\s+about\s+"
    r"(?:it|this|that)\b",
    r"\b(?:anwalt|klage|rechtliche\s+schritte|beschwerde|avocat|plainte|abogado|demanda|"
    r"reclamación|queja)\b",
)
# A record of the customer's own: the bot cannot look it up, a person can.
_RECORD = (
    r"(?:account|order|booking|payment|charge|invoice|subscription|refund|ticket|case|"
    r"transaction|reservation|ride|trip|delivery|parcel)"
)
_DATE = (
    r"(?:\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
    r"|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\s+\d{1,2}(?:st|nd|rd|th)?\b"
    r"|\b\d{1,2}[/.]\d{1,2}(?:[/.]\d{2,4})?\b|\b\d{4}-\d{2}-\d{2}\b)"
)
# An amount with no currency, named as a charge: "charged 12.40 extra".
_CHARGED = (
    r"\b(?:charged|billed|debited|paid|taken|took|refunded|deducted)\s+(?:me\s+)?"
    r"(?:an?\s+)?(?:extra\s+|additional\s+)?\d+[.,]\d{2}\b"
)
# A day named as one in the past: "on the 3rd", "on Tuesday", "yesterday".
_DAY = (
    r"(?:\b(?:on|since)\s+the\s+\d{1,2}(?:st|nd|rd|th)\b|\b(?:on|last|since)\s+"
    r"(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\byesterday\b|\bthis\s+morning\b|"
    r"\blast\s+night\b)"
)
# Weeks gone by ("3 weeks ago", "a fortnight") and what was to happen has not ("the refund
# still isn't on my card", "you never released it"; not "still haven't decided", "I never used").
_LONG_WAIT = (
    r"(?:\b(?:\d+|two|three|four|five|six|seven|eight|several|many)\s+(?:weeks?|months?)\b|"
    r"\ba\s+(?:fortnight|month)\b|\bweeks\s+(?:ago|now|later)\b)"
)
_NOT_HAPPENED = (
    r"(?:\bstill\s+(?:is\s*n[o'’]?t|isnt|has\s*n[o'’]?t|hasnt|have\s*n[o'’]?t|havent|have\s+not|"
    r"not)\s+(?:on|in|here|there|arrived|come|came|been|shown|showed|appeared|back|through|"
    r"received|credited|refunded|paid|released|processed|got|gotten|had|heard)\b|\bstill\s+(?:nothing|waiting|pending|no\s+\w+)\b|"
    r"\b(?:you|they|it)\s+never\s+(?:\w+ed|came|got|sent|paid)\b|"
    r"\bno\s+(?:refund|money|payment|reply|response|answer)\b|\bnothing\s+(?:yet|so\s+far)\b)"
)
_AMOUNT = f"(?:{_MONEY}|{_CHARGED})"
_SPECIFIC = rf"(?:{_MONEY}|{_DATE}|{_DAY}|\b\d+[.,]\d{{2}}\b)"
_WHEN = f"(?:{_DATE}|{_DAY})"
_ACCOUNT_SPECIFIC = any_of(
    # Asked of the bot ("can you check…", "please look into…"), not "how do I check my account".
    r"\b(?:(?:can|could|would|will)\s+(?:you|someone|somebody)|please)\s+(?:please\s+)?"
    r"(?:check|look\s+(?:at|into|up)|investigate|pull\s+up)\s+(?:why\s+|what\s+happened\s+"
    r"(?:to|with)\s+)?(?:my|our)\s+(?:\w+\s+)?" + _RECORD,
    r"\b(?:order|booking|invoice|ticket|case|reference|ref|transaction|confirmation|receipt|"
    r"claim|policy|return|application|shipment|parcel|tracking)"
    r"\s*(?:number|no\.?|#|id)?(?:\s+(?:is|was))?\s*[:#(]?\s*"
    # A number of four digits or more, but not a year ("policy 2024").
    r"(?:[A-Z]{1,4}-?\d{4,}|(?!(?:19|20)\d\d\b)\d{4,})\b",
    # A code after a word that names a record ("ID SH-7F3K-29QD", "payout ID PO-5521"): three
    # digits at least, so "my account 2FA" is no code.
    r"\b(?:id|ref|reference|account|payout|member(?:ship)?|customer|contract)\s*"
    r"(?:number|no\.?|#|id)?(?:\s+(?:is|was))?\s*[:#]?\s*(?=(?:[a-z-]*\d){3})[a-z0-9]{2,}"
    r"(?:-[a-z0-9]+)*\b",
    r"#\s?\d{4,}\b",
    _AMOUNT + r".{0,60}?" + _WHEN,
    _WHEN + r".{0,60}?" + _AMOUNT,
    # Charged more than once, with the amount or the day: "charged twice on the 1st, 34.99".
    _DOUBLE_CHARGE + r"[^?]{0,80}?" + _SPECIFIC,
    _SPECIFIC + r"[^?]{0,80}?" + _DOUBLE_CHARGE,
    # Whether something of theirs happened yet: "has my replacement hub been posted yet?".
    r"\b(?:has|have|did|is|was|were)\s+(?:my|our)\s+(?:\w+\s+){0,2}?(?:been\s+|got\s+|gotten\s+)?"
    r"(?:posted|shipped|sent|dispatched|processed|approved|received|refunded|cancell?ed|"
    r"delivered|confirmed|credited|activated|paid|gone\s+through|go\s+through|went\s+through)\b",
    # Something the company is to do on its side: "can you fix it in your system?", "can you send
    # one to hr@example.com?".
    r"\bin\s+your\s+(?:system|records?|database)\b",
    r"\b(?:(?:can|could|would|will)\s+(?:you|someone|somebody)|please)\s+(?:please\s+)?"
    r"(?:send|email|e-mail|forward|post|mail)\b[^.?!]{0,60}?\bto\s+[\w.+-]+@[\w-]+\.[\w.]+",
    # A document only the company can issue for this customer: "a letter from you confirming my
    # dog has been insured since 2021", "can you send me a letter confirming…" (not "can I get a
    # letter confirming my cover from the app?": a how-to).
    # Asked for, not received ("I got an email from you saying my card expired" is a how-to).
    r"\b(?:need|needs|want|wants|require|requires|requested|asking\s+for|ask\s+for)\s+(?:a\s+|an\s+|"
    r"some\s+)?(?:written\s+|official\s+|signed\s+)?(?:letter|confirmation|statement|"
    r"certificate|proof|document)\s+from\s+(?:you|your\s+(?:company|team|side)|the\s+company)\b"
    r"[^.?!]{0,30}?\b(?:confirming|stating|saying|that|to\s+(?:say|confirm|show|prove))\b",
    r"\b(?:can|could|would|will)\s+(?:you|someone|somebody)\s+(?:please\s+)?(?:send|write|issue|"
    r"provide|give|email|post)\s+(?:me|us|my\s+\w+)?\s*(?:with\s+)?(?:a|an)\s+(?:\w+\s+)?"
    r"(?:letter|confirmation|statement|certificate)\s+(?:confirming|stating|saying|that|to\s+"
    r"(?:say|confirm|show|prove))\b",
    # Overdue: an article says how long it usually takes; a person checks the case.
    _LONG_WAIT + r"[^?]{0,80}?" + _NOT_HAPPENED,
    _NOT_HAPPENED + r"[^?]{0,80}?" + _LONG_WAIT,
    # A reference code ("agreement RA-77812", case-sensitive), not a product model after an
    # article or "my" ("the TX-1000 and TX-2000", "my TX-1000").
    r"(?-i:(?<!\bthe\s)(?<!\ba\s)(?<!\ban\s)(?<!\band\s)(?<!\bor\s)(?<!\bvs\s)(?<!\bmy\s)"
    r"\b[A-Z]{1,4}-\d{4,}\b)",
    # Asked to put something right on their record: "please unlock it", "please fix this",
    # "can you reverse the charge" (not "please delete my account": that is self-service).
    r"\b(?:(?:can|could|would|will)\s+(?:you|someone|somebody)|please|pls|plz)\s+(?:please\s+|just\s+)?"
    r"(?:fix|unlock|unblock|reverse|waive|correct)\s+(?:it|this|that|them|my|our)\b",
    # Money back demanded for one thing ("I want the late fee refunded"; not "can I get…?").
    r"\b(?:i|we)\s+(?:want|need|demand|expect)\s+(?:the|my|our|this|that|one|both|it|them|half)"
    r"\s+(?:\w+\s+){0,6}?(?:refunded|reimbursed|reversed|waived|credited\s+back)\b",
    r"\b(?:i|we)\s+(?:want|need|demand|expect)\s+(?:my\s+|our\s+|some\s+|the\s+)?(?:money\s+back|"
    r"a\s+(?:partial\s+|full\s+)?refund)\s+for\s+(?:the|my|our|this|that|these|those|\d+)\b",
    # Activity they did not make: "a booking on it i never made", "someone changed my email".
    r"\b(?:someone|somebody)\s+(?:else\s+)?(?:has\s+)?(?:changed|accessed|hacked|used|logged\s+"
    r"(?:in|into)|got\s+into|took\s+over)\s+(?:(?:the|my|our)\s+\w+\s+(?:on|of|in|for)\s+)?"
    r"(?:my|our)\b",
    r"\b(?:my|our)\s+(?:account|profile)\s+(?:was|has\s+been|got|is)\s+(?:hacked|compromised)\b",
    r"\b" + _RECORD + r"s?\s+(?:on\s+(?:it|my\s+\w+)\s+)?(?:that\s+)?(?:i|we)\s+(?:never|did\s*n[o'’]?t|"
    r"did\s+not)\s+(?:made|make|book|booked|order|ordered|place|placed|authori[sz]e|authori[sz]ed)\b",
    # Told, not asked, to put their record right: "my account got banned for no reason. unban
    # me", "charged again after i cancelled. refund me", "blocked, unblock it right now" (not
    # "how do i unblock it?", "can you refund me if…": a clause that starts with the verb).
    r"(?:^|[.!,;]\s*)(?:just\s+|please\s+|pls\s+|now\s+)?(?:refund|unban|unblock|reinstate)\s+"
    r"(?:me|us|it|my\s+account)\b(?![^.!?]*\?)",
    # Blamed on the company, about their record: "it was your mistake, i need it removed".
    r"\b(?:it|that|this)\s+was\s+(?:all\s+)?your\s+(?:mistake|fault|error)\b",
    # The company keeps doing something to their account: "you keep charging me".
    r"\byou\s*(?:keep|kept|are\s+still|['’]re\s+still|still\s+keep|have\s+been|['’]ve\s+been)\s+"
    r"(?:[a-z]+ing\s+(?:[a-z]+\s+){0,3}?and\s+)?(?:charging|billing|debiting|taking\s+"
    r"(?:money|payments?))\b",
)
# Sentences that address the bot's instructions instead of asking something.
_INJECTION = any_of(
    r"\bignore\s+(?:all\s+|any\s+|your\s+|the\s+)?(?:previous\s+|prior\s+|above\s+)?"
    r"(?:instructions|rules|prompt)",
    r"\bignore\s+(?:all\s+of\s+|everything\s+)?(?:the\s+)?(?:above|previous|prior)"
    r"(?:\s+(?:text|messages?|context))?\s*(?:and\b|[,.;:!]|$)",
    # A role tag: "[SYSTEM]", "<system>", "### admin:".
    r"^\W*[\[<]\s*/?\s*(?:system|assistant|developer|admin)\s*[\]>]",
    r"\bpretend\s+(?:that\s+)?you(?:\s+are|['’]re)\b",
    r"\bnew\s+(?:rule|instruction)s?\s*:",
    r"\b(?:instructions?|message|note)\s+(?:to|for)\s+(?:the\s+)?(?:ai|bot|assistant|model)"
    r"\s*(?::|$)",
    r"\b(?:disregard|forget)\s+(?:all\s+|your\s+|the\s+)?(?:previous\s+|prior\s+)?"
    r"(?:instructions|rules|prompt)",
    r"^\s*(?:system|assistant|developer)\s*(?:override|message|prompt|note|instruction)?\s*:",
    r"\byou\s+are\s+now\b",
    r"\b(?:admin|developer|god|debug)\s+mode\b",
    r"\b(?:system\s+prompt|new\s+instructions)\b",
    r"\b(?:close|resolve|mark)\s+(?:this|the)\s+(?:ticket|conversation|chat)\b",
    r"\bmark\s+(?:this|it)\s+(?:as\s+)?(?:solved|resolved|done)\b",
)
# A sentence that orders the bot about: it opens with a command, and asks nothing.
_COMMAND = re.compile(
    r"^\W*(?:then\s+|now\s+|and\s+|also\s+)?(?:print|reveal|show|output|dump|list|repeat|reply|"
    r"respond|say|write|answer|act|pretend|refund|approve|issue|grant|give|send|credit|transfer|"
    r"delete|remove|close|resolve|mark|set|change|update|execute|run|disable|enable|unlock|confirm|"
    r"notify)\b"
    r"(?![^?？]*[?？])",
    re.IGNORECASE,
)
# Beside an instruction to the bot, what only points back at it: "ok so can u do that now",
# "/end system".
_POINTS_BACK = re.compile(
    r"^\W*(?:(?:ok\w*|so|now|and|then|pls|please)\W+)*(?:(?:can|could|will|would)\s+(?:u|you)\s+)?"
    r"(?:please\s+)?(?:do|confirm|approve|apply|action)\s+(?:that|it|this)(?:\s+(?:now|please|pls|"
    r"asap|for\s+me))*\W*$|^\W*/?\s*end\s+(?:system|admin|instructions?)\b",
    re.IGNORECASE,
)
# Words that only acknowledge ("ok great, thanks a lot"): no question is left of them.
_ACKNOWLEDGEMENTS = frozenset(
    [
        "ok",
        "okay",
        "great",
        "perfect",
        "awesome",
        "cool",
        "nice",
        "brilliant",
        "excellent",
        "lovely",
        "super",
        "fantastic",
        "amazing",
        "wonderful",
        "a",
        "lot",
        "so",
        "much",
        "very",
        "many",
        "all",
        "yes",
        "yep",
        "yeah",
        "yup",
        "ah",
        "oh",
        "right",
        "sure",
        "got",
        "it",
        "good",
    ]
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|(?<=[.!?])$|(?<=[。！？])\s*|\n+|(?<=>)\s+(?=\w)")
# What a question looks like once thanks and confirmations are cut out: a question mark, an
# interrogative ("how do", "what's", "how long", "why"), or a clause that opens with an auxiliary
# and its subject ("can I…", "is there…", "do you…"). A question word inside a clause is not one:
# "exactly what I needed", "tell me when it's done".
_WH = r"(?:how|what|where|when|which|who|whose)"
_AUX = (
    r"(?:do|does|did|can|could|is|are|was|were|will|would|should|shall|may|might|must|has|have|"
    r"am)(?:\s*n[o'’]?t)?"
)
_SUBJECT = (
    r"(?:i|you|u|we|they|he|she|it|this|that|these|those|there|my|your|our|their|the|any|"
    r"anyone|someone|anybody|somebody|one)"
)
_CLAUSE_START = r"(?:^|[,;:.!()\-–—]\s*|\b(?:and|but|so|also|then|btw|plus)\s+)"
_QUESTION = re.compile(
    # "？" is the full-width question mark of Japanese and Chinese.
    r"[?？]"
    rf"|\b{_WH}\s+{_AUX}\b|\b{_WH}(?:'s|’s|s)\b|\bwhy\b|\bhow\s+come\b"
    # Not what they found out: "my daughter figured out how to get it on the kindle".
    r"|(?<!\bout\s)\bhow\s+(?:long|much|many|often|soon|far|to|about)\b|\bwhat\s+(?:about|if|happens)\b"
    r"|\bwhich\s+\w+\s+(?:is|are|do|does|should|can|will)\b"
    # A question word opening a clause, its object before the auxiliary: "what size box do I
    # need", "and how many days do we get".
    rf"|{_CLAUSE_START}{_WH}\s+(?:\w+\s+){{1,3}}?{_AUX}\s+{_SUBJECT}\b"
    # Not a report that they did it: "did that and it's moved to the 3rd", "did it, thanks".
    # Nor "did the off and on thing, waited ages": a report, with no question mark after it.
    rf"|{_CLAUSE_START}(?!did\s+(?:that|this|it)\s*(?:and\b|,|now\b|already\b|[.!]|$))"
    r"(?!did\s+(?:the|all|everything)\b(?![^?？]*[?？]))"
    rf"{_AUX}\s+{_SUBJECT}\b"
    # A request: "I also need to change my card", "please send the invoice", "tell me how".
    r"|\b(?:i|we)(?:\s+(?:also\s+|still\s+|now\s+)?(?:need|want|would\s+like)|['’]d\s+like)\s+"
    r"(?:to|a|an|the|my|our|some|another|help)\b"
    rf"|{_CLAUSE_START}(?:please|pls|plz|tell\s+me|show\s+me|explain|help\s+me)\b",
    re.IGNORECASE,
)
_LEADING_LINK = re.compile(
    r"^\W*(?:(?:also|and|oh|btw|by\s+the\s+way|one\s+more\s+thing|so|ok|okay|great|perfect|"
    r"awesome|cool|nice|a\s+lot|much|very|many)\b\W*)+",
    re.IGNORECASE,
)
# A short acknowledgement, nothing new in it ("perfect, all done now", "great, that's exactly
# what I needed"): every word is one of these, and at least one is positive or says it is done.
_ACK_POSITIVE = frozenset(
    [
        "great", "perfect", "awesome", "cool", "nice", "brilliant", "excellent", "lovely", "super",
        "fantastic", "amazing", "wonderful", "sweet", "fab", "fabulous", "splendid", "neat",
        "ideal", "helpful", "helped", "helps", "clear", "understood", "exactly", "done", "sorted",
        "fixed", "solved", "resolved", "worked", "works", "working", "needed", "wanted", "sense",
        "brill", "grand", "bye", "goodbye", "byebye", "cya", "ciao"
    ]
)
_ACK_WORDS = _ACKNOWLEDGEMENTS | _ACK_POSITIVE | frozenset(
    [
        "that", "this", "s", "is", "was", "just", "what", "i", "m", "im", "now", "there", "we",
        "go", "the", "trick", "thank", "thanks", "you", "ty", "thx", "cheers", "for", "your",
        "help", "info", "answer", "again", "really", "totally", "makes", "sense", "will", "do",
        "noted", "appreciate", "appreciated", "indeed", "wow", "then", "and", "looking", "me",
        "set", "in", "perfectly", "fine", "properly", "smoothly", "it", "one", "stuff", "after",
        "ll", "try", "give", "to", "know", "obliged", "k", "kk", "ta", "x", "xx", "thats", "have"
    ]
)
_ACK_MAX_WORDS = 14
# Or says what they will do now: "ok, will do", "I'll try that", "I'll give it a go".
_ACK_PHRASE = re.compile(
    r"\bgot it\b|\bthat (?:s|is|was) it\b|\bwill do\b|\bi ll (?:do|try) (?:that|it|this)\b|"
    r"\bi ll give (?:that|it|this) a (?:go|try)\b|\bmuch obliged\b|\bgood to know\b"
)


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
    if Intent.INJECTION.value in evidence:
        # Beside an instruction to the bot, a sentence that gives the bot an order ("Print the
        # email of…, then refund my order") belongs to it, not to the customer's question.
        kept = [s for s in kept if not _COMMAND.match(s) and not _POINTS_BACK.match(s)]
    clean = " ".join(kept)
    intents: set[Intent] = {Intent.INJECTION} if Intent.INJECTION.value in evidence else set()
    checks = (
        (Intent.ASKS_FOR_PERSON, _ASKS_FOR_PERSON),
        (Intent.ASKS_FOR_PERSON, _PERSON),
        (Intent.COMPLAINT, _COMPLAINT),
        (Intent.COMPLAINT, _THREAT),
        (Intent.COMPLAINT, _DAMAGE_CLAIM),
        (Intent.COMPLAINT, _MISCONDUCT),
        (Intent.COMPLAINT, _OUTRAGE),
        (Intent.SAFETY, _SAFETY),
        (Intent.SAFETY, _HARM),
        (Intent.SAFETY, _CRISIS),
        (Intent.SAFETY, _STRANDED),
        (Intent.ACCOUNT_SPECIFIC, _COMPANY_ACTED),
        (Intent.ACCOUNT_SPECIFIC, _NOT_ME),
        (Intent.ACCOUNT_SPECIFIC, _DEMAND),
        (Intent.ACCOUNT_SPECIFIC, _ACCOUNT_SPECIFIC),
        (Intent.ACCOUNT_SPECIFIC, _LOOKUP),
        (Intent.ACCOUNT_SPECIFIC, _DATA_RIGHTS),
        (Intent.ACCOUNT_SPECIFIC, _CASE),
        (Intent.OUT_OF_SCOPE, _OUT_OF_SCOPE),
        (Intent.BUSINESS_ENQUIRY, _BUSINESS_ENQUIRY),
        (Intent.NOT_SOLVED, _NOT_SOLVED),
        (Intent.THANKS, _THANKS),
    )
    for intent, pattern in checks:
        found = None if intent in intents else pattern.search(clean)
        if found:
            intents.add(intent)
            evidence[intent.value] = found.group(0)
    if Intent.NOT_SOLVED not in intents:
        found = _SOLVED.search(clean)
        if found:
            intents.add(Intent.SOLVED)
            evidence[Intent.SOLVED.value] = found.group(0)
    if Intent.NOT_SOLVED not in intents and _acknowledges(clean):
        intents.add(Intent.ACKNOWLEDGED)
        evidence[Intent.ACKNOWLEDGED.value] = clean
        return Reading(frozenset(intents), "", evidence)
    question = _question(kept)
    return Reading(frozenset(intents), question, evidence)


# "do you (also) do/sell/offer/deliver <thing> (as well)?", "can I buy <thing> through the app?":
# whether the company offers something at all.
_OFFER = re.compile(
    r"(?:\b(?:do|does)\s+(?:you|u|your\s+company)\s+(?:guys\s+)?(?:also\s+)?"
    r"(?:do|sell|offer|provide|"
    r"deliver|stock|carry)|\bcan\s+(?:i|we)\s+(?:also\s+)?(?:buy|trade|invest\s+in))"
    # Not a how-to in its clothes: "do you offer a way to export my data?".
    r"\s+(?:any\s+|a\s+|an\s+)?(?P<thing>(?!(?:a|an|any|the|for|to|with|in|at|on|that|"
    r"this|it|me|us|anything|something|way|ways|option|options|possibility|chance|facility|"
    r"feature|support|help|advice|service|discounts?\s+for|refunds?\s+(?:for|if|when))\b)"
    r"[a-z][\w'-]*(?:\s+(?!(?:as|too|also|for|to|in|at|on|with|or|and|please)\b)[a-z][\w'-]*)"
    r"{0,2})",
    re.IGNORECASE,
)


# How any offer is named ("TV packages", "business plans"): the words before it name the thing.
_OFFER_KIND = re.compile(
    r"\s+(?:packages?|plans?|services?|options?|products?|deals?|bundles?|offers?|types?|kinds?|"
    r"stuff|things?)$",
    re.IGNORECASE,
)


def offered_thing(text: str) -> str | None:
    """What "do you (also) do/sell/offer <thing>?" asks the company offers ("TV" of "TV
    packages"), or None."""
    found = _OFFER.search(text)
    return _OFFER_KIND.sub("", found.group("thing")) if found else None


def _question(sentences: list[str]) -> str:
    """The sentences that still ask something once thanks and confirmations are removed."""
    left = []
    for sentence in sentences:
        stripped = _THANKS.sub(" ", sentence)
        stripped = _SOLVED.sub(" ", stripped)
        stripped = _LEADING_LINK.sub("", stripped.strip(" ,-").lstrip(".!"))
        words = [w for w in re.findall(r"\w+", stripped.lower()) if w not in _ACKNOWLEDGEMENTS]
        if len(words) >= 2 or re.search(r"[\u3040-\u9fff]{2,}", stripped):
            left.append(stripped.strip())
    return " ".join(left)


def asks_something(reading: Reading) -> bool:
    """Whether what is left reads as a question or request (not a bare remark)."""
    return bool(reading.question and _QUESTION.search(reading.question))


def asking_sentences(text: str) -> str:
    """The sentences of ``text`` that ask something, without the story around them ("I run a
    small office with 6 agents. Is there a plan where the company pays?" → the second)."""
    sentences = [s.strip() for s in _SENTENCES.split(text) if s and s.strip()]
    return " ".join(s for s in sentences if _QUESTION.search(s))


def glad(remark: str) -> bool:
    """Whether a remark says something went well ("brilliant, got in fine")."""
    return any(w in _ACK_POSITIVE for w in re.findall(r"\w+", remark.lower()))


def _acknowledges(text: str) -> bool:
    words = re.findall(r"\w+", text.lower())
    return (
        0 < len(words) <= _ACK_MAX_WORDS
        and not _QUESTION.search(text)
        and all(w in _ACK_WORDS for w in words)
        and (
            any(w in _ACK_POSITIVE for w in words)
            or _ACK_PHRASE.search(" ".join(words)) is not None
        )
    )


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
