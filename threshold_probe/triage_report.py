"""The result of `probe triage`: one row per function, the failure groups and the paragraph that heads it.

The failures are grouped by class and signature (the names a signature quotes left out); each
group carries what separates it from the passing functions (threshold_probe/separate.py) and how
far LOC, CC and pickled size are from separating them. `build_report` folds the rows into the
report, `conclusion` writes its first paragraph.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from threshold_probe.separate import Pair, Rule, Split, label, split
from threshold_probe.session import versions

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


def load_report(data: Mapping[str, Any]) -> TriageReport:
    """A recorded triage report (run.json, the journal)."""
    return TriageReport.model_validate(data)
