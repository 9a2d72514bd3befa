"""`probe explain`: from "my runner fails on complex functions" to an answer, in one command.

It composes what exists, each step a journalled run of its own:

1. **bisect** the ladder through the pipeline, then through ``native`` on the same cluster up to
   the pipeline's first failing level: whether the threshold belongs to the pipeline (native
   passes there) or to the cluster (native fails there too). For ``--function F``: one probe of F
   through each.
2. **isolate** the dimension that drives the failure (for a function: read from the failure's
   evidence and F's static features).
3. **reproduce**: the smallest workload the ladder can make that still holds the driver (every
   other dimension at the ladder's first level), probed through the pipeline, and through native
   when the threshold is the pipeline's, so that it keeps the signature and the difference; then
   ``shrink`` when it is installed, for a minimal one.
4. **hint**: one rule per known cause (threshold_probe/hints.py).

The explain run itself (kind ``explain``) records which run each step is, so that ``--resume``
continues an interrupted step and reuses the finished ones.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, replace
from typing import Any

from threshold_probe.config import ProbeConfig
from threshold_probe.errors import Interrupted, ProbeError, UserError
from threshold_probe.explain_model import (
    KIND,
    ExplainOptions,
    Explanation,
    Reproducer,
    Step,
    conclusion_text,
    load_explanation,
)
from threshold_probe.explain_model import SCHEMA_VERSION as SCHEMA_VERSION  # re-exported: names this module always had
from threshold_probe.explain_model import Owner as Owner
from threshold_probe.explain_parts import (
    explanation_to_resume,
    function_driver,
    limits_words,
    reproducer_values,
    shrink_module,
    standalone_source,
    target_attr,
    verdict_line,
    without_docstring,
)
from threshold_probe.hints import Facts, hint_for
from threshold_probe.ladder import generate, load_ladder
from threshold_probe.metrics import measure_workload
from threshold_probe.session import LimitOverrides, ProgressSink, SearchOptions, resume_search, run_search
from threshold_probe.store import RunInfo, Store, atomic_write
from threshold_probe.summary import RunSummary
from threshold_probe.target import load_target

REFERENCE = "native"
#: Drivers that are what a function does when it runs, not how it is written.
RESOURCES = frozenset({"memory_mb", "runtime_s", "output_kb", "result_kb", "memory"})


class Explain:
    """One explanation in progress."""

    def __init__(
        self,
        *,
        config: ProbeConfig,
        store: Store,
        cluster: str,
        pipeline: str,
        overrides: LimitOverrides,
        options: ExplainOptions,
        progress: ProgressSink | None,
        run_id: str | None = None,
        started_at: float | None = None,
        steps: list[Step] | None = None,
        command_prefix: str = "probe",
    ) -> None:
        if options.function and options.ladder:
            raise UserError("give --function or --ladder, not both")
        self.config = config
        self.store = store
        self.cluster = cluster
        config.cluster(cluster)  # an unknown cluster is the user's to fix, before any run
        self.pipeline = pipeline
        self.overrides = overrides
        self.options = options
        if options.function:
            load_target(options.function)  # a target that cannot load: exit 2 before any probe
        elif options.ladder is None:
            options.ladder = config.defaults.ladder
        self.progress = progress
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(KIND)
        self.command_prefix = command_prefix
        self.result = Explanation(
            run_id=self.run_id,
            cluster=cluster,
            pipeline=pipeline,
            ladder=options.ladder,
            function=options.function,
            started_at=started_at or time.time(),
            steps=steps or [],
            reports_dir=str(store.run_dir(self.run_id)),
        )
        self.result.params = self.params()

    def params(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "cluster": self.cluster,
            "pipeline": self.pipeline,
            "overrides": asdict(self.overrides),
            "options": asdict(self.options),
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }

    def resume_command(self) -> str:
        return f"{self.command_prefix} explain --resume {self.run_id}"

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def _save(self) -> None:
        self.result.finished_at = time.time()
        self.store.save_partial(self.run_id, self.result.model_dump(mode="json", by_alias=True))

    def _step(self, name: str) -> Step:
        for step in self.result.steps:
            if step.name == name:
                return step
        step = Step(name=name)
        self.result.steps.append(step)
        return step

    def _search(self, name: str, kind: str, pipeline: str, options: SearchOptions) -> RunSummary:
        """One step as a journalled run: reused when finished, resumed when interrupted."""
        step = self._step(name)
        if step.run_id is not None:
            info = self.store.get_run(step.run_id)
            if info.status == "completed" and info.summary is not None:
                step.status = "done"
                return RunSummary.model_validate(info.summary)
            self._note(f"{name}: continuing run {step.run_id}")
            summary = resume_search(
                step.run_id,
                config=self.config,
                store=self.store,
                progress=self.progress,
                command_prefix=self.command_prefix,
            )
            step.status = "done"
            self._save()
            return summary
        if self.resuming:
            # A step whose process was killed (-9) never learnt its run's id: find it in the journal.
            taken = {st.run_id for st in self.result.steps if st.run_id}
            stopped = [
                info
                for info in self.store.runs(kind=kind)
                if info.started_at >= self.result.started_at - 1
                and info.status != "completed"
                and info.run_id not in taken
                and info.params.get("pipeline") == pipeline
            ]
            if stopped:
                step.run_id = stopped[-1].run_id
                self._save()
                return self._search(name, kind, pipeline, options)
        since = time.time()
        try:
            summary = run_search(
                kind,  # type: ignore[arg-type]
                config=self.config,
                store=self.store,
                cluster=self.cluster,
                pipeline=pipeline,
                ladder=self.options.ladder or self.config.defaults.ladder,
                overrides=self.overrides,
                options=options,
                progress=self.progress,
                command_prefix=self.command_prefix,
            )
        except BaseException:
            # The step's run is resumable: remember which it is before the error goes up.
            started = [r for r in self.store.runs(kind=kind) if r.started_at >= since - 1]
            if started:
                step.run_id = started[0].run_id
            step.status = "failed"
            self._save()
            raise
        step.run_id = summary.run_id
        step.status = "done"
        self._save()
        return summary

    def execute(self) -> Explanation:
        """Run every step; the explanation is journalled after each."""
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                kind=KIND,
                cluster=self.cluster,
                pipeline=self.pipeline,
                ladder=self.options.ladder or (self.options.function or "")[-200:],
                status="running",
                started_at=self.result.started_at,
                params=self.params(),
            )
        )
        self._save()
        try:
            if self.options.function:
                self._explain_function()
            else:
                self._explain_ladder()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.result.status = "interrupted"
            self.store.finish_run(self.run_id, "interrupted", self.result.model_dump(mode="json", by_alias=True))
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else 2
            message = f"explain {self.run_id} interrupted; resume with: {self.resume_command()}"
            raise Interrupted(message, signum) from None
        except ProbeError as exc:
            self.result.status = "interrupted" if exc.exit_code == 3 else "error"
            self.store.finish_run(self.run_id, self.result.status, self.result.model_dump(mode="json", by_alias=True))
            if exc.exit_code == 3:
                raise type(exc)(f"{exc}; the explanation resumes with: {self.resume_command()}") from None
            raise
        self.result.status = "completed"
        self.result.finished_at = time.time()
        self.store.finish_run(self.run_id, "completed", self.result.model_dump(mode="json", by_alias=True))
        return self.result

    # -- a ladder ----------------------------------------------------------------------------------

    def _explain_ladder(self) -> None:
        r = self.result
        opts = SearchOptions(
            lo=self.options.lo, hi=self.options.hi, fresh=self.options.fresh, preflight=self.options.preflight
        )
        main = self._search("bisect", "bisect", self.pipeline, opts)
        r.limits, r.versions, r.cluster_info = dict(main.limits), dict(main.versions), dict(main.cluster_info)
        r.last_pass, r.first_fail = main.last_pass, main.first_fail
        self._step("bisect").line = main.message
        if main.failure is not None:
            r.failure_class = main.failure.failure_class
            r.signature = main.failure.signature
            r.evidence = list(main.failure.evidence[:8])
        if main.first_fail is None:
            r.owner = "none"
            r.conclusion = (
                f"No threshold: the {main.ladder} ladder through {self.pipeline} on {self.cluster}"
                f" {main.message[:1].lower() + main.message[1:] if main.message else 'found no failure'}."
            )
            return
        # Whose threshold: native on the same cluster, up to the same level.
        if self.pipeline != REFERENCE:
            native = self._search(
                "bisect-native", "bisect", REFERENCE, replace(opts, hi=main.first_fail, lo=self.options.lo)
            )
            r.native_first_fail = native.first_fail
            r.native_message = native.message
            self._step("bisect-native").line = native.message
            if native.first_fail is None and native.search_status == "highest_passes":
                r.owner = "pipeline"
                r.owner_statement = (
                    f"{self.pipeline} fails first at level {main.first_fail} while native passes there on"
                    f" {self.cluster}: the threshold belongs to the {self.pipeline} pipeline, not to the cluster"
                )
            elif native.first_fail is not None:
                r.owner = "cluster"
                r.owner_statement = (
                    f"native fails too on {self.cluster} (first at level {native.first_fail}): the threshold"
                    f" belongs to the cluster"
                )
            else:
                r.owner_statement = f"native could not decide on {self.cluster} ({native.message})"
        else:
            r.owner = "cluster"
            r.owner_statement = (
                f"native fails first at level {main.first_fail} on {self.cluster}: a threshold of the cluster"
                f" under its limits ({limits_words(self.result.limits)})"
            )
        # The driving dimension, hunting the very failure found.
        iso = self._search(
            "isolate",
            "isolate",
            self.pipeline,
            SearchOptions(
                from_run=main.run_id,
                match=r.signature or r.failure_class,
                fresh=self.options.fresh,
                preflight=self.options.preflight,
            ),
        )
        drivers = [str(d) for d in iso.isolate.drivers] if iso.isolate is not None else []
        self._step("isolate").line = iso.message
        if drivers and iso.isolate is not None:
            r.driver = drivers[0]
            finding = next((f for f in iso.isolate.findings if f.dimension == r.driver), None)
            r.driver_threshold = finding.threshold if finding is not None else None
            r.driver_statement = iso.message
        self._reproduce_ladder(main)
        self._shrink()
        self._hint()
        self._conclude()

    def _reproduce_ladder(self, main: RunSummary) -> None:
        """The first level's values with the driver at its threshold, probed as a function."""
        r = self.result
        step = self._step("reproducer")
        ladder = load_ladder(self.options.ladder or self.config.defaults.ladder)
        if r.driver is None or r.driver_threshold is None or r.first_fail is None:
            step.status = "skipped"
            step.line = "no single driver with a threshold: the first failing level is the reproducer"
            bad = ladder.workload(r.first_fail) if r.first_fail is not None else None
            if bad is not None:
                r.reproducer = Reproducer(
                    via="ladder",
                    source=bad.source,
                    lines=len(bad.source.splitlines()),
                    spec=dict(ladder.level(r.first_fail or 0).values),
                    verdict="fail",
                    signature=r.signature,
                )
            self._save()
            return
        # Level 1's other values sit below isolate's edge: the driver steps up until it fails.
        for value in reproducer_values(ladder, r.driver, r.driver_threshold, r.first_fail):
            spec = dict(ladder.levels[0].values)
            spec[r.driver] = value
            workload = generate(spec, name=f"reproducer_{r.driver}")
            folder = self.store.run_dir(self.run_id)
            path = folder / "reproducer.py"
            workload = replace(workload, source=without_docstring(workload.source))
            atomic_write(path, workload.source)
            target = f"{path}:{target_attr(workload.func_name, workload.accessor)}"
            opts = SearchOptions(function=target, fresh=self.options.fresh, preflight=self.options.preflight)
            again = "" if value == r.driver_threshold else f" {r.driver}={value}"
            mine = self._search(f"reproducer{again}", "run", self.pipeline, opts)
            if mine.probes and mine.probes[0].verdict == "fail":
                break
        native = None
        if r.owner == "pipeline":
            native = self._search("reproducer-native", "run", REFERENCE, opts)
            nverdict = native.probes[0].verdict if native.probes else native.search_status
            self._step("reproducer-native").line = f"{nverdict} through native"
        probe = mine.probes[0] if mine.probes else None
        features = {}
        try:
            m = measure_workload(workload)
            features = {k: getattr(m, k) for k in ("loc", "cc", "free_vars", "global_refs", "multiline_strings")}
        except Exception:  # metrics are evidence: a reproducer without them is still one
            pass
        same = probe is not None and probe.verdict == "fail" and (probe.signature == r.signature or r.signature is None)
        kept = None
        if same:
            kept = "signature+difference" if native is not None and native.search_status == "pass" else "signature"
        r.reproducer = Reproducer(
            via="ladder",
            source=workload.source,
            lines=len([ln for ln in workload.source.splitlines() if ln.strip()]),
            target=target,
            spec={r.driver: value},
            verdict=probe.verdict if probe else None,
            signature=probe.signature if probe else None,
            native_verdict=(native.probes[0].verdict if native is not None and native.probes else None),
            kept=kept,
            features=features,
        )
        step.line = (
            f"{r.reproducer.lines} lines ({r.driver}={value}, every other dimension at level"
            f" {ladder.levels[0].number}): {probe.verdict if probe else '-'} through {self.pipeline}"
            + (f", {r.reproducer.native_verdict} through native" if native is not None else "")
            + ("; same signature" if same else "; NOT the same failure")
        )
        self._save()

    def _shrink(self) -> None:
        """Shrink the reproducer further when shrink is installed; optional."""
        r = self.result
        step = self._step("shrink")
        module = shrink_module()
        if not self.options.shrink:
            step.status, step.line = "skipped", "not asked for (--no-shrink)"
            return
        if module is None:
            step.status, step.line = "skipped", "shrink is not available in this version"
            return
        if r.driver in RESOURCES:
            # The ladder's smallest workload with that resource is already all there is to it;
            # shrinking code that only allocates or waits costs many slow probes and says nothing new.
            step.status = "skipped"
            step.line = f"{r.driver} is a resource: the reproducer is already the smallest workload"
            return
        if r.reproducer is None or r.reproducer.target is None or r.reproducer.kept is None:
            step.status, step.line = "skipped", "no reproducer that keeps the failure to shrink"
            return
        try:
            target = module.target_from_function(
                self.config,
                r.reproducer.target,
                cluster=self.cluster,
                pipeline=self.pipeline,
                memory=self.overrides.memory,
                time_limit=self.overrides.time,
            )
            result = module.shrink_target(target, config=self.config, store=self.store)
        except ProbeError as exc:
            if exc.exit_code in (3,) or isinstance(exc, Interrupted):
                raise
            step.status, step.line = "failed", f"shrink stopped: {exc}"
            return
        step.run_id = getattr(result, "run_id", None)
        step.status = "done"
        r.shrink = result.model_dump(mode="json")
        step.line = f"{result.original_lines} -> {result.lines} lines in {result.probes} probes ({result.kept})"
        if result.lines < r.reproducer.lines:
            r.reproducer = r.reproducer.model_copy(
                update={"via": "shrink", "source": result.source, "lines": result.lines, "kept": result.kept}
            )
        else:
            step.line += ": the reproducer stays as it was"
        self._save()

    def _standalone(self, function: str) -> None:
        """Write the failing function on its own and check that it still fails the same way."""
        r = self.result
        made = standalone_source(function)
        if made is None or r.reproducer is None:
            return
        text, attr = made
        path = self.store.run_dir(self.run_id) / "reproducer.py"
        atomic_write(path, text)
        target = f"{path}:{attr}"
        opts = SearchOptions(function=target, fresh=self.options.fresh, preflight=self.options.preflight)
        try:
            mine = self._search("reproducer", "run", self.pipeline, opts)
            native = self._search("reproducer-native", "run", REFERENCE, opts) if r.owner == "pipeline" else None
        except UserError as exc:  # it does not load on its own: the whole file stays the reproducer
            self._step("reproducer").status = "skipped"
            self._step("reproducer").line = f"not on its own: {exc}"
            return
        probe = mine.probes[0] if mine.probes else None
        nprobe = native.probes[0] if native is not None and native.probes else None
        self._step("reproducer").line = verdict_line(probe, self.pipeline)
        if native is not None:
            self._step("reproducer-native").line = verdict_line(nprobe, REFERENCE)
        same = probe is not None and probe.verdict == "fail" and probe.signature == r.signature
        if not same or (native is not None and (nprobe is None or nprobe.verdict != "pass")):
            self._step("reproducer").line += "; not the same failure: the whole file stays the reproducer"
            return
        r.reproducer = Reproducer(
            via="function",
            source=text,
            lines=len([ln for ln in text.splitlines() if ln.strip()]),
            target=target,
            verdict="fail",
            signature=probe.signature if probe else None,
            native_verdict=nprobe.verdict if nprobe else None,
            kept="signature+difference" if native is not None else "signature",
        )
        self._save()

    def _hint(self) -> None:
        r = self.result
        step = self._step("hint")
        enforced = limits_words(self.result.limits) if r.failure_class == "oom" else ""
        r.hint = hint_for(Facts(r.failure_class, r.driver, r.evidence, self.pipeline, self.cluster, enforced))
        step.status = "done" if r.hint else "skipped"
        step.line = r.hint.text() if r.hint else f"no rule for class {r.failure_class}: read the evidence"
        self._save()

    def _conclude(self) -> None:
        self.result.conclusion = conclusion_text(self.result, self.pipeline, self.cluster)

    # -- a function --------------------------------------------------------------------------------

    def _explain_function(self) -> None:
        r = self.result
        function = self.options.function or ""
        opts = SearchOptions(function=function, fresh=self.options.fresh, preflight=self.options.preflight)
        main = self._search("probe", "run", self.pipeline, opts)
        r.limits, r.versions, r.cluster_info = dict(main.limits), dict(main.versions), dict(main.cluster_info)
        probe = main.probes[0] if main.probes else None
        self._step("probe").line = verdict_line(probe, self.pipeline)
        if probe is None or probe.verdict != "fail":
            r.owner = "none"
            verdict = probe.verdict if probe else "not probed"
            name = function.rpartition(":")[2]
            r.conclusion = f"{name} does not fail through {self.pipeline} on {self.cluster} ({verdict})."
            return
        if main.failure is not None:
            r.failure_class = main.failure.failure_class
            r.signature = main.failure.signature
            r.evidence = list(main.failure.evidence[:8])
        if self.pipeline != REFERENCE:
            native = self._search("probe-native", "run", REFERENCE, opts)
            nprobe = native.probes[0] if native.probes else None
            self._step("probe-native").line = verdict_line(nprobe, REFERENCE)
            if nprobe is not None and nprobe.verdict == "pass":
                r.owner = "pipeline"
                r.owner_statement = (
                    f"native passes on {self.cluster}: the failure belongs to the {self.pipeline} pipeline,"
                    " not to the cluster"
                )
            elif nprobe is not None and nprobe.verdict == "fail":
                r.owner = "cluster"
                r.owner_statement = f"native fails too on {self.cluster}: the failure belongs to the cluster"
        else:
            r.owner = "cluster"
            r.owner_statement = f"native fails on {self.cluster} under its limits ({limits_words(self.result.limits)})"
        r.driver, r.driver_statement = function_driver(function, r.failure_class, r.evidence)
        step = self._step("isolate")
        step.status = "done" if r.driver else "skipped"
        step.line = r.driver_statement or "no static feature of the function explains the failure"
        workload = load_target(function)
        r.reproducer = Reproducer(
            via="function",
            source=workload.source,
            lines=len(workload.source.splitlines()),
            target=function,
            verdict="fail",
            signature=r.signature,
            native_verdict="pass" if r.owner == "pipeline" else None,
            kept="signature+difference" if r.owner == "pipeline" else "signature",
        )
        self._standalone(function)
        self._shrink()
        self._hint()
        self._conclude()


def run_explain(
    *,
    config: ProbeConfig,
    store: Store,
    cluster: str,
    pipeline: str,
    options: ExplainOptions,
    overrides: LimitOverrides | None = None,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> Explanation:
    """Explain a ladder's (or a function's) failure through a pipeline on a cluster."""
    return Explain(
        config=config,
        store=store,
        cluster=cluster,
        pipeline=pipeline,
        overrides=overrides or LimitOverrides(),
        options=options,
        progress=progress,
        command_prefix=command_prefix,
    ).execute()


def resume_explain(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> Explanation:
    """Continue an interrupted explanation: finished steps are reused, the interrupted one resumed."""
    info = explanation_to_resume(store, run_id)
    p = info.params
    steps = [Step.model_validate(s) for s in (info.summary or {}).get("steps") or []]
    return Explain(
        config=config,
        store=store,
        cluster=p["cluster"],
        pipeline=p["pipeline"],
        overrides=LimitOverrides(**p["overrides"]),
        options=ExplainOptions(**p["options"]),
        progress=progress,
        run_id=info.run_id,
        started_at=info.started_at,
        steps=steps,
        command_prefix=command_prefix,
    ).execute()


__all__ = [
    "KIND",
    "ExplainOptions",
    "Explanation",
    "Reproducer",
    "Step",
    "load_explanation",
    "resume_explain",
    "run_explain",
]
