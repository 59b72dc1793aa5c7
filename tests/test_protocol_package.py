"""The shared protocol package: one copy of each schema, central free of kiosk internals, one
MQTT client factory, no import cycle in the console (docs/architecture.md, "The protocol package")."""

from __future__ import annotations

import ast
import hashlib
import os
from importlib.resources import files
from pathlib import Path

import jsonschema

from protocol.schemas import load_schema

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "protocol" / "schemas"
FACTORY = REPO / "protocol" / "mqtt.py"
SHIPPED = ("edge", "fleet", "provisioning", "protocol", "web_ui", "bench")
SKIP_DIRS = {".git", ".venv", "__pycache__", "node_modules", "var", "build", "dist"}


def repo_files(suffix: str) -> list[Path]:
    found = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        found += [Path(root) / n for n in names if n.endswith(suffix)]
    return found


def python_files(*packages: str) -> list[Path]:
    return [p for package in packages for p in sorted((REPO / package).rglob("*.py"))]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top, inside functions or under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_each_schema_exists_once_and_loads_from_the_package() -> None:
    shipped = sorted(p.name for p in SCHEMAS.glob("*.json"))
    assert shipped, "protocol/schemas/ holds the contract's schemas"
    folders = {p.parent for p in repo_files(".json") if "schemas" in p.parent.name}
    assert folders == {SCHEMAS}, f"schemas outside protocol/schemas/: {sorted(map(str, folders))}"
    by_content: dict[str, list[Path]] = {}
    for path in repo_files(".json"):
        if path.is_symlink():
            assert path.resolve().parent != SCHEMAS, f"{path} links to a schema"
            continue
        by_content.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), []).append(path)
    for name in shipped:
        digest = hashlib.sha256((SCHEMAS / name).read_bytes()).hexdigest()
        assert by_content[digest] == [SCHEMAS / name], f"{name} has copies: {by_content[digest]}"
        schema = load_schema(name.removesuffix(".json"))
        jsonschema.Draft202012Validator.check_schema(schema)
        assert files("protocol.schemas").joinpath(name).is_file()


def test_central_imports_nothing_of_the_kiosk_but_the_shared_package() -> None:
    # provisioning.ca (the CA tool) is shared on purpose; its kiosk-side modules are not.
    kiosk_side = ("provisioning.online", "provisioning.provision", "provisioning.update")
    offending = {
        f"{path.relative_to(REPO)}: {name}"
        for path in python_files("fleet")
        for name in imported_modules(path)
        if name.split(".")[0] == "edge" or name.startswith(kiosk_side)
    }
    assert not offending, sorted(offending)


def test_the_shared_package_imports_neither_side() -> None:
    offending = {
        f"{path.relative_to(REPO)}: {name}"
        for path in python_files("protocol")
        for name in imported_modules(path)
        if name.split(".")[0] in {"edge", "fleet", "provisioning", "web_ui", "bench"}
    }
    assert not offending, sorted(offending)


def paho_client_calls(path: Path) -> list[int]:
    """Lines that construct paho's Client, however paho was imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules, classes = {"paho.mqtt.client"}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "paho.mqtt.client" and alias.asname:
                    modules.add(alias.asname)
        elif isinstance(node, ast.ImportFrom) and node.module == "paho.mqtt":
            modules |= {a.asname or a.name for a in node.names if a.name == "client"}
        elif isinstance(node, ast.ImportFrom) and node.module == "paho.mqtt.client":
            classes |= {a.asname or a.name for a in node.names if a.name == "Client"}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        by_name = isinstance(func, ast.Name) and func.id in classes
        by_module = isinstance(func, ast.Attribute) and func.attr == "Client"
        if by_name or (by_module and ast.unparse(func.value) in modules):
            lines.append(node.lineno)
    return lines


def test_every_paho_client_is_made_by_the_one_factory() -> None:
    outside = {
        f"{path.relative_to(REPO)}:{line}"
        for path in python_files(*SHIPPED)
        if path != FACTORY
        for line in paho_client_calls(path)
    }
    assert not outside, f"paho clients made outside protocol/mqtt.py: {sorted(outside)}"
    assert len(paho_client_calls(FACTORY)) == 1
    tls_outside = {
        f"{path.relative_to(REPO)}"
        for path in python_files(*SHIPPED)
        if path != FACTORY
        and any(
            isinstance(node, ast.Attribute) and node.attr in {"tls_set", "create_default_context"}
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert not tls_outside, f"TLS contexts made outside protocol/mqtt.py: {sorted(tls_outside)}"


def test_no_import_cycle_in_the_console_or_the_shared_package() -> None:
    paths = python_files("fleet", "protocol")
    known = {module_name(p) for p in paths}
    graph = {
        module_name(p): {m for m in imported_modules(p) if m in known} - {module_name(p)}
        for p in paths
    }
    cycles = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
