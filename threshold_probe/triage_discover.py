"""Discovery for `probe triage`: every function definition of the files, a payload to probe or skipped.

Test functions, fixtures and factories are containers, not payloads; a function that needs
arguments cannot be called as it is. Each of those is listed as skipped, with the reason, and
the others load as `--function` does (`load_requests`).
"""

from __future__ import annotations

import ast
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.check import Measured, measure_file_tree
from threshold_probe.errors import UserError
from threshold_probe.metrics import pickle_size, python_files
from threshold_probe.nested import Definition, definitions, reaches
from threshold_probe.probe import ProbeRequest
from threshold_probe.separate import FEATURE_NAMES
from threshold_probe.target import load_target
from threshold_probe.triage_report import TriageFunction


class Candidate:
    """A function to probe, once loaded."""

    row: TriageFunction
    request: ProbeRequest | None = None


@dataclass
class Discovery:
    """Every function found, the ones to probe first, and the files that could not be read."""

    functions: list[TriageFunction] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)


def _files(paths: Sequence[str]) -> list[tuple[Path, str]]:
    """The Python files of the paths, each with the name it is shown by: from the folder given."""
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for text in paths:
        path = Path(text).expanduser()
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
        found = python_files(path) if path.is_dir() else [path]
        base = path.resolve().parent
        for file in found:
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            out.append((file, str(file.resolve().relative_to(base))))
    if not out:
        raise UserError(f"no Python files in {', '.join(paths)}")
    return out


def _is_test(d: Definition) -> bool:
    """A test function pytest collects: test_* at module level or in a Test* class."""
    if not d.node.name.startswith("test"):
        return False
    parents = [p for p in d.chain]
    if not parents:
        return True
    return len(parents) == 1 and isinstance(parents[0], ast.ClassDef) and parents[0].name.startswith("Test")


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = []
    for d in node.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        names.append(ast.unparse(target))
    return names


def _returns_inner(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The name of a function defined in the body that the function returns (a factory)."""
    inner = {s.name for s in node.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
    for stmt in ast.walk(node):
        if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Name) and stmt.value.id in inner:
            return stmt.value.id
    return None


def _why_not(d: Definition) -> str | None:
    """Why a definition is not a payload to probe, or None when it is one."""
    node = d.node
    decorators = _decorator_names(node)
    if any(name.split(".")[-1] == "fixture" for name in decorators):
        return "a pytest fixture"
    if _is_test(d):
        return "a test function: the functions it defines are probed instead"
    inner = _returns_inner(node)
    if inner is not None:
        return f"a factory: it returns {inner}, which is probed instead"
    if isinstance(node, ast.AsyncFunctionDef):
        return "a coroutine function: calling it only makes a coroutine"
    args = node.args
    params = [*args.posonlyargs, *args.args]
    required = params[: len(params) - len(args.defaults)]
    in_class = bool(d.chain) and isinstance(d.chain[-1], ast.ClassDef)
    kind = {n.split(".")[-1] for n in decorators}
    if in_class and "staticmethod" not in kind:
        if "classmethod" in kind or "property" in kind:
            required = required[1:]
        elif required:
            return f"a method: it needs an instance ({required[0].arg})"
    missing = [a.arg for a in required] + [
        a.arg for a, dflt in zip(args.kwonlyargs, args.kw_defaults, strict=True) if dflt is None
    ]
    if missing:
        return f"needs argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    return None


def _feature_values(m: Measured) -> dict[str, int | float | str | None]:
    """The features separate.py searches, from one measured function."""

    def num(metric: str) -> int | float | str | None:
        try:
            return m.value(metric)
        except Exception:  # a metric radon cannot compute for this function: leave it out
            return None

    out: dict[str, int | float | str | None] = {}
    for name in FEATURE_NAMES:
        if name == "multiline_strings_col0":
            out[name] = num("column0_nested_strings")
        elif name == "closure_refs":
            out[name] = num("free_vars")
        elif name == "global_refs":
            out[name] = num("module_refs")
        elif name == "imported_names":
            total, module = num("global_refs"), num("module_refs")
            out[name] = total - module if isinstance(total, int) and isinstance(module, int) else None
        elif name == "pickle_bytes":
            out[name] = None  # measured once the function is loaded
        else:
            out[name] = num(name)
    return out


def shown(path: Path) -> str:
    """A path as the user knows it: relative to the current folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def discover(paths: Sequence[str]) -> Discovery:
    """Every function definition of the files, each a payload to probe or skipped with its reason."""
    found = Discovery()
    read = 0
    for path, shown in _files(paths):
        try:
            with tokenize.open(path) as fh:
                source = fh.read()
            tree = parse_source(source, filename=shown)
        except SyntaxError as exc:
            found.file_errors.append(f"{shown}:{exc.lineno}: syntax error: {exc.msg}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            found.file_errors.append(f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            continue
        read += 1
        measured = {id(m.node): m for m in measure_file_tree(tree, source, shown)}
        reached = reaches(source, str(path.resolve()))
        for d in definitions(tree):
            m = measured.get(id(d.node))
            metrics = _feature_values(m) if m is not None else {}
            scope = "nested" if d.nested else ("method" if d.chain else "module")
            row = TriageFunction(
                file=shown,
                line=d.node.lineno,
                name=d.path,
                target=f"{path.resolve()}:{d.path}",
                scope=scope,
                metrics=metrics,
            )
            reason = _why_not(d)
            if reason is None and d.nested:
                reach = reached.get(d.path)
                if reach is not None and reach.accessor is None:
                    reason = f"cannot be loaded on its own: {reach.reason}"
            if reason is None and not d.direct:
                reason = "defined in a loop or branch: reached only by running the code around it"
            row.reason = reason
            found.functions.append(row)
    if found.file_errors and not read:
        # No file could be read: a triage of nothing would report "no function could be probed".
        more = len(found.file_errors) - 1
        also = f" (and {more} more file{'s' if more > 1 else ''} like it)" if more else ""
        raise UserError(f"no Python file could be read: {found.file_errors[0]}{also}")
    return found


def load_requests(functions: Sequence[TriageFunction]) -> list[tuple[TriageFunction, ProbeRequest]]:
    """Load each payload as `--function` does; one that does not load is skipped with the reason."""
    out = []
    for row in functions:
        if row.reason is not None:
            continue
        try:
            workload = load_target(row.target)
            func = workload.load()
        except UserError as exc:
            row.reason = f"does not load here: {exc}"
            continue
        except BaseException as exc:  # the user's module: anything may happen while it loads
            if isinstance(exc, KeyboardInterrupt):
                raise
            row.reason = f"does not load here: {type(exc).__name__}: {exc}"
            continue
        row.metrics["pickle_bytes"] = pickle_size(func)
        metrics = {k: v for k, v in row.metrics.items()}
        spec: dict[str, Any] = {"function": row.target}
        out.append((row, ProbeRequest(workload=workload, level=None, spec=spec, metrics=metrics)))
    return out
