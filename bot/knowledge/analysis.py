"""Text analysis per language: the terms a document and a question are compared on.

- The language of a text is guessed from its script (kana → Japanese, Han → Chinese, Hangul →
  Korean) and, for Latin script, from stop words and letters only some languages use. Short
  questions with no evidence count as English.
- Latin, Greek and Cyrillic words are lower-cased, stop words dropped and stemmed with the
  Snowball stemmer of the text's language (``snowballstemmer``), so "Rückerstattungen" and
  "Rückerstattung" meet, as do "refunds" and "refunded".
- CJK has no spaces: a run of CJK characters becomes overlapping character bigrams (and a
  lone character itself), the usual dependency-free way to index it.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import snowballstemmer

from bot.knowledge.terms import STOP_WORDS as ENGLISH_STOP_WORDS

_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+|[^\W_]+", re.UNICODE
)
_COMPOUND = re.compile(r"(?<![\w-])[^\W\d_]+(?:-[^\W\d_]+)+(?![\w-])", re.UNICODE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
MAX_TERM_CHARS = 40

# Snowball algorithm per ISO 639-1 code, for the languages a help center is commonly written in.
STEMMERS = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "pt": "portuguese",
    "nl": "dutch",
    "sv": "swedish",
    "da": "danish",
    "no": "norwegian",
    "fi": "finnish",
    "pl": "polish",
    "ru": "russian",
}


def _split(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Short function-word lists: enough to tell the languages apart and keep words that carry no
# topic out of the score. (English reuses the list the rest of the knowledge base shares.)
_STOP = {
    "en": ENGLISH_STOP_WORDS,
    "de": _split(
        """aber alle als also am an auch auf aus bei bin bis bitte da damit dann das dass dem den
        der des die dies diese doch du ein eine einem einen einer er es für gibt hat habe haben
        hallo ich ihr im in ist ja kann kein keine man mein meine mich mir mit muss nach nicht
        noch nun nur ob oder sich sie sind so um und uns unser von vor war was wenn wer wie wir
        wo zu zum zur über danke bekomme bekommen werden wird wurde ab beim dein deine durch
        etwas euch euer gegen gerade hab hast hatte hätte ihm ihn ihnen ihre ihrem ihren ihrer
        immer jetzt können könnte konnte mal meinem meinen meiner meines mehr möchte möchten
        nichts ohne schon sehr sein seine seit sollte soll unsere unserem unseren unserer weil
        welche welcher welches wieder würde gibt's leider geht worden machen mache macht wieviel"""
    ),
    "fr": _split(
        """au aux avec ce ces cette dans de des du elle en est et il je la le les leur lui ma mais
        me mes moi mon ne nous on ou où par pas pour qu que qui sa se ses son sur ta te toi ton
        tu un une vos votre vous bonjour merci puis puis-je peux comment est-ce quoi ai avez
        avoir aussi bien ça cela comme déjà dois elles encore été être fait faire faut ils leurs
        même nos notre peut pouvez pourquoi quand quel quelle rien sans si suis très tout tous
        toute veux voudrais fais faites savoir sais soit combien après"""
    ),
    "es": _split(
        """a al como con cómo de del el ella en es esta este hola la las le lo los me mi mis no nos
        o para pero por que qué se su sus te tu un una y yo gracias puedo cuando dónde donde hay
        algo alguien ahora aún cuál cual desde durante entre era está están estoy estaba fue
        hace hacer ha han hasta muy más mucho nada ni otra otro porque pues quiero quisiera sin
        sobre también tengo tiene tienen todo todos usted ustedes vez ya les ese esa eso esto
        dice cuánto cuanto cuánta"""
    ),
    "it": _split(
        """a al che con come da del della di e è gli ha i il in io la le lo mi mio non per più si
        sono su un una ciao grazie posso alla alle allo anche ancora avere ho hai abbiamo avete
        hanno ci cosa così dal dalla dall dei delle dello degli dopo dove ecco era essere faccio
        fare già ma mia mie miei molto ne nel nella nei noi perché però poi qui quando quale
        quello questa questo sei sia sto sta stato suo sua tra tu tuo tutto tutti vi voglio
        vorrei adesso riesco può quanto quanta"""
    ),
    "pt": _split(
        """a ao as com como da das de do dos e é em eu mas me meu minha na não no nos o os para por
        que se seu sua um uma olá obrigado posso aos às até depois ele ela eles elas essa esse
        está estou estão foi fazer faço já lhe mais meus minhas muito nada nem nossa nosso num
        numa onde ou pela pelo pelas pelos porque quando quero qual sem ser sobre também tem
        tenho ter tudo você vocês consigo isso quanto quanta"""
    ),
    "nl": _split(
        """aan al als bij dat de die dit een en er het hij hoe ik in is je kan met mijn niet of om
        ook op te van voor wat we wij ze zijn hallo bedankt alle alleen ben bent daar dan dus
        eens elke geen heb hebben hem haar heeft hier hun jij jou jullie kunnen kunt maar meer
        mij moet moeten na naar nog nu ons onze toch tot uw veel wel werd wie wil wilt worden
        wordt zal zou voordat omdat waar wanneer graag hoeveel"""
    ),
    # The Scandinavian languages: told apart from German (which shares "ä", "ö") and from
    # each other, so that a question in one is not read with another's stemmer and table.
    "sv": _split(
        """och att det som en ett är på för med jag inte av om har du mitt mina hur vad kan får så
        från eller när då ska skulle vill hej tack jättebra också mig dig sig någon något inga
        vår våra eran ert"""
    ),
    "da": _split(
        """og det som en er på med jeg ikke til af om har du mit hvordan hvad kan får så fra eller
        når da skal skulle vil hej tak også mig dig sig nogen noget vores jeres hvorfor hvornår"""
    ),
    "no": _split(
        """og det som en er på med jeg ikke til av om har du mitt hvordan hva kan får så fra eller
        når da skal skulle vil hei takk også meg deg seg noen noe vår våre hvorfor hvorn"""
    ),
    # Polish: only words no English text uses ("nie", "się", "czy", "że"…), each also as typed
    # without its diacritics. Not "i", "a", "to", "do", "on", "go", "my", "was" (English words),
    # nor "jest", "ale", "mam", "pan", "nic", "cos", "lub", "bo", "ma", "po", "pod" (English
    # words too); not "tak", "ja", "ich", "sie", "ze", "te", "tu", "mi" (stop words elsewhere).
    "pl": _split(
        """nie się że czy jak jako już juz jeszcze przez przy dla oraz od na nad bez albo
        też tez także takze tylko bardzo teraz tego tej tym tych temu który która które którego
        której których ktory ktora ktore ją mnie mój moja moje mojego mojej moim moją moj
        swój swoja swoje swojego swojej swoim swoją sobie nasz nasza nasze naszego naszej wasz
        wasza wasze jego jej ona jestem jesteś są był była było były będzie bedzie być byc mogę
        moge może moze można mozna chcę chce chciałbym chciałabym chcialbym chcialabym muszę
        musze trzeba proszę prosze dziękuję dziekuje dzięki dzieki dzień dzien dobry witam
        cześć czesc gdzie kiedy dlaczego czemu ile jaki jaka jakie jakiś jakis coś ktoś ktos
        wszystko wszystkie ponieważ poniewaz jeśli jesli jeżeli jezeli gdy więc wiec czyli
        nawet jednak pani państwo panstwo zrobić zrobic mogą moga miałem miałam mialem mialam
        został została zostało zostal zostala zostalo"""
    ),
}
# Letters that (among these languages) only some use: a strong hint on a short question.
_LETTER_HINTS = {
    "de": "äöüß",
    "fr": "èêàçœëî",
    "es": "ñ¿¡",
    "pt": "ãõ",
    "sv": "åäö",  # "ä", "ö" shared with German: the words decide, ties go to German
    "da": "æø",
    "no": "æø",
    "pl": "ąćęłńśźż",  # not "ó", which Spanish writes too
}


def tokens(text: str) -> list[str]:
    """Lower-cased words and CJK runs of ``text`` in order; punctuation and symbols separate.

    A hyphenated word also counts written as one ("e-bike" → "e", "bike", "ebike"), because
    customers write it both ways ("ebike", "login", "twofactor") and "e" alone is no word.
    """
    lowered = text.lower()
    found = _TOKEN.findall(lowered)
    found.extend(m.group().replace("-", "") for m in _COMPOUND.finditer(lowered))
    return [t for t in found if len(t) <= MAX_TERM_CHARS]


def detect_language(text: str) -> str:
    """An ISO 639-1 guess: ``ja``, ``zh``, ``ko``, ``ru`` by script; for Latin script the
    language whose stop words and letters the text uses most; ``en`` without evidence."""
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    if _CJK.search(text):
        return "zh"
    if _CYRILLIC.search(text):
        return "ru"
    words = _TOKEN.findall(text.lower())
    lowered = text.lower()
    best, best_score = "en", 0.0
    for lang, stop in _STOP.items():
        score = float(sum(1 for w in words if w in stop))
        score += 1.5 * sum(lowered.count(ch) for ch in _LETTER_HINTS.get(lang, ""))
        if lang == "en":
            score += 0.5  # ties go to English: the common case, and the stop list is the longest
        if score > best_score:
            best, best_score = lang, score
    return best


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@functools.lru_cache(maxsize=32)
def _stemmer(lang: str) -> snowballstemmer.stemmer | None:
    """The language's Snowball stemmer (English for a language without one, as CJK texts' Latin
    words), or none when the installed ``snowballstemmer`` lacks its algorithm: Polish came with
    Snowball 3.0 (snowballstemmer 3.0.0, 2025); under 2.2 a Polish word is its own stem, and
    ``support_words/pl.txt`` lists the inflections a question uses most."""
    algorithm = STEMMERS.get(lang, "english")
    if algorithm not in snowballstemmer.algorithms():
        return None
    return snowballstemmer.stemmer(algorithm)


# The stems of the words met lately. Each new word a customer types (a name, a typo, an order
# reference) takes an entry of about 250 bytes that stays until pushed out, so the bound is
# memory the daemon keeps for good: at 131,072 the two stem caches (this and ``terms.stem``)
# held 49 MB once full, a third of DESIGN §11's 150 MB; now at most ~12 MB. A help center of
# 50,000 distinct words (a Zipf spread) stems its tail again on each index build: 1 s more CPU
# per million words indexed, measured; 16,384 would have cost 5 s.
STEM_CACHE_SIZE = 32_768


def stem(word: str, lang: str) -> str:
    """The Snowball stem of a lower-cased word in ``lang``, accents folded afterwards (so a
    customer who types "Ruckerstattung" still meets "Rückerstattung")."""
    if word.isdigit():
        return word  # numbers are their own stem, and cached would fill the cache with each one
    return _stem(word, lang)


@functools.lru_cache(maxsize=STEM_CACHE_SIZE)
def _stem(word: str, lang: str) -> str:
    stemmer = _stemmer(lang)
    return _strip_accents(stemmer.stemWord(word) if stemmer else word)


def is_stop_word(word: str, lang: str) -> bool:
    stop = _STOP.get(lang)
    return bool(stop and word in stop) or word in ENGLISH_STOP_WORDS


def cjk_terms(run: str) -> list[str]:
    """Overlapping character bigrams of a CJK run; a lone character stands for itself."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def analyze(text: str, lang: str | None = None) -> list[str]:
    """The terms of ``text`` (repeats kept, in order) under its language's rules."""
    lang = lang or detect_language(text)
    out: list[str] = []
    for token in tokens(text):
        if _CJK.match(token):
            out.extend(cjk_terms(token))
        elif len(token) >= 2 and not is_stop_word(token, lang):
            out.append(stem(token, lang))
    return out


def surface_words(text: str, lang: str) -> list[tuple[str, str]]:
    """(word, term) pairs of the non-CJK content words: what typo tolerance corrects against."""
    return [
        (token, stem(token, lang))
        for token in tokens(text)
        if not _CJK.match(token) and len(token) >= 2 and not is_stop_word(token, lang)
    ]


def is_cjk(token: str) -> bool:
    return bool(_CJK.match(token))


_AMOUNT = re.compile(r"[£$€¥]\s?(\d+)|(\d+)\s?(?:€|eur\b|usd\b|gbp\b)", re.IGNORECASE)


def amounts(text: str) -> set[str]:
    """The numbers ``text`` states as amounts of money ("£99", "$5", "10 €"), as digits."""
    return {a or b for a, b in _AMOUNT.findall(text)}


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (a swap of neighbours counts once), or ``limit + 1``
    as soon as it must exceed ``limit``. Short words only; no library needed for this size."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def deletes(word: str) -> set[str]:
    """The word with any one letter removed (and itself): keys of the typo index."""
    return {word} | {word[:i] + word[i + 1 :] for i in range(len(word))}
