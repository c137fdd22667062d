"""The store's rooms stay small: one module per aggregate behind a thin facade."""

from __future__ import annotations

from pathlib import Path

import bot.store.store

STORE = Path(bot.store.store.__file__).parent
# ISSUE 13: no module over ~600 lines; a module that outgrows this wants splitting by aggregate.
MAX_LINES = 600


def test_no_store_module_outgrows_an_aggregate() -> None:
    sizes = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in STORE.glob("*.py")
    }
    assert "store.py" in sizes
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_facade_holds_no_queries() -> None:
    source = (STORE / "store.py").read_text(encoding="utf-8")
    # Queries live in the aggregates; the facade only composes them.
    assert "from sqlalchemy" not in source and "import sqlalchemy" not in source
    assert ".run_tx(" not in source and ".run_read(" not in source
