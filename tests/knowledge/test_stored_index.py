"""The search index stored beside a SQLite database: a start with the knowledge base unchanged
loads it instead of analysing every chunk again; a changed document is found all the same."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import KnowledgeSettings
from bot.knowledge import KnowledgeBase, analysis, stored_index
from bot.store.database import Database

# The stored index is SQLite's (a file beside the database); PostgreSQL builds as before.
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The chunks' texts analysed for an index's vocabulary (``analysis.surface_words``, which
    only building an index calls), one entry a chunk."""
    texts: list[str] = []
    surface_words = analysis.surface_words

    def counted(text: str, lang: str) -> list[tuple[str, str]]:
        texts.append(text)
        return surface_words(text, lang)

    monkeypatch.setattr(analysis, "surface_words", counted)
    yield texts


def _write(folder: Path, sso_body: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "billing.md").write_text(
        "# Billing\n\n## Invoices\n\nInvoices are emailed to the billing contact.\n",
        encoding="utf-8",
    )
    (folder / "sso.md").write_text(f"# Single sign-on\n\n{sso_body}\n", encoding="utf-8")


def _start(db: Database) -> KnowledgeBase:
    """What a new process has: a knowledge base with nothing in memory yet."""
    return KnowledgeBase(db, KnowledgeSettings(chunk_chars=400))


async def test_an_unchanged_knowledge_base_is_loaded_and_a_changed_one_analysed_again(
    kb_db: Database, tmp_path: Path, analysed: list[str]
) -> None:
    docs = tmp_path / "kb"
    _write(docs, "Create a SAML app in Okta.")
    first = _start(kb_db)
    await first.ingest([docs])
    assert (await first.search("where are invoices sent"))[0].title == "Billing"
    assert len(analysed) == 2

    # The next start, nothing changed: the stored index, no chunk analysed.
    second = _start(kb_db)
    assert (await second.search("where are invoices sent"))[0].title == "Billing"
    assert (await second.search("saml okta"))[0].title == "Single sign-on"
    assert len(analysed) == 2

    # A document changes: the next start analyses again and finds the new text.
    _write(docs, "Create an enterprise application in Microsoft Entra.")
    await second.ingest([docs])
    third = _start(kb_db)
    (found,) = await third.search("microsoft entra")
    assert found.title == "Single sign-on" and "Entra" in found.text
    assert len(analysed) == 4
    assert not await third.search("okta")

    # And that index is the one the start after it loads.
    fourth = _start(kb_db)
    assert (await fourth.search("microsoft entra"))[0].title == "Single sign-on"
    assert len(analysed) == 4
    assert [kb.index_builds for kb in (first, second, third, fourth)] == [1, 0, 1, 0]


class _Planted:
    """What a hostile file would make the loader call, if it called what a pickle names."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("planted",))


async def test_a_stored_file_naming_anything_but_an_index_is_refused_and_the_index_built(
    kb_db: Database, tmp_path: Path, analysed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "kb"
    _write(docs, "Create a SAML app in Okta.")
    await _start(kb_db).ingest([docs])
    await _start(kb_db).search("invoices")
    stored = Path(f"{kb_db.engine.url.database}.kb-index")
    key, _, _ = stored.read_bytes().partition(b"\n")
    stored.write_bytes(key + b"\n" + pickle.dumps(_Planted()))  # the right key, other content

    again = _start(kb_db)
    assert (await again.search("where are invoices sent"))[0].title == "Billing"
    assert len(analysed) == 4
    assert again.index_builds == 1
    assert "planted" not in capsys.readouterr().out
    assert stored_index.load(stored, key.decode()) is not None  # stored afresh


async def test_an_index_that_cannot_be_stored_still_answers(
    kb_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing is a saving, never a condition: a pickling failure (as when another ranking
    class stands in) or a full disk leaves the index in memory answering, and no file half
    written."""
    docs = tmp_path / "kb"
    _write(docs, "Create a SAML app in Okta.")

    def refuse(*args: object, **kwargs: object) -> None:
        raise pickle.PicklingError("cannot pickle this index")

    monkeypatch.setattr(stored_index.pickle, "dump", refuse)
    kb = _start(kb_db)
    await kb.ingest([docs])
    assert (await kb.search("where are invoices sent"))[0].title == "Billing"
    folder = Path(str(kb_db.engine.url.database)).parent
    assert not list(folder.glob("*.kb-index*"))

