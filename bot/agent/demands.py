"""What a customer claims or demands of the company, which no article settles: a threat to go to
a regulator, the bank or public reviews; a bill for damage the company's staff did; activity on
their account that was not theirs; a step on their own account done for them ("waive my
cancellation fee", "can you merge them into one").

Part of reading a message for intents (``bot.agent.intents``). Each is recognised from a phrase
about the customer's own case, never from a bare word: "how do I make a complaint?", "how do
refunds work?", "what if my parcel is damaged?", "who pays for return postage?" are how-to
questions an article answers.
"""

from __future__ import annotations

from bot.agent.phrases import any_of

# An amount of money: "£118", "$412", "34.99 eur".
MONEY = (
    r"(?:[$€£]\s?\d+(?:[.,]\d{1,2})?|\b\d+(?:[.,]\d{1,2})?\s?(?:eur|euros?|usd|dollars?|gbp|"
    r"pounds?)\b)"
)

_REGULATOR = (
    r"(?:ofcom|ofgem|ofwat|the\s+fca|fca|acm|cma|ftc|fcc|bbb|better\s+business\s+bureau|"
    r"citizens\s+advice|consumentenbond|test[\s-]aankoop|which\?|(?:the\s+)?regulator|"
    r"(?:the\s+)?watchdog|(?:the\s+)?(?:local\s+)?(?:press|papers|news))"
)
# Announced, not asked about: "reporting you lot to ofcom tomorrow", "I'm going to the
# regulator", "putting this all over trustpilot", "1 star reviews on every site" (not "is lumen
# regulated by ofcom?", "how do I leave a review?").
THREAT = any_of(
    r"\breport(?:ing|ed)?\s+(?:you|you\s+(?:lot|guys|people|all)|this|your\s+(?:company|business|"
    r"firm|lot))\s+to\b",
    r"\b(?:i['’]?ll|i\s+will|i['’]?m|im|i\s+am|going\s+to|gonna|will\s+be|about\s+to)\s+(?:be\s+)?"
    r"(?:going\s+)?(?:report\w*|complain\w*|go(?:ing)?|escalat\w*|contact\w*|writ\w+)\b"
    r"[^.!?]{0,30}?\b(?:to\s+)?" + _REGULATOR + r"(?!\w)",
    r"\b(?:put(?:ting)?|post(?:ing)?|plaster(?:ing)?|leav(?:e|ing)|writ(?:e|ing)|giv(?:e|ing))\b"
    r"[^.!?]{0,40}?\b(?:all\s+over\s+(?:trustpilot|twitter|x|facebook|instagram|tiktok|reddit|"
    r"google|social\s+media|the\s+internet)|(?:1|one|zero|0)[\s-]star|(?:bad|negative|terrible|"
    r"awful|honest)\s+reviews?)\b",
    r"\b(?:i['’]?ll|i\s+will|i['’]?m|im|going\s+to|gonna|and)\s+(?:be\s+)?"
    r"(?:leav|writ|post|put)(?:e|ing)\s+(?:a|an)\s+(?:\w+\s+)?review\b",
    # The bank asked to take the money back: "im disputing it with my credit card company".
    r"\b(?:disput|revers|contest)(?:e|es|ed|ing)\s+(?:this|it|the\s+\w+)\s+(?:with|through)\s+"
    r"(?:(?:my|the)\s+(?:\w+\s+){0,2}?(?:bank|card|provider|company|issuer|paypal)|amex|"
    r"american\s+express|visa|mastercard|paypal)\b(?![^.!?]*\?)",
    r"\btell(?:ing)?\s+(?:everyone|everybody|all\s+my\s+(?:friends|family|neighbours|"
    r"neighbors))\b[^.!?]{0,40}?\b(?:avoid|not\s+to|never|stay\s+away)\b",
)
# Outrage at how the company handled it: "this is unacceptable, people have rent due" (not "is
# it acceptable to pay late?", "that's ridiculous, how do I reset it?": frustration with a how-to).
OUTRAGE = any_of(
    r"\b(?:this|that|it)(?:['’]s|\s+is|\s+was|s)\s+(?:completely\s+|totally\s+|absolutely\s+|"
    r"just\s+|simply\s+|frankly\s+)?(?:unacceptable|outrageous|disgraceful|appalling|a\s+disgrace|"
    r"a\s+scandal|scandalous)\b",
)
# A bill for what the company's staff broke, or an injury to pay for: "i want the plumber bill
# covered", "who is paying for this", "who do i claim against", "your courier reversed his van
# into my car" (not "who pays for return postage?", "my parcel arrived damaged, what now?").
_STAFF = (
    r"(?:your|ur|the|their|a)\s+(?:\w+\s+)?(?:engineer|courier|driver|technician|installer|guy|"
    r"man|lad|staff|worker|fitter|rider|van|delivery\s+(?:guy|man|driver|person))s?"
)
_PROPERTY = (
    r"(?:pipe|car|wall|ceiling|floor|door|fence|gate|carpet|window|house|garden|drive|bike|"
    r"property|kitchen|roof|wing\s+mirror|bumper|paintwork|letterbox|lawn)s?"
)
_COST = (
    r"(?:garage|plumber|plumbers|plumber['’]s|repair|repairs|mechanic|hospital|dentist|doctor|"
    r"cleaning|decorator|builder|electrician|roofer|glazier)\s+(?:bill|invoice|costs?|fees?)"
)
DAMAGE_CLAIM = any_of(
    r"\bwho\s*(?:['’]s|\s+is|\s+will\s+be)?\s+(?:going\s+to\s+|gonna\s+)?(?:pay|paying|cover|"
    r"covering)\s+(?:for\s+)?(?:this|that|it|the\s+(?:damage|repairs?|bill|cost|doctor|dentist|"
    r"hospital))\b",
    r"\bwho\s+(?:do|should|can)\s+(?:i|we)\s+(?:claim\s+(?:against|from|off)|sue|send\s+the\s+"
    r"(?:bill|invoice)\s+to)\b",
    # Told, not asked whether covered ("are repair costs covered?" is a how-to).
    r"\b(?:where|who)\s+(?:do|should|can)\s+(?:i|we)\s+send\s+(?:the|my|our|this)\s+" + _COST,
    r"\b(?:who\s*(?:['’]s|\s+is)|you\s*(?:['’]ll|\s+will|\s+need\s+to|\s+have\s+to|\s+can))\s+"
    r"(?:going\s+to\s+)?(?:pay|paying|cover|covering|reimburse)\s+(?:for\s+)?(?:the|my|our)\s+"
    + _COST,
    r"\b(?:want|need|expect)\s+(?:the|my|this|that|our)\s+(?:\w+\s+){0,2}?(?:bill|costs?|"
    r"repairs?|invoice|damage)\s+(?:covered|paid(?:\s+for)?|reimbursed)\b",
    r"\b" + _STAFF + r"\s+(?:has\s+|have\s+|just\s+)?(?:\w+\s+){0,2}?(?:drilled|smashed|broke|"
    r"damaged|crashed|reversed|scratched|dented|cracked|knocked|backed|flooded|ruined)\b"
    r"[^.!?]{0,50}?\b" + _PROPERTY + r"\b",
)
# Activity on their account that they did not make: "that wasn't me", "3 boost pods on my bill
# that i never ordered", "shipments i never created and paypal took €17", "someone's been in my
# account" (not "someone collected my parcel, what do I do?", "a £1 charge from a company i
# didnt book with, is someone using my card": those have an article).
_NEVER_DID = (
    r"\b(?:i|we)\s+(?:never|did\s*n[o'’]?t|didnt|did\s+not)\s+(?:order|ordered|create|created|"
    r"authori[sz]e|authori[sz]ed|ask\s+for|asked\s+for|request|requested|buy|bought|add|added|"
    r"sign\s+up\s+for|signed\s+up\s+for|set\s+up)\b"
)
_BILLED = (
    r"(?:\b(?:bill|billed|charged?|charges|statement|invoice|paid|took|taken|debited|"
    r"direct\s+debit|paypal|card)\b|[$€£]\s?\d)"
)
NOT_ME = any_of(
    r"(?:^|[,.;:!]\s*|\b(?:that|this|it|but|and)\s+)"
    r"(?:was\s*n[o'’]?t|wasnt|was\s+not)\s+(?:me|us)\b",
    r"\b(?:someone|somebody)\s+(?:else\s+)?(?:has\s+)?(?:booked|ordered|bought|placed|made|spent|"
    r"rented)\b[^.!?]{0,40}?\b(?:on|with|from|using)\s+(?:my|our)\s+(?:account|card|profile|"
    r"details)\b",
    r"\b(?:i|we)\s+(?:never|did\s*n[o'’]?t|didnt|did\s+not)\s+(?:did|do|change|changed|press|"
    r"pressed|touch|touched|request|requested|authori[sz]e|authori[sz]ed)\s+(?:that|this|it|"
    r"those|them|anything)\b",
    _BILLED + r"[^.!?]{0,60}?" + _NEVER_DID,
    _NEVER_DID + r"[^.!?]{0,60}?" + _BILLED,
    r"\b(?:someone|somebody)(?:['’]s|\s+has|\s+have)\s+been\s+(?:in|into|on|using|accessing)\s+"
    r"(?:my|our)\s+(?:account|profile|app)\b",
)
# A step on their own record, told or asked of the company: "waive my cancellation fee",
# "refund the €1.49 extension fee from tuesday pls", "credit my account for it", "can you merge
# them into one" (not "how do refunds work?", "can I merge two accounts?": how-tos).
DEMAND = any_of(
    # Told what to do: "i need you to pull it back NOW" (not "I need you to explain the fees",
    # nor "I want you to remove all of my data": the account's own deletion, an article's).
    r"\b(?:i|we)\s+(?:need|want|demand|expect)\s+(?:you|u|you\s+guys|someone|somebody)\s+to\s+"
    r"(?!(?:tell|explain|show|know|understand|help\s+me\s+understand|let\s+me\s+know)\b)"
    r"(?!(?:delete|remove|erase|wipe)\s+(?:all\s+)?(?:of\s+)?(?:my|our)\s+(?:personal\s+)?"
    r"(?:data|account|details|information)\b)[a-z]+",
    # Asked to carry out a step on their record: "need a corrected w-2 … can you process that".
    r"\b(?:can|could|would|will)\s+(?:you|u|someone|somebody)\s+(?:please\s+)?(?:process|action|"
    r"handle|arrange|file|submit)\s+(?:that|this|it|them)\b(?!\s+(?:in|on|through|via|from)\b)",
    # Charged after they had ended it: "you charged us again after we cancelled in september".
    r"\b(?:charged|billed|debited|took\s+(?:money|payment))\s+(?:me|us)?\s*(?:again\s+|twice\s+)?"
    r"(?:after|even\s+though|despite|although)\s+(?:i|we|me|us)\s+(?:had\s+|having\s+|already\s+)?"
    r"cancell?(?:ed|ing)\b",
    # A letter or a penalty from an authority or a collector: "got a letter from the IRS saying
    # our 941 was filed late" (not "what is a tax code?").
    r"\b(?:letter|notice|fine|penalty|demand|summons)\s+from\s+(?:the\s+)?(?:irs|hmrc|tax\s+"
    r"(?:office|authority|man)|revenue|court|bailiffs?|debt\s+collect\w*|collection\s+"
    r"agency)\b|\bdebt\s+collect(?:or|ors|ion\s+agency)\b",
    # A charge they don't know, with its amount: "there's a $412 charge on our card?? what is this".
    MONEY + r".{0,120}?(?:\bwhat(?:['’]?s|\s+is)\s+(?:this|that|it)(?:\s+(?:charge|payment|"
    r"debit))?\W*$|(?:do\s*n['’]?t|dont|do\s+not|can['’]?t|cannot)\s+recogni[sz]e)",
    r"(?:do\s*n['’]?t|dont|do\s+not)\s+recogni[sz]e\s+(?:this|that|a|the)\s+(?:\w+\s+)?(?:charge|"
    r"payment|debit|transaction)\b[^.]{0,40}?" + MONEY,
    r"(?:^|[.!,;]\s*)(?:just\s+|please\s+|pls\s+|now\s+)?(?:waive|reverse|credit|reimburse|"
    r"refund)\s+(?:me\s+)?(?:my|our|the|this|that|these|those)\s+(?:\w+\s+){0,3}?"
    r"(?:fee|fees|charge|charges|payment|payments|penalty|fine|account|bill|debt|"
    r"surcharge)\b(?![^.!?]*\?)",
    r"(?:^|[.!,;]\s*)(?:just\s+|please\s+|pls\s+|now\s+)?(?:cancel|remove|drop|scrap)\s+"
    r"(?:the|that|this|my)\s+(?:\w+\s+){0,3}?(?:fee|charge|penalty|fine|surcharge)\b(?![^.!?]*\?)",
    r"\btake\s+(?:the|that|this)\s+(?:\S+\s+){0,3}?(?:fee|charge|penalty|fine|surcharge)\s+off\b"
    r"(?![^.!?]*\?)",
    r"\bevery\s+(?:single\s+)?(?:penny|cent)\s+back\b",
    r"\b(?:can|could|would|will)\s+(?:you|u|someone|somebody)\s+(?:please\s+|pls\s+|just\s+)?"
    r"(?:merge|combine|join|link)\s+(?:them|my|our|the|both|these|those)\b",
)
# Charged more than once for one thing: "charged twice", "double charged", "two direct debits".
# A case of their own only with its amount or day (``bot.agent.intents``): "why was i charged
# twice on the 1st?? two lots of 34.99" (not "I was charged twice this month?": articles explain
# held payments).
DOUBLE_CHARGE = (
    r"(?:\b(?:charged|billed|debited|taken|deducted|collected)\s+(?:me\s+|us\s+|it\s+)?(?:twice|"
    r"double|two\s+times|2\s+times)\b|\b(?:double|duplicate)[\s-]?(?:charged|billed|debited|"
    r"charges?|payments?|debits?)\b|\b(?:two|2)\s+(?:lots\s+of|direct\s+debits|payments|"
    r"charges|debits)\b)"
)
# Their own record's details, asked of the company to look up: "whats my membership number?",
# "what is the account number for the flat at 12 Hollis Road?", "did my payment on the 3rd go
# through?" (not "where do I find my membership number?": an article says where).
LOOKUP = any_of(
    # Whether something happened on a record they cannot see: "can you tell me if they actually
    # ran payroll or not" (not "can you tell me if the plan includes support?").
    r"\b(?:can|could)\s+(?:you|u)\s+(?:tell|check|confirm|let)\s+(?:me\s+)?(?:know\s+)?(?:if|whether)"
    r"\s+(?:they|he|she|my\s+\w+|our\s+\w+|it)\s+(?:actually\s+|really\s+|ever\s+|already\s+)?"
    r"(?:\w+ed|ran|paid|sent|got|did|made|went|came)\b",
    r"\bwhat(?:['’]s|s|\s+is|\s+was)\s+(?:my|our|the|his|her|their)\s+(?:\w+\s+)?(?:account|"
    r"membership|member|customer|policy|contract|reference|ref|meter|booking|order|card)\s+"
    r"(?:number|no\.?|#|id|pin)\b",
    r"\bwhat(?:['’]s|s|\s+is)\s+my\s+(?:current\s+|outstanding\s+)?balance\b",
    r"\b(?:has|have|did|is|was|were)\s+(?:my|our)\s+(?:\w+\s+){0,4}?(?:gone\s+through|go\s+"
    r"through|went\s+through|been\s+(?:received|processed|credited|taken))\b",
)
# A formal request under data-protection law, made, not asked about: "treat this as a subject
# access request", "I'm exercising my right to be forgotten" (not "how do I make a subject access
# request?"; nor "under GDPR I want a copy of all personal data you hold about me": the data
# export answers it).
DATA_RIGHTS = any_of(
    r"(?:^|[.!]\s+)(?![^.!?]*\bhow\b)[^.!?]*?\b(?:subject\s+access\s+request|right\s+to\s+"
    r"(?:be\s+forgotten|erasure)|dsar)\b(?![^.!?]*\bhow\b)",
)
