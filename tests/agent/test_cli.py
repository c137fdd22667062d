"""``supportbot chat`` and ``supportbot simulate`` as a user runs them: the real command in a
subprocess, fresh install (no config file), the offline responder and the bundled knowledge."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.agent.simulate import simulate
from bot.app import launcher
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "examples" / "scenarios.yaml"


def _supportbot(
    args: list[str], cwd: Path, stdin: str = "", timeout: float = 50
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env["SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND"] = "none"  # keyword-only, as without the extra
    env["SUPPORTBOT_LOG__FORMAT"] = "text"
    return subprocess.run(
        [sys.executable, "-c", "from bot.cli import main; main()", *args],
        input=stdin,
        capture_output=True,
        check=False,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def test_chat_answers_with_a_citation_closes_and_escalates(tmp_path: Path) -> None:
    lines = [
        "Hi!",
        "How do I reset my password?",
        "thanks, that solved it",
        "I want to talk to a human",
        "/quit",
        "never read",
    ]
    done = _supportbot(
        ["chat", "--as", "web:ada", "--name", "Ada Lovelace"], tmp_path, "\n".join(lines) + "\n"
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "⚙ USER_INFO_LOOKUP" in out and "bot> Hi Ada! How can I help you today?" in out
    assert "Source: Resetting your password" in out
    assert "(account/resetting-your-password.md)" in out
    assert "⚙ CLOSE" in out and "[conversation closed]" in out
    assert "⚙ ESCALATE" in out and "a person will follow up" in out
    assert "[escalated; thread escalated, control human]" in out
    assert "never read" not in out
    assert (tmp_path / "supportbot.db").exists()  # the embedded default database


def test_chat_ends_at_end_of_input(tmp_path: Path) -> None:
    done = _supportbot(["chat"], tmp_path, "What is the weather on Mars?\n")
    assert done.returncode == 0, done.stderr
    assert "⚙ ESCALATE" in done.stdout


def test_simulate_the_example_scenarios_passes_offline(tmp_path: Path) -> None:
    done = _supportbot(["simulate", str(SCENARIOS)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "7/7 scenarios passed" in done.stdout
    assert "FAIL" not in done.stdout
    assert not (tmp_path / "supportbot.db").exists()  # a throwaway database, not the real one


async def test_simulate_reports_failures_and_exits_non_zero(tmp_path: Path) -> None:
    scenarios = tmp_path / "failing.yaml"
    scenarios.write_text(
        "scenarios:\n"
        "  - name: wrong expectation\n"
        "    turns:\n"
        "      - say: How do I reset my password?\n"
        "        expect: {tools_called: [ESCALATE], reply_contains: [banana]}\n"
        "    final_state: closed\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    code = await simulate(
        make_settings(f"sqlite:///{tmp_path}/unused.db"), scenarios, out, launch=launcher()
    )
    assert code == 1
    assert out.getvalue().count("FAIL") == 3
    assert "0/1 scenarios passed" in out.getvalue()


async def test_simulate_json_shows_each_turns_reply_action_tools_and_citations(
    tmp_path: Path,
) -> None:
    scenarios = tmp_path / "turns.yaml"
    scenarios.write_text(
        "scenarios:\n"
        "  - name: answer then close\n"
        "    turns:\n"
        "      - say: How do I reset my password?\n"
        "      - say: thanks, that did it!\n"
        "  - name: nothing to answer from\n"
        "    turns:\n"
        "      - say: Which telescope should I buy to see Saturn's rings?\n"
        "        expect: {tools_called: [ESCALATE]}\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    code = await simulate(
        make_settings(f"sqlite:///{tmp_path}/unused.db"),
        scenarios,
        out,
        launch=launcher(),
        as_json=True,
    )
    report = json.loads(out.getvalue())
    assert code == 0, report
    assert (report["passed"], report["total"]) == (2, 2)
    answered, closed = report["scenarios"][0]["turns"]
    assert answered["action"] == "answer"
    assert answered["citations"] == ["account/resetting-your-password.md"]
    assert "account/resetting-your-password.md" in answered["reply"]
    assert answered["tool_calls"] == []
    assert closed["action"] == "close"
    assert [c["name"] for c in closed["tool_calls"]] == ["CLOSE"]
    [escalated] = report["scenarios"][1]["turns"]
    assert escalated["action"] == "escalate"
    assert [c["name"] for c in escalated["tool_calls"]] == ["ESCALATE"]
    assert escalated["citations"] == []
    # The run record keeps why: the candidates with their scores, though none passed.
    [decision] = [r for r in escalated["rag_results"] if r.get("kind") == "offline_decision"]
    assert decision["action"] == "escalate"
    assert decision["candidates"], decision
    assert all(0.0 <= c["score"] < 0.45 for c in decision["candidates"])
    assert escalated["checks"] == [
        {"what": "called ESCALATE", "ok": True, "detail": "tools called: ESCALATE"}
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("scenarios: []\n", "scenarios"),
        ("scenarios: [{name: x, turns: [{sey: hi}]}]\n", "sey"),
        ("{{{", "not valid YAML"),
    ],
)
async def test_simulate_refuses_a_bad_file(tmp_path: Path, content: str, message: str) -> None:
    scenarios = tmp_path / "bad.yaml"
    scenarios.write_text(content, encoding="utf-8")
    out = io.StringIO()
    unused = make_settings(f"sqlite:///{tmp_path}/unused.db")
    assert await simulate(unused, scenarios, out, launch=launcher()) == 2
    assert message in out.getvalue()
