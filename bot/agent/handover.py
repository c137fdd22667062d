"""Cases a person takes, said in the customer's own words rather than in the phrases the other
intent modules know: a person asked for with any noun ("a real pharmacist", "someone on your
end"), and a case of their own that no article settles — a death and the account left behind,
a debt collector, a record they want put right, a case stuck for weeks, activity that was not
theirs, the steps already done to the end.

Part of reading a message for intents (``bot.agent.intents``). Each is a phrase about the
customer's own case, never a bare word: "how do I talk to someone?", "my dad passed away and
the internet is in his name", "will a missed payment affect my credit score?", "how long does a
hold take?", "I restarted it and it's still slow, what else can I try?" are how-to questions an
article answers.
"""

from __future__ import annotations

from bot.agent.phrases import any_of

# A person asked for in words of the customer's own: "speak to a real pharmacist", "not a bot",
# "can someone on your end look at it", "need a person to sort this", "who do I talk to" (not "a
# live stream", "is this a bot?", "who do I talk to at my bank": another company's people).
PERSON = any_of(
    r"\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a|an|the|your|one\s+of\s+your)\s+(?:real|actual|"
    r"live|qualified|proper)\s+(?!(?:time|stream|chat\s+(?:box|window|button)|feed)\b)[a-z]{3,}"
    r"(?![-'’])",
    r"(?:\bplease|\bpls|,|^|\band|\bbut|\bjust)\s+not\s+(?:a|an|the|some|this|your)\s+(?:chat\s*)?"
    r"(?:bot|robot|machine|ai)\b(?![-'’])",
    r"\b(?:someone|somebody|anyone|anybody|a\s+person|one\s+of\s+you)\s+(?:on|at|from)\s+your\s+"
    r"(?:end|side)\b",
    r"\b(?:need|want|get)\s+(?:someone|somebody|a\s+(?:real\s+|actual\s+)?(?:person|human))\s+to\s+"
    r"(?:actually\s+|please\s+)?(?:sort|deal\s+with|handle)\s+(?:this|it|that)\b",
    # "I", not "we": "who do we speak to" is how a business writes (``bot.agent.scope``).
    r"\bwho\s+(?:do|should|can|could)\s+i\s+(?:talk|speak|write)\s+to\b"
    r"(?!\s+(?:at|from|in)\s+(?:my|our|the)\b)",
)
_RELATIVE = (
    r"(?:mother|mum|mom|mam|father|dad|husband|wife|partner|son|daughter|brother|sister|"
    r"grand(?:mother|father|ma|pa|mum|dad)|nan|nana|gran|granny|grandad|aunt|auntie|uncle|"
    r"fianc[eé]e?|parents?)"
)
_DIED = r"(?:(?:has\s+|had\s+|just\s+|recently\s+|sadly\s+)*(?:passed(?:\s+away|\s+on)?|died))\b"
# What the one who died left on the company's books: "my mother passed away ... how do I close
# her account", "my mum died, what do I do with her account and the money in it" (not "my dad
# passed away and the internet is in his name", "theres loads of his tablets in the house":
# articles say what to do).
_ESTATE = (
    r"\b(?:his|her|their)\s+(?:\w+\s+)?(?:account|accounts|card|membership|policy|balance|"
    r"debts?|loans?|fines?|money|savings|tenancy|lease|contract|subscription)\b|"
    r"\banything\s+(?:he|she|they)\s+owed\b"
)
# A case that has not moved for weeks: "#3 on a hold for 7 weeks now and it hasnt moved",
# "requested it 2 months ago and never heard anything" (not "how long does a hold take?").
_WEEKS = (
    r"(?:\b(?:\d+|two|three|four|five|six|seven|eight|nine|ten|several|many)\s+(?:weeks?|"
    r"months?)\b|\ba\s+(?:fortnight|month)\b)"
)
_STALLED = (
    r"(?:\b(?:has|have|is|was)\s*n[o'’]?t\s+(?:moved|budged|changed|progressed|updated)|"
    r"\b(?:hasnt|havent|isnt|wasnt)\s+(?:moved|budged|changed|progressed|updated)|"
    r"\b(?:has|have)\s+not\s+(?:moved|budged|changed|progressed|updated)|"
    r"\bnever\s+heard\s+(?:anything|a\s+thing|back)|\bheard\s+nothing\b|\bno\s+(?:word|news|"
    r"updates?|reply|response|contact)\b|\bstill\s+(?:outstanding|unresolved|open|broken|"
    r"not\s+(?:fixed|done|sorted|resolved)))"
)
_NEVER = r"(?:never|did\s*n[o'’]?t|didnt|did\s+not)"
CASE = any_of(
    r"\b(?:my|our)\s+(?:late\s+)?" + _RELATIVE + r"\s+" + _DIED + r"[^?]{0,160}?" + _ESTATE,
    r"\b(?:the\s+)?(?:account|policy|card|ticket)\s?holder\s+(?:has\s+|had\s+)?(?:passed\s+away|"
    r"died)\b",
    r"\bmy\s+late\s+" + _RELATIVE + r"['’]?s\s+(?:\w+\s+)?(?:account|card|membership|policy)\b",
    _WEEKS + r"[^?]{0,80}?" + _STALLED,
    _STALLED + r"[^?]{0,80}?" + _WEEKS,
    # No one came back to them, or what staff promised did not happen: "emailed twice and
    # nobody got back to me", "i was told it would be fixed by friday" (not "what if no one
    # replies?", "I was told I need ID, what counts?").
    r"\b(?:nobody|no\s+one|no-one)\s+(?:has\s+|ever\s+)?(?:got|gotten|come|came|replied|"
    r"responded|called|rang|emailed|been\s+in\s+touch)(?:\s+back)?\b(?![^.!?]*\?)",
    r"\b(?:i|we)\s+(?:was|were)\s+(?:promised|told\s+(?:(?:by\s+\w+\s+)?(?:that\s+)?(?:i|we|it|"
    r"you|they)(?:['’]d|\s+would|\s+will|['’]ll)))\b(?![^.!?]*\?)",
    # A change on their record on someone else's say-so: "change my sertraline dose to 100mg,
    # my gp said it was ok on the phone" (not "my doctor said it's fine to take with food").
    r"\b(?:can|could|would|will|please)\s+(?:you\s+)?(?:change|switch|increase|add|remove|move|"
    r"extend|update|swap)\b[^?]{0,100}?"
    r"\b(?:gp|doctor|dr|consultant|nurse|landlord|manager|boss|employer|solicitor|lawyer)\s+"
    r"(?:said|told\s+me|confirmed|agreed)\s+(?:that\s+)?(?:it\s+(?:was|is|would\s+be)|it['’]s|"
    r"its)\s+(?:ok|okay|fine|alright|allowed)\b",
    r"\b(?:change|increase|decrease|up|lower|reduce|adjust)\s+my\s+(?:\w+\s+)?(?:dose|dosage)\b",
    # Looked at where only the company sees: "can you check on your end".
    r"\b(?:check|look)\s+(?:at\s+it\s+|into\s+it\s+|this\s+)?(?:on|from)\s+your\s+(?:end|"
    r"side)\b",
    # Asked to find where their own thing is: "can you check where it is?" (not "where can I
    # check where it is?": the customer checks).
    r"\b(?:can|could|would)\s+(?:you|u|someone|somebody)\s+(?:please\s+)?(?:check|find\s+out|"
    r"look\s+into)\s+(?:where|what\s+happened\s+to)\s+(?:it|my|our|this|that)\b",
    # A collector or their credit file, told not asked: "a letter from some collection agency
    # saying I owe $127 and it's going on my credit" (not "will a missed payment affect my credit
    # score?").
    r"\b(?:collection|collections|debt\s+recovery)\s+(?:agency|agencies|company|firm)\b"
    r"|\b(?:sent|passed|handed)\s+(?:me\s+|it\s+|my\s+\w+\s+)?(?:on\s+)?to\s+(?:a\s+)?"
    r"(?:collections|debt\s+collect\w+)\b",
    r"\b(?:going|gone|put|reported|marked|showing|recorded|registered)\s+on\s+(?:to\s+)?my\s+"
    r"credit(?:\s+(?:file|score|rating|record|report|history))?\b(?![^.!?]*\?)",
    # Told to put their record right: "this is ridiculous fix it", "I need this sorted out now",
    # "my tax advisor needs it fixed" (not "how do I fix it?", "I need to sort out my settings").
    r"\b(?:ridiculous|unacceptable|a\s+joke|absurd|insane|outrageous)\W+(?:so\s+|now\s+|just\s+|"
    r"please\s+|pls\s+)?(?:fix|sort|correct)\s+(?:it|this|that)\b",
    r"\b(?:need|needs|want|wants|expect)\s+(?:this|it|that)\s+(?:sorted|fixed|corrected|"
    r"resolved|put\s+right)\b(?![^.!?]*\?)",
    # Activity on their record that they never made: "an order on my account for diazepam that
    # i never placed" (not "can I cancel an order I placed by mistake?").
    r"\b(?:order|booking|purchase|payment|transaction|subscription|appointment|prescription|"
    r"request|loan|transfer|withdrawal|reservation)s?\s+on\s+(?:my|our)\s+(?:account|card|"
    r"profile)\b[^.!?]{0,60}?\b(?:that\s+|which\s+)?(?:i|we)\s+" + _NEVER + r"\s+(?:place|placed|"
    r"make|made|book|booked|order|ordered|authori[sz]ed?|request|requested|set\s+up)\b",
    # Someone else using their account: "my ex boyfriend still knows my card number and pin and
    # keeps putting holds on my account".
    r"\b(?:someone|somebody|my\s+ex|a\s+stranger)\b[^.!?]{0,60}?\b(?:keeps|kept|has\s+been|"
    r"is|was)\s+\w+ing\b[^.!?]{0,40}?\bon\s+(?:my|our)\s+(?:account|card|profile)\b",
    r"\b(?:someone|somebody|my\s+ex|a\s+stranger)\b[^.!?]{0,30}?\b(?:knows|has|got)\s+my\s+"
    r"(?:pin|password|login|card\s+number|account\s+details)\b",
    # A document for a third party, in writing: "the building manager wants a written
    # confirmation for the insurance" (not "where do I find my invoice?").
    r"\b(?:needs?|wants?|requires?|asking\s+for|asked\s+for)\s+(?:a\s+|an\s+)?(?:written|signed|"
    r"official|formal)\s+(?:confirmation|letter|statement|declaration|certificate)\b",
    # The second factor lost with no way back: "lost my phone with the authenticator and never
    # saved those backup code things" (not "where do I find my backup codes?").
    r"\b(?:never\s+(?:saved|wrote\s+down|kept|got|downloaded)|do\s*n['’]?t\s+have|dont\s+have|"
    r"lost)\s+(?:\w+\s+){0,2}?(?:backup|recovery)\s+codes?\b(?![^.!?]*\?)",
    # What came is someone else's: "the label has someone elses name on it".
    r"\b(?:someone|somebody)\s*(?:else)?['’]?s\s+(?:name|details|address|prescription|"
    r"medication|medicine|order)\s+(?:on|in)\s+(?:it|them|the|my)\b",
    # The steps done to the end, first thing said: "did the router restart thing..., even
    # factory reset it, app still says offline for 4 days" (not "I restarted it and it's still
    # slow, what else can I try?": the help center may know more steps).
    r"\beven\s+(?:did\s+(?:a\s+)?|tried\s+(?:a\s+)?|done\s+(?:a\s+)?)?(?:factory\s+reset|"
    r"reinstall|re-install|wiped)\w*\b[^?]{0,100}?\bstill\b(?![^?]*\?)",
)
