"""Connector discovery imports only the connectors a configuration asks for."""

from __future__ import annotations

import subprocess
import sys


def test_only_the_connectors_asked_for_are_imported() -> None:
    # A fresh interpreter: this test process may have imported every connector already.
    probe = (
        "import sys\n"
        "from bot.connector import discover_factories\n"
        "found = discover_factories(['web'])\n"
        "print(sorted(found), sorted(m for m in sys.modules if m.startswith('connectors.')"
        " and m.count('.') == 1))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "['web'] ['connectors.web']"


def test_every_installed_connector_without_a_list() -> None:
    from bot.connector import discover_factories

    assert {"intercom", "slack", "web"} <= set(discover_factories())
