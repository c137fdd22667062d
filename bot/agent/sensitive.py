"""Matters a person handles whatever the help center says: a threat to the customer's safety
(someone hurt, a danger, a customer who cannot manage on their own),
and a step the company took on the customer's own account that they want explained.

Part of reading a message for intents (``bot.agent.intents``). Each is recognised from a phrase
about people, never from a bare word: "is it safe to store my card?" and "can you close my
account?" are ordinary support questions. A death in the family is not here: help centers write
articles for it ("my dad passed away and the internet is in his name").
"""

from __future__ import annotations

from bot.agent.phrases import any_of

# Someone threatened or hurt them, or they do not feel safe: "your courier was screaming at me
# and threatened me. i don't feel safe" (not "the app threatened to delete my data", "is it safe
# to pay by card?").
SAFETY = any_of(
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
COMPANY_ACTED = any_of(
    r"(?<!\bif\s)(?<!\bwhen\s)\byou(?:['’]ve|\s+have|\s+guys|\s+just)?\s+(?:closed|blocked|"
    r"suspended|froze|frozen|banned|deleted|locked|restricted|terminated|deactivated|cancell?ed)"
    r"\s+(?:my|our)\s+(?:\w+\s+)?(?:account|card|profile|membership|policy)\b(?![^.?!]*\?)",
    r"\b(?:i|we)\s+(?:want|demand|need|deserve|expect)\s+(?:an\s+|some\s+|a\s+proper\s+)?"
    r"explanation\b(?!\s+(?:of|about|on)\b)",
)
# Someone hurt by the company's kit, a danger it left, or a customer who cannot manage on their
# own: "it flew open and smacked my daughter in the face", "the plug smells like burning
# plastic", "a cable hanging down to head height over the pavement", "i use a wheelchair and i
# physically cant reach it", "i've left my partner because of abuse", "his heart monitor sends
# readings over the wifi, no connection since saturday" (not "I fell off the bike and hurt my
# wrist, what do I do now": an article says; nor "my dog hurt his leg, am I covered?", "will my
# nan's personal alarm work in a power cut?", "is the locker wheelchair accessible?").
HARM = any_of(
    r"\b(?:hit|smacked|struck|slammed\s+into|whacked)\s+(?:me|my\s+(?:\w+\s+)?(?:daughter|son|"
    r"child|kid|wife|husband|partner|mum|mom|dad|friend)|her|him)\s+(?:in|on)\s+the\s+(?:face|"
    r"head|eye|nose|mouth|arm|leg|hand)\b",
    r"\b(?:got|has|have|with)\s+(?:a\s+)?(?:nasty\s+|deep\s+|bad\s+)?(?:cut|gash|bruise|burn|"
    r"concussion|black\s+eye)\s+(?:above|on|to|over|under|across)\b",
    r"\b(?:smell(?:s|ing|t|ed)?)\s+(?:of|like)\s+(?:burning|something\s+burning|melting|gas|"
    r"electrical|fire)\b|\bburning\s+(?:smell|plastic)\b",
    r"\b(?:sparked|sparking|sparks\s+(?:came|coming|flying)|caught\s+fire|(?:is|was|it['’]?s|"
    r"started)\s+smoking|smoke\s+(?:coming|pouring|came)|electric(?:al)?\s+shock|(?:gave|got)\s+"
    r"(?:me\s+)?a\s+shock)\b",
    r"\bwires?\s+(?:hanging|sticking|dangling)\s+out\b|\bcables?\s+(?:hanging|dangling)\s+"
    r"(?:off|down|from|over|across|low)\b|\b(?:exposed|bare|live)\s+wires?\b|\bhead\s+height\b",
    r"\b(?:wheelchair|disabled|disability|blind|deaf|partially\s+(?:sighted|deaf)|hard\s+of\s+"
    r"hearing|mobility\s+(?:scooter|aid))\b"
    r"[^.!?]{0,80}?\b(?:can['’]?t|cant|cannot|unable\s+to|not\s+able\s+to)\s+(?:physically\s+)?"
    r"(?:reach|get|open|lift|use|see|read|access|hear)\b",
    r"\b(?:we['’]?re|i['’]?m|im|she['’]?s|he['’]?s|ended\s+up|spent\s+the\s+night|rushed|taken)\s+"
    r"(?:\w+\s+)?(?:at|in|to)\s+(?:a\s*&\s*e|the\s+er|(?:the\s+)?emergency\s+room|(?:the\s+)?"
    r"hospital)\b|\bfood\s+poisoning\b|\bmade\s+(?:me|us|my\s+\w+)\s+(?:really\s+)?(?:ill|sick)\b",
    r"\b(?:is\s*n['’]?t|not|isnt)\s+safe\s+to\s+(?:drive|use|ride|touch)\b(?![^.!?]*\?)",
    r"\b(?:stuck|stranded)\s+(?:on|at|in)\s+(?:the\s+)?(?:hard\s+shoulder|motorway|highway|"
    r"side\s+of\s+the\s+road|roadside|middle\s+of\s+nowhere)\b",
    r"\b(?:violent|abusive|controlling)\s+(?:partner|ex|husband|wife|boyfriend|girlfriend)\b|"
    r"\b(?:husband|partner|ex|boyfriend|wife|girlfriend)\s+is\s+(?:violent|abusive)\b",
    r"\bdomestic\s+(?:abuse|violence)\b|\b(?:because\s+of|escap\w+|fle\w+\s+from|due\s+to)\s+"
    r"(?:the\s+|his\s+|her\s+)?(?:abuse|violence)\b|\babusive\s+(?:partner|ex|husband|wife|"
    r"boyfriend|girlfriend|relationship)\b",
    r"\b(?:scared|afraid|frightened|terrified)\s+(?:that\s+)?(?:he|she|my\s+ex)(?:['’]ll|\s+will|"
    r"['’]s|\s+is|\s+might|\s+could|\s+would)\b",
    # A medical emergency, now: "took double his heart tablets by mistake ... his chest hurts",
    # "she's collapsed", "can't breathe" (not "can I take paracetamol with it?").
    r"\bchest\s+(?:pains?|hurts|is\s+hurting|(?:feels\s+)?tight(?:ness)?)\b|\b(?:can['’]?t|cant|"
    r"cannot|struggling\s+to|unable\s+to)\s+breathe\b|\b(?:not\s+breathing|unconscious|"
    r"unresponsive|collapsed|having\s+a\s+(?:seizure|fit|stroke|heart\s+attack)|anaphyla\w+|"
    r"overdosed)\b",
    r"\b(?:having|had|has|got)\s+(?:a|an)\s+(?:bad\s+|severe\s+|serious\s+)?allergic\s+"
    r"reaction\b(?![^.!?]*\?)",
    r"\b(?:took|taken|swallowed|given\s+(?:him|her|them))\s+(?:\w+\s+){0,4}?(?:tablets|pills|"
    r"doses?|meds|medication|medicine|capsules)\b[^.!?]{0,30}?\bby\s+(?:mistake|accident)\b|"
    r"\baccidentally\s+(?:took|taken|swallowed|gave)\b",
    r"\b(?:heart\s+monitor|oxygen|dialysis|medical\s+(?:equipment|device|alarm)|life[\s-]support|"
    r"insulin\s+pump|pacemaker|telecare|careline)\b[^.?!]{0,120}?\b(?:no\s+(?:connection|"
    r"internet|power|signal|service|wifi)|down|not\s+working|cut\s+off|stopped|since|rely\s+on|"
    r"did\s*n['’]?t\s+(?:come|arrive|turn\s+up))\b",
)
# A customer in crisis: "i honestly can't cope anymore, i don't see the point in anything",
# "i want to end it all" (not "I can't cope with the app's slowness, how do I…": a question about
# the product follows; nor "what's the point of the premium plan?").
CRISIS = any_of(
    r"\b(?:kill|hurt|harm)\s+myself\b|\bsuicid\w*|\bself[\s-]?harm\w*|\bend\s+(?:it\s+all|my\s+"
    r"life)\b|\bwant\s+to\s+die\b|\bno\s+(?:reason|point)\s+(?:to|in)\s+(?:living|going\s+on|"
    r"life)\b|\bbetter\s+off\s+(?:dead|without\s+me)\b",
    r"\b(?:do\s*n['’]?t|dont|do\s+not|can['’]?t|cant|cannot)\s+see\s+(?:the|any)\s+point\s+(?:in|"
    r"of)\s+(?:anything|(?:living|life|going\s+on)\b)|\bcan['’]?t\s+go\s+on\s+(?:like\s+this|any\s*"
    r"more)\b",
    r"\b(?:can['’]?t|cant|cannot|can\s+not)\s+cope\s+(?:any\s*more|with\s+(?:it|this|life|"
    r"everything|these\s+debts?))\b(?![^.!?]*\?)",
)
# What one of the company's people did to them: "one of the trainers keeps making comments about
# my body", "the driver touched me" (not "can a trainer comment on my form?").
MISCONDUCT = any_of(
    r"\b(?:comments?|remarks?|jokes?)\s+about\s+(?:my|her|his)\s+(?:body|weight|looks|appearance|"
    r"figure|chest|bum|race|religion|sexuality)\b",
    r"\binappropriate(?:ly)?\s+(?:comments?|remarks?|touch\w*|behaviou?r|messages?|photos?|"
    r"towards\s+me)\b|\b(?:touched|touching)\s+me\b",
    r"\b(?:want|need|wish|like)\s+to\s+(?:make\s+a\s+)?complain(?:t)?\s+about\s+(?:him|her|them|"
    r"one\s+of\s+your|a\s+member\s+of|your\s+(?:\w+\s+)?(?:staff|trainer|driver|courier|"
    r"engineer|agent|employee|instructor|manager)s?)\b",
)
# Someone who cannot manage without the service, without it now: "my mum is 89 and on a
# prepayment meter, it ran out last night and she has no heating" (not "what happens to my
# heating in a power cut?").
STRANDED = any_of(
    r"\b(?:elderly|vulnerable|disabled|frail|(?:is|she['’]?s|he['’]?s|aged|turned)\s+(?:8|9)\d|"
    r"newborn|baby)\b[^?]{0,120}?\b(?:no|without)\s+(?:heating|heat|hot\s+water|power|"
    r"electricity|gas|water)\b",
    r"\b(?:no|without)\s+(?:heating|heat|hot\s+water|power|electricity|gas|water)\b[^?]{0,120}?"
    r"\b(?:elderly|vulnerable|disabled|frail|(?:is|she['’]?s|he['’]?s|aged|turned)\s+(?:8|9)\d|"
    r"newborn|baby)\b",
)
