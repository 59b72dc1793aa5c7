"""The import graph of edge/, web_ui/, provisioning/, fleet/ and protocol/: no cycles, and the
layers hold."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "web_ui", "provisioning", "fleet", "protocol")

# Cycles not broken yet. This list only shrinks: a new cycle fails the test, and so does an entry
# that no longer exists (remove it). Each entry is one strongly connected component.
KNOWN_CYCLES: set[frozenset[str]] = set()

# Imports that cross a layer on purpose, each with the reason. Only shrinks, like KNOWN_CYCLES.
ALLOWED_CROSSINGS: dict[tuple[str, str], str] = {
    # The fleet command `update` queues a verified bundle where kiosk-update.path finds it; the
    # verification and the queue are the updater's (provisioning/update.py).
    ("edge.fleet.handlers", "provisioning.update"): "fleet command update",
}

# What central (fleet/) may share with the kiosk besides the shared package protocol/ (the root
# error, the sealing, the MQTT protocol): the CA it runs and the waitress wrapper. Anything else
# of the kiosk is internal to it.
CENTRAL_SHARES = {
    "provisioning.ca",
    "web_ui.server",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path) -> Iterator[str]:
    """Every module named by an import in the file, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = module.split(".")
                if path.name != "__init__.py":
                    package.pop()
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)  # a submodule by name


@cache
def graph() -> dict[str, frozenset[str]]:
    """module -> the project modules it imports (the deepest existing module of each name)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges = {}
    for module, path in modules.items():
        targets = {resolve(name) for name in _imported(module, path)}
        edges[module] = frozenset(t for t in targets if t and t != module)
    return edges


def cycles(edges: dict[str, frozenset[str]]) -> set[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.add(frozenset(component))
    return found


def _in(module: str, *layers: str) -> bool:
    return any(module == layer or module.startswith(layer + ".") for layer in layers)


def crossings(sources: tuple[str, ...], targets: tuple[str, ...], *, but: tuple[str, ...] = ()):
    """Imports from a module in `sources` (not in `but`) of a module in `targets`."""
    return {
        (module, target)
        for module, imported in graph().items()
        if _in(module, *sources) and not _in(module, *but)
        for target in imported
        if _in(target, *targets) and (module, target) not in ALLOWED_CROSSINGS
    }


def test_the_graph_sees_imports_inside_functions() -> None:
    # edge/cli.py imports edge.app only inside its commands.
    assert "edge.app" in graph()["edge.cli"]
    assert "edge.store.outbox" in graph()["edge.app"]


def test_the_cycle_finder_finds_cycles() -> None:
    edges = {"a": frozenset("b"), "b": frozenset("c"), "c": frozenset("a"), "d": frozenset("a")}
    assert cycles(edges) == {frozenset("abc")}


def test_no_import_cycles_but_the_known_ones() -> None:
    found = cycles(graph())
    assert found - KNOWN_CYCLES == set(), "new import cycle"
    assert KNOWN_CYCLES - found == set(), "cycle broken: remove it from KNOWN_CYCLES"


def test_vision_and_identity_import_no_services_or_web() -> None:
    sources = ("edge.vision", "edge.identity")
    assert crossings(sources, ("edge.services", "web_ui")) == set()


def test_services_import_no_web() -> None:
    assert crossings(("edge.services",), ("web_ui",)) == set()


def test_the_kiosk_core_imports_no_provisioning_or_cli() -> None:
    core = ("edge",)
    cli = ("edge.cli", "edge.__main__", *(m for m in graph() if m.startswith("edge.cli_")))
    assert crossings(core, ("provisioning",), but=cli) == set()
    assert crossings(core, cli, but=cli) == set()


def test_the_web_ui_imports_no_provisioning() -> None:
    # It learns about provisioning through its façade (web_ui/ports.py), which the daemon fills.
    assert crossings(("web_ui",), ("provisioning",)) == set()


def test_central_imports_no_kiosk_internals() -> None:
    shared = {
        (m, t) for m, t in crossings(("fleet",), tuple(CENTRAL_SHARES)) if t in CENTRAL_SHARES
    }
    assert crossings(("fleet",), ("edge", "web_ui", "provisioning")) - shared == set()


def test_the_allowances_are_still_needed() -> None:
    edges = graph()
    assert {(m, t) for m, t in ALLOWED_CROSSINGS if t not in edges[m]} == set()
    shared = {t for m, imported in edges.items() if _in(m, "fleet") for t in imported}
    assert CENTRAL_SHARES - shared == set()


def test_the_daemon_is_the_web_uis_kiosk(tmp_path: Path) -> None:
    from edge import config as cfg
    from edge.app import App
    from tests.conftest import write_sim_config
    from web_ui.kiosk import FLOWS, SERVICES
    from web_ui.ports import Kiosk

    path = write_sim_config(tmp_path, sample_scenes=False)
    app: Kiosk = App(cfg.load(path), config_path=path)  # what a type checker verifies, too
    assert isinstance(app, Kiosk)
    assert {name for flow in FLOWS.values() for name in flow.services} <= set(SERVICES)


def test_app_builds_all_its_parts_at_once_without_io(tmp_path: Path) -> None:
    """Issue 15: no part is None until start(); building touches no file; stop() of an App
    that never started stops nothing but the event bus."""
    from dataclasses import fields

    from edge import config as cfg
    from edge.app import App
    from tests.conftest import write_sim_config

    path = write_sim_config(tmp_path, sample_scenes=False)
    config = cfg.load(path)
    app = App(config, config_path=path)
    optional = {"sim_pins", "fleet", "watchdog", "a4printer", "chip_reader", "payment"}  # config
    assert {f.name for f in fields(app.parts) if getattr(app.parts, f.name) is None} <= optional
    assert app.sim_pins is not None  # the simulation config simulates buttons and the door
    assert app.store is app.parts.store and app.catalog is app.parts.services.catalog
    assert not config.storage.state_dir.exists()
    app.stop()
    assert not config.storage.state_dir.exists()
