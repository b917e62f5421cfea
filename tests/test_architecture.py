"""The package's shape: small modules, no import cycles, data flowing one way through the stages.

The import graph is read from the source with ast (nothing is imported): every ``import`` and
``from ... import`` of a vgfm_bayes module is an edge, function-local (lazy) imports included,
and importing ``a.b.c`` is also an edge to the packages ``a.b`` and ``a`` (their __init__ runs
first) unless the importer lives inside them. Only imports under ``if TYPE_CHECKING:`` are left
out: they never run, they only name types for annotations.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vgfm_bayes"
MAX_LINES = 450

# The stages in the order the data flow through them (STYLE.md, README "Architecture"): a module
# may import modules of its own stage or of earlier ones, never of a later one.
STAGES = [
    "data",
    "ot",
    "nn",
    "model",
    "infer",
    "posterior",
    "metrics",
    "plotting",
    "api",  # the user-facing model and its outputs; the zoo and data set shortcuts
    "apps",  # the main job and the benchmark harness
    "cli",
    "package",  # vgfm_bayes/__init__.py: the public names
]
TOP_LEVEL = {
    "estimator": "api",
    "outputs": "api",
    "scverse": "api",
    "datasets": "api",
    "zoo": "api",
    "pl": "plotting",  # vgfm_bayes.pl: a scanpy-style alias of plotting.pl
    "demo": "apps",
    "bench": "apps",
    "cli": "cli",
    "commands": "cli",
    "__main__": "cli",
}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, the zoo (models/, shipped as vgfm_bayes.zoo) included."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    out["vgfm_bayes.zoo"] = ROOT / "models" / "__init__.py"
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST):
    """Every import node, lazy ones included, except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        edges = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # "from pkg import sub" imports the submodule; "from mod import name" the module
                targets = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names
                ]
            for t in targets:
                if t not in mods:
                    continue
                for u in {t} | _ancestors(t):
                    if u != name and u not in _ancestors(name):
                        edges.add(u)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            return cycle
    return None


def stage(name: str) -> str:
    parts = name.split(".")
    if len(parts) == 1:
        return "package"
    return parts[1] if parts[1] in STAGES else TOP_LEVEL.get(parts[1], "unknown")


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_data_flow_one_way():
    rank = {s: i for i, s in enumerate(STAGES)}
    upward = [
        f"{a} ({stage(a)}) imports {b} ({stage(b)})"
        for a, targets in import_graph().items()
        for b in sorted(targets)
        if rank.get(stage(b), -1) > rank.get(stage(a), len(STAGES))
    ]
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_every_module_has_a_stage():
    unknown = [name for name in _modules() if stage(name) not in STAGES]
    assert not unknown, f"modules with no stage (add them to TOP_LEVEL): {unknown}"


@pytest.mark.parametrize("path", sorted(_modules().values()), ids=lambda p: p.name)
def test_module_size(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_LINES})"


def test_the_checks_catch_what_they_should():
    """The cycle finder sees a cycle through a lazy import, and TYPE_CHECKING is left out."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import x\n"
        "def f():\n    import y\n"
    )
    names = [a.name for n in _imports(tree) if isinstance(n, ast.Import) for a in n.names]
    assert names == ["y"]


def test_no_package_name_hides_a_submodule():
    """A package must not export a name equal to one of its submodules (importing the submodule
    later rebinds the name: ``data.load`` the function became ``data/load.py`` the module)."""
    mods = _modules()
    hidden = []
    for name, path in mods.items():
        if path.name != "__init__.py":
            continue
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                for a in node.names:
                    bound = a.asname or a.name
                    if f"{name}.{bound}" in mods and bound != node.module:
                        hidden.append(f"{name}: {bound} (from .{node.module})")
    assert not hidden, "names that hide a submodule: " + ", ".join(hidden)
