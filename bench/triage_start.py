"""How long ``supportbot triage --once`` takes to reach its first model call, and what it
imports on the way.

Each start is ``triage --once --limit 1`` in a fresh interpreter against a fake Intercom with
open conversations and a scripted OpenAI-compatible model (both in a child process of their
own), on SQLite. A start is measured from just before the process is spawned to the moment it
connects to the model's port (an audit hook on ``socket.connect``: the first model request is
sent on that connection): the wall clock, and the CPU seconds the process has used by then. Per
embeddings backend — ``none`` (keyword-only) and ``auto`` (the local MiniLM model where it is
installed) — one cold start (a fresh database: migrated, the knowledge base ingested and its
index stored) and ``--runs`` warm ones (the database at head, the knowledge base unchanged).

``--before DIR`` measures another copy of the code beside this one (e.g. ``git archive main |
tar -x -C /tmp/main``), warm starts alternating between the two. The table ends with the
largest import costs of warm keyword-only starts (``-X importtime``: the self times of the
modules imported by the first model call, summed per package, median of three starts), and a floor: the CPU seconds of a bare interpreter that only imports the third-party
libraries a warm keyword-only start has imported by its first model call. Target: < 0.3 s,
CPU and wall, warm.

    PYTHONPATH=. python bench/triage_start.py [--runs 5] [--before DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
TARGET = 0.3
BACKENDS = ("none", "auto")
CONVERSATIONS = 200
IMPORTTIME_RUNS = 3
# The libraries a warm keyword-only start has imported at its first model call (settings,
# store, HTTP client, metrics, retries, the search index), imported in a bare interpreter: what
# no cut in this project's own modules can go below.
LIBRARIES = (
    "pydantic_settings", "sqlalchemy.engine", "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.sqlite", "aiohttp", "prometheus_client", "tenacity", "numpy",
    "snowballstemmer",
)

# The measured process: ``supportbot`` with an audit hook that writes, at the first connection
# to the model's port, the CPU seconds used, the wall clock, the modules imported, and the
# garbage collector's passes and their CPU seconds until then.
PROBE = """
import gc, json, sys, time
report, port = sys.argv[1], int(sys.argv[2])
sys.argv = ["supportbot", *sys.argv[3:]]
collector = {"passes": 0, "cpu": 0.0, "started": 0.0}

def collection(phase, info):
    if phase == "start":
        collector["started"] = time.process_time()
    else:
        collector["passes"] += 1
        collector["cpu"] += time.process_time() - collector["started"]

def hook(event, args, state={"report": report}):
    if event == "socket.connect" and state["report"] and isinstance(args[1], tuple) \\
            and args[1][1:2] == (port,):
        cpu, wall = time.process_time(), time.time()
        gc.callbacks.remove(collection)
        with open(state["report"], "w") as out:
            json.dump({"cpu": cpu, "wall": wall, "modules": sorted(sys.modules),
                       "gc_passes": collector["passes"], "gc_cpu": collector["cpu"]}, out)
        state["report"] = ""

gc.callbacks.append(collection)
sys.addaudithook(hook)
from bot.cli import main
main()
"""


def _world(conn: Any) -> None:
    sys.path.insert(0, str(ROOT))
    asyncio.run(_serve(conn))


async def _serve(conn: Any) -> None:
    from tests.fakes.intercom import FakeIntercom
    from tests.fakes.model_server import ScriptedModelServer, ScriptedReply

    intercom = FakeIntercom(token=TOKEN)
    await intercom.start()
    for i in range(CONVERSATIONS):
        contact = intercom.add_contact(f"Customer {i}", company=None)
        intercom.start_conversation(contact, f"<p>How do I export my invoices? ({i})</p>")
    model = ScriptedModelServer(rule=lambda request: ScriptedReply.say("Settings → Billing."))
    await model.start()
    conn.send({"intercom": intercom.base_url, "model": model.url})
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # until the parent is done
    await model.stop()
    await intercom.close()


def write_config(folder: Path, world: dict[str, str]) -> Path:
    path = folder / "supportbot.toml"
    path.write_text(
        f"""
connectors = ["intercom"]
[database]
url = "sqlite:///{folder / "bot.db"}"
[model]
provider = "openai"
base_url = "{world["model"]}"
api_key = "bench-key"
name = "scripted"
stream = false
[intercom]
token = "{TOKEN}"
base_url = "{world["intercom"]}"
poll_interval_seconds = 0
[triage]
since = ""
""",
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True, slots=True)
class Start:
    cpu: float
    wall: float
    modules: frozenset[str]
    gc_passes: int
    gc_cpu: float


def start(code: Path, folder: Path, world: dict[str, str], backend: str,
          importtime: bool = False) -> tuple[Start, str]:
    """One ``triage --once --limit 1`` of the code in ``code``, to its first model call."""
    report = folder / "first_call.json"
    report.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed daemon reads its bytecode caches
    env["PYTHONPATH"] = str(code)
    env["SUPPORTBOT_KNOWLEDGE__EMBEDDINGS__BACKEND"] = backend
    port = world["model"].rsplit(":", 1)[1].split("/", 1)[0]
    config = write_config(folder, world)
    command = [
        sys.executable, *(("-X", "importtime") if importtime else ()), "-c", PROBE,
        str(report), port, "triage", "--once", "--limit", "1", "--config", str(config),
    ]
    spawned = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder,
                          check=False)
    if not report.exists():
        raise SystemExit(f"no model call ({done.returncode}):\n{done.stderr[-3000:]}")
    seen = json.loads(report.read_text())
    return Start(
        seen["cpu"], seen["wall"] - spawned, frozenset(seen["modules"]), seen["gc_passes"],
        seen["gc_cpu"],
    ), done.stderr


def import_costs(measured: list[tuple[Start, str]], top: int) -> list[tuple[str, float]]:
    """Self times of ``-X importtime`` of the modules imported by the first model call, summed
    per package (``bot`` and ``connectors`` per subpackage): the median over the starts
    measured, largest first, in seconds."""
    runs: list[dict[str, float]] = []
    for start_, stderr in measured:
        totals: dict[str, float] = defaultdict(float)
        for line in stderr.splitlines():
            if not line.startswith("import time:") or "imported package" in line:
                continue
            self_us, _, name = (part.strip() for part in line[len("import time:"):].split("|"))
            if name not in start_.modules:
                continue
            parts = name.split(".")
            key = ".".join(parts[:2]) if parts[0] in ("bot", "connectors") else parts[0]
            totals[key] += int(self_us) / 1e6
        runs.append(totals)
    packages = {package for totals in runs for package in totals}
    medians = {package: median([totals.get(package, 0.0) for totals in runs])
               for package in packages}
    return sorted(medians.items(), key=lambda item: -item[1])[:top]


def floor_cpu(modules: tuple[str, ...], runs: int) -> float:
    """Median CPU seconds of a bare interpreter that imports ``modules`` and exits."""
    code = f"import time\n{''.join(f'import {m}' + chr(10) for m in modules)}" \
        "print(time.process_time())"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return median([
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True).stdout)
        for _ in range(runs)
    ])


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="warm starts per code and backend")
    parser.add_argument("--before", type=Path, help="another copy of the code to measure beside")
    parser.add_argument("--top", type=int, default=12, help="import costs listed")
    args = parser.parse_args()
    codes = {"after": ROOT, **({"before": args.before.resolve()} if args.before else {})}
    if len(codes) * (len(BACKENDS) * (args.runs + 1) + IMPORTTIME_RUNS) > CONVERSATIONS:
        raise SystemExit("too many starts for the fake Intercom's conversations")

    parent, child = multiprocessing.Pipe()
    world_process = multiprocessing.get_context("spawn").Process(
        target=_world, args=(child,), daemon=True)
    world_process.start()
    world = parent.recv()
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[0]}")
    cold: dict[tuple[str, str], Start] = {}
    warm: dict[tuple[str, str], list[Start]] = defaultdict(list)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folders = {}
            for backend in BACKENDS:
                for name, code in codes.items():
                    folder = folders[name, backend] = Path(tmp) / f"{name}-{backend}"
                    folder.mkdir()
                    cold[name, backend], _ = start(code, folder, world, backend)
            for _ in range(args.runs):  # alternating: before, after, before, after …
                for backend in BACKENDS:
                    for name, code in codes.items():
                        measured, _ = start(code, folders[name, backend], world, backend)
                        warm[name, backend].append(measured)
            traced: dict[str, list[tuple[Start, str]]] = defaultdict(list)
            for _ in range(IMPORTTIME_RUNS):
                for name, code in codes.items():
                    folder = folders[name, "none"]
                    traced[name].append(start(code, folder, world, "none", importtime=True))
            costs = {name: import_costs(traced[name], args.top) for name in codes}
    finally:
        parent.send("stop")
        world_process.join(timeout=10)

    print(f"load average after: {Path('/proc/loadavg').read_text().split()[0]}")
    print()
    print("process start -> first model call, triage --once --limit 1 (SQLite, Intercom), seconds")
    print(f"{'code':<8}{'embeddings':<12}{'cold CPU':>10}{'cold wall':>11}"
          f"{'warm CPU':>10}{'warm wall':>11}{'modules':>9}{'GC passes':>11}{'GC CPU':>8}"
          "   warm runs (CPU)")
    for backend in BACKENDS:
        for name in sorted(codes, reverse=True):
            c, w = cold[name, backend], warm[name, backend]
            print(f"{name:<8}{backend:<12}{c.cpu:>10.3f}{c.wall:>11.3f}"
                  f"{median([s.cpu for s in w]):>10.3f}{median([s.wall for s in w]):>11.3f}"
                  f"{median([float(len(s.modules)) for s in w]):>9.0f}"
                  f"{median([float(s.gc_passes) for s in w]):>11.0f}"
                  f"{median([s.gc_cpu for s in w]):>8.3f}   "
                  f"{' '.join(f'{s.cpu:.3f}' for s in w)}")
    print(f"target: < {TARGET} s warm (medians of {args.runs} warm starts)")
    print()
    print(f"floor (bare interpreter, CPU, median of {args.runs}): nothing imported "
          f"{floor_cpu((), args.runs):.3f} s; the libraries of the first call "
          f"{floor_cpu(LIBRARIES, args.runs):.3f} s ({', '.join(LIBRARIES)})")
    for name in sorted(codes, reverse=True):
        print()
        print(f"largest import costs by the first model call, warm keyword-only ({name}): "
              f"self seconds per package, median of {IMPORTTIME_RUNS} starts")
        for package, seconds in costs[name]:
            print(f"  {package:<32}{seconds:>8.3f}")


if __name__ == "__main__":
    main()
