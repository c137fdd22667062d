"""Matters a person handles whatever the help center says: a threat to the customer's safety,
and a step the company took on the customer's own account that they want explained.

Part of reading a message for intents (``bot.agent.intents``). Each is recognised from a phrase
about people, never from a bare word: "is it safe to store my card?" and "can you close my
account?" are ordinary support questions. A death in the family is not here: help centers write
articles for it ("my dad passed away and the internet is in his name").
"""

from __future__ import annotations

import re


def _any(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Someone threatened or hurt them, or they do not feel safe: "your courier was screaming at me
# and threatened me. i don't feel safe" (not "the app threatened to delete my data", "is it safe
# to pay by card?").
SAFETY = _any(
    r"\b(?:threaten(?:ed|ing)|assault(?:ed|ing)|attack(?:ed|ing)|harass(?:ed|ing)|groped|"
    r"punched|shoved|stalk(?:ed|ing)|intimidat(?:ed|ing))\s+(?:me|us|my\s+(?:wife|husband|"
    r"partner|son|daughter|kids?|children|mum|mom|dad|friend))\b",
    r"\b(?:do\s*n[o'’]?t|did\s*n[o'’]?t|do\s+not|did\s+not|never)\s+(?:feel|felt)\s+safe\b",
    r"\b(?:feel|felt|feeling)\s+(?:really\s+|very\s+|so\s+)?(?:unsafe|threatened|scared\s+for\s+"
    r"my\s+(?:life|safety))\b",
    r"\b(?:sexual(?:ly)?\s+(?:harass\w*|assault\w*)|called\s+the\s+police\s+on)\b",
)
# A step the company took on their account that they want explained or undone: "you closed my
# account without telling me why", "you've blocked my card for no reason", "I want an
# explanation" (not "can you close my account?", "if you block my card, can I still…", "I want
# an explanation of the fees": that is a how-to).
COMPANY_ACTED = _any(
    r"(?<!\bif\s)(?<!\bwhen\s)\byou(?:['’]ve|\s+have|\s+guys|\s+just)?\s+(?:closed|blocked|"
    r"suspended|froze|frozen|banned|deleted|locked|restricted|terminated|deactivated|cancell?ed)"
    r"\s+(?:my|our)\s+(?:\w+\s+)?(?:account|card|profile|membership|policy)\b(?![^.?!]*\?)",
    r"\b(?:i|we)\s+(?:want|demand|need|deserve|expect)\s+(?:an\s+|some\s+|a\s+proper\s+)?"
    r"explanation\b(?!\s+(?:of|about|on)\b)",
)
