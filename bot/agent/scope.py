"""Messages that are no customer's support question however many of the help center's words
they use: a job application ("are you hiring delivery drivers?"), a tip about the world around
the service, and a business writing — a partnership, a supplier, the press.

Part of reading a message for intents (``bot.agent.intents``). A person answers a business; an
out-of-scope question is answered only by an article clearly about it.
"""

from __future__ import annotations

from bot.agent.phrases import any_of

OUT_OF_SCOPE = any_of(
    r"\b(?:are|is|r)\s+(?:you|u|your\s+(?:company|team)|\w+)\s+(?:currently\s+|still\s+)?hiring\b",
    r"\b(?:job|career|work)\s+(?:openings?|opportunit(?:y|ies)|vacanc(?:y|ies)|application)s?\b",
    r"\b(?:any|your)\s+(?:vacancies|open\s+positions|careers\s+page)\b",
    r"\bapply\s+for\s+(?:a\s+|the\s+)?(?:job|position|vacancy)\b",
    r"\b(?:work|job)\s+(?:for|at|with)\s+(?:you|your\s+company)\s+as\b",
    # Working for the service, not using it: "how do i sign up to deliver for dashly".
    r"\b(?:sign\s+up|apply|register)\s+to\s+(?:deliver|drive|ride|courier)\s+for\b",
    r"\b(?:become|be)\s+(?:a|an|one\s+of\s+your)\s+(?:delivery\s+)?(?:driver|courier|rider)s?\s+"
    r"(?:for|with)\b",
    # A tip about the world around the service ("recommend a decent hotel near the airport"),
    # not which of its own plans or options suits (only decides when no article clearly does).
    r"\b(?:recommend|suggest)\s+(?:me\s+|us\s+)?(?:a|an|some|any)\s+(?:good|decent|nice|cheap|great|"
    r"local)\s+(?!(?:plan|option|package|tier|subscription|product|setting|course|membership)s?\b)\w+",
)
# Who writes for a business: "I'm the practice manager at a vets in Bristol", "we're a small
# bakery", "on behalf of our clinic".
_BUSINESS_WRITER = (
    r"(?:\b(?:i['’]?m|i\s+am|we['’]?re|we\s+are|i\s+(?:run|own|manage))\s+(?:the\s+|a\s+|an\s+)?"
    r"(?:\w+\s+){0,2}?"
    r"(?:manager|owner|director|founder|buyer|head|partner|practice|clinic|company|business|shop|"
    r"store|agency|charity|retailer|brand|start-?up|supplier|manufacturer|firm|bakery|caf[eé]|"
    r"restaurant|gym|studio|salon|hotel|surgery|kennels|cattery|groomers|vets)s?\s+(?:at|of|for|"
    r"from|in|based|that|who|with|and|looking|wanting|interested)\b|"
    r"\bon\s+behalf\s+of\s+(?:a|an|our|my)\s+(?:\w+\s+){0,2}?"
    r"(?:company|business|practice|clinic|shop|store|agency|charity|firm|organi[sz]ation)\b)"
)
BUSINESS_ENQUIRY = any_of(
    r"\b(?:become|be)\s+(?:a|an|one\s+of\s+your)\s+(?:\w+\s+)?(?:partner|supplier|stockist|"
    r"reseller|affiliate|distributor|vendor|wholesaler|sponsor)s?\b",
    r"\b(?:partnership|collaboration|sponsorship|advertising|wholesale|press|media|business|"
    r"affiliate)\s+(?:enquir(?:y|ies)|inquir(?:y|ies)|opportunit(?:y|ies)|proposal|request)s?\b",
    r"\b(?:i['’]?m|i\s+am)\s+(?:a\s+)?(?:journalist|reporter)\b|"
    r"\b(?:journalist|reporter)\s+(?:at|for|with|from)\b|\bpress\s+(?:office|team|officer|contact)\b",
    r"\b(?:partner|collaborate|work)\s+with\s+(?:you|your\s+(?:company|team|brand))\s+(?:on|as)\b",
    # A business that wants in: "we want to join your direct billing network", "could our shop
    # stock your products".
    # ("we're a company with 50 staff, do you sell team plans?" is a customer's question).
    _BUSINESS_WRITER + r"[^?]{0,120}?\b(?:join|partner\s+with|collaborate\s+with|work\s+with|"
    r"stock|sell|resell|supply|sponsor|advertise\s+(?:on|with|in)|list\s+\w+\s+on)\s+(?:you|your)\b",
    # Priced for the business, or the company's kit on its premises: "we're a dental practice
    # with 12 staff, can you quote", "i run a bakery and would love one of your lockers in the
    # shop".
    _BUSINESS_WRITER + r"[^?]{0,120}?\b(?:quote|sla|tender|bulk\s+(?:order|pricing|discount)|"
    r"wholesale|trade\s+(?:price|account|rate)|corporate\s+(?:rate|account|discount)|"
    r"(?:rate|price|pricing)\s+for\s+\d+)\b",
    _BUSINESS_WRITER
    + r"[^?]{0,120}?\b(?:host(?:ing)?|one\s+of\s+your\s+\w+\s+(?:in|inside|at|outside))\b",
)
