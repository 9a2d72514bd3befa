"""`probe triage PATH...`: every zero-argument function of a code base, probed, and the split explained.

1. **Discover.** Every function definition of the files is listed: module level, methods,
   and functions defined inside test functions and factories (reached without running the
   function around them, threshold_probe/nested.py). Test functions, fixtures and factories
   are containers, not payloads; a function that needs arguments cannot be called as it is.
   Each of those is listed as skipped, with the reason. The others load as `--function` does.
2. **Probe.** Each one goes through the pipeline to the cluster, journalled like any run (a run
   of kind ``triage``) and resumable; finished verdicts of identical probes are reused unless
   ``--fresh``. ``--parallel N`` runs N probes at a time (a SLURM cluster takes them as one
   batch of jobs).
3. **Explain.** The failures are grouped by class and signature; for each group, every static
   metric and syntactic feature is tried as a single threshold separating it from the passing
   functions (threshold_probe/separate.py), with the best pair when no single one does, and how
   far LOC, CC and pickled size are from separating them.
"""

from __future__ import annotations

import ast
import os
import re
import socket
import time
import tokenize
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from threshold_probe import __version__
from threshold_probe.cell import fingerprint
from threshold_probe.check import Measured, measure_file_tree
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import ClusterLost, InfraError, Interrupted, ProbeError, UserError
from threshold_probe.metrics import pickle_size, python_files
from threshold_probe.models import ProbeRecord
from threshold_probe.nested import Definition, definitions, reaches
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.runlog import run_log
from threshold_probe.separate import FEATURE_NAMES, Pair, Rule, Split, label, split
from threshold_probe.session import LimitOverrides, ProgressSink, run_limits, versions, with_partition
from threshold_probe.store import RunInfo, Store
from threshold_probe.target import load_target

KIND = "triage"
SCHEMA_VERSION = 1

Verdict = Literal["pass", "fail", "skip", "not probed"]


class TriageFunction(BaseModel):
    """One function of the code base: where it is, its metrics, and what happened to it."""

    model_config = {"populate_by_name": True}

    file: str
    line: int
    name: str
    target: str
    scope: str
    metrics: dict[str, int | float | str | None] = Field(default_factory=dict)
    verdict: Verdict = "not probed"
    #: Why it was not probed (needs arguments, a test function, ...), or why it was skipped.
    reason: str | None = None
    failure_class: str | None = Field(default=None, alias="class")
    signature: str | None = None
    explanation: str | None = None
    evidence: list[str] = Field(default_factory=list)
    probe_id: str | None = None
    cached: bool = False
    wall_s: float | None = None

    def where(self) -> str:
        """`file.py:12`."""
        return f"{self.file}:{self.line}"


class FailureGroup(BaseModel):
    """The functions failing one way, and what separates them from the passing ones."""

    model_config = {"populate_by_name": True}

    failure_class: str = Field(alias="class")
    signature: str | None = None
    explanation: str | None = None
    functions: list[str] = Field(default_factory=list)
    separators: list[Rule] = Field(default_factory=list)
    best: Rule | None = None
    pair: Pair | None = None
    sizes: list[Rule] = Field(default_factory=list)
    #: One sentence per finding: the separators (or that none exists, and the best pair), then size.
    findings: list[str] = Field(default_factory=list)


class TriageReport(BaseModel):
    """The result of `probe triage` (its `--json`, run.json and every report format)."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["triage"] = "triage"
    run_id: str
    status: Literal["running", "completed", "interrupted", "error"] = "completed"
    cluster: str
    pipeline: str
    paths: list[str]
    limits: dict[str, Any] = Field(default_factory=dict)
    cluster_info: dict[str, str] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    started_at: float
    finished_at: float | None = None
    functions: list[TriageFunction] = Field(default_factory=list)
    groups: list[FailureGroup] = Field(default_factory=list)
    #: The files that could not be read or parsed, one line each.
    file_errors: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    conclusion: str = ""
    #: The feature the report's chart shows: the best separator of the largest failure group.
    chart_feature: str | None = None
    reused: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    reports_dir: str | None = None


# -- discovery -----------------------------------------------------------------------------------


@dataclass
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


def _shown(path: Path) -> str:
    """A path as the user knows it: relative to the current folder when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def discover(paths: Sequence[str]) -> Discovery:
    """Every function definition of the files, each a payload to probe or skipped with its reason."""
    found = Discovery()
    for path, shown in _files(paths):
        try:
            with tokenize.open(path) as fh:
                source = fh.read()
            tree = ast.parse(source, filename=shown)
        except SyntaxError as exc:
            found.file_errors.append(f"{shown}:{exc.lineno}: syntax error: {exc.msg}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            found.file_errors.append(f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            continue
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


# -- the report ------------------------------------------------------------------------------------


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def signature_stem(signature: str | None) -> str | None:
    """A signature with the names it quotes left out: `name:NameError:name '…' is not defined`.

    Functions that lose different names fail the same way, so they form one group.
    """
    return _QUOTED.sub("'…'", signature) if signature else signature


def _groups(functions: Sequence[TriageFunction]) -> list[FailureGroup]:
    """Failures by class and signature, each with what separates it from the passing functions."""
    passing = [f.metrics for f in functions if f.verdict == "pass"]
    keyed: dict[tuple[str, str | None], list[TriageFunction]] = {}
    for f in functions:
        if f.verdict == "fail":
            keyed.setdefault((f.failure_class or "fail", signature_stem(f.signature)), []).append(f)
    groups = []
    for (cls, sig), members in sorted(keyed.items(), key=lambda kv: (-len(kv[1]), kv[0][0], kv[0][1] or "")):
        found: Split = split([f.metrics for f in members], passing)
        group = FailureGroup(
            failure_class=cls,
            signature=sig,
            explanation=members[0].explanation,
            functions=[f.name for f in members],
            separators=found.separators,
            best=found.best,
            pair=found.pair,
            sizes=found.sizes,
        )
        group.findings = _findings(group, len(passing))
        groups.append(group)
    return groups


def _findings(group: FailureGroup, passing: int) -> list[str]:
    lines: list[str] = []
    if not passing:
        return ["no function passes, so nothing separates the failing ones from passing ones"]
    if group.separators:
        lines += [rule.statement() for rule in group.separators[:4]]
        if len(group.separators) > 4:
            rest = ", ".join(label(r.feature) for r in group.separators[4:])
            lines.append(f"also separating: {rest}")
    else:
        best = group.best.statement() if group.best else "none"
        lines.append(f"no single feature separates them; the best single rule is {best}")
        if group.pair is not None:
            lines.append(f"best pair: {group.pair.statement()}")
    for rule in group.sizes:
        if rule.feature in {r.feature for r in group.separators}:
            lines.append(f"{label(rule.feature)} separates them too: {rule.statement()}")
        else:
            lines.append(f"{label(rule.feature)} does not separate them: at best {rule.statement()}")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def conclusion(report: TriageReport) -> str:
    """The one paragraph that heads the report."""
    probed = [f for f in report.functions if f.verdict in ("pass", "fail")]
    fails = [f for f in probed if f.verdict == "fail"]
    skipped = [f for f in report.functions if f.verdict == "skip"]
    unprobed = [f for f in report.functions if f.verdict == "not probed"]
    where = f"through {report.pipeline} on {report.cluster}"
    tail = ""
    if unprobed:
        tail += f" {_plural(len(unprobed), 'function')} {'was' if len(unprobed) == 1 else 'were'} not probed"
        tail += " (need arguments, test functions, factories; see the table)."
    if skipped:
        tail += f" {_plural(len(skipped), 'probe')} could not run (infrastructure trouble, never a failure)."
    if not probed:
        return f"No function could be probed {where}.{tail}"
    if not fails:
        everything = f"All {_plural(len(probed), 'function')} pass {where}"
        return f"{everything}: nothing fails, so there is nothing to separate.{tail}"
    passing = len(probed) - len(fails)
    text = [
        f"Of {_plural(len(probed), 'function')} probed {where}, {len(fails)} fail"
        f"{'' if len(report.groups) == 1 else f' in {len(report.groups)} ways'} and {passing} pass."
    ]
    size_separates = False
    for g in report.groups:
        what = f"{g.failure_class} ({_plural(len(g.functions), 'function')}"
        what += f", {g.signature})" if g.signature else ")"
        if g.separators:
            names = [label(r.feature) for r in g.separators]
            first = g.separators[0]
            also = f"; {', '.join(names[1:3])} also separate{'s' if len(names) == 2 else ''}" if len(names) > 1 else ""
            text.append(f"{what} {first.statement()}{also}.")
        elif passing:
            pair = f"; the best pair is {g.pair.statement()}" if g.pair else ""
            text.append(f"{what}: no single feature separates it from the passing functions{pair}.")
        else:
            text.append(f"{what}: no function passes, so nothing can separate it.")
        size_separates = size_separates or any(r.separates for r in g.sizes)
    loc = [next((r for r in g.sizes if r.feature == "loc"), None) for g in report.groups]
    if passing and not size_separates:
        shown = [r for r in loc if r is not None]
        if shown:
            text.append(
                f"Size does not separate them: LOC does not (at best {shown[0].statement()}), nor do CC and"
                " pickled size."
            )
    elif passing:
        text.append("Size separates some of them too; see the separators of each class.")
    return " ".join(text) + tail


def build_report(
    *,
    run_id: str,
    status: str,
    cluster: str,
    pipeline: str,
    paths: Sequence[str],
    functions: Sequence[TriageFunction],
    file_errors: Sequence[str],
    started_at: float,
    limits: Mapping[str, Any],
    cluster_info: Mapping[str, str],
    params: Mapping[str, Any],
    reports_dir: str,
) -> TriageReport:
    """The report of the functions as they stand (a partial report while probes run)."""
    report = TriageReport(
        run_id=run_id,
        status=status,
        cluster=cluster,
        pipeline=pipeline,
        paths=list(paths),
        limits=dict(limits),
        cluster_info=dict(cluster_info),
        versions=versions(),
        started_at=started_at,
        finished_at=time.time(),
        functions=list(functions),
        file_errors=list(file_errors),
        params=dict(params),
        reports_dir=reports_dir,
    )
    report.groups = _groups(report.functions)
    report.counts = {
        "functions": len(report.functions),
        "probed": sum(f.verdict in ("pass", "fail", "skip") for f in report.functions),
        "pass": sum(f.verdict == "pass" for f in report.functions),
        "fail": sum(f.verdict == "fail" for f in report.functions),
        "skip": sum(f.verdict == "skip" for f in report.functions),
        "not_probed": sum(f.verdict == "not probed" for f in report.functions),
    }
    report.reused = sum(f.cached for f in report.functions)
    if report.groups and report.groups[0].best is not None:
        report.chart_feature = report.groups[0].best.feature
    elif report.groups and report.groups[0].sizes:
        report.chart_feature = report.groups[0].sizes[0].feature
    report.conclusion = conclusion(report)
    return report


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class TriageOptions:
    """What a triage run needs besides where it runs."""

    paths: list[str]
    parallel: int = 1
    fresh: bool = False
    preflight: bool = True
    keep_remote: bool = False


def _apply(row: TriageFunction, record: ProbeRecord) -> None:
    v = record.verdict
    row.verdict = v.status
    row.failure_class = v.failure_class
    row.signature = v.signature
    row.explanation = v.explanation
    row.evidence = list(v.evidence[:8])
    row.probe_id = record.probe_id
    row.cached = record.cached_from is not None
    row.wall_s = round(record.observation.wall_s, 4)
    if v.status == "skip":
        row.reason = record.observation.job.infra_error or v.explanation


def preflight(cluster: Cluster, pipeline: Pipeline, note: Callable[[str], None]) -> None:
    """InfraError (exit 3) when the cluster cannot run probes of this pipeline."""
    checks = cluster.preflight()
    unneeded = {"cloudpickle"} if not pipeline.needs_cloudpickle else set()
    for c in checks:
        if c.status == "fail" and c.name in unneeded:
            note(f"{c.name} not needed by the {pipeline.name} pipeline: {c.detail}")
    bad = [c for c in checks if c.status == "fail" and c.name not in unneeded]
    if bad:
        lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
        raise InfraError(f"cluster {cluster.name!r} is not usable: {lines}")


class Triage:
    """One triage run: discovery, probes (journalled, resumable, cached) and the report."""

    def __init__(
        self,
        *,
        config: ProbeConfig,
        store: Store,
        cluster: str,
        pipeline: str,
        overrides: LimitOverrides,
        options: TriageOptions,
        progress: ProgressSink | None,
        run_id: str | None = None,
        started_at: float | None = None,
        command_prefix: str = "probe",
    ) -> None:
        self.store = store
        self.options = options
        self.options.paths = [str(Path(p).expanduser().resolve()) for p in options.paths]
        self.progress = progress
        self.overrides = overrides
        if overrides.partition:
            config = with_partition(config, cluster, overrides.partition)
        self.limits = run_limits(config, cluster, overrides)
        self.discovery = discover(self.options.paths)
        self.cluster = make_cluster(cluster, config)
        self.pipeline_arg = pipeline
        self.pipeline = make_pipeline(pipeline)
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(KIND)
        self.started_at = started_at or time.time()
        self.command_prefix = command_prefix
        self.cluster.on_remote = lambda work: store.record_remote(self.run_id, self.cluster.name, work)
        self.prober = Prober(
            run_id=self.run_id,
            cluster=self.cluster,
            pipeline=self.pipeline,
            limits=self.limits,
            store=store,
            use_cache=not options.fresh,
            resuming=self.resuming,
            keep_remote=options.keep_remote,
            on_record=self._on_record,
        )

    def params(self) -> dict[str, Any]:
        """What it takes to run this triage again (read by --resume)."""
        return {
            "kind": KIND,
            "cluster": self.cluster.name,
            "pipeline": self.pipeline_arg,
            "overrides": asdict(self.overrides),
            "options": asdict(self.options),
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }

    def resume_command(self) -> str:
        return f"{self.command_prefix} triage --resume {self.run_id}"

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def _on_record(self, record: ProbeRecord) -> None:
        if self.progress is not None:
            self.progress.probe_done(record)

    def report(self, status: str) -> TriageReport:
        return build_report(
            run_id=self.run_id,
            status=status,
            cluster=self.cluster.name,
            pipeline=self.pipeline.name,
            paths=[_shown(Path(p)) for p in self.options.paths],
            functions=self.discovery.functions,
            file_errors=self.discovery.file_errors,
            started_at=self.started_at,
            limits=self.limits.model_dump(),
            cluster_info=self.cluster.describe(),
            params=self.params(),
            reports_dir=str(self.store.run_dir(self.run_id)),
        )

    def _label(self) -> str:
        return ",".join(Path(p).name for p in self.options.paths)[:200]

    def execute(self) -> TriageReport:
        """Own the run, probe every payload, and journal the report whatever happens."""
        owner = self.store.own_run(self.run_id)
        try:
            with run_log(self.store.run_dir(self.run_id) / "run.log"):
                return self._execute()
        finally:
            owner.release()

    def _execute(self) -> TriageReport:
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                kind=KIND,
                cluster=self.cluster.name,
                pipeline=self.pipeline.name,
                ladder=self._label(),
                status="running",
                started_at=self.started_at,
                params=self.params(),
            )
        )
        if self.resuming:
            cancelled = self.store.cancel_unfinished(self.run_id)
            done = len(self.store.probes(self.run_id))
            probes = f"{done} finished probe{'s' if done != 1 else ''}"
            note = f"resuming triage {self.run_id}: {probes} come from the journal"
            if cancelled:
                note += f"; {cancelled} in flight when it stopped will run again"
            self._note(note)
        self.store.save_partial(self.run_id, self.report("running").model_dump(mode="json", by_alias=True))
        try:
            loaded = load_requests(self.discovery.functions)
            try:
                self.cluster.open()
            except InfraError as exc:
                raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
            try:
                if self.options.preflight:
                    preflight(self.cluster, self.pipeline, self._note)
                self._settle_fingerprint()
                self._probe(loaded)
            except BaseException:
                self.cluster.cancel_all()
                raise
            finally:
                self.cluster.close()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.store.cancel_unfinished(self.run_id)
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else 2
            message = f"triage {self.run_id} interrupted; resume with: {self.resume_command()}"
            self.store.finish_run(
                self.run_id, "interrupted", self.report("interrupted").model_dump(mode="json", by_alias=True)
            )
            raise Interrupted(message, signum) from None
        except ClusterLost as exc:
            self.store.cancel_unfinished(self.run_id)
            self.store.finish_run(
                self.run_id, "interrupted", self.report("interrupted").model_dump(mode="json", by_alias=True)
            )
            raise InfraError(
                f"triage {self.run_id} interrupted: {' '.join(exc.cause.split())}; resume with: {self.resume_command()}"
            ) from None
        except BaseException as exc:
            self.store.cancel_unfinished(self.run_id)
            status = "interrupted" if self.resuming and isinstance(exc, InfraError) else "error"
            self.store.finish_run(self.run_id, status, self.report(status).model_dump(mode="json", by_alias=True))
            raise
        finally:
            if self.progress is not None:
                self.progress.end()
        report = self.report("completed")
        self.store.finish_run(self.run_id, "completed", report.model_dump(mode="json", by_alias=True))
        return report

    def _settle_fingerprint(self) -> None:
        """Key the cache by the cluster's fingerprint, as every run does (threshold_probe/cell.py)."""
        kind = type(self.pipeline)
        pipeline = {
            "name": self.pipeline.name,
            "as_given": self.pipeline_arg,
            "class": f"{kind.__module__}:{kind.__qualname__}",
        }
        fp = fingerprint(self.cluster.name, self.cluster.config, self.cluster.far_side(), pipeline, __version__)
        self.prober.cluster_key = f"{self.cluster.name}#{fp.digest}"
        if not fp.checked and self.prober.use_cache:
            self.prober.use_cache = False
            self._note("no verdict of an earlier run was reused: without the preflight the far side is unknown")

    def _probe(self, loaded: Sequence[tuple[TriageFunction, ProbeRequest]]) -> None:
        """Probe every payload, N at a time; each verdict lands on its row as it comes."""
        if self.progress is not None:
            self.progress.begin(f"triage: {len(loaded)} functions through {self.pipeline.name}", len(loaded))
        parallel = max(1, self.options.parallel)
        if parallel == 1 or len(loaded) <= 1:
            for row, req in loaded:
                _apply(row, self.prober.run([req])[0])
                self._save()
            return
        if self.cluster.concurrent:
            # A queue takes a batch at once (SLURM jobs): one batch of N, then the next.
            for start in range(0, len(loaded), parallel):
                batch = list(loaded[start : start + parallel])
                for (row, _), record in zip(batch, self.prober.run([req for _, req in batch]), strict=True):
                    _apply(row, record)
                self._save()
            return
        # One probe first, alone: it stages what every probe shares on the far side.
        first, rest = loaded[0], loaded[1:]
        _apply(first[0], self.prober.run([first[1]])[0])
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="triage") as pool:
            futures = [(row, pool.submit(self.prober.run, [req])) for row, req in rest]
            try:
                for row, future in futures:
                    _apply(row, future.result()[0])
                    self._save()
            except BaseException:
                for _, future in futures:
                    future.cancel()
                self.cluster.cancel_all()
                raise

    def _save(self) -> None:
        try:
            self.store.save_partial(self.run_id, self.report("running").model_dump(mode="json", by_alias=True))
        except (OSError, ProbeError) as exc:  # a partial report that cannot be written: go on
            self._note(f"could not save the partial report: {exc}")


def run_triage(
    *,
    config: ProbeConfig,
    store: Store,
    cluster: str,
    pipeline: str,
    options: TriageOptions,
    overrides: LimitOverrides | None = None,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> TriageReport:
    """Triage the functions of the paths through a pipeline on a cluster."""
    return Triage(
        config=config,
        store=store,
        cluster=cluster,
        pipeline=pipeline,
        overrides=overrides or LimitOverrides(),
        options=options,
        progress=progress,
        command_prefix=command_prefix,
    ).execute()


def resume_triage(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> TriageReport:
    """Continue an interrupted triage: finished probes come from the journal."""
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=KIND) if r.status != "completed"]
        if not candidates:
            raise UserError("no interrupted triage to resume: `probe runs --kind triage` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    if info.kind != KIND:
        raise UserError(f"run {info.run_id} is a {info.kind} run, not a triage")
    p = info.params
    return Triage(
        config=config,
        store=store,
        cluster=p["cluster"],
        pipeline=p["pipeline"],
        overrides=LimitOverrides(**p["overrides"]),
        options=TriageOptions(**p["options"]),
        progress=progress,
        run_id=info.run_id,
        started_at=info.started_at,
        command_prefix=command_prefix,
    ).execute()


def load_report(data: Mapping[str, Any]) -> TriageReport:
    """A recorded triage report (run.json, the journal)."""
    return TriageReport.model_validate(data)


__all__ = [
    "KIND",
    "Discovery",
    "FailureGroup",
    "TriageFunction",
    "TriageOptions",
    "TriageReport",
    "build_report",
    "conclusion",
    "discover",
    "load_report",
    "load_requests",
    "resume_triage",
    "run_triage",
]
