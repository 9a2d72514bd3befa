"""The search switch: which strategy each kind of run uses, and its answer as a SearchResult.

Only a boundary whose levels were both tested is kept: an inconclusive search (untested levels
between its last pass and first failure) keeps none and says what stood in the way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from threshold_probe.clusters.base import Cluster
from threshold_probe.errors import UserError
from threshold_probe.ladder.dimensions import DIMENSIONS
from threshold_probe.search import bisect, isolate, sweep
from threshold_probe.search.base import LevelOutcomes, describe_levels, judge
from threshold_probe.session.options import Kind, ProgressSink, SearchOptions
from threshold_probe.session.outcomes import Oracles, overall, pass_rate_text, skip_causes
from threshold_probe.store import Store
from threshold_probe.summary import IsolateSummary, search_summary
from threshold_probe.target import ScaledLadder


@dataclass
class SearchResult:
    """What a search found: its status, a plain sentence, and the boundary when there is one."""

    status: str
    message: str = ""
    last_pass: int | None = None
    first_fail: int | None = None
    flaky_band: tuple[int, int] | None = None
    search_probes: int | None = None
    confirm_probes: int | None = None
    isolate: IsolateSummary | None = None


class Searches:
    """Runs the search of one kind of run over the oracles, and remembers the levels it searched."""

    def __init__(
        self,
        kind: Kind,
        options: SearchOptions,
        oracles: Oracles,
        cluster: Cluster,
        store: Store,
        progress: ProgressSink | None,
        note: Callable[[str], None],
    ) -> None:
        self.kind = kind
        self.options = options
        self.oracles = oracles
        self.workloads = oracles.workloads
        self.cluster = cluster
        self.store = store
        self.progress = progress
        self.note = note
        #: The levels the search covers, known once it starts; the report lists them.
        self.levels: list[int] = []
        #: The passing and failing specs an isolation starts from (its probes change one of them).
        self._isolating: tuple[dict[str, Any], dict[str, Any]] | None = None

    @property
    def ladder(self) -> Any:
        """The run's ladder (a ScaledLadder for --scale)."""
        return self.workloads.ladder

    def level_range(self) -> list[int]:
        """The levels between --lo/--from and --hi/--to, checked against the ladder."""
        numbers = self.ladder.numbers()
        lo = self.options.lo if self.options.lo is not None else numbers[0]
        hi = self.options.hi if self.options.hi is not None else numbers[-1]
        for bound in (lo, hi):
            if bound not in numbers:
                raise UserError(
                    f"level {bound} is not in ladder {self.ladder.name!r} (levels {numbers[0]}..{numbers[-1]})"
                )
        if lo > hi:
            raise UserError(f"the lowest level {lo} is above the highest {hi}")
        return [n for n in numbers if lo <= n <= hi]

    def _begin(self, description: str, total: int | None) -> None:
        if self.progress:
            self.progress.begin(description, total)

    def run(self) -> SearchResult:
        """Run the search this kind of run stands for, to its answer."""
        opts = self.options
        repeat = max(1, opts.repeat)
        request = self.workloads.function
        if self.kind == "run" and request is not None:
            self._begin(f"probing {opts.function}", repeat)
            outcomes = self.oracles.run([request] * repeat)
            status = overall(outcomes)
            message = f"{opts.function}: {status}"
            if repeat > 1:
                message += f", {pass_rate_text(outcomes)}"
            if status == "flaky":
                message += ": the function fails at random, not at a threshold"
            return SearchResult(status, message)
        if self.kind == "run":
            level = opts.level if opts.level is not None else self.ladder.numbers()[0]
            self.ladder.level(level)
            self.levels = [level]
            self._begin(f"probing level {level}", repeat)
            outcomes = self.oracles.levels([level] * repeat)
            status = overall(outcomes)
            message = f"level {level}: {status}"
            if repeat > 1:
                message += f", {pass_rate_text(outcomes)}"
            return SearchResult(
                status,
                message,
                last_pass=level if status == "pass" else None,
                first_fail=level if status == "fail" else None,
            )
        if self.kind == "isolate":
            good, bad = self._boundary_from_run()
            self.levels = [good, bad]
            iso = self._isolate(good, bad)
            return SearchResult(iso.status, iso.message, last_pass=good, first_fail=bad, isolate=iso)
        levels = self.level_range()
        self.levels = levels
        if self.kind == "sweep":
            self._begin(f"sweeping levels {levels[0]}..{levels[-1]}", len(levels) * repeat)
            batch = len(levels) if self.cluster.concurrent else max(1, opts.parallel)
            sres = sweep(levels, self.oracles.levels, repeat=repeat, batch=batch)
            swept = self._tested_boundary(
                levels, SearchResult(sres.status, sres.message, sres.last_good, sres.first_bad, sres.flaky_band)
            )
            self._scaled_message(swept)
            return swept
        self._begin(f"bisecting levels {levels[0]}..{levels[-1]}", None)
        bres = bisect(levels, self.oracles.levels, parallel=max(1, opts.parallel), repeat=repeat, confirm=opts.confirm)
        result = self._tested_boundary(
            levels,
            SearchResult(
                bres.status,
                bres.message,
                bres.last_good,
                bres.first_bad,
                bres.flaky_band,
                search_probes=bres.search_probes,
                confirm_probes=bres.confirm_probes,
            ),
        )
        self._scaled_message(result)
        if opts.isolate:
            if bres.status == "found" and bres.last_good is not None and bres.first_bad is not None:
                if self.oracles.hunt is None:
                    # Isolate the failure the bisect found, not whatever else a changed dimension causes.
                    self.oracles.hunt = self._boundary_signature(bres.first_bad)
                iso = self._isolate(bres.last_good, bres.first_bad)
                result.isolate = iso
                result.message = f"{bres.message}. {iso.message}"
            else:
                result.message = f"{bres.message}; no clean boundary, so nothing to isolate"
        return result

    def _tested_boundary(self, levels: Sequence[int], result: SearchResult) -> SearchResult:
        """Drop a boundary that rests on untested levels, and name what kept them untested.

        An inconclusive search brackets the threshold between a pass and a failure with
        untested levels between them; "the lowest level fails" with untested levels below it
        is no more certain. Neither is a threshold, so neither goes into the journal or history.
        """
        untested_below = result.status == "lowest_fails" and result.first_fail != min(levels)
        if result.status != "inconclusive" and not untested_below:
            return result
        causes = skip_causes(self.oracles.prober.records)
        if causes:
            result.message = f"{result.message} ({causes})"
        result.last_pass = result.first_fail = None
        return result

    def _scaled_message(self, result: SearchResult) -> None:
        """A scaled function's answer in its own terms: values of its argument, not level numbers."""
        ladder = self.ladder
        if not isinstance(ladder, ScaledLadder):
            return
        func = (self.options.function or "").rpartition(":")[2]
        first, last = result.first_fail, result.last_pass
        if result.status in ("found", "swept") and first is not None:
            cls = next(
                (
                    r.verdict.failure_class
                    for r in self.oracles.prober.records
                    if r.level == first and r.verdict.failure_class
                ),
                None,
            )
            where = f"{cls} on {self.cluster.name}" if cls else self.cluster.name
            text = f"{func} fails from {ladder.value_text(first)} ({where})"
            if last is not None:
                text += f"; {ladder.value_text(last)} passes"
            result.message = text
        elif result.status in ("lowest_fails",):
            result.message = f"{func} already fails at the lowest value, {ladder.value_text(ladder.numbers()[0])}"
        elif result.status == "highest_passes":
            result.message = f"{func} passes up to {ladder.value_text(ladder.numbers()[-1])}: no failure found"

    def _boundary_signature(self, level: int) -> str | None:
        for r in self.oracles.prober.records:
            if r.level == level and r.verdict.status == "fail" and r.verdict.signature:
                return r.verdict.signature
        return None

    def _boundary_from_run(self) -> tuple[int, int]:
        src = search_summary(self.store.get_run(self.options.from_run), "probe isolate")
        good, bad = src.last_pass, src.first_fail
        if good is None or bad is None:
            found = "no failing level" if bad is None else "no passing level"
            raise UserError(
                f"run {src.run_id} has no boundary to isolate ({found}): isolate needs a bisect or sweep"
                " that found a last pass and a first fail"
            )
        for level in (good, bad):
            self.ladder.level(int(level))
        return int(good), int(bad)

    def label_of(self, level: int | None, spec: dict[str, Any] | None) -> str | None:
        """How progress names a probe: `level 3`; an isolation probe by what it changes from the
        nearer of its two levels (`memory_mb=266`); None when neither applies."""
        if level is not None:
            return f"level {level}"
        if self._isolating is None or not spec:
            return None
        changes = [[k for k in spec if spec[k] != end.get(k)] for end in self._isolating]
        changed = min(changes, key=len)
        return ",".join(f"{k}={_value_text(spec[k])}" for k in changed) or None

    def _isolate(self, good: int, bad: int) -> IsolateSummary:
        good_spec = dict(self.ladder.level(good).values)
        bad_spec = dict(self.ladder.level(bad).values)
        self._isolating = (good_spec, bad_spec)
        hunt = self.oracles.hunt
        hunting = f", hunting {hunt}" if hunt else ""
        self.note(f"isolating the dimensions that differ between level {good} and level {bad}{hunting}")
        units = {name: dim.unit for name, dim in DIMENSIONS.items() if dim.unit}
        res = isolate(
            good_spec,
            bad_spec,
            self.oracles.specs,
            parallel=max(1, self.options.parallel),
            repeat=max(1, self.options.repeat),
            confirm=self.options.confirm,
            units=units,
        )
        # The search's own JSON-ready form, typed: every report reads drivers and findings from it.
        return IsolateSummary.model_validate({**res.to_dict(), "good_level": good, "bad_level": bad, "hunted": hunt})

    def so_far(self) -> str:
        """What the probes so far say about the boundary, claiming nothing that was not tested."""
        if self.kind not in ("sweep", "bisect") or not self.levels:
            return "no answer yet"
        order = sorted(set(self.levels))
        data: dict[int, LevelOutcomes] = {}
        for r in self.oracles.prober.records:
            if r.level is not None and r.level in order:
                data.setdefault(r.level, LevelOutcomes(r.level)).outcomes.append(self.oracles.outcome(r))
        v = judge(order, data)
        good, bad = v.last_good, v.first_bad
        if v.status == "flaky":
            return f"so far {v.message}"
        if good is not None and bad is not None:
            between = [n for n in order if good < n < bad]
            if not between:
                return f"so far level {good} passes and level {bad} fails (not yet confirmed)"
            return f"undecided between levels {good} and {bad}: {describe_levels(between)} not tested yet"
        if good is not None:
            return f"no failure up to level {good} so far"
        if bad is not None:
            return f"level {bad} fails, and no level below it was tested"
        return "no level decided yet"


def _value_text(value: Any) -> str:
    """A dimension's value as a label shows it: `266`, `0.5`, `True`."""
    return f"{value:g}" if isinstance(value, float) else str(value)
