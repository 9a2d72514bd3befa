"""The pieces of `probe explain` outside its steps: standalone reproducer, driver, words, the run to resume.

A function nested in a test made standalone, the feature of a function that its failure's evidence
points at, the code and target of a generated workload, a step's verdict line, the limits in words,
the explanation `--resume` continues, and the shrink API when it is installed.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.errors import UserError
from threshold_probe.explain_model import KIND
from threshold_probe.metrics import measure_workload
from threshold_probe.nested import REACH_PREFIX, reaches
from threshold_probe.store import RunInfo, Store
from threshold_probe.summary import ProbeSummary
from threshold_probe.target import load_target
from threshold_probe.units import format_memory


def standalone_source(function: str) -> tuple[str, str] | None:
    """A function nested in a test, on its own: the module's imports and its enclosing function cut
    down to what it reads (its reach, threshold_probe/nested.py), as (source, attribute path)."""
    file, _, attr = function.rpartition(":")
    path = Path(file)
    parts = attr.split(".")
    if len(parts) < 2 or not path.is_file():
        return None
    try:
        source = path.read_text(encoding="utf-8")
        tree = parse_source(source)
    except (OSError, UnicodeDecodeError, SyntaxError):
        return None
    reach = reaches(source, str(path)).get(attr)
    if reach is None or reach.accessor is None:
        return None
    outer, inner = parts[-2], parts[-1]
    header = f"def {REACH_PREFIX}{attr.replace('.', '__')}():"
    if not reach.text.startswith(header) or f"def {outer}():" in reach.text:
        return None  # functions nested more than one level deep keep the whole file
    imports = [
        ast.get_source_segment(source, node) or ""
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    text = "\n".join(i for i in imports if i)
    body = reach.text.replace(header, f"def {outer}():", 1)
    return (f"{text}\n\n\n{body}" if text else body), f"{outer}.{inner}"


def verdict_line(probe: ProbeSummary | None, pipeline: str) -> str:
    if probe is None:
        return f"not probed through {pipeline}"
    cls = f" ({probe.failure_class})" if probe.failure_class else ""
    return f"{probe.verdict}{cls} through {pipeline}"


_QUOTED_NAME = re.compile(r"name '([^']+)' is not defined")


def function_driver(function: str, failure_class: str | None, evidence: list[str]) -> tuple[str | None, str | None]:
    """The feature of a user's function that the failure's evidence points at."""
    workload = load_target(function)
    try:
        metrics = measure_workload(workload)
    except Exception:  # a function reached through an import has no definition to measure
        return None, None
    text = "\n".join(evidence)
    if failure_class == "name":
        match = _QUOTED_NAME.search(text)
        name = match.group(1) if match else None
        if name and name in metrics.free_var_names:
            return "closure_refs", f"{name} is a closure variable of the function ({metrics.free_vars} in all)"
        if name and name in metrics.global_ref_names:
            return "global_refs", f"{name} is a module-level name the function reads ({metrics.global_refs} in all)"
    if failure_class == "syntax" and metrics.multiline_strings:
        return "multiline_strings_col0", "a multi-line string with a column-0 line in an indented def"
    if failure_class == "oom":
        return "memory", "the function's own memory use"
    return None, None


def without_docstring(source: str) -> str:
    """A generated module without its header docstring (the dimension table): the code alone."""
    try:
        tree = parse_source(source)
    except SyntaxError:
        return source
    first = tree.body[0] if tree.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = source.splitlines(keepends=True)
        return "".join(lines[first.end_lineno or 0 :]).lstrip("\n")
    return source


def target_attr(func_name: str, accessor: str | None) -> str:
    """FILE:ATTR of a generated workload: `workload_3`, `Workload3.workload_3`, `make_workload_3.workload_3`."""
    if accessor and accessor.endswith("()"):
        return f"{accessor[:-2]}.{func_name}"
    return accessor or func_name


def shrink_module() -> Any | None:
    """The shrink API when it is installed with this version (threshold_probe.shrink), else None."""
    try:
        module = importlib.import_module("threshold_probe.shrink")
    except ImportError:
        return None
    if not all(hasattr(module, name) for name in ("target_from_function", "shrink_target")):
        return None
    return module


def limits_words(limits: dict[str, Any]) -> str:
    """A run's memory and time limits in words ("memory 400MB, time 60s"), for the page."""
    mem = limits.get("memory_bytes")
    words = []
    if mem:
        words.append(f"memory {format_memory(int(mem))}")
    if limits.get("time_s"):
        words.append(f"time {limits['time_s']:g}s")
    return ", ".join(words) or "no limits"


def explanation_to_resume(store: Store, run_id: str | None) -> RunInfo:
    """The explanation `--resume` continues: the one named, or the newest unfinished one."""
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=KIND) if r.status != "completed"]
        if not candidates:
            raise UserError("no interrupted explanation to resume: `probe runs --kind explain` lists them")
        return candidates[0]
    info = store.get_run(run_id)
    if info.kind != KIND:
        raise UserError(f"run {info.run_id} is a {info.kind} run, not an explanation")
    return info


def reproducer_values(ladder: Any, driver: str, threshold: Any, first_fail: int) -> list[Any]:
    """The driver's threshold, then up to four steps towards the first failing level's value."""
    top = ladder.level(first_fail).values.get(driver)
    if not isinstance(threshold, (int, float)) or not isinstance(top, (int, float)) or top <= threshold:
        return [threshold]
    values: list[Any] = [threshold]
    for share in (0.02, 0.05, 0.1, 0.25):
        if isinstance(threshold, float):
            v: Any = threshold + (top - threshold) * share
        else:
            v = min(int(top), threshold + max(1, round(threshold * share)))
        if v not in values:
            values.append(v)
    return values
