"""Questions in other languages find their article: German plurals, Japanese without spaces,
typos; the language is detected per document and per question."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.knowledge import KnowledgeBase
from bot.knowledge.analysis import analyze, detect_language
from bot.knowledge.crosslingual import english_gloss, english_terms


def _write(root: Path) -> None:
    (root / "rueckerstattung.md").write_text(
        "# Rückerstattung\n\n## Wann kommt das Geld?\n\nEine genehmigte Rückerstattung wird "
        "innerhalb von 10 Werktagen auf die ursprüngliche Zahlungsmethode überwiesen.\n",
        encoding="utf-8",
    )
    (root / "nifa.md").write_text(
        "# 二段階認証\n\n## 二段階認証を有効にする\n\n設定画面のセキュリティから二段階認証を"
        "オンにして、認証アプリでコードを読み取ります。\n",
        encoding="utf-8",
    )
    (root / "refunds.md").write_text(
        "# Refund policy\n\n## How to ask for a refund\n\nOpen Billing and click Request "
        "refund. Refunds arrive within 10 days.\n",
        encoding="utf-8",
    )
    (root / "passwords.md").write_text(
        "# Resetting your password\n\nClick Forgot password on the sign-in page.\n",
        encoding="utf-8",
    )


def test_languages_are_detected() -> None:
    assert detect_language("Wie funktionieren Rückerstattungen?") == "de"
    assert detect_language("二段階認証を有効にするにはどうすればいいですか？") == "ja"
    assert detect_language("Où puis-je télécharger mes factures ?") == "fr"
    assert detect_language("how do I get a refund") == "en"


def test_german_plural_and_singular_share_a_stem() -> None:
    assert analyze("Rückerstattungen", "de") == analyze("Rückerstattung", "de")


async def test_a_german_plural_finds_the_german_article(kb: KnowledgeBase, tmp_path: Path) -> None:
    _write(tmp_path)
    await kb.ingest([tmp_path])
    found = await kb.search("Wie funktionieren Rückerstattungen?", limit=3)
    assert found and found[0].source == "rueckerstattung.md"


async def test_a_japanese_question_finds_the_japanese_article(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    _write(tmp_path)
    await kb.ingest([tmp_path])
    found = await kb.search("二段階認証を有効にするにはどうすればいいですか？", limit=3)
    assert found and found[0].source == "nifa.md"


async def test_a_typo_is_corrected_against_the_vocabulary(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    _write(tmp_path)
    await kb.ingest([tmp_path])
    found = await kb.search("how do i ask for a refnud", limit=3)
    assert found and found[0].source == "refunds.md"


async def test_each_document_comes_once(kb: KnowledgeBase, tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "long.md").write_text(
        "# Refunds\n\n"
        + "\n\n".join(f"## Refund case {n}\n\nA refund for case {n} is paid." for n in range(8)),
        encoding="utf-8",
    )
    await kb.ingest([tmp_path])
    found = await kb.search("refund", limit=5)
    assert len({p.document_id for p in found}) == len(found)


def test_a_hyphenated_word_also_counts_written_as_one() -> None:
    assert analyze("Charge the e-bike") == ["charg", "bike", "ebik"]
    assert "twofactor" in analyze("two-factor codes")


async def test_a_question_finds_a_hyphenated_word_written_as_one(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    _write(tmp_path)
    await kb.ingest([tmp_path])
    [hit] = await kb.search("signin", limit=1)
    assert hit.source == "passwords.md"


def _write_english_help_center(root: Path) -> None:
    articles = {
        "freeze-your-card.md": "# Freeze or unfreeze your card\n\nBlocked your card by mistake? "
        "Open the app, tap Card and switch Freeze off to unlock it again.\n",
        "card-limits.md": "# Card limits\n\nYour card has a daily limit for payments and cash.\n",
        "parcel-sizes.md": "# Parcel sizes and prices\n\nA small parcel costs 3 EUR, a medium "
        "one 5 EUR and a large one 8 EUR, whatever the destination.\n",
        "track-a-parcel.md": "# Track a parcel\n\nEvery parcel has a tracking code in the app.\n",
        "meter-readings.md": "# Submit a meter reading\n\nSend your meter reading on the website "
        "under Account › Readings so your bill uses real figures.\n",
        "moving-home.md": "# Moving home\n\nTell us your new address two weeks before you move.\n",
    }
    for name, text in articles.items():
        (root / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("question", "article"),
    [
        ("Ho bloccato la carta, come faccio a sbloccarla?", "freeze-your-card.md"),
        ("¿Cuánto cuesta un paquete grande?", "parcel-sizes.md"),
        ("¿Dónde mando la lectura del contador?", "meter-readings.md"),
        ("Wo gebe ich den Zählerstand an?", "meter-readings.md"),
        ("Mijn pas is per ongeluk geblokkeerd, hoe deblokkeer ik hem?", "freeze-your-card.md"),
        ("Zablokowałem kartę przez pomyłkę, jak ją odblokować?", "freeze-your-card.md"),
        ("Ile kosztuje duża paczka?", "parcel-sizes.md"),
        ("Gdzie mogę podać odczyt licznika?", "meter-readings.md"),
        ("Przeprowadzam się, jak zmienić adres?", "moving-home.md"),
    ],
)
async def test_everyday_words_of_other_languages_meet_an_english_article(
    kb: KnowledgeBase, tmp_path: Path, question: str, article: str
) -> None:
    _write_english_help_center(tmp_path)
    await kb.ingest([tmp_path])
    found = await kb.search(question, limit=3)
    assert found and found[0].source == article


def test_a_word_as_written_is_read_before_its_stem() -> None:
    # "Zähler" (meter) and "zahlen" (to pay) share the German stem "zahl".
    assert english_terms("zähler", "de") == ("meter",)
    assert "pay" in english_terms("zahlen", "de")
    # An inflection not listed meets its word by the stem.
    assert "unlock" in english_terms("sbloccarla", "it")


def test_a_question_reads_in_english_word_by_word() -> None:
    """What the dense side embeds beside the question: the support words in English (the
    line's words as written), stop words left out, other words (names, numbers) kept."""
    gloss = english_gloss("Wo gebe ich den Zählerstand für Brightwatt ein?", "de")
    assert gloss.split()[-1] == "brightwatt"
    assert "meter" in gloss and "den" not in gloss.split()
    # The same word of another language is not read in this one's table.
    assert english_gloss("passwort", "fr") == "passwort"


def test_scandinavian_questions_are_not_read_as_german() -> None:
    assert detect_language("Hur ändrar jag min adress? Jag har flyttat.") == "sv"
    assert detect_language("Hej, jeg har ikke fået min ordre. Hvad gør jeg?") == "da"
    assert detect_language("Hei, jeg har ikke fått bestillingen min. Hva gjør jeg?") == "no"
    # German keeps its letters' hint: a short question with "ä", "ö" stays German.
    assert detect_language("Größe ändern?") == "de"
    assert detect_language("wait 10 min") == "en"


async def test_a_swedish_question_meets_an_english_article(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    _write_english_help_center(tmp_path)
    await kb.ingest([tmp_path])
    found = await kb.search("Hej, mitt kort är spärrat av misstag. Hur låser jag upp det?", limit=3)
    assert found and found[0].source == "freeze-your-card.md"


def test_polish_is_detected_and_english_stays_english() -> None:
    assert detect_language("Dzień dobry, nie dostałem jeszcze zamówienia, co mam zrobić?") == "pl"
    # Typed without diacritics, the function words still tell.
    assert detect_language("Dzien dobry, gdzie jest moja paczka?") == "pl"
    # English sentences with the short words Polish also writes ("to", "do", "no", "a", "na").
    for english in (
        "how do I get a refund",
        "I want to go to the shop to do a return",
        "No, I do not have a card yet",
        "Is the NA option on my plan?",
        "Can I talk to a person?",
    ):
        assert detect_language(english) == "en", english


def test_a_polish_word_is_read_as_written_in_its_inflections() -> None:
    assert english_terms("zamówienia", "pl") == ("order",)


def test_a_language_whose_stemmer_is_not_installed_keeps_its_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Snowball's Polish stemmer came with snowballstemmer 3.0; under an older one a Polish
    word is its own stem (accents folded) rather than an English stem or an error."""
    import snowballstemmer

    from bot.knowledge import analysis

    present = snowballstemmer.algorithms()
    monkeypatch.setattr(
        snowballstemmer, "algorithms", lambda: [a for a in present if a != "polish"]
    )
    analysis._stemmer.cache_clear()
    analysis._stem.cache_clear()
    try:
        assert analysis.stem("zamówienia", "pl") == "zamowienia"
        assert analysis.stem("refunds", "en") == "refund"
    finally:
        analysis._stemmer.cache_clear()
        analysis._stem.cache_clear()


@pytest.mark.parametrize(
    "question",
    [
        "Hvor mange kontanter kan jeg hæve om dagen?",  # Danish
        "Hvor mye kontanter kan jeg ta ut per dag?",  # Norwegian
        "Hur mycket kontanter kan jag ta ut per dag?",  # Swedish
    ],
)
async def test_scandinavian_everyday_words_meet_an_english_article(
    kb: KnowledgeBase, tmp_path: Path, question: str
) -> None:
    """Cash, a day, taking out: words of the grown Scandinavian tables, none a cognate."""
    _write_english_help_center(tmp_path)
    await kb.ingest([tmp_path])
    found = await kb.search(question, limit=3)
    assert found and found[0].source == "card-limits.md"
