"""What a shrink leaves: the ShrinkResult model, its files, its counts, and how it is assembled
from the reduced source (diff, metrics, the command that probes it again)."""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from threshold_probe.errors import UserError
from threshold_probe.metrics import measure_source
from threshold_probe.reduce import nonblank_lines
from threshold_probe.shrink_targets import KIND, ShrinkTarget
from threshold_probe.store import Store, atomic_write

#: Files a shrink run leaves in its folder, beside the probes.
ORIGINAL_NAME = "original.py"
SHRUNK_NAME = "shrunk.py"
DIFF_NAME = "shrunk.diff"
RESULT_NAME = "shrink.json"

#: The syntactic features a result is described by (metrics.py counts them).
FEATURES = (
    "closure_refs",
    "global_refs",
    "multiline_strings",
    "nested_functions",
    "lambdas",
    "decorators",
    "comprehensions",
    "top_level_range_loops",
    "default_args",
    "star_args",
    "subprocess_calls",
)


class ShrinkResult(BaseModel):
    """Everything a shrink found; `--json` prints it, the run folder keeps it as shrink.json."""

    run_id: str
    status: str = "completed"
    target: str
    from_run: str | None = None
    level: int | None = None
    cluster: str
    pipeline: str
    limits: dict[str, Any] = Field(default_factory=dict)
    signature: str
    failure_class: str | None = None
    #: "signature", or "signature+difference" (each candidate also passed through native).
    kept: str
    kept_text: str
    reducer: str
    original_lines: int
    lines: int
    original_bytes: int
    bytes: int
    probes: int
    probes_pipeline: int
    probes_native: int
    reused: int = 0
    candidates: int
    rejected_statically: int
    accepted: int
    skipped: int = 0
    time_s: float
    metrics: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, int] = Field(default_factory=dict)
    source: str
    original_source: str
    diff: str
    function: str
    command: str
    output: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


@dataclass
class ShrinkTally:
    """What a shrink counted: probes by pipeline, verdicts reused, candidates and their fate."""

    probes_pipeline: int = 0
    probes_native: int = 0
    reused: int = 0
    candidates: int = 0
    rejected_statically: int = 0
    accepted: int = 0
    skipped: int = 0

    @property
    def probes(self) -> int:
        return self.probes_pipeline + self.probes_native


@dataclass
class ShrinkOutcome:
    """How the failure was kept while reducing: its signature and whether native had to pass."""

    signature: str | None
    failure_class: str | None
    keep_difference: bool
    reducer: str


def _describe(shrunk: str, func_name: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The shrunk function's metrics and syntactic features (empty when it cannot be measured)."""
    metrics: dict[str, Any] = {}
    features: dict[str, int] = {}
    try:
        found = [m for m in measure_source(shrunk) if m.name == func_name]
        if found:
            m = found[0]
            metrics = {
                k: getattr(m, k) for k in ("loc", "sloc", "lloc", "cc", "cc_rank", "mi", "ast_nodes", "max_nesting")
            }
            metrics["halstead_volume"] = round(m.halstead_volume, 1)
            metrics["mi"] = round(m.mi, 1)
            features = {k: int(getattr(m, k, 0) or 0) for k in FEATURES if hasattr(m, k)}
            features["closure_refs"] = int(m.free_vars)
    except (SyntaxError, ValueError):
        pass
    return metrics, features


def assemble_result(
    target: ShrinkTarget,
    shrunk: str,
    *,
    run_id: str,
    pipeline: str,
    outcome: ShrinkOutcome,
    tally: ShrinkTally,
    started_at: float,
    run_dir: Path,
    output: Path | None,
) -> ShrinkResult:
    """The result of a shrink of `target` that ended with `shrunk`."""
    t = target
    original = t.workload.source
    name = t.function.rpartition(":")[0] if t.function else f"level_{t.level:03d}.py" if t.level else "original.py"
    diff = "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            shrunk.splitlines(keepends=True),
            fromfile=f"a/{Path(name).name}",
            tofile=f"b/{Path(name).name}",
        )
    )
    metrics, features = _describe(shrunk, t.workload.func_name)
    func_attr = (t.workload.accessor or t.workload.func_name) if t.function is None else t.function.rpartition(":")[2]
    out_name = str(output) if output else str(run_dir / SHRUNK_NAME)
    command = f"probe run --function {out_name}:{func_attr} --cluster {t.cluster} --pipeline {t.pipeline}"
    for k, v in t.args.items():
        command += f" --arg {k}={v!r}" if not isinstance(v, int | float) else f" --arg {k}={v}"
    kept = "signature+difference" if outcome.keep_difference else "signature"
    kept_text = f"same signature {outcome.signature}"
    if outcome.keep_difference:
        kept_text += f", and native passes on {t.cluster} (the failure is the {t.pipeline} pipeline's)"
    return ShrinkResult(
        run_id=run_id,
        target=t.label,
        from_run=t.from_run,
        level=t.level,
        cluster=t.cluster,
        pipeline=pipeline,
        limits=t.limits.model_dump(),
        signature=outcome.signature or "",
        failure_class=outcome.failure_class,
        kept=kept,
        kept_text=kept_text,
        reducer=outcome.reducer,
        original_lines=nonblank_lines(original),
        lines=nonblank_lines(shrunk),
        original_bytes=len(original.encode()),
        bytes=len(shrunk.encode()),
        probes=tally.probes,
        probes_pipeline=tally.probes_pipeline,
        probes_native=tally.probes_native,
        reused=tally.reused,
        candidates=tally.candidates,
        rejected_statically=tally.rejected_statically,
        accepted=tally.accepted,
        skipped=tally.skipped,
        time_s=round(time.time() - started_at, 2),
        metrics=metrics,
        features=features,
        source=shrunk,
        original_source=original,
        diff=diff,
        function=func_attr,
        command=command,
        output=str(output) if output else None,
    )


def write_result(store: Store, result: ShrinkResult, output: Path | None) -> None:
    """Leave the shrunk source, its diff and shrink.json in the run folder, and finish the run."""
    folder = store.run_dir(result.run_id)
    atomic_write(folder / SHRUNK_NAME, result.source)
    atomic_write(folder / DIFF_NAME, result.diff)
    result.files = {"shrunk": str(folder / SHRUNK_NAME), "diff": str(folder / DIFF_NAME)}
    if output is not None:
        atomic_write(output, result.source)
    data = result.model_dump(mode="json")
    atomic_write(folder / RESULT_NAME, result.model_dump_json(indent=2))
    store.finish_run(result.run_id, "completed", data)


def latest_shrink(store: Store, run_id: str, level: int | None = None) -> ShrinkResult:
    """The result of a completed shrink: `run_id` is the shrink, or the run it shrank (its latest)."""
    info = store.get_run(run_id)
    if info.kind != KIND:
        found = [
            r
            for r in store.runs(kind=KIND)
            if r.status == "completed"
            and r.params.get("from_run") == info.run_id
            and (level is None or r.params.get("level") == level)
        ]
        if not found:
            where = f" level {level}" if level is not None else ""
            raise UserError(f"run {info.run_id}{where} has no completed shrink: run `probe shrink {info.run_id}` first")
        info = found[0]
    if info.status != "completed" or not info.summary:
        raise UserError(f"shrink {info.run_id} did not complete: resume it with `probe shrink --resume {info.run_id}`")
    return ShrinkResult.model_validate(info.summary)


__all__ = [
    "DIFF_NAME",
    "FEATURES",
    "ORIGINAL_NAME",
    "RESULT_NAME",
    "SHRUNK_NAME",
    "ShrinkOutcome",
    "ShrinkResult",
    "ShrinkTally",
    "assemble_result",
    "latest_shrink",
    "write_result",
]
