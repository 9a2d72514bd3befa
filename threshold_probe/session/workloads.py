"""What a run's probes run: its ladder or a user's function, as probe requests with metrics measured once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from threshold_probe.errors import Interrupted, UserError
from threshold_probe.ladder import Ladder, Workload, generate, load_ladder
from threshold_probe.metrics import FunctionMetrics, measure_source, measure_workload, pickle_size
from threshold_probe.probe import ProbeRequest
from threshold_probe.session.options import Kind, SearchOptions
from threshold_probe.target import load_target, scaled_ladder


def function_request(
    target: str, args: Mapping[str, Any] | None = None, *, ship_local_modules: bool = False
) -> ProbeRequest:
    """A probe request for a user's own function (target.py says which forms are understood)."""
    workload = load_target(target, args, ship_local_modules=ship_local_modules)
    try:
        metrics = measure_workload(workload).model_dump()
    except Interrupted:
        raise  # SIGINT/SIGTERM stops the run; it is not evidence about the function
    except Exception as exc:  # a function reached through an import has no definition in the file
        metrics = {"error": f"{type(exc).__name__}: {exc}"}
    spec: dict[str, Any] = {"function": target}
    if args:
        spec["args"] = dict(args)
    return ProbeRequest(workload=workload, level=None, spec=spec, metrics=metrics)


def load_run_ladder(kind: Kind, options: SearchOptions, ladder_arg: str) -> Ladder:
    """The shipped or given ladder, or a user's function with one argument scaled (--scale)."""
    if options.scale is None:
        if options.function and kind != "run":
            raise UserError(f"{kind} --function needs --scale NAME=LO..HI (or --scale NAME --values ...)")
        return load_ladder(ladder_arg)
    if kind not in ("sweep", "bisect") or not options.function:
        raise UserError("--scale applies to sweep and bisect with --function FILE:FUNC")
    if options.isolate:
        raise UserError("--isolate needs a ladder of dimensions; a scaled function has one argument")
    return scaled_ladder(
        options.function,
        options.args,
        options.scale,
        options.steps,
        options.values,
        ship_local_modules=options.ship_local_modules,
    )


class Workloads:
    """The probe requests of one run: ladder levels, isolation specs, or the user's function."""

    def __init__(self, ladder: Ladder, function: ProbeRequest | None = None) -> None:
        self.ladder = ladder
        #: `probe run --function`: the user's function, loaded before the run exists.
        self.function = function
        self._metrics: dict[str, dict[str, Any]] = {}
        # Metrics being measured in the metrics thread, by key.
        self._pending: dict[str, tuple[Workload, Future[FunctionMetrics]]] = {}

    def label(self) -> str:
        """What the run probed, as runs, history and reports name it: the ladder, or the user's function."""
        if self.function is not None:
            return self.function.workload.name
        return self.ladder.name

    def metrics_of(self, workload_key: str, make: Callable[[], Workload]) -> dict[str, Any]:
        """Static metrics of a workload, measured once per run."""
        if workload_key not in self._metrics:
            pending = self._pending.pop(workload_key, None)
            try:
                if pending is not None:
                    self._metrics[workload_key] = _with_pickle_size(pending[1].result(), pending[0])
                else:
                    self._metrics[workload_key] = measure_workload(make()).model_dump()
            except Interrupted:
                raise  # SIGINT/SIGTERM stops the run; it is not evidence about the workload
            except Exception as exc:  # metrics are evidence, never a reason to stop a run
                self._metrics[workload_key] = {"error": f"{type(exc).__name__}: {exc}"}
        return self._metrics[workload_key]

    def _request(self, workload_key: str, workload: Workload, level: int | None, spec: dict[str, Any]) -> ProbeRequest:
        """A probe request whose metrics are measured while it runs, unless they are known already.

        The source is parsed and measured in a thread, so that it overlaps the probe's job (a
        process of its own); pickling the function, which executes its source in a module of
        this process, stays in this thread, when the probe is recorded.
        """
        if workload_key in self._metrics:
            return ProbeRequest(workload=workload, level=level, spec=spec, metrics=self._metrics[workload_key])
        if workload_key not in self._pending:
            self._pending[workload_key] = (workload, _metrics_thread().submit(_source_metrics, workload))
        return ProbeRequest(
            workload=workload,
            level=level,
            spec=spec,
            metrics_later=lambda: self.metrics_of(workload_key, lambda: workload),
        )

    def level_metrics(self, level: int) -> dict[str, Any]:
        """Static metrics of one ladder level."""
        return self.metrics_of(f"L{level}", lambda: self.ladder.workload(level))

    def level_request(self, level: int) -> ProbeRequest:
        """A probe of one ladder level."""
        workload = self.ladder.workload(level)
        return self._request(f"L{level}", workload, level, dict(self.ladder.level(level).values))

    def spec_request(self, spec: Mapping[str, Any]) -> ProbeRequest:
        """A probe of dimension values that may not be a level (isolation)."""
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
        # A spec equal to a ladder level is that level, so its probes and cache line up.
        level = next((lv.number for lv in self.ladder.levels if dict(lv.values) == dict(spec)), None)
        workload = generate(spec, level=level, name=f"{self.ladder.name}-spec-{digest}")
        return self._request(f"S{digest}", workload, level, dict(spec))


_EXECUTOR: list[ThreadPoolExecutor] = []


def _metrics_thread() -> ThreadPoolExecutor:
    """One thread for the whole process, started at the first use, shared by every run."""
    if not _EXECUTOR:
        _EXECUTOR.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics"))
    return _EXECUTOR[0]


def _source_metrics(workload: Workload) -> FunctionMetrics:
    """A workload's metrics from its source alone (pure: no import, no exec), as measure_workload has them."""
    # Source order puts the workload before anything defined inside it.
    found = [m for m in measure_source(workload.source) if m.name == workload.func_name]
    if not found:
        raise ValueError(f"{workload.name}: no function {workload.func_name} in its source")
    return found[0]


def _with_pickle_size(metrics: FunctionMetrics, workload: Workload) -> dict[str, Any]:
    """The metrics with pickle_bytes, as measure_workload measures it (the function pickled by value)."""
    metrics.pickle_bytes = pickle_size(workload.load())
    return metrics.model_dump()
