"""Shrink a failing function to a minimal reproducer, every candidate probed for real.

A shrink starts from a recorded failure (a run's level, by default its first failing one) or
from a user's function (FILE:FUNC with its arguments). It probes the original once to see that
it still fails the same way, then reduces the module source (threshold_probe/reduce.py) while
every candidate keeps:

- the **signature** of the failure (an OOM never turns into a NameError), on the same cluster,
  through the same pipeline, under the same limits;
- and, when the pipeline fails where ``native`` passes, the **difference**: each candidate must
  also pass through ``native`` on that cluster. Without it a reducer could delete a helper's
  definition and keep "name 'scaled_2' is not defined" for the wrong reason.

Candidates that cannot be the failure are rejected without a probe: one that does not compile,
one that no longer defines the function, or one that lost a name the failure message quotes.
Every probe is journalled like any run's (kind ``shrink``), so an interrupted shrink resumes:
the reducers are deterministic, the journal answers every question already asked, and only the
rest is dispatched. Verdicts of earlier runs of the same source are reused unless ``fresh``.

This module drives a shrink (the run, its journal and resume, the reducers); candidates are
probed and cached in shrink_candidates.py, and the result is assembled in shrink_result.py.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from threshold_probe import __version__
from threshold_probe.cell import fingerprint
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import ClusterLost, InfraError, Interrupted, ProbeError, UserError
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.reduce import RoundTripLost, reduce_ast, reduce_statements, speculative_checker
from threshold_probe.shrink_candidates import (
    Candidates,
    ConcurrentCluster,
    NotReproduced,
    ShrinkOptions,
    ShrinkProgress,
)
from threshold_probe.shrink_result import (
    FEATURES,
    ORIGINAL_NAME,
    RESULT_NAME,
    ShrinkResult,
    assemble_result,
    latest_shrink,
    write_result,
)
from threshold_probe.shrink_targets import KIND, ShrinkTarget, limits_for, target_from_function, target_from_run
from threshold_probe.store import RunInfo, Store, atomic_write


def _workload_params(w: Workload) -> dict[str, Any]:
    return dataclasses.asdict(w)


def _workload_from(data: Mapping[str, Any]) -> Workload:
    values = dict(data)
    values["search_path"] = tuple(values.get("search_path") or ())
    return Workload(**values)


class Shrink:
    """One shrink run: owns the run and the cluster, reproduces the failure, runs the reducers."""

    def __init__(
        self,
        target: ShrinkTarget,
        *,
        config: ProbeConfig,
        store: Store,
        options: ShrinkOptions,
        progress: ShrinkProgress | None = None,
        run_id: str | None = None,
        started_at: float | None = None,
        command_prefix: str = "probe",
        output: Path | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self.store = store
        self.options = options
        self.progress = progress
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(KIND)
        self.started_at = started_at or time.time()
        self.command_prefix = command_prefix
        self.output = output
        self.cluster: Cluster = make_cluster(target.cluster, config)
        self.cluster.on_remote = lambda work: store.record_remote(self.run_id, self.cluster.name, work)
        dispatcher: Cluster = self.cluster
        if options.parallel > 1:
            dispatcher = ConcurrentCluster(self.cluster, options.parallel)
        self.pipeline: Pipeline = make_pipeline(target.pipeline)
        self.native: Pipeline | None = None
        if target.pipeline != "native":
            self.native = make_pipeline("native")
        self.candidates = Candidates(
            target,
            run_id=self.run_id,
            cluster=dispatcher,
            pipeline=self.pipeline,
            native=self.native,
            store=store,
            options=options,
            resuming=self.resuming,
            progress=progress,
        )
        self.reducer_used = ""

    # plumbing ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """What a resume needs: the exact workload, where it ran, its failure and the options."""
        t = self.target
        return {
            "kind": KIND,
            "workload": _workload_params(t.workload),
            "cluster": t.cluster,
            "pipeline": t.pipeline,
            "limits": t.limits.model_dump(),
            "label": t.label,
            "level": t.level,
            "spec": t.spec,
            "signature": self.candidates.signature,
            "from_run": t.from_run,
            "function": t.function,
            "args": t.args,
            "options": dataclasses.asdict(self.options),
            "output": str(self.output) if self.output else None,
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }

    def resume_command(self) -> str:
        return f"{self.command_prefix} shrink --resume {self.run_id}"

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    # the steps -----------------------------------------------------------------------------
    def reduce(self) -> str:
        c = self.candidates
        check, spec = speculative_checker(c.answer, c.known, c.static_ok, self.options.parallel)
        source = self.target.workload.source
        used: list[str] = []
        try:
            # pysource-minimize first: it removes and simplifies node by node. When ast.unparse
            # loses the failure (it depends on the text: column-0 lines, a quirk of formatting),
            # statements are removed from the text as written instead.
            ast_lost = False
            if self.options.reducer in ("auto", "ast"):
                try:
                    source = reduce_ast(source, check)
                    used.append("pysource-minimize")
                except RoundTripLost:
                    if self.options.reducer == "ast":
                        raise UserError(
                            "the failure does not survive ast.unparse of the source: use --reducer statements"
                        ) from None
                    ast_lost = True
                    self._note("the failure depends on the source text as written: statements are removed from it")
            if self.options.reducer == "statements" or ast_lost:
                reduced = reduce_statements(source, check)
                if reduced != source:
                    used.append("statements")
                source = reduced
            spec.finish()
        finally:
            if spec.in_child:
                spec.child_exit()
        self.reducer_used = "+".join(used) or "none"
        return source

    # the run -------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.cluster.open()
        except InfraError as exc:
            raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
        if self.resuming:
            mine = self.store.remote_leftovers(self.cluster.name).get(self.run_id, [])
            for work, line in self.cluster.reap(mine):
                self.store.record_remote(self.run_id, self.cluster.name, work.model_copy(update={"state": "done"}))
                self._note(f"left by this run's stopped process: {line}")
        if self.options.preflight:
            checks = self.cluster.preflight()
            needs_pickle = self.pipeline.needs_cloudpickle
            bad = [c for c in checks if c.status == "fail" and (c.name != "cloudpickle" or needs_pickle)]
            if bad:
                lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
                raise InfraError(f"cluster {self.cluster.name!r} is not usable: {lines}")
            if any(c.status == "fail" and c.name == "cloudpickle" for c in checks) and self.candidates.native_prober:
                self._note(
                    "cloudpickle is missing on the far side: native cannot run there, the difference is not checked"
                )
                self.candidates.native_prober = None
        probers = ((self.candidates.prober, self.pipeline), (self.candidates.native_prober, self.native))
        for prober, pipeline in probers:
            if prober is None or pipeline is None:
                continue
            kind = type(pipeline)
            fp = fingerprint(
                self.cluster.name,
                self.cluster.config,
                self.cluster.far_side(),
                {"name": pipeline.name, "as_given": pipeline.name, "class": f"{kind.__module__}:{kind.__qualname__}"},
                __version__,
            )
            prober.cluster_key = f"{self.cluster.name}#{fp.digest}"
            if not fp.checked:
                prober.use_cache = False

    def execute(self) -> ShrinkResult:
        """Own the run, probe, reduce and write the result; interrupted runs stay resumable."""
        owner = self.store.own_run(self.run_id)
        try:
            return self._execute()
        finally:
            owner.release()

    def _execute(self) -> ShrinkResult:
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                kind=KIND,
                cluster=self.target.cluster,
                pipeline=self.pipeline.name,
                ladder=self.target.workload.name,
                status="running",
                started_at=self.started_at,
                params=self.params(),
            )
        )
        atomic_write(self.store.run_dir(self.run_id) / ORIGINAL_NAME, self.target.workload.source)
        if self.resuming:
            cancelled = self.store.cancel_unfinished(self.run_id)
            done = len(self.store.probes(self.run_id))
            self._note(
                f"resuming shrink {self.run_id}: {done} finished probe{'s' if done != 1 else ''} come from the journal"
                + (f"; {cancelled} in flight when it stopped will run again" if cancelled else "")
            )
        if self.progress is not None:
            self.progress.begin(f"shrinking {self.target.label}", None)
        try:
            try:
                self._open()
                self.candidates.reproduce()
                shrunk = self.reduce()
            except BaseException:
                self.cluster.cancel_all()
                raise
            finally:
                self.cluster.close()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.store.cancel_unfinished(self.run_id)
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else int(signal.SIGINT)
            message = f"shrink {self.run_id} interrupted; resume with: {self.resume_command()}"
            self.store.finish_run(self.run_id, "interrupted", {"status": "interrupted", "message": message})
            raise Interrupted(message, signum) from None
        except ClusterLost as exc:
            self.store.cancel_unfinished(self.run_id)
            message = f"cluster {self.cluster.name!r} lost: {exc.cause}; resume with: {self.resume_command()}"
            self.store.finish_run(self.run_id, "interrupted", {"status": "interrupted", "message": message})
            raise InfraError(message) from None
        except NotReproduced as exc:
            self.store.finish_run(self.run_id, "error", {"status": "error", "message": str(exc)})
            raise
        except ProbeError as exc:
            self.store.finish_run(self.run_id, "error", {"status": "error", "message": str(exc)})
            raise
        finally:
            if self.progress is not None:
                self.progress.end()
        result = self.result(shrunk)
        self._write(result)
        return result

    def result(self, shrunk: str) -> ShrinkResult:
        return assemble_result(
            self.target,
            shrunk,
            run_id=self.run_id,
            pipeline=self.pipeline.name,
            outcome=self.candidates.outcome(self.reducer_used),
            tally=self.candidates.tally,
            started_at=self.started_at,
            run_dir=self.store.run_dir(self.run_id),
            output=self.output,
        )

    def _write(self, result: ShrinkResult) -> None:
        write_result(self.store, result, self.output)


def shrink_target(
    target: ShrinkTarget,
    *,
    config: ProbeConfig,
    store: Store,
    options: ShrinkOptions | None = None,
    progress: ShrinkProgress | None = None,
    output: Path | None = None,
    command_prefix: str = "probe",
) -> ShrinkResult:
    """Shrink one target (see the module doc); NotReproduced (exit 1) when it does not fail the same way."""
    shrink = Shrink(
        target,
        config=config,
        store=store,
        options=options or ShrinkOptions(),
        progress=progress,
        command_prefix=command_prefix,
        output=output,
    )
    return shrink.execute()


def resume_shrink(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    progress: ShrinkProgress | None = None,
    command_prefix: str = "probe",
) -> ShrinkResult:
    """Continue an interrupted shrink: the journal answers what was asked, the rest is probed."""
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=KIND) if r.status not in ("completed", "error")]
        if not candidates:
            raise UserError("no interrupted shrink to resume: `probe runs` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    if info.kind != KIND:
        raise UserError(f"run {info.run_id} is a {info.kind} run, not a shrink: resume it with probe {info.kind}")
    if info.status == "completed":
        raise UserError(
            f"shrink {info.run_id} is complete: its result is in {store.run_dir(info.run_id) / RESULT_NAME}"
        )
    p = info.params
    target = ShrinkTarget(
        workload=_workload_from(p["workload"]),
        cluster=p["cluster"],
        pipeline=p["pipeline"],
        limits=Limits(**p["limits"]),
        label=p["label"],
        level=p.get("level"),
        spec=p.get("spec") or {},
        signature=p.get("signature"),
        from_run=p.get("from_run"),
        function=p.get("function"),
        args=p.get("args") or {},
    )
    shrink = Shrink(
        target,
        config=config,
        store=store,
        options=ShrinkOptions(**p["options"]),
        progress=progress,
        run_id=info.run_id,
        started_at=info.started_at,
        command_prefix=command_prefix,
        output=Path(p["output"]) if p.get("output") else None,
    )
    return shrink.execute()


__all__ = [
    "FEATURES",
    "KIND",
    "NotReproduced",
    "Shrink",
    "ShrinkOptions",
    "ShrinkProgress",
    "ShrinkResult",
    "ShrinkTarget",
    "latest_shrink",
    "limits_for",
    "resume_shrink",
    "shrink_target",
    "target_from_function",
    "target_from_run",
]
