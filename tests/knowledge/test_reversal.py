"""An article that undoes an ending (reactivating a cancelled account) shares the ending's words;
a question about the ending itself finds the ending's article first (``bot.knowledge.reversal``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import KnowledgeSettings
from bot.knowledge import KnowledgeBase
from bot.store.database import Database

CANCEL = """# Cancel your subscription

You can cancel at any time.

## Cancel

1. Go to Settings > Billing > Plan.
2. Click Cancel subscription.
"""
REACTIVATE = """# Reactivate a cancelled subscription

If you cancelled your subscription and your plan, you can reactivate it within 90 days of
cancelling. A cancelled plan keeps its history.

## Within 90 days of cancelling

1. Sign in and click Reactivate on the cancelled plan banner.
2. Choose your plan.
"""


@pytest.fixture
async def kb(kb_db: Database, tmp_path: Path) -> KnowledgeBase:
    (tmp_path / "cancel-your-subscription.md").write_text(CANCEL)
    (tmp_path / "reactivate-a-cancelled-subscription.md").write_text(REACTIVATE)
    knowledge = KnowledgeBase(kb_db, KnowledgeSettings())
    await knowledge.ingest([tmp_path])
    return knowledge


@pytest.mark.parametrize(
    "question",
    ["how do i cancel my plan, i cancelled the trial already", "cancel my subscription plan"],
)
async def test_a_question_about_ending_finds_the_ending_first(
    kb: KnowledgeBase, question: str
) -> None:
    found = await kb.search(question)
    assert found[0].title == "Cancel your subscription"


@pytest.mark.parametrize(
    "question",
    [
        "I cancelled my plan last month, how do I reactivate it?",
        "please reactivate my cancelled subscription",
    ],
)
async def test_a_question_about_undoing_it_still_finds_the_undoing(
    kb: KnowledgeBase, question: str
) -> None:
    found = await kb.search(question)
    assert found[0].title == "Reactivate a cancelled subscription"
