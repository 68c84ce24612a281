"""The code's shape, checked on every run (issue #12): imports go down only.

import-linter (`make lint`) checks the layers of pyproject.toml; this checks what it cannot:
no import cycle among Easel's modules when imports inside functions count too, no project
import inside a function except in an AppConfig.ready, and no module over 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "config", "gallery", "generator")
MAX_LINES = 400


def project_files() -> dict[str, Path]:
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def imports_of(name: str, path: Path, modules: set[str]):
    """(imported project module, line, in a function?, enclosing function name)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        return ".".join([*base, node.module] if node.module else base)

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = child.name
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only: never executed
            targets = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = resolve(child)
                targets = [f"{base}.{alias.name}" for alias in child.names] + [base]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.append((target, child.lineno, function is not None, function))
            visit(child, inner)

    visit(tree, None)
    return found


def graph():
    files = project_files()
    modules = set(files)
    return files, {name: imports_of(name, path, modules) for name, path in files.items()}


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            out.append(component)

    for v in list(edges):
        if v not in index:
            connect(v)
    return out


def test_no_import_cycle_among_project_modules():
    _, found = graph()
    # A package importing its own submodules (re-exports) is the package's shape, not a cycle.
    edges = {
        name: {t for t, *_ in imports if not t.startswith(f"{name}.")}
        for name, imports in found.items()
    }
    cycles = [sorted(c) for c in strongly_connected(edges) if len(c) > 1]
    assert cycles == []


def test_project_imports_are_at_module_level_except_in_appconfig_ready():
    files, found = graph()
    inside = [
        f"{files[name].relative_to(ROOT)}:{line} imports {target} inside {function}()"
        for name, imports in found.items()
        for target, line, in_function, function in imports
        if in_function and not (function == "ready" and name.endswith(".apps"))
    ]
    assert inside == []


def test_no_module_over_400_lines():
    long = {
        str(path.relative_to(ROOT)): n
        for path in [*project_files().values(), *sorted((ROOT / "bench").glob("*.py"))]
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_scan_sees_a_cycle_and_a_function_local_import(tmp_path):
    """The checks above can fail: a planted cycle and a planted import are found."""
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("import b\n")
    b.write_text("def f():\n    import a\n")
    modules = {"a", "b"}
    found = {"a": imports_of("a", a, modules), "b": imports_of("b", b, modules)}
    assert found["b"] == [("a", 2, True, "f")]
    edges = {k: {t for t, *_ in v} for k, v in found.items()}
    assert [sorted(c) for c in strongly_connected(edges) if len(c) > 1] == [["a", "b"]]
