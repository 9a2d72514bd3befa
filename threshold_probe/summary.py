"""The run summary: the one documented JSON shape of a run (run.json, `--json`, reports).

Bump SCHEMA_VERSION when a field changes meaning or goes away; adding a field does not bump it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from threshold_probe.errors import UserError, article

if TYPE_CHECKING:
    from threshold_probe.store import RunInfo

SCHEMA_VERSION = 1

RunKind = Literal["run", "sweep", "bisect", "isolate", "compare-pipelines", "nightly"]
#: The kinds of run the journal holds with a summary of this shape: the searches, which say where a
#: ladder breaks (compare-pipelines and nightly store one such run per cell). Shrink, triage and
#: explain runs store results of their own.
SEARCH_KINDS: tuple[RunKind, ...] = ("run", "sweep", "bisect", "isolate")
LevelSummary = Literal["good", "bad", "skip", "flaky"]
ProbeOutcome = Literal["good", "bad", "skip"]

VerdictWord = Literal["pass", "fail", "skip", "flaky"]

#: A level's summary as reports word it: probes pass or fail, so levels do too.
VERDICT_WORDS: dict[LevelSummary, VerdictWord] = {"good": "pass", "bad": "fail", "skip": "skip", "flaky": "flaky"}


class FailureSummary(BaseModel):
    """The failure a run found: class, signature, one-line explanation and evidence lines."""

    model_config = ConfigDict(populate_by_name=True)

    failure_class: str = Field(alias="class")
    signature: str | None = None
    explanation: str | None = None
    evidence: list[str] = Field(default_factory=list)


class ProbeSummary(BaseModel):
    """One probe, as listed in `probes`."""

    model_config = ConfigDict(populate_by_name=True)

    probe_id: str
    level: int | None
    attempt: int = 1
    verdict: Literal["pass", "fail", "skip"]
    failure_class: str | None = Field(default=None, alias="class")
    signature: str | None = None
    #: Seconds per stage (connect, stage_in, queue, startup, deserialize, execute, serialize, stage_out).
    timings: dict[str, float] = Field(default_factory=dict)
    wall_s: float | None = None
    peak_rss_mb: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    #: The verdict came from an earlier identical probe (same workload, pipeline, cluster, limits).
    cached: bool = False
    #: The probe, and its run, whose verdict this one reuses (null when it really ran).
    cached_from: str | None = None
    cached_from_run: str | None = None
    #: Dimension values, present when they differ from the ladder's level (isolate probes).
    spec: dict[str, Any] | None = None
    #: A different failure from the one hunted with --match: treated like a skip.
    different_failure: bool = False
    #: Where the probe's folder was left on the cluster (--keep-remote), or null.
    remote_dir: str | None = None


class LevelRow(BaseModel):
    """One level of the ladder as the run saw it: static metrics and the verdicts of its probes."""

    level: int
    metrics: dict[str, Any] = Field(default_factory=dict)
    summary: LevelSummary | None = None
    pass_rate: float | None = None
    probes: int = 0
    failure_class: str | None = None


class ScaleSummary(BaseModel):
    """A scaled function's ladder: the argument, its values, and the values at the boundary."""

    name: str
    values: list[int | float]
    first_fail_value: int | float | None = None
    last_pass_value: int | float | None = None


class ReuseSummary(BaseModel):
    """How many verdicts a run reused from earlier runs under the same cache key, and from which."""

    reused: int = 0
    probes: int = 0
    #: Run ids the reused verdicts come from, oldest first.
    runs: list[str] = Field(default_factory=list)
    #: Why nothing could be reused, when that is not the user's choice (no preflight).
    note: str | None = None


class TriedValue(BaseModel):
    """One value of a dimension's threshold search, with the outcomes of its probes."""

    value: Any = None
    outcomes: list[ProbeOutcome] = Field(default_factory=list)


class DimensionSummary(BaseModel):
    """What isolation learnt about one dimension (threshold_probe/search/isolate.py: DimensionFinding)."""

    # Keys a later version adds are kept, so that a report of its runs loses nothing.
    model_config = ConfigDict(extra="allow")

    dimension: str = "?"
    low_value: Any = None
    high_value: Any = None
    #: Raising it alone makes the passing spec fail; None when the probes could not tell.
    sufficient: bool | None = None
    #: Lowering it alone makes the failing spec pass; None when the probes could not tell.
    necessary: bool | None = None
    threshold: Any = None
    last_passing: Any = None
    threshold_base: Literal["good", "bad"] | None = None
    exact: bool = True
    probes: int = 0
    raised_outcomes: list[ProbeOutcome] = Field(default_factory=list)
    lowered_outcomes: list[ProbeOutcome] = Field(default_factory=list)
    search_status: str | None = None
    note: str = ""
    tried: list[TriedValue] = Field(default_factory=list)

    @property
    def attribution(self) -> float:
        """How strongly it drives the failure, 0..1: sufficient and necessary each count half."""
        return 0.5 * bool(self.sufficient) + 0.5 * bool(self.necessary)


class IsolateSummary(BaseModel):
    """Isolation findings: which dimensions drive the failure between two levels, with evidence."""

    model_config = ConfigDict(extra="allow")

    status: str = "isolated"
    message: str = ""
    good_spec: dict[str, Any] = Field(default_factory=dict)
    bad_spec: dict[str, Any] = Field(default_factory=dict)
    #: The sufficient dimensions.
    drivers: list[str] = Field(default_factory=list)
    necessary: list[str] = Field(default_factory=list)
    irrelevant: list[str] = Field(default_factory=list)
    undecided: list[str] = Field(default_factory=list)
    good_outcomes: list[ProbeOutcome] = Field(default_factory=list)
    bad_outcomes: list[ProbeOutcome] = Field(default_factory=list)
    findings: list[DimensionSummary] = Field(default_factory=list)
    rounds: int = 0
    probes: int = 0
    #: The levels whose specs were compared, and the failure hunted (a signature), if any.
    good_level: int | None = None
    bad_level: int | None = None
    hunted: str | None = None


class RunSummary(BaseModel):
    """Everything a report needs about one run."""

    model_config = ConfigDict(populate_by_name=True)

    schema_version: int = SCHEMA_VERSION
    run_id: str
    kind: RunKind
    status: Literal["running", "completed", "interrupted", "error"] = "completed"
    cluster: str
    pipeline: str
    ladder: str
    limits: dict[str, Any] = Field(default_factory=dict)
    #: Who enforced each limit that was set: "memory", "time", "cores" -> RLIMIT_AS, cgroup,
    #: SLURM, runner (threshold-probe killed the job itself) or CPU affinity.
    limits_enforced_by: dict[str, str] = Field(default_factory=dict)
    #: Things the user should know that did not stop the run (more cores than a node has).
    warnings: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    cluster_info: dict[str, str] = Field(default_factory=dict)
    started_at: float
    finished_at: float | None = None
    #: The search's own verdict: status (found, lowest_fails, highest_passes, flaky, inconclusive,
    #: swept) and a plain sentence.
    search_status: str | None = None
    message: str = ""
    last_pass: int | None = None
    first_fail: int | None = None
    flaky_band: list[int] | None = None
    #: Bisect runs: probes of the search itself (at most ceil(log2 N) + 2 for a clean threshold,
    #: both ends included) and the extra probes that confirmed the boundary (--confirm).
    search_probes: int | None = None
    confirm_probes: int | None = None
    failure: FailureSummary | None = None
    levels: list[LevelRow] = Field(default_factory=list)
    probes: list[ProbeSummary] = Field(default_factory=list)
    #: Isolation findings (isolate runs): drivers, per-dimension sufficient/necessary/threshold.
    # Documented as an object of findings (docs/report-schema.md); typed here for every reader.
    isolate: Annotated[IsolateSummary, WithJsonSchema({"additionalProperties": True, "type": "object"})] | None = Field(
        default=None, title="Isolate"
    )
    #: Runs of a user's function with one argument scaled (--scale): the values in the user's terms.
    scale: ScaleSummary | None = None
    #: Parameters of the command, enough to resume it.
    params: dict[str, Any] = Field(default_factory=dict)
    reports_dir: str | None = None
    #: What the threshold belongs to (threshold_probe/cell.py): cluster fingerprint, pipeline,
    #: ladder content hash, limits and level range; or the function. Runs compare within a cell.
    cell: dict[str, Any] | None = None
    #: Verdicts reused from earlier runs (see `cached` on each probe).
    reuse: ReuseSummary | None = None

    @property
    def expect_pass_through(self) -> int | None:
        """The run's gate: every level up to it must pass (`--expect-pass-through N`), or None."""
        gate = (self.params.get("options") or {}).get("expect_pass_through")
        return gate if isinstance(gate, int) else None


def gate_failure(summary: RunSummary) -> str | None:
    """One line naming the failing level, class and evidence when a level at or below the run's gate
    (`--expect-pass-through N`) failed; None when the gate holds or none is set."""
    gate = summary.expect_pass_through
    if gate is None:
        return None
    failed = sorted(
        {p.level for p in summary.probes if p.level is not None and p.level <= gate and p.verdict == "fail"}
    )
    if summary.first_fail is not None and summary.first_fail <= gate:
        failed = sorted({*failed, summary.first_fail})
    if not failed:
        return None
    level = failed[0]
    probe = next((p for p in summary.probes if p.level == level and p.verdict == "fail"), None)
    cls = (probe.failure_class if probe else None) or (summary.failure.failure_class if summary.failure else "fail")
    evidence = summary.failure.evidence[0] if summary.failure and summary.failure.evidence else ""
    tail = f": {evidence}" if evidence else ""
    want = f"--expect-pass-through {gate} wants every level up to {gate} to pass"
    return f"gate failed: level {level} fails ({cls}){tail}; {want}"


def search_summary(info: RunInfo, use: str) -> RunSummary:
    """The typed summary of a search's run, for `use` (a command that reads its threshold).

    A run of another kind (shrink, triage, explain) has no threshold: UserError naming its kind,
    never a validation error about its shape. So does a run that has no summary yet.
    """
    if info.kind not in SEARCH_KINDS:
        raise UserError(
            f"run {info.run_id} is {article(info.kind)} run: {use} reads the run of a search"
            f" ({', '.join(SEARCH_KINDS)}); "
            f"`probe report {info.run_id}` shows it"
        )
    if info.summary is None:
        raise UserError(f"run {info.run_id} has no summary yet (status {info.status}): it is still running")
    return RunSummary.model_validate(info.summary)
