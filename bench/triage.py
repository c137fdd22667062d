"""Batch triage versus a sequential loop, on the same backlog, helpdesk and model.

200 open conversations wait in a fake Intercom (one conversation in ten asks for a person, one
in ten says the problem is solved, the rest ask a question); a scripted OpenAI-compatible model
takes ``--latency`` seconds per call and answers questions after one USER_INFO_LOOKUP (two
calls), escalates or closes with one call. Two identical copies of that world run outside the
measured process (the fake Intercoms in one child process, the models in another, so a busy
fake helpdesk never delays a model's answer beyond its latency):

- **reference**: the xAI Support Agents guide's batch example (shared/seeds/003): one
  conversation at a time — list, fetch, call the model, run its tools, write back;
- **triage**: ``supportbot triage --once --concurrency C`` as a subprocess (the real command:
  inbox, dispatcher, agent engine with the ``openai`` provider, outbox, Intercom connector).

It prints both times, their ratio, and the bound N·L/C (model calls of the sweep × latency /
concurrency): no schedule of N calls of L seconds on C lanes can finish sooner. Targets (DESIGN
§11): triage ≥ 10× faster than the reference and the whole command (process start to exit)
within 1.3× of the bound; the sweep alone is printed beside it, and the whole command in phases
(start, ramp, steady, drain, tail) with the model calls in flight in each and the time lost
against C calls in flight all along, from when the model server saw each call arrive and
answered it. The measured processes run with
bytecode caching on (``PYTHONDONTWRITEBYTECODE`` dropped), as an installed daemon does; the
load average before and after is printed with the figures.

It also prints the time to first turn: ``triage --once --limit 1`` started in a fresh process
against a third fake Intercom, from the process start to the dispatcher's "turn started" log
line; the first start (cold: a fresh database is migrated and the knowledge base indexed), then
``--startup-runs`` warm starts (database at head, knowledge base unchanged). Target: < 0.3 s.

    PYTHONPATH=. python bench/triage.py [--conversations 200] [--latency 0.3] [--concurrency 16]
                                        [--startup-runs 5] [--startup-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
ANSWER = "You can export invoices under Settings → Billing → Export (CSV or PDF)."
WORLDS = ("reference", "triage")
# A third copy for the time-to-first-turn starts, so they change neither world above.
STARTUP = "startup"
STARTUP_TARGET = 0.3
MAX_STARTUP_RUNS = 10


# -- the world (child process): two identical fake Intercoms and two scripted models ----------


def backlog_text(i: int) -> str:
    if i % 10 == 0:
        return "I need a person, please escalate this"
    if i % 10 == 1:
        return "Thanks, that solved it"
    return f"How do I export my invoices? (order {i})"


def _world(conn: Any, role: str, conversations: int, latency: float) -> None:
    sys.path.insert(0, str(ROOT))
    serve = _serve_helpdesks if role == "helpdesk" else _serve_models
    asyncio.run(serve(conn, conversations, latency))


async def _serve_helpdesks(conn: Any, conversations: int, latency: float) -> None:
    from tests.fakes.intercom import FakeIntercom

    intercoms = {name: FakeIntercom(token=TOKEN) for name in (*WORLDS, STARTUP)}
    for name, fake in intercoms.items():
        await fake.start()
        for i in range(conversations if name != STARTUP else 2 * MAX_STARTUP_RUNS):
            contact = fake.add_contact(f"Customer {i}", company=None)
            fake.start_conversation(contact, f"<p>{backlog_text(i)}</p>")
    conn.send(
        {
            "intercom": {k: v.base_url for k, v in intercoms.items()},
            "bot_admin_id": intercoms["reference"].bot_admin_id,
        }
    )

    def stats() -> dict[str, Any]:
        return {
            name: {
                "comments": sum(len(fake.replies(c)) for c in fake.conversations),
                "notes": sum(len(fake.notes(c)) for c in fake.conversations),
                "closed": sum(1 for c in fake.conversations.values() if c.state == "closed"),
                "escalated": sum(
                    1 for c in fake.conversations if "escalated" in fake.tag_names(c)
                ),
                "requests": len(fake.requests),
                "violations": len(fake.violations),
            }
            for name, fake in intercoms.items()
        }

    await _answer_until_stopped(conn, stats)
    for fake in intercoms.values():
        await fake.close()


async def _serve_models(conn: Any, conversations: int, latency: float) -> None:
    from tests.fakes.model_server import (
        RecordedRequest,
        ScriptedModelServer,
        ScriptedReply,
        ScriptedToolCall,
    )

    # How much later than ``latency`` each answer was ready: this process's own lag, which
    # would count against whoever is measured. It should stay near zero.
    lag: dict[str, list[float]] = {name: [] for name in (*WORLDS, STARTUP)}
    # When each call arrived and when its answer was ready (wall clock, comparable with the
    # measuring process's): the calls in flight over time, for the phases of the whole command.
    calls: dict[str, list[tuple[float, float]]] = {name: [] for name in (*WORLDS, STARTUP)}

    def rule_for(name: str) -> Any:
        async def rule(request: RecordedRequest) -> ScriptedReply:
            started = time.perf_counter()
            arrived = time.time()
            await asyncio.sleep(latency)
            lag[name].append(time.perf_counter() - started - latency)
            calls[name].append((arrived, time.time()))
            messages = request.messages
            if messages and messages[-1].get("role") == "tool":
                return ScriptedReply.say(ANSWER)
            text = request.last_user_text.lower()
            if "person" in text:
                return ScriptedReply.calls(
                    ScriptedToolCall(
                        "ESCALATE", {"reason": "asked for a person", "priority": "high"}
                    )
                )
            if "solved" in text:
                return ScriptedReply.calls(
                    ScriptedToolCall(
                        "CLOSE", {"resolution_summary": "the customer confirmed the fix"}
                    )
                )
            return ScriptedReply.calls(ScriptedToolCall("USER_INFO_LOOKUP", {"user_id": ""}))

        return rule

    models = {name: ScriptedModelServer(rule=rule_for(name)) for name in (*WORLDS, STARTUP)}
    for model in models.values():
        await model.start()
    conn.send({"model": {k: v.url for k, v in models.items()}})

    def stats() -> dict[str, Any]:
        return {
            name: {
                "model_calls": len(model.chat_requests),
                "lag_p50": _quantile(lag[name], 0.5),
                "lag_max": max(lag[name], default=0.0),
                "calls": calls[name],
            }
            for name, model in models.items()
        }

    await _answer_until_stopped(conn, stats)
    for model in models.values():
        await model.stop()


async def _answer_until_stopped(conn: Any, stats: Callable[[], dict[str, Any]]) -> None:
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, conn.recv) == "stats":
        conn.send(stats())


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


# -- the reference: one conversation at a time, as in the guide's batch example ---------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "USER_INFO_LOOKUP",
            "description": "Look up the customer",
            "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "ESCALATE",
            "description": "Hand over to a human",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string"}, "priority": {"type": "string"}},
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "CLOSE",
            "description": "Close as resolved",
            "parameters": {
                "type": "object",
                "properties": {"resolution_summary": {"type": "string"}},
            },
        },
    },
]


async def reference_loop(intercom: str, model: str, admin_id: str, max_tool_loops: int = 5) -> int:
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Intercom-Version": "2.14",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    async with aiohttp.ClientSession(headers=headers) as http:

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with http.request(method, intercom + path, json=body) as response:
                response.raise_for_status()
                return await response.json()

        async def reply(conversation_id: str, kind: str, text: str) -> None:
            await call(
                "POST",
                f"/conversations/{conversation_id}/reply",
                {"message_type": kind, "type": "admin", "admin_id": admin_id, "body": text},
            )

        tag = await call("POST", "/tags", {"name": "escalated"})
        # List first (answering changes what the search matches, so paging while answering
        # would skip conversations), then process one by one.
        waiting: list[str] = []
        cursor: str | None = None
        while True:
            pagination: dict[str, Any] = {"per_page": 50}
            if cursor:
                pagination["starting_after"] = cursor
            page = await call(
                "POST",
                "/conversations/search",
                {
                    "query": {
                        "operator": "AND",
                        "value": [
                            {"field": "state", "operator": "=", "value": "open"},
                            {"field": "waiting_since", "operator": ">", "value": 0},
                        ],
                    },
                    "pagination": pagination,
                },
            )
            waiting += [str(summary["id"]) for summary in page["conversations"]]
            cursor = (page.get("pages", {}).get("next") or {}).get("starting_after")
            if not cursor or not page["conversations"]:
                break
        processed = 0
        for conversation_id in waiting:
            conversation = await call(
                "GET", f"/conversations/{conversation_id}?display_as=plaintext"
            )
            source = conversation["source"]
            contact_id = source["author"]["id"]
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": "You are a support agent."},
                {"role": "user", "content": source["body"]},
            ]
            final = ""
            for _ in range(max_tool_loops):
                async with http.post(
                    model + "/chat/completions",
                    json={"model": "scripted", "messages": messages, "tools": TOOLS},
                ) as response:
                    response.raise_for_status()
                    answer = (await response.json())["choices"][0]["message"]
                calls = answer.get("tool_calls") or []
                if not calls:
                    final = answer.get("content") or ""
                    break
                messages.append(
                    {
                        "role": "assistant",
                        "content": answer.get("content") or "",
                        "tool_calls": calls,
                    }
                )
                ended = False
                for tool_call in calls:
                    name = tool_call["function"]["name"]
                    args = json.loads(tool_call["function"]["arguments"] or "{}")
                    if name == "USER_INFO_LOOKUP":
                        result: Any = await call("GET", f"/contacts/{contact_id}")
                    elif name == "ESCALATE":
                        await call(
                            "POST",
                            f"/conversations/{conversation_id}/tags",
                            {"id": tag["id"], "admin_id": admin_id},
                        )
                        await reply(conversation_id, "note", f"AI escalation: {args.get('reason')}")
                        await reply(conversation_id, "comment", "A person will follow up shortly.")
                        result, ended = "escalated", True
                    elif name == "CLOSE":
                        await reply(
                            conversation_id, "note", f"Resolved: {args.get('resolution_summary')}"
                        )
                        await call(
                            "POST",
                            f"/conversations/{conversation_id}/parts",
                            {"message_type": "close", "type": "admin", "admin_id": admin_id},
                        )
                        result, ended = "closed", True
                    else:
                        result = f"unknown tool {name}"
                    messages.append(
                        {
                            "role": "tool",
                            "tool_call_id": tool_call["id"],
                            "content": json.dumps(result),
                        }
                    )
                    if ended:
                        break
                if ended:
                    break
            if final:
                await reply(conversation_id, "comment", final)
            processed += 1
        return processed


# -- the run ------------------------------------------------------------------------------------


async def timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work()
    return time.perf_counter() - started, result


def write_config(
    path: Path, world: dict[str, Any], name: str, database_url: str, log: str = "WARNING"
) -> Path:
    """The daemon's settings for world ``name``: its fake Intercom, its scripted model."""
    path.write_text(
        f"""
connectors = ["intercom"]

[database]
url = "{database_url}"

[log]
level = "{log}"
format = "{"json" if log == "INFO" else "text"}"

[model]
provider = "openai"
base_url = "{world["model"][name]}"
api_key = "bench-key"
name = "scripted"
stream = false

[intercom]
token = "{TOKEN}"
client_secret = "bench-secret"
base_url = "{world["intercom"][name]}"
poll_interval_seconds = 0

[triage]
since = ""
""",
        encoding="utf-8",
    )
    return path


def daemon_env() -> dict[str, str]:
    """The environment the measured ``supportbot`` processes run in: this one, with the repository
    on the path and bytecode caching on. ``PYTHONDONTWRITEBYTECODE`` (set in some sandboxes and
    CI images) would make every start compile the project's modules from source again, a cost
    no installed daemon pays; the cold start writes the caches, warm starts read them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Keyword search, as installed without the ``embeddings`` extra (``auto`` would load the model).
    env.setdefault("SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND", "none")
    return env


def load_average() -> str:
    """The 1-minute load average (timings on a busy machine are worth less)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


# ``supportbot …`` in a fresh interpreter that also counts, at the dispatcher's first "turn
# started" line, the CPU seconds the process has used and the modules it has imported: less
# noisy than the wall clock on a shared machine.
FIRST_TURN_PROBE = """
import json, logging, sys, time
report = sys.argv[1]
sys.argv = ["supportbot", *sys.argv[2:]]

class FirstTurn(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("turn started"):
            logging.getLogger("bot.pipeline.dispatcher").removeHandler(self)
            with open(report, "w") as out:
                json.dump({"cpu_seconds": time.process_time(), "modules": len(sys.modules)}, out)

logging.getLogger("bot.pipeline.dispatcher").addHandler(FirstTurn())
from bot.cli import main
sys.exit(main())
"""


@dataclass(frozen=True, slots=True)
class Start:
    """One ``triage --once --limit 1`` start, to its first turn."""

    seconds: float  # wall clock, from before the process was started
    cpu_seconds: float  # the process's own CPU time (user + system)
    modules: int  # modules imported


def time_to_first_turn(world: dict[str, Any], tmp: Path, runs: int) -> list[Start]:
    """``triage --once --limit 1`` started in a fresh process, to its first turn (the
    dispatcher's "turn started" line): a cold start on a fresh SQLite database, then ``runs``
    warm ones (database at head, knowledge base unchanged)."""
    config = write_config(
        tmp / "startup.toml", world, STARTUP, f"sqlite:///{tmp / 'startup.db'}", log="INFO"
    )
    report = tmp / "first_turn.json"
    command = [
        *(sys.executable, "-c", FIRST_TURN_PROBE, str(report)),
        *("triage", "--once", "--limit", "1", "--config", str(config)),
    ]
    env = daemon_env()
    starts = []
    for _ in range(1 + runs):
        report.unlink(missing_ok=True)
        started = time.time()
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp, check=False
        )
        first = next(
            (
                record["ts"]
                for record in map(_json_record, done.stderr.splitlines())
                if record.get("msg", "").startswith("turn started")
            ),
            None,
        )
        if first is None or not report.exists():
            raise SystemExit(f"no turn started ({done.returncode}):\n{done.stderr[-2000:]}")
        counted = json.loads(report.read_text())
        starts.append(
            Start(float(first) - started, counted["cpu_seconds"], counted["modules"])
        )
    return starts


def _json_record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def print_first_turn(starts: list[Start]) -> None:
    cold, warm = starts[0], starts[1:]

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    seconds = median([s.seconds for s in warm])
    print(
        f"time to first turn, triage --once (fresh process, SQLite, Intercom): cold "
        f"{cold.seconds:.3f} s (migrate + index the knowledge base); warm "
        f"{', '.join(f'{s.seconds:.3f}' for s in warm)} s, median {seconds:.3f} s   "
        f"(target < {STARTUP_TARGET} s: {'met' if seconds < STARTUP_TARGET else 'NOT met'})"
    )
    print(
        f"  counted at the first turn (warm): CPU "
        f"{', '.join(f'{s.cpu_seconds:.3f}' for s in warm)} s, median "
        f"{median([s.cpu_seconds for s in warm]):.3f} s; modules imported "
        f"{median([float(s.modules) for s in warm]):.0f} (cold: CPU {cold.cpu_seconds:.3f} s, "
        f"{cold.modules} modules)"
    )


@dataclass(frozen=True, slots=True)
class Whole:
    """The measured ``triage --once`` process."""

    seconds: float  # wall clock, spawn to exit
    cpu_seconds: float  # its CPU time (user + system)
    spawned: float  # time.time() just before the spawn
    exited: float  # time.time() just after it exited


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    seconds: float
    in_flight: float | None  # mean model calls in flight (None: no model call in this phase)
    lost: float  # seconds beyond what full lanes would have taken


def phases(
    whole: Whole, calls: list[tuple[float, float]], latency: float, concurrency: int
) -> list[Phase]:
    """The whole command in phases, from the model calls' arrival and answer times: **start**
    (spawn to the first model call), **ramp** (the first two latencies of model calls), **steady**
    (until the last two latencies), **drain** (the last two latencies, the last calls' answers
    included) and **tail** (the last answer to the process's exit). In each phase with model
    calls, the mean number in flight and the time lost against ``concurrency`` of them all along
    (duration × (1 − in flight / C)); start and tail are lost whole. Lost time + N·L/C = the
    whole command, less the model's own lag."""
    if not calls:
        return []
    first = min(a for a, _ in calls)
    last = max(b for _, b in calls)
    edges = [whole.spawned, first, min(first + 2 * latency, last)]
    edges += [max(edges[-1], last - 2 * latency), last, max(last, whole.exited)]
    names = ("start", "ramp", "steady", "drain", "tail")
    result = []
    for name, (begin, end) in zip(names, pairwise(edges), strict=True):
        seconds = end - begin
        if name in ("start", "tail"):
            result.append(Phase(name, seconds, None, seconds))
            continue
        busy = sum(max(0.0, min(b, end) - max(a, begin)) for a, b in calls)
        in_flight = busy / seconds if seconds > 0 else 0.0
        result.append(Phase(name, seconds, in_flight, seconds - busy / concurrency))
    return result


def print_phases(found: list[Phase], concurrency: int) -> None:
    print(
        "where the whole command's time went (model calls in flight, as the model server saw "
        f"them; lost = beyond {concurrency} calls in flight all along):"
    )
    for phase in found:
        flight = f"{phase.in_flight:5.1f} in flight" if phase.in_flight is not None else " " * 15
        print(f"  {phase.name:<7} {phase.seconds:6.2f} s  {flight}  lost {phase.lost:5.2f} s")
    print(f"  {'total':<7} {sum(p.seconds for p in found):6.2f} s  {' ' * 15}  lost "
          f"{sum(p.lost for p in found):5.2f} s")


def run_triage(
    world: dict[str, Any], concurrency: int, tmp: Path, database_url: str
) -> tuple[Whole, dict[str, Any], str]:
    config = write_config(tmp / "supportbot.toml", world, "triage", database_url)
    digest_path = tmp / "digest.json"
    command = [
        sys.executable,
        "-m",
        "bot.cli",
        "triage",
        "--once",
        "--concurrency",
        str(concurrency),
        "--json",
        str(digest_path),
        "--config",
        str(config),
    ]
    env = daemon_env()
    if not database_url.startswith("sqlite"):
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "db", "upgrade", "--config", str(config)],
            env=env,
            cwd=tmp,
            check=True,
            capture_output=True,
        )
    started = time.perf_counter()
    spawned = time.time()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp, check=False)
    exited = time.time()
    if os.environ.get("BENCH_LOG"):
        Path(os.environ["BENCH_LOG"]).write_text(done.stderr)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if done.returncode not in (0, 1) or not digest_path.exists():
        raise SystemExit(f"triage failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return Whole(wall, cpu, spawned, exited), json.loads(digest_path.read_text()), done.stdout


@contextmanager
def scratch_postgresql() -> Iterator[str]:
    import asyncpg

    admin_url = os.environ.get(
        "SUPPORTBOT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    name = f"sbbench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://{admin_url.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per model call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="run the daemon on PostgreSQL at $SUPPORTBOT_BENCH_PG_URL (a scratch database)",
    )
    parser.add_argument(
        "--skip-reference",
        action="store_true",
        help="estimate the reference as N·L instead of running it (minutes)",
    )
    parser.add_argument(
        "--startup-runs",
        type=int,
        default=5,
        help=f"warm starts timed to their first turn (at most {MAX_STARTUP_RUNS})",
    )
    parser.add_argument(
        "--startup-only", action="store_true", help="only the time to first turn"
    )
    args = parser.parse_args()
    args.startup_runs = max(1, min(args.startup_runs, MAX_STARTUP_RUNS))

    # The fake helpdesks and the scripted models each in a child process of their own: the
    # spec-validating fake Intercom is CPU-heavy, and sharing one event loop with the models
    # would delay their answers beyond the latency the bound assumes.
    spawn = multiprocessing.get_context("spawn")
    pipes: dict[str, Any] = {}
    children = []
    for role in ("helpdesk", "model"):
        parent, child = multiprocessing.Pipe()
        process = spawn.Process(
            target=_world,
            args=(child, role, args.conversations, args.latency),
            daemon=True,
        )
        process.start()
        pipes[role] = parent
        children.append(process)
    world = {**pipes["helpdesk"].recv(), **pipes["model"].recv()}
    load_before = load_average()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            first_turn = time_to_first_turn(world, Path(tmp), args.startup_runs)
        if args.startup_only:
            print_first_turn(first_turn)
            print(f"load average (1 min) before {load_before}, after {load_average()}")
            return
        with tempfile.TemporaryDirectory() as tmp:
            if args.postgresql:
                with scratch_postgresql() as url:
                    whole, digest, table = run_triage(world, args.concurrency, Path(tmp), url)
            else:
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
                whole, digest, table = run_triage(world, args.concurrency, Path(tmp), url)
        triage_wall, triage_cpu = whole.seconds, whole.cpu_seconds
        reference_seconds: float | None = None
        if not args.skip_reference:
            reference_seconds, processed = asyncio.run(
                timed(
                    lambda: reference_loop(
                        world["intercom"]["reference"],
                        world["model"]["reference"],
                        world["bot_admin_id"],
                    )
                )
            )
            assert processed == args.conversations, processed
        stats: dict[str, dict[str, Any]] = {name: {} for name in WORLDS}
        for pipe in pipes.values():
            pipe.send("stats")
            for name, numbers in pipe.recv().items():
                if name in stats:
                    stats[name].update(numbers)
    finally:
        for pipe in pipes.values():
            pipe.send("stop")
        for process in children:
            process.join(timeout=10)

    sweep = float(digest["duration_seconds"])
    calls = stats["triage"]["model_calls"]
    bound = calls * args.latency / args.concurrency
    n = args.conversations
    if reference_seconds is None:
        reference_seconds = stats["triage"]["model_calls"] * args.latency
        reference_label = "reference (estimated N·L)"
    else:
        reference_label = "reference loop (sequential)"

    print(table)
    print(
        f"batch triage on {'PostgreSQL' if args.postgresql else 'SQLite'}: {n} conversations, "
        f"model latency {args.latency * 1000:.0f} ms/call, concurrency {args.concurrency}\n"
    )
    rows = [
        ("what", "seconds", "model calls", "comments", "notes", "closed", "escalated"),
        (
            reference_label,
            f"{reference_seconds:.2f}",
            stats["reference"]["model_calls"],
            stats["reference"]["comments"],
            stats["reference"]["notes"],
            stats["reference"]["closed"],
            stats["reference"]["escalated"],
        ),
        (
            f"triage --once -c {args.concurrency} (sweep)",
            f"{sweep:.2f}",
            calls,
            stats["triage"]["comments"],
            stats["triage"]["notes"],
            stats["triage"]["closed"],
            stats["triage"]["escalated"],
        ),
        ("triage --once (whole command)", f"{triage_wall:.2f}", "", "", "", "", ""),
        ("  of which outside the sweep", f"{triage_wall - sweep:.2f}", "", "", "", "", ""),
        ("  daemon CPU time", f"{triage_cpu:.2f}", "", "", "", "", ""),
        (f"bound N·L/C ({calls / n:.2f} calls/conv)", f"{bound:.2f}", "", "", "", "", ""),
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                str(cell).ljust(widths[i]) if i == 0 else str(cell).rjust(widths[i])
                for i, cell in enumerate(row)
            )
        )
    speedup = reference_seconds / sweep
    over_bound = sweep / bound
    whole_over_bound = triage_wall / bound
    print(
        f"\nspeed-up over the reference: {speedup:.1f}×   (target ≥ 10×: "
        f"{'met' if speedup >= 10 else 'NOT met'})"
    )
    print(
        f"sweep / bound: {over_bound:.2f}×   whole command / bound: {whole_over_bound:.2f}×   "
        f"(target, whole command ≤ 1.3×: {'met' if whole_over_bound <= 1.3 else 'NOT met'})"
    )
    # Where the lanes' time went: C lanes for the sweep's length hold the model's time (the
    # bound), the rest of each turn (tool calls, context, store), and time no turn ran.
    in_turns = sum(c["turn_seconds"] or 0.0 for c in digest["conversations"])
    lane_seconds = args.concurrency * sweep
    model_seconds = calls * args.latency
    print(
        f"lane time: {lane_seconds:.1f} lane-s = model {model_seconds:.1f} "
        f"+ rest of the turns {in_turns - model_seconds:.1f} "
        f"({(in_turns - model_seconds) / max(1, n) * 1000:.0f} ms a conversation) "
        f"+ no turn running {lane_seconds - in_turns:.1f}   "
        f"(lanes busy {in_turns / lane_seconds:.0%} of the sweep)"
    )
    print(f"digest counts: {digest['counts']}")
    print_phases(
        phases(whole, stats["triage"]["calls"], args.latency, args.concurrency), args.concurrency
    )
    print_first_turn(first_turn)
    print(f"load average (1 min) before the runs {load_before}, after {load_average()}")
    print(
        "model answers later than their latency (the world's own lag): "
        + ", ".join(
            f"{name} p50 {stats[name]['lag_p50'] * 1000:.1f} ms, max "
            f"{stats[name]['lag_max'] * 1000:.1f} ms"
            for name in WORLDS
            if not (name == "reference" and args.skip_reference)
        )
    )
    if stats["triage"]["violations"] or stats["reference"]["violations"]:
        print(
            f"spec violations: {stats['triage']['violations']} (triage), "
            f"{stats['reference']['violations']} (reference)"
        )


if __name__ == "__main__":
    main()
