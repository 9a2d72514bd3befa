"""The shape of the `threshold_probe` package: import graph, import cycles, lines per package.

Usage:
    python scripts/importgraph.py [--root DIR] [--check] [--max-lines N] [--top N] [--json]
    python scripts/importgraph.py [--root DIR] --trace bisect --cluster NAME ...

Without `--trace` it prints:

- the import graph: every module and the project modules it imports, read from the source (AST),
  never by importing it. An import inside a function is marked `(in function)`; one under
  `if TYPE_CHECKING:` is marked `(typing only)`;
- the import cycles: strongly connected components of the graph of module-level and in-function
  imports (typing-only imports never run, so they form no cycle);
- the lines per package (`threshold_probe/` for the top-level modules, then `cli/`, `clusters/`...)
  and the largest modules.

`--check` exits 1 when there is a cycle or a module longer than `--max-lines` (600).

`--trace ARGS...` runs `probe ARGS...` in this process under `sys.setprofile` (and
`threading.setprofile`, for the threads that drain remote output) and lists:

- the path: the files with a function that called a function of a file it imports (the call a
  reader sees and steps into), each with the files it called into. A call through an interface
  (a callback, an overridden method, a hook) is not a step: its target is not imported where the
  call is made, and the reader meets it from the other side;
- the leaves: files whose functions were called but call into no file they import (read by their
  names where they are called, like a library);
- every project file in which at least one function was called, with the number of calls.

Package files that were only read as data (the far-side runner, shipped to the cluster) are listed
apart. Everything after `--trace` goes to `probe`.

`--root` is a checkout of the project (default: the one this script lives in); `--trace` imports
the package from there.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PACKAGE = "threshold_probe"
MAX_LINES = 600


@dataclass(frozen=True)
class Edge:
    """One import of a project module by another; `kind` is `module`, `function` or `typing`."""

    source: str
    target: str
    kind: str
    line: int


@dataclass
class Module:
    """One module of the package: its dotted name, file and length."""

    name: str
    path: Path
    lines: int
    is_package: bool
    imports: list[Edge] = field(default_factory=list)


def discover(package_dir: Path) -> dict[str, Module]:
    """Every `.py` file under `package_dir`, by dotted module name."""
    modules: dict[str, Module] = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        text = path.read_text(encoding="utf-8", errors="replace")
        modules[".".join(parts)] = Module(".".join(parts), path, len(text.splitlines()), is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name that `from ... import` names, relative imports resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _targets(module: Module, node: ast.Import | ast.ImportFrom, known: dict[str, Module]) -> list[str]:
    """The project modules one import statement brings in (the deepest known module of each name)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _resolve(module, node)
        for alias in node.names:
            # `from pkg import mod` imports the module pkg.mod; `from mod import func` imports mod.
            names.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    found: list[str] = []
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module.name and name not in found:
            found.append(name)
    return found


def read_imports(module: Module, known: dict[str, Module]) -> None:
    """Fill `module.imports` from its source."""
    tree = ast.parse(module.path.read_text(encoding="utf-8", errors="replace"), str(module.path))

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and kind == "module":
                child_kind = "function"
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_stmt(stmt, "typing")
                for stmt in child.orelse:
                    visit_stmt(stmt, kind)
                continue
            visit_stmt(child, child_kind)

    def visit_stmt(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(module, node, known):
                module.imports.append(Edge(module.name, target, kind, node.lineno))
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and kind == "module":
            kind = "function"
        visit(node, kind)

    visit(tree, "module")


def build_graph(root: Path) -> dict[str, Module]:
    """The package under `root` with every module's project imports."""
    package_dir = root / PACKAGE
    if not (package_dir / "__init__.py").is_file():
        raise SystemExit(f"importgraph: no {PACKAGE}/ package under {root}")
    modules = discover(package_dir)
    for module in modules.values():
        read_imports(module, modules)
    return modules


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself),
    over the imports that run (module-level and in-function)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module in modules.values():
        for edge in module.imports:
            if edge.kind != "typing":
                graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    # Tarjan's algorithm, iterative so that a deep graph needs no deep recursion.
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(sorted(component))
    return sorted(found)


def package_of(module: Module) -> str:
    """The package a module is counted under: `threshold_probe/` for the top level, else `cli/`..."""
    parts = module.name.split(".")
    if len(parts) == 1 or (len(parts) == 2 and not module.is_package):
        return f"{PACKAGE}/"
    return f"{parts[1]}/"


def sizes(modules: dict[str, Module]) -> dict[str, tuple[int, int]]:
    """Lines and module count per package, largest first."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for module in modules.values():
        per[package_of(module)][0] += module.lines
        per[package_of(module)][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(per.items(), key=lambda kv: (-kv[1][0], kv[0]))}


def _rel(module: Module, root: Path) -> str:
    return module.path.relative_to(root).as_posix()


def report(modules: dict[str, Module], root: Path, *, top: int, max_lines: int) -> tuple[str, dict[str, Any], bool]:
    """The text report, the same as JSON, and whether the tree passes the check."""
    found = cycles(modules)
    too_long = sorted((m for m in modules.values() if m.lines > max_lines), key=lambda m: -m.lines)
    largest = sorted(modules.values(), key=lambda m: (-m.lines, m.name))[:top]
    per_package = sizes(modules)
    total = sum(m.lines for m in modules.values())
    lines: list[str] = ["Import graph (module -> project modules it imports):"]
    for name in sorted(modules):
        edges = modules[name].imports
        if not edges:
            continue
        lines.append(f"  {name}")
        shown = {(e.target, e.kind): e for e in edges}.values()
        for edge in sorted(shown, key=lambda e: (e.target, e.kind)):
            note = {"module": "", "function": "  (in function)", "typing": "  (typing only)"}[edge.kind]
            lines.append(f"    -> {edge.target}{note}")
    lines.append("")
    lines.append(f"Import cycles: {len(found)}")
    for component in found:
        members = set(component)
        lines.append(f"  {' <-> '.join(component)}")
        for name in component:
            for edge in modules[name].imports:
                if edge.target in members and edge.kind != "typing":
                    where = " (in function)" if edge.kind == "function" else ""
                    lines.append(f"      {name}:{edge.line} -> {edge.target}{where}")
    lines.append("")
    lines.append(f"Lines per package ({len(modules)} modules, {total} lines):")
    for package, (count, n) in per_package.items():
        lines.append(f"  {package:<20} {count:>6}  ({n} modules)")
    lines.append("")
    lines.append(f"Largest modules (limit {max_lines} lines):")
    for module in largest:
        flag = "  over the limit" if module.lines > max_lines else ""
        lines.append(f"  {module.lines:>6}  {_rel(module, root)}{flag}")
    ok = not found and not too_long
    data: dict[str, Any] = {
        "graph": {
            name: [{"module": e.target, "kind": e.kind, "line": e.line} for e in modules[name].imports]
            for name in sorted(modules)
        },
        "cycles": found,
        "lines_per_package": {k: {"lines": v[0], "modules": v[1]} for k, v in per_package.items()},
        "total_lines": total,
        "largest": [{"path": _rel(m, root), "lines": m.lines} for m in largest],
        "over_limit": [{"path": _rel(m, root), "lines": m.lines} for m in too_long],
        "max_lines": max_lines,
    }
    return "\n".join(lines), data, ok


@dataclass
class Trace:
    """What one traced command touched: function calls per project file, package files read."""

    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: (caller file, callee file) -> calls: a project function calling one in another project file,
    #: with library frames (typer, threading) in between skipped.
    handoffs: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    read: set[str] = field(default_factory=set)
    #: (file, first line) of every project function called.
    functions: set[tuple[str, int]] = field(default_factory=set)
    exit_code: int = 0


def trace(root: Path, argv: list[str]) -> Trace:
    """Run `probe ARGV` in this process and record the project files whose functions were called."""
    package_dir = (root / PACKAGE).resolve()
    prefix = str(package_dir) + os.sep
    sys.path.insert(0, str(root.resolve()))
    result = Trace()
    counts = result.calls
    handoffs = result.handoffs
    seen_codes: dict[Any, str | None] = {}
    function_flags = inspect.CO_NEWLOCALS  # functions, methods, lambdas; not module or class bodies

    def project_file(code: Any) -> str | None:
        path = seen_codes.get(code, "")
        if path == "":
            filename = code.co_filename
            path = filename if filename.startswith(prefix) and code.co_flags & function_flags else None
            seen_codes[code] = path
        return path

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        path = project_file(frame.f_code)
        if path is None:
            return
        counts[path] += 1
        result.functions.add((path, frame.f_code.co_firstlineno))
        caller = frame.f_back
        while caller is not None:
            source = project_file(caller.f_code)
            if source is not None:
                if source != path:
                    handoffs[(source, path)] += 1
                return
            caller = caller.f_back

    def audit(event: str, args: tuple[Any, ...]) -> None:
        # The far-side runner is read as data and shipped, never called here; it is still a file
        # the command depends on.
        if event == "open" and args and isinstance(args[0], str | os.PathLike):
            path = os.path.realpath(os.fspath(args[0]))
            if path.startswith(prefix) and path.endswith(".py"):
                result.read.add(path)

    sys.addaudithook(audit)
    # Imported only now, from --root, once sys.path points there.
    from threshold_probe.cli.app import app

    loaded = Path(sys.modules[PACKAGE].__file__ or "").resolve().parent
    if loaded != package_dir:
        raise SystemExit(f"importgraph: imported {PACKAGE} from {loaded}, not from {package_dir}")
    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        app(args=argv, prog_name="probe")
    except SystemExit as exc:
        result.exit_code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    # Imports read source files too: only what no loaded module came from was read as data.
    files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
    imported = {os.path.realpath(f) for f in files if isinstance(f, str)}
    result.read -= imported
    return result


def _definitions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The module's functions and its classes' methods, outermost only (a nested function is part
    of the one it is defined in)."""
    found: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    body: list[ast.stmt] = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(node)
        elif isinstance(node, ast.ClassDef):
            body.extend(node.body)
    return found


def called_lines(result: Trace) -> dict[str, int]:
    """file -> lines of the outermost definitions (with their decorators) whose code was called:
    what a reader of the command must read in that file at the least."""
    firsts: dict[str, set[int]] = defaultdict(set)
    for path, first in result.functions:
        firsts[path].add(first)
    sizes: dict[str, int] = {}
    for path, lines in firsts.items():
        spans = set()
        for node in _definitions(ast.parse(Path(path).read_text())):
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            end = node.end_lineno or node.lineno
            if any(start <= line <= end for line in lines):
                spans.add((start, end))
        sizes[path] = sum(end - start + 1 for start, end in spans)
    return sizes


def trace_report(result: Trace, root: Path, argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The files one traced command called into, most calls first."""
    base = root.resolve()
    called = sorted(result.calls.items(), key=lambda kv: (-kv[1], kv[0]))
    shipped = sorted(p for p in result.read if p not in result.calls)
    rel = [(Path(p).relative_to(base).as_posix(), n) for p, n in called]
    shipped_rel = [Path(p).relative_to(base).as_posix() for p in shipped]

    def short(path: str) -> str:
        return Path(path).relative_to(base).as_posix()

    # The path a reader follows: the files whose functions call a function of a file they
    # import, where the reader sees the call's target. A call through an interface (a callback, an
    # overridden method, a hook) is read from the other side: its target is not imported where it
    # is called. A leaf (called, calling into no file it imports) is read by its name and
    # signature where it is called, like a library function.
    modules = build_graph(root)
    imported_by: dict[str, set[str]] = {
        str(m.path.resolve()): {str(modules[e.target].path.resolve()) for e in m.imports} for m in modules.values()
    }
    out_edges: dict[str, set[str]] = defaultdict(set)
    for source, target in result.handoffs:
        if target in imported_by.get(source, set()):
            out_edges[source].add(target)
    path_files = sorted(out_edges, key=lambda p: (-result.calls.get(p, 0), p))
    leaves = sorted(short(p) for p in result.calls if p not in out_edges)
    lines = [f"`probe {' '.join(argv)}` exited {result.exit_code}."]
    lines.append(f"Files on the path (a function in them calls into a project file they import): {len(path_files)}")
    for path in path_files:
        targets = ", ".join(sorted(short(t) for t in out_edges[path]))
        lines.append(f"  {short(path)} -> {targets}")
    lines.append(f"Leaves (called, call into no other project file): {len(leaves)}")
    lines.append("  " + ", ".join(leaves))
    # The floor under the number of files: the definitions called, packed MAX_LINES to a file
    # without mixing packages (the layers of DESIGN.md), and before any class body, constant or
    # import they need.
    sizes = called_lines(result)
    per_package: dict[str, int] = defaultdict(int)
    for path, size in sizes.items():
        per_package[Path(path).relative_to(base).parent.as_posix()] += size
    floor = sum(-(-size // MAX_LINES) for size in per_package.values())
    file_lines = sum(len(Path(p).read_text().splitlines()) for p in result.calls)
    lines.append(f"Project files with at least one function called: {len(rel)}")
    lines.append(
        f"  their definitions called: {sum(sizes.values())} lines of {file_lines};"
        f" packed {MAX_LINES} lines a file within each package: at least {floor} files"
    )
    lines.append("     calls  def lines  file")
    for path, n in rel:
        lines.append(f"  {n:>8}  {sizes.get(str(base / path), 0):>9}  {path}")
    if shipped_rel:
        lines.append(f"Project files only read as data (shipped to the far side): {len(shipped_rel)}")
        for path in shipped_rel:
            lines.append(f"            {path}")
    data = {
        "command": ["probe", *argv],
        "exit_code": result.exit_code,
        "files": [{"path": p, "calls": n, "called_lines": sizes.get(str(base / p), 0)} for p, n in rel],
        "called_lines": sum(sizes.values()),
        "called_file_lines": file_lines,
        "packed_floor": floor,
        "path": [{"path": short(p), "calls_into": sorted(short(t) for t in out_edges[p])} for p in path_files],
        "leaves": leaves,
        "shipped": shipped_rel,
    }
    return "\n".join(lines), data


def main(argv: list[str]) -> int:
    if "--trace" in argv:
        at = argv.index("--trace")
        own, command = argv[:at], argv[at + 1 :]
        if not command:
            print("importgraph: --trace needs a probe command, e.g. --trace bisect --cluster local", file=sys.stderr)
            return 2
    else:
        own, command = argv, []
    parser = argparse.ArgumentParser(prog="importgraph.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--check", action="store_true", help="exit 1 on a cycle or a module over --max-lines")
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    parser.add_argument("--top", type=int, default=15, help="how many of the largest modules to list")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(own)
    root: Path = args.root
    if command:
        result = trace(root, command)
        text, data = trace_report(result, root, command)
        # The command's own output went to stdout; the trace follows it, on stdout too.
        sys.stdout.flush()
        print(json.dumps(data, indent=2) if args.json else "\n" + text)
        return 0
    modules = build_graph(root)
    text, data, ok = report(modules, root, top=args.top, max_lines=args.max_lines)
    print(json.dumps(data, indent=2) if args.json else text)
    if args.check and not ok:
        problems = []
        if data["cycles"]:
            problems.append(f"{len(data['cycles'])} import cycle(s)")
        if data["over_limit"]:
            problems.append(f"{len(data['over_limit'])} module(s) over {args.max_lines} lines")
        print(f"importgraph: check failed: {', '.join(problems)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
