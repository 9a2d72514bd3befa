"""The report layers: renderers are pure functions of the view, and the view has one home.

Static checks over the package's imports (no testbed needed): nothing under render/ reads the
store; compare, history and nightly read the view, not a renderer's helpers; the run and the
report modules import each other in no cycle; and the run orchestration reads in one screen.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "threshold_probe"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every threshold_probe module a file imports, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("threshold_probe")}


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_renderers_never_read_the_store() -> None:
    for path in (PACKAGE / "render").glob("*.py"):
        assert "threshold_probe.store" not in _imports(path), f"{path.name} imports the store"


def test_compare_history_and_nightly_read_the_view_not_render_helpers() -> None:
    for name in ("compare.py", "history.py", "nightly.py"):
        imported = _imports(PACKAGE / name)
        assert "threshold_probe.render.common" not in imported, name


def test_no_import_cycle_among_run_view_and_report_modules() -> None:
    modules = _modules()
    ours = {
        name
        for name in modules
        if name.startswith(("threshold_probe.session", "threshold_probe.view", "threshold_probe.render"))
        or name in {f"threshold_probe.{m}" for m in ("summary", "compare", "history", "nightly")}
    }
    graph = {name: {m for m in _imports(modules[name]) if m in ours and m != name} for name in ours}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return False

    # A package's __init__ re-exporting its own modules is not a cycle: skip edges into parents.
    cycles = sorted(
        (a, b)
        for a in graph
        for b in graph[a]
        if not a.startswith(b + ".") and reaches(b, a) and not b.startswith(a + ".")
    )
    assert not cycles, cycles


def test_run_orchestration_reads_in_one_screen_and_no_module_is_long() -> None:
    assert len((PACKAGE / "session" / "run.py").read_text().splitlines()) < 350
    for path in [
        *(PACKAGE / "session").glob("*.py"),
        *(PACKAGE / "render").glob("*.py"),
        *(PACKAGE / "view").glob("*.py"),
    ]:
        assert len(path.read_text().splitlines()) <= 600, path
