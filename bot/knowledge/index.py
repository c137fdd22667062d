"""The search index: BM25F over whole documents and over their sections, in memory.

Built from the stored chunks (one code path on SQLite and PostgreSQL) and rebuilt when the set
of documents changes. A question is scored twice — against every document as a whole (title,
headings and body as weighted fields; whole-article BM25 is the stronger baseline for *which*
article) and against every section (a chunk keeps its heading path, so *where* in the article)
— plus an unsaturated bonus for a title and headings that name the question's words — and
each document is returned once, with its best section. Before scoring, the question's words
are weighed: a word the customer says they do not want ("I don't want a refund"), one said
before moving on to a new question, a light word ("come", "take") and a word the knowledge base
uses only in running text count less; an English support phrasing brings its equivalents
("membership" → "subscription", "stop paying" → cancel, ``bot.knowledge.vocabulary``) at a
lower weight, and a support word of another language its English ones
(``bot.knowledge.crosslingual``) when the knowledge base does not use it.

``Hit.confidence`` is calibrated from the question, not from other documents: the idf-weighted
share of the question's terms the document contains, with terms in the title or the section's
headings counting fully and body-only terms a little less. Terms the knowledge base never uses
weigh the most, so an off-topic question scores near 0 whatever incidental word matched.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Container, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from bot.knowledge import analysis, crosslingual, spelling, vocabulary
from bot.knowledge.postings import Naming, Postings

# Field weights of BM25F: a word in the title says more about a document than one in its body.
TITLE_WEIGHT = 3.0
HEADING_WEIGHT = 2.0
BODY_WEIGHT = 1.0
# BM25F saturates: a body that repeats a word scores nearly as a title that names it. On top of
# it, a document gains this much times the idf-weighted share of the question's terms its title
# names, and its best section's headings (title included) name: the article titled "Cancelling
# your subscription" answers "how do I cancel" before one that only mentions cancelling. The
# equivalents of a word the knowledge base uses itself do not count here ("staff" must not make
# every title with "team" or "member" in it the subject).
TITLE_BONUS = 0.2
HEADING_BONUS = 0.1
# A word of a customer's idiom (``vocabulary.PHRASINGS``: "on hold", "passed away") counts this
# much in its literal sense; the idiom's meaning is searched as when the word were unknown.
IDIOM_LITERAL_WEIGHT = 0.5
# A light word (``vocabulary.LIGHT_WORDS``: "come", "take", "start") counts this much in the
# ranking: "what time does the courier come" is not about the article titled "Coming back".
LIGHT_WEIGHT = 0.4
# A corrected typo counts a little less than the word itself.
TYPO_WEIGHT = 0.8
# A one- or two-digit number in a question is usually the customer's own case ("my son is 15",
# "it was only 10 minutes"), and in an article a policy figure ("reservations last 15 minutes"):
# sharing one says little about the topic. Error codes (429) and ids are longer, and an amount
# of money the knowledge base also states as money ("£99", ``analysis.amounts``) counts in full.
SMALL_NUMBER_WEIGHT = 0.3
_SMALL_NUMBER = re.compile(r"^\d{1,2}$")
# The weight of a question's word that the knowledge base never uses, as a share of the rarest.
UNKNOWN_SHARE = 0.6
# How much the whole-document score decides the order of documents (the rest: best section).
DOCUMENT_SHARE = 0.6
# Choosing the section to quote within a document: a section whose own headings name the
# question's words gets up to this much more of its score (BM25 saturates on a body that repeats
# the words, so "Reset a forgotten password" could lose to a short "Change your password").
SECTION_HEADING_BONUS = 0.5
# A question asking how to do something ("how do I…", "wie kann ich…") prefers, within the
# article, a section that gives numbered steps: "How do I cancel?" wants "Cancel a paid plan"
# (1. 2. 3.), not the short "Undo a cancellation" that BM25's length normalisation favours.
STEPS_BONUS = 0.5
_HOW_TO = re.compile(
    r"\b(how\s+(do|can|could|should|would|to)\b|where\s+(do|can)\s+i\b|steps?\s+to\b"
    r"|wie\s+(kann|muss|soll|lässt)\b|comment\b|cómo\b|como\s+(puedo|hago)\b|come\s+(posso|faccio)\b"
    r"|hoe\s+(kan|moet)\b)|どうやって|方法|手順",
    re.IGNORECASE,
)
_STEP_LINE = re.compile(r"(?m)^\s*\d{1,2}[.)]\s+\S")
# A word said only before the customer moved on to a new question ("…higher than last month?
# thanks, but I also need to change my card", ``vocabulary.settled_end``) weighs this much.
SETTLED_WEIGHT = 0.4
# A word the customer says they do not want ("I don't want a refund") weighs this much.
NEGATED_WEIGHT = 0.3
# An equivalent phrasing from ``vocabulary.EQUIVALENTS`` the question did not use ("membership"
# for "subscription") searches at this share of a word's weight, and covers the word it stands
# for this much in the confidence.
EXPANSION_WEIGHT = 0.5
# When the knowledge base never uses the question's own word, its equivalents are all there is.
MISMATCH_EXPANSION_WEIGHT = 1.0
EXPANSION_CREDIT = 0.7
# A word the knowledge base uses only in running text, never in a title or heading, names no
# topic of it ("done", "behind", "actually"): it counts this much of its weight in the ranking.
BODY_ONLY_TERM_WEIGHT = 0.8
# In the confidence, a term only in the body of the document counts this much.
BODY_ONLY_CREDIT = 0.85
# A term found only in another section of the same document.
ELSEWHERE_CREDIT = 0.7


def _any_in(alternatives: tuple[tuple[str, float], ...], terms: Container[str]) -> bool:
    return any(term in terms for term, _ in alternatives)


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A stored chunk with what a citation needs."""

    id: int
    document_id: str
    seq: int
    title: str
    heading: str
    text: str
    source: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class QueryTerm:
    term: str
    weight: float  # 1 for the word itself, less for a corrected typo
    idf: float
    known: bool
    word: str
    # The question's share of this term: 1, or less for a negated word (see the confidence).
    share: float = 1.0
    # Equivalent phrasings' terms the knowledge base uses, with their weights in the search.
    alternatives: tuple[tuple[str, float], ...] = ()
    # The word is part of a customer's idiom ("on hold", "passed away"): its alternatives say
    # what it means (searched as for a word the knowledge base does not use).
    idiom: bool = False
    # How much the word itself counts in the ranking (not in the confidence): less for an
    # idiom's word (``IDIOM_LITERAL_WEIGHT``) and a light word (``LIGHT_WEIGHT``).
    literal: float = 1.0


@dataclass(frozen=True, slots=True)
class MatchEvidence:
    """How a document meets a question's words: what a responder decides to answer on.

    Shares are idf-weighted (a rare word counts more than a common one) and in 0..1:

    - ``known_share``: of the question's content words, the share the knowledge base uses at
      all, counted in words (a question mostly about words no article uses is out of scope,
      whatever matched);
    - ``coverage``: of the question's known words, the share this document contains anywhere;
    - ``specific``: the document contains the question's most specific known word (the rarest
      across the knowledge base), not only its common ones;
    - ``lead``: this document's coverage minus the best coverage among the documents after it
      (how clearly it, rather than another article, is the one the question is about);
    - ``missing``: the question's words (as typed) this document does not contain.
    """

    known_share: float
    coverage: float
    specific: bool
    lead: float
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Hit:
    """One document for a question, with its best section."""

    chunk: ChunkRecord
    rank_score: float  # orders the hits; only comparable within one search
    confidence: float  # 0..1, see the module docstring
    language: str
    # Keyword evidence for the decision to answer (None from the dense side alone).
    evidence: MatchEvidence | None = None


@dataclass(slots=True)
class _Fields:
    title: Counter[str]
    heading: Counter[str]
    body: Counter[str]

    def weighted(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for counts, weight in (
            (self.title, TITLE_WEIGHT),
            (self.heading, HEADING_WEIGHT),
            (self.body, BODY_WEIGHT),
        ):
            for term, n in counts.items():
                out[term] += weight * n
        return out


class SearchIndex:
    """An immutable index over a snapshot of the knowledge base's chunks."""

    def __init__(self, chunks: Sequence[ChunkRecord]):
        # A document's chunks sit next to each other, in order: ties between equal scores go
        # by position, so the order must not depend on the database (PostgreSQL sorts text by
        # its collation), and a document's sections are one slice of the section scores.
        self.chunks = sorted(chunks, key=lambda c: (c.document_id, c.seq))
        by_document: dict[str, list[int]] = defaultdict(list)
        for i, chunk in enumerate(self.chunks):
            by_document[chunk.document_id].append(i)
        self.documents = list(by_document)
        self.languages: list[str] = []
        self._sections = Postings()
        self._whole = Postings()
        self._chunk_terms: list[frozenset[str]] = []
        self._chunk_heading_terms: list[frozenset[str]] = []
        self._chunk_own_heading_terms: list[frozenset[str]] = []
        self._chunk_has_steps: list[bool] = []
        self._document_terms: list[frozenset[str]] = []
        self._title_terms: list[frozenset[str]] = []
        # surface word → (term, language); the typo index maps one-letter deletes to words.
        self._vocabulary: dict[str, str] = {}
        self._typos: dict[str, set[str]] = defaultdict(set)
        section_fields: dict[int, _Fields] = {}
        for d, document_id in enumerate(self.documents):
            members = by_document[document_id]
            first = self.chunks[members[0]]
            sample = first.title + "\n" + "\n".join(self.chunks[i].text for i in members)[:4000]
            lang = analysis.detect_language(sample)
            self.languages.append(lang)
            title_terms = Counter(analysis.analyze(first.title, lang))
            whole = _Fields(title_terms, Counter(), Counter())
            seen_headings: set[str] = set()
            for i in members:
                chunk = self.chunks[i]
                path = [h for h in chunk.heading.split(" › ") if h and h != chunk.title]
                heading_terms = Counter(analysis.analyze(" ".join(path), lang))
                body_terms = Counter(analysis.analyze(chunk.text, lang))
                section_fields[i] = _Fields(title_terms, heading_terms, body_terms)
                if chunk.heading not in seen_headings:
                    seen_headings.add(chunk.heading)
                    whole.heading.update(heading_terms)
                whole.body.update(body_terms)
                for word, term in analysis.surface_words(
                    f"{chunk.title}\n{chunk.heading}\n{chunk.text}", lang
                ):
                    self._vocabulary.setdefault(word, term)
            self._whole.add(whole.weighted())
            self._document_terms.append(frozenset(whole.weighted()))
            self._title_terms.append(frozenset(title_terms))
        for i in range(len(self.chunks)):
            fields = section_fields[i]
            self._sections.add(fields.weighted())
            self._chunk_terms.append(frozenset(fields.weighted()))
            self._chunk_heading_terms.append(frozenset(fields.title) | frozenset(fields.heading))
            self._chunk_own_heading_terms.append(frozenset(fields.heading))
            self._chunk_has_steps.append(len(_STEP_LINE.findall(self.chunks[i].text)) >= 2)
        self._whole.freeze()
        self._sections.freeze()
        self._document_starts = np.array([by_document[d][0] for d in self.documents], dtype=np.intp)
        for word in self._vocabulary:
            if len(word) >= 4 and not word.isdigit():  # "refnud" (6) ↔ "refund"
                for key in analysis.deletes(word):
                    self._typos[key].add(word)
        self._titled = Naming(self._title_terms)
        self._headed = Naming(self._chunk_heading_terms)
        self._term_documents = Counter(t for terms in self._document_terms for t in terms)
        self._topic_terms = frozenset().union(*self._chunk_heading_terms)
        self._amounts = set().union(*(analysis.amounts(c.text) for c in self.chunks))
        self.language_set = sorted(set(self.languages))

    @property
    def document_starts(self) -> npt.NDArray[np.intp]:
        """Where each document's chunks begin in ``chunks`` (documents in ``documents`` order)."""
        return self._document_starts

    # -- the question ------------------------------------------------------------------------

    def query_terms(self, text: str, *, max_words: int = 32) -> list[QueryTerm]:
        """The question's distinct terms, each matched to the knowledge base's vocabulary when
        possible: its own language's stem, another language of the knowledge base, then a
        vocabulary word one or two edits away (a typo). A word under a negation ("don't want
        a refund") weighs less; an English question's support phrasings bring their
        equivalents (``vocabulary``) as alternatives."""
        lang = analysis.detect_language(text)
        found: dict[str, QueryTerm] = {}
        negated: dict[str, bool] = {}
        english_stems: list[str] = []
        source_of: dict[str, str] = {}  # English stem of a question's word → its term
        words = 0
        light: set[str] = set()
        alternatives: dict[str, list[tuple[str, float]]] = defaultdict(list)
        settled_at = vocabulary.settled_end(text)
        amounts = analysis.amounts(text) & self._amounts
        later = set(analysis.tokens(text[settled_at:]))
        settled: set[str] = set()
        for token, is_negated in vocabulary.marked_tokens(text, lang):
            if words >= max_words:
                break
            if analysis.is_cjk(token):
                for gram in analysis.cjk_terms(token):
                    found.setdefault(gram, self._term(gram, 1.0, gram))
                words += 1
                continue
            if len(token) < 2 or analysis.is_stop_word(token, lang):
                english_stems.append(analysis.stem(token, "en"))
                continue
            words += 1
            term = self._match(token, lang)
            translated = crosslingual.alternatives(token, lang, self._term_documents)
            if translated and (term is None or term[1] < 1.0):
                # A word of another language the knowledge base does not use: its English
                # equivalents, not an English word a typo away.
                term = None
            if term is not None:
                key = term[0]
                small = _SMALL_NUMBER.match(token) and token not in amounts
                weight = term[1] * (SMALL_NUMBER_WEIGHT if small else 1.0)
                if lang == "en" and token in vocabulary.LIGHT_WORDS:
                    light.add(key)
                found.setdefault(key, self._term(key, weight, token))
            else:
                key = analysis.stem(token, lang)
                found.setdefault(key, self._term(key, 1.0, token, known=False))
            if translated:  # also for a false friend the knowledge base uses ("chat": cat)
                alternatives[key].extend(t for t in translated if t[0] != key)
            if settled_at and token not in later:
                settled.add(key)
            # A word negated everywhere it occurs is negated; once asked plainly, it is asked.
            negated[key] = negated.get(key, True) and is_negated
            # A corrected typo is matched to the table by its correction ("cancle" → "cancel").
            corrected = term is not None and term[1] < 1.0
            english_stems.append(key if corrected else analysis.stem(token, "en"))
            source_of.setdefault(english_stems[-1], key)
        idioms: set[str] = set()
        if lang == "en":
            for expansion in vocabulary.expansions(english_stems, self._term_documents):
                if expansion.term in found:
                    continue
                keys = [source_of[s] for s in expansion.sources if s in source_of]
                # "I don't want to cancel, I want to stop paying full price": a meaning the
                # customer negated in its own words stays negated however else they put it.
                if any(negated.get(k) for k in keys):
                    keys = [k for k in keys if negated.get(k)]
                for key in keys:
                    alternatives[key].append((expansion.term, expansion.weight))
                    if expansion.idiom:
                        idioms.add(key)
        out = []
        for key, query_term in found.items():
            share = NEGATED_WEIGHT if negated.get(key) else 1.0
            if key in settled:
                share = min(share, SETTLED_WEIGHT)
            literal = (IDIOM_LITERAL_WEIGHT if key in idioms else 1.0) * (
                LIGHT_WEIGHT if key in light else 1.0
            )
            if share != 1.0 or key in alternatives or literal != 1.0:
                query_term = replace(
                    query_term,
                    weight=query_term.weight * share,
                    share=share,
                    alternatives=tuple(alternatives.get(key, ())),
                    literal=literal,
                    idiom=key in idioms,
                )
            out.append(query_term)
        return out

    def _term(self, term: str, weight: float, word: str, *, known: bool = True) -> QueryTerm:
        known, idf = known and term in self._term_documents, self._whole.idf(term)
        # A word the knowledge base never uses still counts against the confidence, but less
        # than the rarest word it does use: customers say more than any article does ("my
        # script keeps getting 429"), and an off-topic question matches nothing anyway.
        return QueryTerm(term, weight, idf if known else UNKNOWN_SHARE * idf, known, word)

    def _match(self, word: str, lang: str) -> tuple[str, float] | None:
        for candidate_lang in dict.fromkeys([lang, *self.language_set]):
            term = analysis.stem(word, candidate_lang)
            if term in self._term_documents:
                return term, 1.0
        if word in self._vocabulary:
            return self._vocabulary[word], 1.0
        # A question in a language no article is written in has foreign words, not typos of
        # the knowledge base's ("comment je fais" is not "fails").
        if word.isdigit() or len(word) < 4 or lang not in self.language_set:
            return None
        typo = spelling.typo_of(word, self._vocabulary, self._typos, self._term_documents)
        return (self._vocabulary[typo], TYPO_WEIGHT) if typo is not None else None

    def typo_correction(self, word: str, lang: str) -> str | None:
        """The vocabulary word ``word`` (lower case) is a typo of, or None: a word the knowledge
        base knows, none near enough, or a word of ``lang`` (``spelling``: for the dense side)."""
        found = self._match(word, lang)
        if found is None or found[1] >= 1.0:
            return None
        return spelling.typo_of(word, self._vocabulary, self._typos, self._term_documents, lang)

    @property
    def term_counts(self) -> Counter[str]:
        """Per term, how many documents use it."""
        return self._term_documents

    # -- scoring -----------------------------------------------------------------------------

    def search(self, text: str, *, limit: int = 5) -> list[Hit]:
        """Documents for the question, best first, each once with its best section."""
        terms = self.query_terms(text)
        literal = {
            t.term: (t.weight if t.term in self._topic_terms else t.weight * BODY_ONLY_TERM_WEIGHT)
            * t.literal
            for t in terms
            if t.known
        }
        known = list(literal.items())
        # What a title can name: per word of the question, itself and, for a word it did not say
        # in the knowledge base's words (an idiom, a word no article uses), its meaning.
        own: list[list[tuple[str, float]]] = []
        expanded: dict[str, float] = {}
        for t in terms:
            stands_in = not t.known or t.idiom
            word = [(t.term, literal[t.term])] if t.known else []
            for alternative, weight in t.alternatives:
                share = MISMATCH_EXPANSION_WEIGHT if stands_in else EXPANSION_WEIGHT
                weight = share * weight * min(1.0, t.weight)
                expanded[alternative] = max(expanded.get(alternative, 0.0), weight)
                if stands_in:
                    word.append((alternative, weight))
            if word:
                own.append(word)
        known += expanded.items()
        if not known:
            return []
        whole = self._whole.score(known)
        best_whole = float(whole.max(initial=0.0))
        if best_whole <= 0.0:
            return []
        sections = self._sections.score(known)
        how_to = _HOW_TO.search(text) is not None
        best_section_score = float(sections.max(initial=0.0)) or 1.0
        # Every section carries its document's title, so a document that matched has a section
        # that matched: its best one decides the rest of its rank.
        document_best = np.maximum.reduceat(sections, self._document_starts)
        rank = DOCUMENT_SHARE * whole / best_whole + (1 - DOCUMENT_SHARE) * (
            document_best / best_section_score
        )
        rank = rank + self._named(own)
        matched = np.flatnonzero((whole > 0.0) & (document_best > 0.0))
        # Best first; equal ranks in index order (``lexsort`` sorts by its last key first).
        order = matched[np.lexsort((matched, -rank[matched]))][:limit]
        ranked: list[tuple[float, int, int]] = []
        for d in order.tolist():
            start = self._document_starts[d]
            end = self._document_starts[d + 1] if d + 1 < len(self.documents) else len(self.chunks)
            chunk_index = self._section_to_quote(
                known, sections, int(start), int(end), how_to=how_to
            )
            ranked.append((float(rank[d]), d, chunk_index))
        # Unknown words weigh less only while most of the question is the knowledge base's own
        # words; a question mostly about something else ("best pizza in new york") keeps them
        # at full weight, so one incidental match cannot make it look answered.
        unknown_share = UNKNOWN_SHARE if len(known) * 2 > len(terms) else 1.0
        total = sum(
            t.share * (t.idf if t.known else t.idf * unknown_share / UNKNOWN_SHARE) for t in terms
        )
        total = total or 1.0
        evidence = self._evidence(terms, [d for _, d, _ in ranked])
        hits = []
        for (rank_score, d, chunk_index), found in zip(ranked[:limit], evidence, strict=False):
            confidence = self._confidence(terms, total, d, chunk_index)
            hits.append(
                Hit(self.chunks[chunk_index], rank_score, confidence, self.languages[d], found)
            )
        return hits

    def _evidence(
        self, terms: Sequence[QueryTerm], documents: Sequence[int]
    ) -> list[MatchEvidence]:
        """``MatchEvidence`` for each of the ranked documents (see there)."""
        terms = [s for t in terms for s in self._stand_ins(t)]
        known = [t for t in terms if t.known]
        # Counted in words, not idf: a word no article uses would otherwise outweigh any common
        # one it does ("finish my ride" is about rides), and "is it in scope" asks whether the
        # help center speaks of the things the customer names, not how rare they are.
        words = {t.word for t in terms}
        known_share = len({t.word for t in known}) / len(words) if words else 0.0
        # Weighed as in the ranking: a word the knowledge base uses only in running text, less.
        mass = [
            t.idf * t.weight * (1.0 if t.term in self._topic_terms else BODY_ONLY_TERM_WEIGHT)
            for t in known
        ]
        known_mass = sum(mass) or 1.0
        specific_term = max(known, key=lambda t: t.idf, default=None)
        coverages = []
        for d in documents:
            has = self._document_terms[d]
            # An equivalent the question did not use covers its word in part, as in the ranking.
            covered = sum(
                m * (1.0 if t.term in has else EXPANSION_CREDIT * _any_in(t.alternatives, has))
                for t, m in zip(known, mass, strict=True)
            )
            coverages.append(covered / known_mass)
        out = []
        for i, d in enumerate(documents):
            has = self._document_terms[d]
            after = max(coverages[i + 1 :], default=0.0)
            out.append(
                MatchEvidence(
                    known_share=round(known_share, 4),
                    coverage=round(coverages[i], 4),
                    specific=specific_term is not None and specific_term.term in has,
                    lead=round(coverages[i] - after, 4),
                    missing=tuple(
                        dict.fromkeys(
                            t.word
                            for t in terms
                            if not any(o.term in has for o in terms if o.word == t.word)
                        )
                    ),
                )
            )
        return out

    def _named(self, words: Sequence[Sequence[tuple[str, float]]]) -> npt.NDArray[np.float64]:
        """Per document, ``TITLE_BONUS`` times the share of the question's words its title
        names plus ``HEADING_BONUS`` times the share its best-named section's headings (title
        included) name (``postings.Naming``). Unsaturated, unlike BM25F: in "how do I cancel",
        an article titled "Cancelling your subscription" is about the word, one whose body
        mentions cancelling is not."""
        titles = self._titled.share(words, self._whole.idf)
        headings = np.maximum.reduceat(
            self._headed.share(words, self._whole.idf), self._document_starts
        )
        return TITLE_BONUS * titles + HEADING_BONUS * headings

    def _stand_ins(self, term: QueryTerm) -> list[QueryTerm]:
        """``term``, or for a word the knowledge base never uses but names otherwise ("book"
        for "reserve"), its equivalents as known terms of that word."""
        if term.known or not term.alternatives:
            return [term]
        return [
            QueryTerm(
                other,
                term.weight * weight * MISMATCH_EXPANSION_WEIGHT,
                self._whole.idf(other),
                True,
                term.word,
            )
            for other, weight in term.alternatives
        ]

    def _section_to_quote(
        self,
        known: Sequence[tuple[str, float]],
        sections: npt.NDArray[np.float64],
        start: int,
        end: int,
        *,
        how_to: bool = False,
    ) -> int:
        """The document's section to answer from: the best BM25F score, raised for a section
        whose own headings name the question's words, and for a how-to question, for a section
        with numbered steps; ties go to the earlier section."""
        weights = [self._whole.idf(term) * weight for term, weight in known]
        total = sum(weights) or 1.0
        asked, best, best_key = {term for term, _ in known}, start, -1.0
        for i in range(start, end):
            own = self._chunk_own_heading_terms[i] & asked  # most name none of the words asked
            named = sum(w for (t, _), w in zip(known, weights, strict=True) if t in own) if own else 0
            key = float(sections[i]) * (1.0 + SECTION_HEADING_BONUS * named / total)
            if how_to and self._chunk_has_steps[i]:
                key *= 1.0 + STEPS_BONUS
            if key > best_key:
                best, best_key = i, key
        return best

    def _confidence(
        self, terms: Sequence[QueryTerm], total: float, document: int, chunk_index: int
    ) -> float:
        heading_terms = self._chunk_heading_terms[chunk_index]
        section_terms = self._chunk_terms[chunk_index]
        document_terms = self._document_terms[document]

        def credit(term: str) -> float:
            if term in heading_terms:
                return 1.0
            if term in section_terms:
                return BODY_ONLY_CREDIT
            if term in document_terms:
                return ELSEWHERE_CREDIT
            return 0.0

        covered = 0.0
        for term in terms:
            own = credit(term.term) if term.known else 0.0
            stand_in = max((credit(a) for a, _ in term.alternatives), default=0.0)
            covered += term.idf * max(term.weight * own, term.share * EXPANSION_CREDIT * stand_in)
        return round(min(1.0, covered / total), 4)
