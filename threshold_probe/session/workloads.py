"""What a run's probes run: its ladder or a user's function, as probe requests with metrics measured once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from threshold_probe.errors import Interrupted, UserError
from threshold_probe.ladder import Ladder, Workload, generate, load_ladder
from threshold_probe.metrics import measure_workload
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

    def label(self) -> str:
        """What the run probed, as runs, history and reports name it: the ladder, or the user's function."""
        if self.function is not None:
            return self.function.workload.name
        return self.ladder.name

    def metrics_of(self, workload_key: str, make: Callable[[], Workload]) -> dict[str, Any]:
        """Static metrics of a workload, measured once per run."""
        if workload_key not in self._metrics:
            try:
                self._metrics[workload_key] = measure_workload(make()).model_dump()
            except Interrupted:
                raise  # SIGINT/SIGTERM stops the run; it is not evidence about the workload
            except Exception as exc:  # metrics are evidence, never a reason to stop a run
                self._metrics[workload_key] = {"error": f"{type(exc).__name__}: {exc}"}
        return self._metrics[workload_key]

    def level_metrics(self, level: int) -> dict[str, Any]:
        """Static metrics of one ladder level."""
        return self.metrics_of(f"L{level}", lambda: self.ladder.workload(level))

    def level_request(self, level: int) -> ProbeRequest:
        """A probe of one ladder level."""
        workload = self.ladder.workload(level)
        metrics = self.metrics_of(f"L{level}", lambda: workload)
        return ProbeRequest(workload=workload, level=level, spec=dict(self.ladder.level(level).values), metrics=metrics)

    def spec_request(self, spec: Mapping[str, Any]) -> ProbeRequest:
        """A probe of dimension values that may not be a level (isolation)."""
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
        # A spec equal to a ladder level is that level, so its probes and cache line up.
        level = next((lv.number for lv in self.ladder.levels if dict(lv.values) == dict(spec)), None)
        workload = generate(spec, level=level, name=f"{self.ladder.name}-spec-{digest}")
        metrics = self.metrics_of(f"S{digest}", lambda: workload)
        return ProbeRequest(workload=workload, level=level, spec=dict(spec), metrics=metrics)
