"""The package's import structure (issue 26): no import circles between modules, and every
package of src/rlpipe imports only from itself or from the packages below it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom first: a package may import from those before it. One line of the README's Layout.
LEVELS = [
    "runtree",
    "runtime",
    "envs",
    "storage",
    "replays",
    "algos",
    "sweep",
    "rollouts",
    "results",
    "tracking",
    "remote",
    "smk",
    "cli",
    "warm",
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "rlpipe").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The rlpipe modules ``path`` imports (at the top or inside a function)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("rlpipe"):
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_package_has_a_level():
    packages = {_package(m) for m in _graph()} - {None, "data"}
    assert packages == set(LEVELS)


def test_packages_import_only_their_own_level_or_below():
    level = {name: i for i, name in enumerate(LEVELS)}
    upward = [
        f"{src} -> {dst}"
        for src, targets in _graph().items()
        for dst in targets
        if _package(src) and _package(dst) and level[_package(dst)] > level[_package(src)]
    ]
    assert upward == []


def test_no_import_circles():
    graph, state, circles = _graph(), {}, []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = "open"
        for dst in sorted(graph[module]):
            if state.get(dst) == "open":
                circles.append(" -> ".join([*stack[stack.index(dst) :], dst]))
            elif dst not in state:
                visit(dst, [*stack, dst])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []
