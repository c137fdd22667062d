"""What a customer says came of an answer: thanks (or a goodbye), solved, or not solved.

Part of reading a message for intents (``bot.agent.intents``): these decide whether the
offline responder closes a conversation, escalates one whose answer did not help, or reads on.
"""

from __future__ import annotations

from bot.agent.phrases import any_of

# Thanks, or a goodbye that wraps up the same way ("have a nice evening").
THANKS = any_of(
    r"\b(?:thanks|thank\s*(?:you|u|ya)|thanx|thnx|thx|ty|tysm|cheers|much\s+appreciated|merci|"
    r"danke|gracias|grazie)\b",
    r"\b(?:i|we)?\s*(?:really\s+)?appreciate\s+(?:it|that|this|the\s+help|your\s+help)\b",
    r"\bhave\s+a\s+(?:nice|good|great|lovely)\s+(?:day|evening|weekend|one|night)\b",
    r"\b(?:(?:good)?bye|take\s+care)\W*$",
    # British "ta" closing a message: "sorted it now, ta".
    r"(?:^|[,.!]\s*)ta(?:\s+very\s+much)?\W*$",
    r"ありがとう",
)
NOT_SOLVED = any_of(
    r"\b(?:did\s*n[o'’]?t|does\s*n[o'’]?t|do\s*n[o'’]?t|is\s*n[o'’]?t|was\s*n[o'’]?t|won'?t|"
    r"can'?t)\s+(?:help|work|fix|solve|answer)",
    r"\b(?:did|does|do|is|was)\s+not\s+(?:help|work|fix|solve|answer)",
    # After the steps: "the code never arrives", "i tried 5 times".
    r"\bnever\s+(?:arrives|arrived|comes|came|shows\s+up|showed\s+up|turns\s+up|works|worked)\b",
    r"\btried\s+(?:it\s+|that\s+|again\s+)?(?:\d+|two|three|four|five|several|many|multiple|"
    r"a\s+few)\s+times\b",
    r"\bstill\s+(?:not|no|nothing|does\s*n|do\s*n|is\s*n|wo\s*n|won|can|broken|the\s+same|"
    r"getting|happening|failing|stuck|waiting|says|shows|showing|charging|locked|down|"
    r"have\s+(?:the|this|that)\s+(?:problem|issue))",
    r"\bnot\s+(?:working|solved|fixed|resolved|helpful)\b",
    # The step done, the same failure back: "i did that, it keeps saying transaction declined",
    # "pressed retry payment like it says, still declined 3 times".
    r"\bkeeps?\s+(?:saying|showing|telling\s+me|coming\s+up|failing|declining|rejecting|"
    r"crashing|freezing)\b",
    r"\bstill\s+(?:declin|reject|refus|crash|freez|offline|error|disconnect)\w*",
    r"\b(?:already\s+(?:tried|did|done|checked|looked|restarted|reset|cleared|followed|updated|"
    r"reinstalled|contacted|asked)|tried\s+(?:that|this|it|those)(?:\s+already)?|no\s+luck|"
    r"same\s+(?:problem|error|issue|thing|message))\b",
    r"\bnot\s+(?:really\s+|quite\s+|exactly\s+)?what\s+i(?:['’]?m|\s+am|\s+was)?\s+(?:asked|"
    r"meant|need(?:ed)?|was\s+asking|asking|after|looking\s+for|wanted)\b",
    # The step the answer gave is not there for them: "I can't see that button", "there's no
    # such option" (the one the answer named; not "I can't find the export button").
    r"\b(?:can['’]?t|cannot|can\s+not|do\s*n['’]?t|do\s+not)\s+(?:see|find)\s+(?:that|this|those|"
    r"these)\s+(?:\w+\s+)?(?:button|option|link|setting|menu|tab|field|page)s?\b",
    r"\bthere\s*(?:['’]?s|\s+is|\s+are)\s+no\s+(?:such\s+)?(?:\w+\s+)?(?:button|option|link|"
    r"setting|menu|tab|field|page)s?\s+(?:like\s+that|called\s+that|there|anywhere)\b",
    # The answer missed, said of it: "no, that's not it", "that's not my question", "no that's
    # wrong" (a sentence of its own; not "that's not a problem", "is that not included?").
    r"(?:^|[.!?]\s+)(?:no\W+)?(?:that['’]?s|thats|that\s+is|this\s+is)\s+(?:not\s+(?:it|right|"
    r"correct|my\s+question|the\s+(?:answer|question|problem|issue))|wrong|incorrect)\b",
    # Done before it was suggested: "I did that already" (not "did that already and it works").
    r"\b(?:did|done|followed|checked)\s+(?:that|this|it|those|all\s+(?:of\s+)?(?:that|this|"
    r"those|them))\s+already\b(?![^.?!]*\b(?:works?|worked|working|fixed|sorted|solved)\b)",
    # What the answer asks them to check is right: "i checked the routing and account number
    # twice, they're right" (not "I checked and it works now").
    r"\b(?:i|we)(?:['’]ve|\s+have)?\s+(?:checked|double[\s-]checked|re-?checked|confirmed|"
    r"verified)\s+(?:\w+\s+){0,6}?(?:twice|(?:and\s+)?(?:it['’]?s|they['’]?re|its|theyre|they\s+"
    r"are|both\s+are|all\s+are)\s+(?:right|correct|fine|ok|okay|the\s+same))\b",
    # "…but it's still red", "Still black.": the problem is still there.
    r"\b(?:but|and)\s+(?:it'?s|it\s+is|its|it|they'?re)\s+still\b",
    r"(?:^|[.!?]\s+)still\s+\w+",
    r"\b(?:does\s*n[o'’]?t|did\s*n[o'’]?t)\s+answer\b",
    # "I did that but nothing happened", "made no difference".
    r"\bnothing\s+(?:happened|happens|changed|changes|works|worked)\b",
    r"\b(?:made|makes)\s+no\s+difference\b|\bno\s+(?:change|difference)\b",
    # "…but speeds are just as bad", "no better".
    r"\b(?:just|still|every\s+bit)\s+as\s+(?:bad|slow|broken)\b",
    r"\b(?:it'?s|it\s+is|still|that'?s|is|are)\s+(?:no|not\s+any)\s+better\b",
    # A fix that worked, but something is still wrong: "works on desktop but the app crashes".
    r"\bbut\s+(?:now\s+)?(?:it|the|my|that|this|i)\b[^.?!]{0,40}?(?:\bnot\b|n[’']t\b|"
    r"\bno\s+longer\b|\bstill\b|\bfail\w*|\berror\w*|\bcrash\w*|\bbroken\b|\bwrong\b|"
    r"\bstuck\b)",
    r"\b(?:hat\s+nicht\s+geholfen|funktioniert\s+(?:immer\s+noch|noch\s+immer)?\s*nicht|"
    r"ne\s+marche\s+(?:toujours\s+)?pas|sigue\s+sin|no\s+funciona)\b",
)
SOLVED = any_of(
    r"\b(?:it'?s|it\s+is|we'?re|i'?m)\s+back\s+(?:up|online|working|in)\b|"
    r"\b(?:did|does|done)\s+the\s+trick\b|\bworked\s+(?:like\s+a\s+charm|a\s+treat|perfectly)\b",
    r"\b(?:that|this|it|that's|thats|that\s+has|that've)\s+(?:did\s+it|done\s+it|did\s+the\s+trick|"
    r"done\s+the\s+trick|worked|works|fixed\s+it|solved\s+it|helped|helps|sorted\s+it|"
    r"answers\s+(?:it|my\s+question))\b",
    r"\bgot\s+it\s+(?:now|out|open)\b(?!\s+of\b)(?![^.?!]*\bbut\b)",
    r"\b(?:got\s+it\s+(?:sorted|working|fixed)|all\s+(?:sorted|fixed|set|working|good)|"
    r"sorted\s+now|(?:all\s+)?good\s+now|works\s+now|working\s+(?:now|again)|works\s+again|"
    r"(?:problem|issue)\s+(?:solved|resolved|fixed)|figured\s+it\s+out|found\s+it|"
    r"you\s+can\s+close|it\s+worked|(?:we'?re|i'?m)\s+(?:good|all\s+set|sorted)|"
    r"never\s*mind|no\s+(?:longer\s+)?need(?:ed)?\s+(?:it\s+)?any\s*more|that\s+was\s+it|"
    r"no\s+(?:further|more|other)\s+questions|nothing\s+else|that'?s\s+(?:everything|all)|"
    r"(?:loads|much|a\s+lot|way)\s+better\s+now)\b",
    r"^\W*(?:perfect|great|awesome|brilliant|excellent|solved|sorted|fixed|done|resolved|"
    r"ok(?:ay)?(?:\s+great)?|yes|yep)\b[\s,.!]*"
    # Not the opener of a "but": "ok thanks, but it's been 3 weeks now".
    r"(?:thanks|thank\s+you|cheers|works|it\s+works|that\s+works|all\s+good)(?![\s,.!]*but\b)",
    r"^\W*(?:solved|sorted|fixed|resolved)\W*$",
    # A clause of its own: "ok got it, sorted.", "fixed, cheers" (not "not sorted", "sorted by
    # date?"). "all done" is no more than an acknowledgement: it closes only after an answer.
    r"(?:^|[,.!;]\s*)(?:(?:it'?s|all|now)\s+)?(?:sorted|solved|fixed|resolved)(?:\s+now)?\s*"
    r"(?:[,.!;]|$)",
    # The problem went away on its own: "oh it just went through now", "nvm he just showed up"
    # (not "it went through twice", "has my payment gone through?": a question is read first).
    r"\b(?:it|he|she|they|the\s+\w+)\s+(?:has\s+|have\s+|'s\s+)?(?:just\s+|finally\s+|now\s+)?"
    r"(?:went|gone|came|come)\s+through\b(?![^.?!]*\b(?:twice|again|double|but)\b)",
    r"\b(?:he|she|they|it|the\s+\w+)\s+(?:has\s+|have\s+|'s\s+)?(?:literally\s+|actually\s+)?"
    r"(?:just|finally)\s+(?:showed\s+up|shown\s+up|turned\s+up|arrived)\b(?![^.?!]*\b(?:but|"
    r"cold|late|damaged|broken|wrong|missing)\b)",
    r"^\W*(?:nvm|nevermind)\b",
    # Back as it should be, said of it: "gave the 2.4 its own name and its connected now".
    r"\b(?:it['’]?s|its|it\s+is|they['’]?re|theyre|everything['’]?s)\s+(?:all\s+)?(?:connected|"
    r"back\s+online|online|syncing|up\s+and\s+running)\s+(?:again|now)\b",
    # Nothing to do here: "sorry wrong chat, meant to message my electricity company".
    r"\bwrong\s+(?:chat|window|conversation)\b|\bmeant\s+to\s+(?:message|text|write\s+to)\b",
    r"\b(?:hat\s+geklappt|funktioniert\s+(?:jetzt|wieder)|ça\s+marche|c'est\s+bon|ya\s+funciona|"
    r"funciona\s+ahora|problema\s+resuelto|funziona\s+ora)\b",
)
