"""The rule between the rooms, checked on the source: the import graph of ``bot/`` and
``connectors/`` has no circle, the core never imports a connector, a connector reaches the core
only through its runtime (never the store or the pipeline), and the core names no channel
outside its configuration.

Every module is parsed with ``ast``; imports inside functions count (they run, just later),
imports under ``if TYPE_CHECKING:`` do not (they never run). ``from package import name`` is an
edge to ``package.name`` when that is a module of ours, else to ``package``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "connectors")
# One package per channel under connectors/: their names are the channel names.
CHANNELS = frozenset(
    p.name for p in (ROOT / "connectors").iterdir() if (p / "__init__.py").is_file()
)
# Where the core may still spell a channel name, each with the reason.
CHANNEL_NAME_ALLOWED = {
    "bot/knowledge/sources/intercom.py": "the Intercom Help Center is a knowledge source, which "
    "DESIGN §4 places in bot/knowledge; 'intercom:' prefixes its documents' locations",
    "bot/knowledge/sync.py": "'intercom' there is the kind of a knowledge source (config's "
    "SourceKind), not a channel",
    "bot/config.py": "configuration: a section per channel ([intercom], [slack], [web])",
    "bot/http/turns.py": "the web channel's conversations and Responses APIs are served by the "
    "core (SOURCE = 'web'); moves behind the connector runtime with the narrow runtime (issue 13, 2)",
    "bot/store/web.py": "web thread external ids ('web:<id>') are built in the store's web "
    "queries; moves to connectors/web with the store split (issue 13, 2 and 4)",
}

# What a connector must not import: the rooms behind its ``ConnectorRuntime``.
CONNECTOR_FORBIDDEN = ("bot.store", "bot.pipeline", "bot.app", "bot.daemon")


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def _modules() -> dict[str, Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name, is_package = _module_name(path)
            found[name] = Module(name, path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run, leaving out the bodies of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: Module, known: set[str]) -> set[str]:
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    targets: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            origin = _resolve(module, node)
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                targets.add(submodule if submodule in known else origin)
    return targets


@pytest.fixture(scope="module")
def graph() -> dict[str, Module]:
    modules = _modules()
    known = set(modules)
    for module in modules.values():
        module.imports = _imports(module, known)
    return modules


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _circle(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``edges`` (module → what it imports) in import order, or None."""
    try:
        tuple(TopologicalSorter(edges).static_order())
    except CycleError as exc:
        # graphlib reports the circle against the edges' direction.
        return list(reversed(exc.args[1]))
    return None


def test_the_import_graph_has_no_circle(graph: dict[str, Module]) -> None:
    edges = {
        name: {target for target in module.imports if target in graph and target != name}
        for name, module in graph.items()
    }
    circle = _circle(edges)
    assert circle is None, "import circle: " + " → ".join(circle or ())


def test_the_core_never_imports_a_connector(graph: dict[str, Module]) -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, module in graph.items()
        if name.split(".")[0] == "bot"
        for target in module.imports
        if target.split(".")[0] == "connectors"
    )
    assert offenders == []


def _connector_offences(modules: dict[str, Module]) -> list[str]:
    return sorted(
        f"{name} imports {target}"
        for name, module in modules.items()
        if name.split(".")[0] == "connectors"
        for target in module.imports
        if any(target == room or target.startswith(room + ".") for room in CONNECTOR_FORBIDDEN)
    )


def test_connectors_reach_the_core_only_through_their_runtime(graph: dict[str, Module]) -> None:
    assert _connector_offences(graph) == []


def test_only_the_cli_imports_the_application(graph: dict[str, Module]) -> None:
    importers = sorted(
        name
        for name, module in graph.items()
        if any(t == "bot.app" or t.startswith("bot.app.") for t in module.imports)
    )
    assert importers == ["bot.cli"]


def _channel_names(source: str, label: str) -> list[str]:
    """String constants that are a channel name or start ``<channel>:`` (an external id),
    f-strings included; docstrings and other bare expression statements are left out."""
    tree = ast.parse(source, label)
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docstrings:
            continue
        text = node.value
        if text in CHANNELS or text.split(":", 1)[0] in CHANNELS and ":" in text:
            found.append(f"{label}:{node.lineno}: {text!r}")
    return found


def test_the_core_names_no_channel_outside_configuration() -> None:
    found = [
        hit
        for path in sorted((ROOT / "bot").rglob("*.py"))
        if str(path.relative_to(ROOT)) not in CHANNEL_NAME_ALLOWED
        for hit in _channel_names(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == []
    for allowed in CHANNEL_NAME_ALLOWED:
        assert (ROOT / allowed).is_file(), f"{allowed} is gone: take it off the allow-list"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The walkers above find what they must, so an empty result means something."""
    assert {"intercom", "slack", "web"} <= CHANNELS
    sample = (
        '"""A docstring naming slack is fine."""\n'
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import hidden\n"
        "def later():\n"
        "    import inside\n"
        "    return f'slack:{later}', 'web', 'website'\n"
    )
    names = {
        alias.name
        for node in _runtime_nodes(ast.parse(sample))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert names == {"inside"}
    assert sorted(_channel_names(sample, "sample")) == ["sample:7: 'slack:'", "sample:7: 'web'"]
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) in (
        ["a", "b", "c", "a"],
        ["b", "c", "a", "b"],
        ["c", "a", "b", "c"],
    )
    assert _circle({"a": {"b"}, "b": set()}) is None

    module = Module("bot.triage.sweep", ROOT / "bot/triage/sweep.py", is_package=False)
    package = Module("bot.triage", ROOT / "bot/triage/__init__.py", is_package=True)
    sibling = ast.ImportFrom(module="digest", names=[], level=1)
    assert _resolve(module, sibling) == "bot.triage.digest"
    assert _resolve(package, sibling) == "bot.triage.digest"
    assert _resolve(module, ast.ImportFrom(module=None, names=[], level=2)) == "bot"

    sample_connector = tmp_path / "sample.py"
    sample_connector.write_text(
        "from typing import TYPE_CHECKING\n"
        "from bot.connector import ConnectorRuntime\n"
        "from bot import store\n"
        "if TYPE_CHECKING:\n"
        "    from bot.pipeline.handoff import Handoff\n"
        "def later():\n"
        "    from bot.store.web import WebStore\n"
        "    import bot.daemon\n",
        encoding="utf-8",
    )
    connector = Module("connectors.sample", sample_connector, is_package=False)
    connector.imports = _imports(connector, {"bot.store", "bot.store.web", "bot.connector"})
    assert _connector_offences({connector.name: connector}) == [
        "connectors.sample imports bot.daemon",
        "connectors.sample imports bot.store",
        "connectors.sample imports bot.store.web",
    ]
