"""How a customer's latest message relates to the conversation before it: a follow-up that leans
on the earlier messages ("and what if I'm renting?"), or a new request of its own ("thanks, but I
also need to change the card it comes out of").

The offline responder searches a follow-up with the conversation so far, and a new request alone.
Read from phrases, never from one word: "also" asks more about the same topic as often as it
opens another ("also do my miles disappear while it's frozen").
"""

from __future__ import annotations

import re

# A message that leans on the earlier ones ("and what about the API?", "does that apply…").
_LEANS = re.compile(
    r"^\W*(?:and|also|but|so|what\s+about|how\s+about|what\s+if|same|then)\b"
    r"|\b(?:it|that|this|them|those|instead)\b[^.?!]{0,40}[?]?\W*$",
    re.IGNORECASE,
)
# A request announced as one more, or another matter: "I also need to…", "we'd also like…",
# "another thing, …", "one more question", "on a separate note", "while I'm here". Not a wish
# about the same thing: "I also need it by Friday", "I'd also like them to stay".
_NEW_TOPIC = re.compile(
    r"\b(?:i|we)\s+(?:also|additionally)\s+(?:need|want|have)\s+to\b"
    r"|\b(?:i|we)(?:\s+also\s+would|\s+would\s+also|['’]d\s+also)\s+like\s+to\b"
    r"|\b(?:another|one\s+more|a\s+different|a\s+separate|an\s+unrelated|an\s+other)\s+"
    r"(?:thing|question|matter|issue|topic)\b"
    r"|\bon\s+(?:a|an)\s+(?:separate|different|unrelated|other)\s+note\b"
    r"|\bwhile\s+(?:i['’]?m|i\s+am|we['’]?re|we\s+are)\s+(?:here|at\s+it)\b"
    r"|\b(?:something|somethin)\s+else\s*(?:[:,-]|while|too|as\s+well)",
    re.IGNORECASE,
)


def leans_on_earlier(text: str) -> bool:
    """Whether ``text`` opens with a link word or ends on a pronoun: it continues the
    conversation rather than stating its topic."""
    return _LEANS.search(text) is not None


def opens_new_topic(text: str) -> bool:
    """Whether ``text`` announces a request of its own beside what was asked before ("thanks,
    but I also need to change my card", "another question: …")."""
    return _NEW_TOPIC.search(text) is not None
