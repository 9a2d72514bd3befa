"""`probe check`: predict, from a recorded run, which functions of a code base would fail the same way.

A bisect with isolation (or an isolate run) names the dimensions that drive a failure and their
thresholds ("the source pipeline on ndoli fails with NameError from global_refs=2"). When a driver
is *static* (a syntactic feature, a size, the bytes of the constants), every function of a code
base can be measured the same way from its syntax tree alone, and compared with the threshold:
nothing is imported or run.

A threshold is carried over in the units of the metric, not of the dimension: the run's own last
passing and first failing workloads are generated again from their specs and measured, and the
first metric of the dimension that tells them apart gives the threshold (its value on the failing
workload). So `global_refs` counts module-level names other than imports, as the ladder does, and
`branches` becomes the cyclomatic complexity its failing workload had.

Resources (memory, runtime, output, result size) depend on what a function does when it runs: a
run driven by them alone cannot be predicted, and says so (NotPredictable, exit 2).
"""

from __future__ import annotations

import ast
import tokenize
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from threshold_probe.ast_counts import (
    FunctionNode,
    _Aliases,
    _data_structures,
    _functions,
    _is_range_loop,
    _max_nesting,
    _multiline_strings,
    _Refs,
    _string_bytes,
)
from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.errors import UserError
from threshold_probe.ladder.generate import generate
from threshold_probe.metrics import FileError, FunctionMetrics, _measure_function, python_files
from threshold_probe.summary import RunSummary


class NotPredictable(UserError):
    """The run's drivers are not static (memory, runtime, ...) or it has none: exit 2."""


class _Module:
    """What every function of one parsed module shares when it is measured."""

    def __init__(self, tree: ast.Module, source: str, path: str) -> None:
        self.lines = source.splitlines()
        self.path = path
        self.aliases = _Aliases(tree)
        self.refs = _Refs(tree)
        self.imported = _module_imports(tree)


class Measured:
    """A function of a checked file; each metric is computed when a rule first asks for it.

    Only what the run's rules need is measured, so a check costs no more than `probe measure`:
    the cheap AST counts are computed here with the same helpers as metrics.py; anything else
    (radon's loc, cc, Halstead) comes from the full FunctionMetrics, computed once on demand.
    """

    def __init__(self, node: FunctionNode, qualname: str, module: _Module) -> None:
        self.node = node
        self.qualname = qualname
        self.name = node.name
        self.lineno = node.lineno
        self._module = module
        self._cache: dict[str, int | float | str] = {}
        self._full: FunctionMetrics | None = None

    def value(self, metric: str) -> int | float | str:
        """The value of a metric by name (a FunctionMetrics field or a check measure)."""
        if metric not in self._cache:
            compute = _QUICK.get(metric)
            self._cache[metric] = compute(self.node, self._module, self.qualname) if compute else self._field(metric)
        return self._cache[metric]

    def _field(self, metric: str) -> int | float | str:
        if self._full is None:
            m = self._module
            self._full = _measure_function(self.node, self.qualname, m.lines, m.path, m.aliases, m.refs)
        value = getattr(self._full, metric)
        return 0 if value is None else value


def _walk_count(node: ast.AST, kinds: type | tuple[type, ...]) -> int:
    return sum(1 for n in ast.walk(node) if isinstance(n, kinds))


_Quick = Callable[[FunctionNode, _Module, str], int | str]
_QUICK: dict[str, _Quick] = {
    "free_vars": lambda n, m, q: len(m.refs.closure.get(id(n), set())),
    "global_refs": lambda n, m, q: len(m.refs.globals.get(id(n), set())),
    "module_refs": lambda n, m, q: len(m.refs.globals.get(id(n), set()) - m.imported),
    "subprocess_calls": lambda n, m, q: sum(
        1 for c in ast.walk(n) if isinstance(c, ast.Call) and m.aliases.is_subprocess_call(c)
    ),
    "data_structures": lambda n, m, q: _data_structures(n),
    "max_nesting": lambda n, m, q: _max_nesting(n.body),
    "string_literal_bytes": lambda n, m, q: _string_bytes(n),
    "multiline_strings": lambda n, m, q: _multiline_strings(n),
    "nested_functions": lambda n, m, q: _walk_count(n, (ast.FunctionDef, ast.AsyncFunctionDef)) - 1,
    "lambdas": lambda n, m, q: _walk_count(n, ast.Lambda),
    "decorators": lambda n, m, q: len(n.decorator_list),
    "comprehensions": lambda n, m, q: _walk_count(n, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)),
    "top_level_range_loops": lambda n, m, q: sum(1 for stmt in n.body if _is_range_loop(stmt)),
    "default_args": lambda n, m, q: len(n.args.defaults) + sum(1 for d in n.args.kw_defaults if d is not None),
    "star_args": lambda n, m, q: int(n.args.vararg is not None) + int(n.args.kwarg is not None),
    "definition_scope": lambda n, m, q: _scope(q),
    "source_bytes": lambda n, m, q: len(
        "\n".join(m.lines[n.lineno - 1 : n.end_lineno or n.lineno]).encode("utf-8", "surrogatepass")
    ),
    # textwrap.dedent and an indented definition trip on a column-0 line only in indented code.
    "column0_nested_strings": lambda n, m, q: _column0_strings(n, m.lines) if n.col_offset > 0 else 0,
    "loops": lambda n, m, q: _walk_count(n, (ast.For, ast.AsyncFor, ast.While)),
    "try_blocks": lambda n, m, q: _walk_count(n, ast.Try),
}


# dimension -> (metric, label) candidates, best first. The label is what a finding shows: the
# dimension's name when the metric counts what the dimension counts, the metric's otherwise.
_CANDIDATES: dict[str, tuple[tuple[str, str], ...]] = {
    "loc": (("loc", "loc"),),
    "phases": (("try_blocks", "phases"),),
    "subprocess_calls": (("subprocess_calls", "subprocess_calls"),),
    "data_structures": (("data_structures", "data_structures"),),
    "nesting_depth": (("max_nesting", "nesting_depth"),),
    "branches": (("cc", "cc"),),
    "loops": (("loops", "loops"),),
    "payload_kb": (("string_literal_bytes", "string_literal_bytes"), ("source_bytes", "source_bytes")),
    "multiline_strings": (
        ("column0_nested_strings", "multiline_strings"),
        ("multiline_strings", "multiline_strings"),
    ),
    "closure_refs": (("free_vars", "closure_refs"),),
    "global_refs": (("module_refs", "global_refs"), ("global_refs", "global_refs")),
    "nested_functions": (("nested_functions", "nested_functions"),),
    "lambdas": (("lambdas", "lambdas"),),
    "decorators": (("decorators", "decorators"),),
    "comprehensions": (("comprehensions", "comprehensions"),),
    "top_level_range_loops": (("top_level_range_loops", "top_level_range_loops"),),
    "default_args": (("default_args", "default_args"),),
    "star_args": (("star_args", "star_args"),),
    "definition_scope": (("definition_scope", "definition_scope"),),
}

#: Dimensions whose effect depends on what the function does when it runs.
NOT_STATIC = frozenset({"memory_mb", "runtime_s", "output_kb", "result_kb"})


@dataclass(frozen=True)
class Rule:
    """One static driver of a recorded run, as a threshold on a metric of a function."""

    dimension: str
    metric: str
    label: str
    op: Literal[">=", "=="]
    threshold: int | float | str
    dimension_threshold: Any
    failure_class: str
    error: str
    pipeline: str
    cluster: str
    run_id: str

    @property
    def rule_id(self) -> str:
        """A stable id per dimension (SARIF's ruleId)."""
        return f"threshold-probe/{self.dimension}"

    def hits(self, value: int | float | str) -> bool:
        if self.op == "==":
            return value == self.threshold
        return isinstance(value, int | float) and isinstance(self.threshold, int | float) and value >= self.threshold

    def cause(self) -> str:
        """'source pipeline on ndoli fails with NameError from global_refs=2, run <id>'."""
        scale = "" if self.label == self.dimension else f" ({self.dimension}={self.dimension_threshold})"
        return (
            f"{self.pipeline} pipeline on {self.cluster} fails with {self.error} from "
            f"{self.label}={self.threshold}{scale}, run {self.run_id}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "dimension": self.dimension,
            "metric": self.metric,
            "label": self.label,
            "op": self.op,
            "threshold": self.threshold,
            "dimension_threshold": self.dimension_threshold,
            "failure_class": self.failure_class,
            "error": self.error,
            "pipeline": self.pipeline,
            "cluster": self.cluster,
            "run_id": self.run_id,
            "cause": self.cause(),
        }


@dataclass(frozen=True)
class Finding:
    """A function that reaches a rule's threshold."""

    path: str
    line: int
    function: str
    value: int | float | str
    rule: Rule

    def text(self) -> str:
        """FILE:LINE func: global_refs=2 >= 2 (source pipeline on ndoli fails with ..., run <id>)."""
        r = self.rule
        return f"{self.path}:{self.line} {self.function}: {r.label}={self.value} {r.op} {r.threshold} ({r.cause()})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "function": self.function,
            "value": self.value,
            "rule": self.rule.rule_id,
            "message": self.text(),
        }


@dataclass
class CheckResult:
    """What `probe check` found in the paths it was given."""

    rules: list[Rule]
    findings: list[Finding] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    functions: int = 0
    files: int = 0
    #: Drivers of the run that could not be checked statically (they are named, not silently dropped).
    unchecked: list[str] = field(default_factory=list)


# -- from a run to rules ------------------------------------------------------------------------


def load_summary_file(path: Path) -> RunSummary:
    """A run summary committed as JSON (`probe bisect --isolate --json > FILE`); UserError if it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a run summary (not UTF-8 text)") from None
    try:
        return RunSummary.model_validate_json(text)
    except ValueError as exc:
        first = str(exc).splitlines()
        reason = first[1].strip() if len(first) > 1 else (first[0] if first else "invalid")
        raise UserError(f"{path}: not a run summary (`probe bisect --isolate --json`): {reason}") from None


def _error_name(summary: RunSummary) -> str:
    """The exception the failure showed (NameError), or its class when the evidence names none."""
    failure = summary.failure
    if failure is None:
        return "a failure"
    for line in failure.evidence:
        head = line.split(":", 1)[0].strip()
        if head.isidentifier() and (head.endswith(("Error", "Exception")) or head in ("KeyboardInterrupt",)):
            return head
    return failure.failure_class


def _workload_metrics(spec: Mapping[str, Any]) -> Measured | None:
    """The generated workload of a spec, measured as a checked function is; None if it cannot be made."""
    try:
        workload = generate(spec)
    except (UserError, ValueError):
        return None
    tree = parse_source(workload.source)
    for m in measure_file_tree(tree, workload.source, "<workload>"):
        if m.name == workload.func_name:
            return m
    return None


def rules_from_summary(summary: RunSummary) -> tuple[list[Rule], list[str]]:
    """The static rules of a run and the drivers it has that cannot be checked statically.

    NotPredictable when the run isolated nothing, or every driver is a resource.
    """
    iso = summary.isolate
    if iso is None:
        raise NotPredictable(
            f"run {summary.run_id} ({summary.kind}) has no isolation, so check cannot tell what drives its "
            f"failure: run `probe isolate {summary.run_id}` (or `probe bisect --isolate`) and check against that"
        )
    drivers = list(iso.drivers)
    if not drivers:
        status = iso.status or "no driver"
        raise NotPredictable(
            f"run {summary.run_id} names no dimension that drives its failure ({status}): check cannot predict it"
        )
    static = [d for d in drivers if d in _CANDIDATES]
    dynamic = [d for d in drivers if d not in _CANDIDATES]
    if not static:
        raise NotPredictable(
            f"run {summary.run_id}: its failure is driven by {', '.join(dynamic)}, which depend on what a function "
            "does when it runs, not on its source: check cannot predict it"
        )
    findings = {f.dimension: f for f in iso.findings}
    good = dict(iso.good_spec)
    error = _error_name(summary)
    cls = summary.failure.failure_class if summary.failure else "fail"
    rules = []
    for dim in static:
        f = findings.get(dim)
        threshold = None if f is None else f.threshold if f.threshold is not None else f.high_value
        if f is None or threshold is None:
            dynamic.append(dim)
            continue
        below = f.last_passing if f.last_passing is not None else f.low_value
        metric, label, value, op = _metric_threshold(dim, threshold, below, good)
        rules.append(
            Rule(
                dimension=dim,
                metric=metric,
                label=label,
                op=op,
                threshold=value,
                dimension_threshold=threshold,
                failure_class=cls,
                error=error,
                pipeline=summary.pipeline,
                cluster=summary.cluster,
                run_id=summary.run_id,
            )
        )
    if not rules:
        raise NotPredictable(f"run {summary.run_id} has no threshold for {', '.join(static)}: check cannot predict it")
    return rules, dynamic


def _metric_threshold(
    dim: str, threshold: Any, below: Any, good: Mapping[str, Any]
) -> tuple[str, str, int | float | str, Literal[">=", "=="]]:
    """(metric, label, threshold in the metric's units, op) for one driver of a run."""
    candidates = _CANDIDATES[dim]
    if isinstance(threshold, str):
        return candidates[0][0], candidates[0][1], threshold, "=="
    failing = _workload_metrics({**good, dim: threshold}) if good else None
    passing = _workload_metrics({**good, dim: below}) if good and below is not None else None
    if failing is not None and passing is not None:
        for metric, label in candidates:
            hi, lo = failing.value(metric), passing.value(metric)
            if isinstance(hi, int | float) and isinstance(lo, int | float) and hi > lo:
                return metric, label, hi, ">="
    # The run's workloads could not be made again (another ladder version): the dimension's value.
    return candidates[0][0], candidates[0][1], threshold, ">="


# -- measuring the checked functions ------------------------------------------------------------


def _module_imports(tree: ast.Module) -> set[str]:
    """Names bound by import statements at module level (inside if/try/with blocks too)."""
    names: set[str] = set()
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for part in ("body", "orelse", "finalbody"):
                todo.extend(getattr(node, part, []))
            for handler in getattr(node, "handlers", []):
                todo.extend(handler.body)
    return names


def _column0_strings(node: ast.AST, lines: Sequence[str]) -> int:
    """Multi-line string literals with a continuation line that starts at column 0 (an f-string once)."""
    parts = {id(v) for n in ast.walk(node) if isinstance(n, ast.JoinedStr) for v in n.values}
    count = 0
    for n in ast.walk(node):
        literal = isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Constant) and isinstance(n.value, str | bytes))
        if not literal or id(n) in parts or not isinstance(n, ast.expr):
            continue
        end = min(n.end_lineno or n.lineno, len(lines))
        # textwrap.dedent and an indented `def` both trip on such a line; a blank line is harmless.
        if any(lines[i - 1][:1] not in ("", " ", "\t") for i in range(n.lineno + 1, end + 1)):
            count += 1
    return count


def _scope(qualname: str) -> str:
    if "<locals>" in qualname:
        return "nested"
    return "method" if "." in qualname else "module"


def measure_file_tree(tree: ast.Module, source: str, path: str) -> list[Measured]:
    """Every function of a parsed module (methods and nested ones included), measured on demand."""
    module = _Module(tree, source, path)
    return [Measured(node, qualname, module) for node, qualname in _functions(tree)]


def _files(targets: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if not path.exists():
            raise UserError(f"no such file or folder: {path}")
        files.extend(python_files(path) if path.is_dir() else [path])
    return files


def check_paths(
    targets: Sequence[str], rules: Sequence[Rule], on_file: Callable[[Path], None] | None = None
) -> CheckResult:
    """Every function of the files and folders (recursively, *.py) against the rules; parsed, never imported."""
    result = CheckResult(rules=list(rules))
    for file in _files(targets):
        shown = str(file)
        result.files += 1
        try:
            with tokenize.open(file) as fh:
                source = fh.read()
            tree = parse_source(source, filename=shown)
        except SyntaxError as exc:
            result.errors.append(FileError(path=shown, lineno=exc.lineno, message=f"SyntaxError: {exc.msg}"))
            continue
        except UnicodeDecodeError as exc:
            result.errors.append(FileError(path=shown, message=f"cannot decode: {exc}"))
            continue
        except OSError as exc:
            result.errors.append(FileError(path=shown, message=f"cannot read: {exc.strerror}"))
            continue
        for m in measure_file_tree(tree, source, shown):
            result.functions += 1
            for rule in rules:
                value = m.value(rule.metric)
                if rule.hits(value):
                    result.findings.append(Finding(shown, m.lineno, m.qualname, value, rule))
    return result
