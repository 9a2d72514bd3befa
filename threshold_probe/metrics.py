"""Static metrics of functions: radon's raw, complexity and Halstead figures plus AST counts.

Each module source is parsed once; the tree is shared by radon's visitors and the AST counts.
Definitions used (also the basis of the hand-counted fixtures in tests/assets/metrics/):

- loc, sloc, lloc, comments, blank: radon.raw over the function's lines, from its first
  decorator to its last line;
- cc, cc_rank: radon's cyclomatic complexity of the function (closures are measured on their own);
- halstead_*: radon's Halstead report of the function's subtree; mi: radon's maintainability
  index from that volume, cc, lloc and the comment percentage (as `radon mi` computes it);
- ast_nodes: nodes in the function's subtree;
- max_nesting: the deepest chain of compound statements (if, for, while, try, with, match,
  nested def or class) in the body; an `elif` is not deeper than its `if`;
- subprocess_calls: call sites of subprocess.*, os.system/popen/spawn*/exec*/posix_spawn* and
  asyncio.create_subprocess_*, through import aliases too;
- data_structures: non-empty dict, list and set displays, counted once per outermost display
  (an empty `[]` or `{}` is an accumulator, not a data structure);
- free_vars: names the function reads from enclosing function scopes (its closure cells);
  global_refs: names it reads from the module or from imports (builtins excluded);
- string_literal_bytes: UTF-8 bytes of every str and bytes constant, docstring included;
- pickle_bytes: len(cloudpickle.dumps(function)), the function pickled by value: for a generated
  workload always (it is our own code), for a user's file only on request (`measure_paths(...,
  pickle=True)`), which imports the file in a child process;
- features: multiline_strings (str, bytes and f-string literals spanning several lines),
  nested_functions (defs inside the function), lambdas, decorators (on the function itself),
  comprehensions (list, set, dict, generator), top_level_range_loops (`for ... in range(...)`
  directly in the body), default_args (parameters with defaults), star_args (*args, **kwargs).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import os
import signal
import subprocess
import sys
import tempfile
import tokenize
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cloudpickle
from pydantic import BaseModel, Field
from radon.complexity import cc_rank
from radon.metrics import halstead_visitor_report, mi_compute
from radon.raw import analyze
from radon.visitors import ComplexityVisitor, HalsteadVisitor

from threshold_probe.ast_counts import (
    FunctionNode,
    _Aliases,
    _functions,
    _is_range_loop,
    _max_nesting,
    _Refs,
    walk_counts,
)
from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.errors import UserError
from threshold_probe.ladder.workload import Workload


class FunctionMetrics(BaseModel):
    """Static metrics of one function."""

    name: str
    qualname: str
    path: str | None = None
    lineno: int
    end_lineno: int
    loc: int
    sloc: int
    lloc: int
    comments: int
    blank: int
    cc: int
    cc_rank: str
    halstead_volume: float
    halstead_difficulty: float
    halstead_effort: float
    mi: float
    ast_nodes: int
    max_nesting: int
    subprocess_calls: int
    data_structures: int
    free_vars: int
    free_var_names: list[str] = Field(default_factory=list)
    global_refs: int = 0
    global_ref_names: list[str] = Field(default_factory=list)
    string_literal_bytes: int
    pickle_bytes: int | None = None
    # Syntactic features (the feature dimensions of a ladder count the same things).
    multiline_strings: int = 0
    nested_functions: int = 0
    lambdas: int = 0
    decorators: int = 0
    comprehensions: int = 0
    top_level_range_loops: int = 0
    default_args: int = 0
    star_args: int = 0


class FileError(BaseModel):
    """A file that could not be measured, with the line of the problem when there is one."""

    path: str
    lineno: int | None = None
    message: str


class MeasureResult(BaseModel):
    """Metrics of every function found, and the files that could not be read or parsed."""

    functions: list[FunctionMetrics] = Field(default_factory=list)
    errors: list[FileError] = Field(default_factory=list)


def _measure_function(
    node: FunctionNode,
    qualname: str,
    lines: list[str],
    path: str | None,
    aliases: _Aliases,
    refs: _Refs,
) -> FunctionMetrics:
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    end = node.end_lineno or node.lineno
    raw = analyze("\n".join(lines[first - 1 : end]) + "\n")
    cc = ComplexityVisitor.from_ast(node).functions[0].complexity
    halstead = halstead_visitor_report(HalsteadVisitor.from_ast(node))
    comment_pct = (raw.comments + raw.multi) * 100 / raw.sloc if raw.sloc else 0
    closure = sorted(refs.closure.get(id(node), set()))
    glob = sorted(refs.globals.get(id(node), set()))
    counts = walk_counts(node, aliases)
    return FunctionMetrics(
        name=node.name,
        qualname=qualname,
        path=path,
        lineno=node.lineno,
        end_lineno=end,
        loc=raw.loc,
        sloc=raw.sloc,
        lloc=raw.lloc,
        comments=raw.comments,
        blank=raw.blank,
        cc=cc,
        cc_rank=cc_rank(cc),
        halstead_volume=round(halstead.volume, 3),
        halstead_difficulty=round(halstead.difficulty, 3),
        halstead_effort=round(halstead.effort, 3),
        mi=round(mi_compute(halstead.volume, cc, raw.lloc, comment_pct), 3),
        ast_nodes=counts.ast_nodes,
        max_nesting=_max_nesting(node.body),
        subprocess_calls=counts.subprocess_calls,
        data_structures=counts.data_structures,
        free_vars=len(closure),
        free_var_names=closure,
        global_refs=len(glob),
        global_ref_names=glob,
        string_literal_bytes=counts.string_literal_bytes,
        multiline_strings=counts.multiline_strings,
        nested_functions=counts.nested_functions,
        lambdas=counts.lambdas,
        decorators=len(node.decorator_list),
        comprehensions=counts.comprehensions,
        top_level_range_loops=sum(1 for stmt in node.body if _is_range_loop(stmt)),
        default_args=len(node.args.defaults) + sum(1 for d in node.args.kw_defaults if d is not None),
        star_args=int(node.args.vararg is not None) + int(node.args.kwarg is not None),
    )


def _measure_tree(tree: ast.Module, source: str, path: str | None) -> list[FunctionMetrics]:
    lines = source.splitlines()
    aliases = _Aliases(tree)
    refs = _Refs(tree)
    return [_measure_function(n, q, lines, path, aliases, refs) for n, q in _functions(tree)]


def python_files(folder: Path) -> list[Path]:
    """The *.py files under a folder, sorted, skipping hidden folders, caches and virtualenvs."""
    return _python_files(folder)


def measure_source(source: str, *, path: str | None = None) -> list[FunctionMetrics]:
    """Metrics of every function in a module source (methods and nested functions included).

    A syntax error propagates as SyntaxError; measure_paths turns it into a FileError.
    """
    tree = parse_source(source, filename=path or "<source>")
    return _measure_tree(tree, source, path)


def pickle_size(func: Any) -> int | None:
    """len(cloudpickle.dumps(func)), or None when the function cannot be pickled."""
    try:
        return len(cloudpickle.dumps(func))
    except Exception:  # anything a user's object raises while pickling means "not picklable"
        return None


def measure_workload(workload: Workload) -> FunctionMetrics:
    """Metrics of a workload's function, with pickle_bytes of the function pickled by value."""
    # Source order puts the workload before anything defined inside it.
    found = [m for m in measure_source(workload.source) if m.name == workload.func_name]
    if not found:
        raise ValueError(f"{workload.name}: no function {workload.func_name} in its source")
    metrics = found[0]
    # Workload.load() executes in a module that is not importable, so cloudpickle ships by value.
    metrics.pickle_bytes = pickle_size(workload.load())
    return metrics


# -- files and folders ---------------------------------------------------------------------

_SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv"})


def _python_files(folder: Path) -> list[Path]:
    out = []
    for p in folder.rglob("*.py"):
        parts = p.relative_to(folder).parts[:-1]
        if any(part.startswith(".") or part in _SKIP_DIRS for part in parts):
            continue
        out.append(p)
    return sorted(out)


#: Seconds a file may take to import, in the child that sizes its functions' pickles.
PICKLE_TIMEOUT_S = 10.0

# The child that sizes pickles: it imports one file (its folder first on sys.path), pickles each
# named function by value with cloudpickle, and writes {"sizes": {qualname: bytes or null}} or
# {"error": "Type: message"} to the file named by argv[2]. Its own output goes nowhere, so whatever
# the module prints cannot be mistaken for the answer.
_PICKLE_CHILD = r"""
import importlib.util, json, os, sys
path, out, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
def answer(data):
    with open(out, "w") as fh:
        json.dump(data, fh)
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
import cloudpickle
name = "threshold_probe_measured"
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
try:
    spec.loader.exec_module(module)
except BaseException as exc:
    text = str(exc).strip().splitlines()
    answer({"error": type(exc).__name__ + (": " + text[0] if text else "")})
    sys.exit(0)
# Out of sys.modules, so that cloudpickle ships each function by value, as a runner would.
sys.modules.pop(name, None)
sizes = {}
for qualname in names:
    obj = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    try:
        sizes[qualname] = len(cloudpickle.dumps(obj)) if callable(obj) else None
    except Exception:
        sizes[qualname] = None
answer({"sizes": sizes})
"""


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _pickle_sizes(path: Path, qualnames: list[str], timeout: float) -> tuple[dict[str, int | None], str | None]:
    """Pickled sizes of the named functions, from a child that imports the file; or why there are none.

    The child runs in its own session and is killed, with anything it started there, when it
    outlives `timeout` and once it is done.
    """
    with tempfile.TemporaryDirectory(prefix="probe-measure-") as tmp:
        out = Path(tmp) / "sizes.json"
        argv = [sys.executable, "-c", _PICKLE_CHILD, str(path), str(out), json.dumps(qualnames)]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if code is None:
            return {}, f"still importing after {timeout:g} s: stopped, no pickle sizes (see --pickle-timeout)"
        try:
            data = json.loads(out.read_text())
        except (OSError, ValueError):
            data = None
    if code < 0:
        return {}, f"crashed ({_signal_name(-code)}) while being imported: no pickle sizes"
    if not isinstance(data, dict):
        return {}, f"exited with code {code} while being imported: no pickle sizes"
    if "error" in data:
        return {}, f"importing it raised {data['error']}: no pickle sizes"
    sizes = data.get("sizes") or {}
    return {q: sizes.get(q) if isinstance(sizes.get(q), int) else None for q in qualnames}, None


def _split_target(target: str) -> tuple[Path, str | None]:
    path = Path(target)
    if path.exists() or ":" not in target:
        return path, None
    file, func = target.rsplit(":", 1)
    return Path(file), func


def _measure_file(
    path: Path, shown: str, func: str | None, pickle: bool, timeout: float
) -> tuple[list[FunctionMetrics], list[FileError]]:
    """The functions of one file, and what went wrong reading, parsing or sizing it."""
    try:
        with tokenize.open(path) as fh:
            source = fh.read()
    except (SyntaxError, UnicodeDecodeError) as exc:
        return [], [FileError(path=shown, lineno=None, message=f"cannot decode: {exc}")]
    except OSError as exc:
        return [], [FileError(path=shown, lineno=None, message=f"cannot read: {exc.strerror}")]
    try:
        tree = parse_source(source, filename=shown)
    except SyntaxError as exc:
        return [], [FileError(path=shown, lineno=exc.lineno, message=f"SyntaxError: {exc.msg}")]
    functions = _measure_tree(tree, source, shown)
    if func is not None:
        chosen = [m for m in functions if m.qualname == func] or [m for m in functions if m.name == func]
        if not chosen:
            raise UserError(f"{shown}: no function {func!r}{_other_functions(func, [m.qualname for m in functions])}")
        functions = chosen[:1]
    errors: list[FileError] = []
    # A nested function only exists while its parent runs: it has no pickle of its own to size.
    reachable = [m.qualname for m in functions if "<locals>" not in m.qualname]
    if pickle and reachable:
        sizes, problem = _pickle_sizes(path, reachable, timeout)
        for m in functions:
            m.pickle_bytes = sizes.get(m.qualname)
        if problem:
            errors.append(FileError(path=shown, lineno=None, message=problem))
    return functions, errors


def iter_measure(
    targets: Sequence[str], *, pickle: bool = False, pickle_timeout: float = PICKLE_TIMEOUT_S
) -> Iterator[tuple[list[FunctionMetrics], list[FileError]]]:
    """The functions and errors of each file in turn, so that a caller need not hold a whole tree.

    Every target is checked before the first file is measured: a missing path or a FILE:FUNC
    naming a folder raises UserError before anything is yielded.
    """
    plan: list[tuple[Path, str | None]] = []
    for target in targets:
        path, func = _split_target(target)
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
        if path.is_dir() and func is not None:
            raise UserError(f"{target}: FILE:FUNC needs a file, and {path} is a folder")
        plan.append((path, func))
    for path, func in plan:
        if path.is_dir():
            for file in _python_files(path):
                yield _measure_file(file, str(file), None, pickle, pickle_timeout)
        else:
            yield _measure_file(path, str(path), func, pickle, pickle_timeout)


def measure_paths(
    targets: Sequence[str], *, pickle: bool = False, pickle_timeout: float = PICKLE_TIMEOUT_S
) -> MeasureResult:
    """Metrics of every function in files, folders (recursively, *.py) and FILE:FUNC targets.

    Static: every file is parsed, never imported. A missing path raises UserError; a file that
    cannot be parsed becomes a FileError and the others are still measured.

    With `pickle`, each file is also imported, in a child process with the file's folder first on
    sys.path, to size its functions' pickles: the file's top-level code runs, with whatever side
    effects it has. A file whose import raises, exits, crashes or outlives `pickle_timeout`
    seconds gets a FileError of one line; its functions keep their static metrics.
    """
    result = MeasureResult()
    for functions, errors in iter_measure(targets, pickle=pickle, pickle_timeout=pickle_timeout):
        result.functions.extend(functions)
        result.errors.extend(errors)
    return result


def _other_functions(func: str, names: list[str]) -> str:
    """What a misspelt FILE:FUNC could have meant: the closest name, or the few there are."""
    close = difflib.get_close_matches(func, names, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if not names:
        return " (the file defines none)"
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    return f" (functions: {shown})"
