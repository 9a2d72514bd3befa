"""Isolation: which dimension of a workload drives a failure, and from which value on.

Start from a boundary found by a bisect: a *good* spec (the last level that passes) and a *bad* spec
(the first that fails). For every dimension whose value differs between them:

- **sufficient?** probe the good spec with only that dimension raised to the bad value: does it fail?
- **necessary?** probe the bad spec with only that dimension lowered to the good value: does it pass?

These 2 + 2D probes are independent and go out together (the two specs themselves are re-checked in
the same batch). Then the value of every sufficient dimension is bisected between its two values with
everything else at the good spec, which gives its threshold ("fails at subprocess_calls >= 9 with
everything else at level 4"). A dimension that is necessary but not sufficient is bisected with
everything else at the bad spec instead, so an AND of two dimensions still gets a threshold for each.
The value searches of all dimensions run side by side, so a parallel cluster gets their probes in the
same rounds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from threshold_probe.search.base import (
    LevelOutcomes,
    Outcome,
    Progress,
    Status,
    call_oracle,
    check_outcomes,
    check_positive,
)
from threshold_probe.search.bisect import Bisection, _split
from threshold_probe.search.isolate_finding import (
    MISSING,
    DimensionFinding,
    IsolateResult,
    IsolateStatus,
    finding_message,
    format_value,
    is_number,
    jsonable,
)

SpecOracle = Callable[[Sequence[Mapping[str, Any]]], list[Outcome]]
"""Probes a batch of workload specs (dimension -> value) and returns one outcome per spec, aligned."""


FLOAT_STEPS = 16
"""A float dimension is bisected over this many equal steps between its two values."""


def spec_key(spec: Mapping[str, Any]) -> str:
    """A canonical text for a spec, equal for equal specs whatever their key order."""
    return json.dumps({k: v for k, v in spec.items()}, sort_keys=True, default=repr)


def _with(spec: Mapping[str, Any], dimension: str, value: Any) -> dict[str, Any]:
    out = dict(spec)
    if value is MISSING:
        out.pop(dimension, None)
    else:
        out[dimension] = value
    return out


# -- probe bookkeeping shared by the fixed probes and the value searches ------------------------------


SpecRequest = tuple[str, dict[str, Any], int]
"""(owner tag, spec, how many probes) in one round."""


class _FixedProbes:
    """A set of independent specs, each wanting `repeat` verdicts, with a skip budget each."""

    def __init__(
        self,
        specs: Sequence[tuple[str, dict[str, Any]]],
        repeat: int,
        max_skip_retries: int,
        known: Mapping[str, tuple[dict[str, Any], list[Outcome]]],
        first_ones: int = 0,
    ) -> None:
        self.specs = list(specs)
        self.first_ones = first_ones
        self.repeat = repeat
        self.max_skip_retries = max_skip_retries
        self.outcomes: dict[str, LevelOutcomes] = {}
        self.dispatched: dict[str, int] = {}
        for tag, spec in self.specs:
            key = spec_key(spec)
            self.outcomes[tag] = LevelOutcomes(0, list(known[key][1]) if key in known else [])
            self.dispatched[tag] = 0

    def missing(self, tag: str) -> int:
        """Verdicts still wanted for a spec; 0 once it has them or ran out of retries."""
        lev = self.outcomes[tag]
        room = (1 + self.max_skip_retries) * self.repeat - lev.skipped
        return max(0, min(self.repeat - lev.tested, room))

    def settled(self, tag: str) -> bool:
        """True when nothing more will be asked for this spec."""
        return self.missing(tag) == 0

    def propose(self, slots: int) -> list[SpecRequest]:
        """Up to `slots` specs in the order given, retries of skipped ones last, except for the first
        `first_ones` (the two ends), which are retried before anything else goes out."""
        wanted = [
            (i >= self.first_ones and self.outcomes[tag].skipped > 0, i, tag, spec)
            for i, (tag, spec) in enumerate(self.specs)
            if self.missing(tag)
        ]
        wanted.sort(key=lambda item: (item[0], item[1]))
        return [(tag, spec, self.missing(tag)) for _skipped, _i, tag, spec in wanted[: max(1, slots)]]

    def record(self, tag: str, outcomes: Sequence[Outcome]) -> None:
        """Add the outcomes of one spec from one round."""
        self.outcomes[tag].outcomes.extend(outcomes)
        self.dispatched[tag] += len(outcomes)


class _ValueSearch:
    """A bisection over the values of one dimension, the rest held at a base spec."""

    def __init__(
        self,
        finding: DimensionFinding,
        base: Mapping[str, Any],
        grid: Sequence[Any],
        known_ends: tuple[Sequence[Outcome], Sequence[Outcome]],
        *,
        repeat: int,
        confirm: int,
        max_skip_retries: int,
        known: Mapping[str, tuple[dict[str, Any], list[Outcome]]],
    ) -> None:
        self.finding = finding
        self.base = dict(base)
        self.grid = grid
        seeded: dict[int, list[Outcome]] = {}
        dim = finding.dimension
        rest = {k: v for k, v in self.base.items() if k != dim}
        for spec, prior in known.values():
            # Only journaled specs on this search's line: the base with `dim` at some grid value.
            if dim not in spec or {k: v for k, v in spec.items() if k != dim} != rest:
                continue
            index = self._grid_index(spec[dim])
            if index is not None and 0 < index < len(self.grid) - 1:
                seeded[index] = list(prior)
        # The two ends were probed in the first phase (as the base spec and as the one-dimension probe).
        seeded.setdefault(0, [])[:0] = list(known_ends[0])
        seeded.setdefault(len(self.grid) - 1, [])[:0] = list(known_ends[1])
        self.search = Bisection(
            range(len(self.grid)),
            repeat=repeat,
            confirm=confirm,
            max_skip_retries=max_skip_retries,
            known=seeded,
        )

    def _grid_index(self, value: Any) -> int | None:
        """Where a value sits on the grid, without scanning a grid of every int."""
        if self.finding.exact and isinstance(value, int) and not isinstance(value, bool):
            step = 1 if self.grid[-1] >= self.grid[0] else -1
            index = (value - self.grid[0]) * step
            return index if 0 <= index < len(self.grid) else None
        try:
            return self.grid.index(value)
        except ValueError:
            return None

    def spec(self, index: int) -> dict[str, Any]:
        """The base spec with this dimension at grid point `index`."""
        return _with(self.base, self.finding.dimension, self.grid[index])

    def propose(self, slots: int) -> list[SpecRequest]:
        """The next grid points to probe."""
        return [(str(i), self.spec(i), count) for i, count in self.search.propose(slots)]

    def record(self, tag: str, outcomes: Sequence[Outcome]) -> None:
        """Add the outcomes of one grid point from one round."""
        self.search.record(int(tag), outcomes)
        self.finding.probes += len(outcomes)

    def conclude(self) -> None:
        """Write the threshold (or why there is none) into the finding."""
        result = self.search.result(0, 0)
        self.finding.search_status = result.status
        self.finding.tried = [(self.grid[i], list(lev.outcomes)) for i, lev in sorted(result.levels.items())]
        if result.status == "found" and result.first_bad is not None and result.last_good is not None:
            self.finding.threshold = self.grid[result.first_bad]
            self.finding.last_passing = self.grid[result.last_good]
        else:
            self.finding.note = _join(
                self.finding.note,
                self._why_no_threshold(result.status, result.last_good, result.first_bad, result.flaky_band),
            )

    def _why_no_threshold(
        self, status: Status, last_good: int | None, first_bad: int | None, band: tuple[int, int] | None
    ) -> str:
        dim = self.finding.dimension
        if status == "flaky" and band is not None:
            lo, hi = format_value(self.grid[band[0]]), format_value(self.grid[band[1]])
            where = f"at {dim}={lo}" if lo == hi else f"for {dim} from {lo} to {hi}"
            return f"no clean threshold: the outcome is flaky {where}"
        if status == "inconclusive" and last_good is not None and first_bad is not None:
            return (
                f"no exact threshold: {dim}={format_value(self.grid[last_good])} passes, "
                f"{dim}={format_value(self.grid[first_bad])} fails and the values between could not be tested"
            )
        return f"no clean threshold: the search over the values of {dim} ended {status.replace('_', ' ')}"


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def value_grid(low: Any, high: Any) -> tuple[Sequence[Any], bool] | None:
    """The values searched between a passing and a failing value, ends included, and whether the grid is
    exact: every int for two ints, ``FLOAT_STEPS`` equal steps for floats, None for anything else."""
    if not (is_number(low) and is_number(high)) or low == high:
        return None
    if isinstance(low, int) and isinstance(high, int):
        step = 1 if high > low else -1
        return range(low, high + step, step), True
    grid = [low + (high - low) * k / FLOAT_STEPS for k in range(FLOAT_STEPS + 1)]
    grid[-1] = high  # exact end, whatever rounding did
    return grid, False


def isolate(
    good_spec: Mapping[str, Any],
    bad_spec: Mapping[str, Any],
    oracle: SpecOracle,
    *,
    parallel: int = 1,
    repeat: int = 1,
    confirm: int = 0,
    max_skip_retries: int = 2,
    known: Sequence[tuple[Mapping[str, Any], Sequence[Outcome]]] | None = None,
    units: Mapping[str, str] | None = None,
    progress: Progress = None,
) -> IsolateResult:
    """Find which dimensions are sufficient and necessary for the failure, and each driver's threshold.

    Each round sends at most ``parallel`` distinct specs, each ``repeat`` times. ``known`` holds
    (spec, outcomes) pairs already journaled; a spec equal to one of them is not dispatched again
    for the outcomes it already has. ``units`` (dimension -> unit, e.g. "MB") only dresses the message.
    ``confirm`` is passed to the value bisections.
    """
    check_positive("parallel", parallel, 1)
    check_positive("repeat", repeat, 1)
    check_positive("confirm", confirm, 0)
    check_positive("max_skip_retries", max_skip_retries, 0)
    good = dict(good_spec)
    bad = dict(bad_spec)
    known_map: dict[str, tuple[dict[str, Any], list[Outcome]]] = {}
    for spec, outcomes in known or []:
        entry = known_map.setdefault(spec_key(spec), (dict(spec), []))
        entry[1].extend(check_outcomes(outcomes, "known outcomes of a spec"))
    units = dict(units or {})

    dims = [d for d in _ordered_keys(bad, good) if good.get(d, MISSING) != bad.get(d, MISSING)]
    # A dimension set in one spec only is unset (absent) in the other; the findings show that as None.
    raw = {d: (good.get(d, MISSING), bad.get(d, MISSING)) for d in dims}
    findings = [DimensionFinding(d, jsonable(raw[d][0]), jsonable(raw[d][1]), None, None) for d in dims]
    counter = _Counter()
    if not dims:
        return IsolateResult(
            good,
            bad,
            [],
            [],
            "the passing and failing specs are the same: nothing to isolate",
            status="no_difference",
        )

    # Phase 1: both specs and every one-dimension change, all independent.
    fixed_specs: list[tuple[str, dict[str, Any]]] = [("good", good), ("bad", bad)]
    for f in findings:
        fixed_specs.append((f"raise:{f.dimension}", _with(good, f.dimension, raw[f.dimension][1])))
        fixed_specs.append((f"lower:{f.dimension}", _with(bad, f.dimension, raw[f.dimension][0])))
    fixed = _FixedProbes(fixed_specs, repeat, max_skip_retries, known_map, first_ones=2)

    def ends_wrong() -> bool:
        if not (fixed.settled("good") and fixed.settled("bad")):
            return False
        return fixed.outcomes["good"].summary != "good" or fixed.outcomes["bad"].summary != "bad"

    _drive([fixed], oracle, parallel, counter, progress, stop=ends_wrong)
    good_lev, bad_lev = fixed.outcomes["good"], fixed.outcomes["bad"]
    result = IsolateResult(
        good,
        bad,
        findings,
        [],
        "",
        good_outcomes=list(good_lev.outcomes),
        bad_outcomes=list(bad_lev.outcomes),
    )
    ends = _check_ends(good_lev, bad_lev)
    if ends is not None:
        result.status, result.message = ends
        result.rounds, result.probes = counter.rounds, counter.probes
        return result

    for f in findings:
        raised, lowered = fixed.outcomes[f"raise:{f.dimension}"], fixed.outcomes[f"lower:{f.dimension}"]
        f.raised_outcomes, f.lowered_outcomes = list(raised.outcomes), list(lowered.outcomes)
        f.probes = fixed.dispatched[f"raise:{f.dimension}"] + fixed.dispatched[f"lower:{f.dimension}"]
        f.sufficient, note_s = _judge_change(raised, fails_means=True, what="raised alone")
        f.necessary, note_n = _judge_change(lowered, fails_means=False, what="lowered alone")
        f.note = " and ".join(note for note in (note_s, note_n) if note)

    # Phase 2: the threshold of every sufficient (else necessary) numeric dimension, side by side.
    searches: list[_ValueSearch] = []
    for f in findings:
        grid = value_grid(*raw[f.dimension])
        if f.sufficient:
            base, ends_known = good, (good_lev.outcomes, f.raised_outcomes)
            f.threshold_base = "good"
        elif f.necessary:
            base, ends_known = bad, (f.lowered_outcomes, bad_lev.outcomes)
            f.threshold_base = "bad"
        else:
            continue
        if grid is None:
            # Two values only (a string, a flag): the failing one is the threshold.
            f.threshold, f.last_passing = f.high_value, f.low_value
            continue
        values, f.exact = grid
        searches.append(
            _ValueSearch(
                f,
                base,
                values,
                (list(ends_known[0]), list(ends_known[1])),
                repeat=repeat,
                confirm=confirm,
                max_skip_retries=max_skip_retries,
                known=known_map,
            )
        )
    if searches:
        if progress:
            progress("searching the threshold of " + ", ".join(f"`{s.finding.dimension}`" for s in searches))
        _drive(searches, oracle, parallel, counter, progress)
        for s in searches:
            s.conclude()

    result.drivers = [f.dimension for f in findings if f.sufficient]
    result.necessary = [f.dimension for f in findings if f.necessary]
    result.irrelevant = [f.dimension for f in findings if f.sufficient is False and f.necessary is False]
    result.undecided = [f.dimension for f in findings if f.sufficient is None or f.necessary is None]
    result.message = finding_message(findings, result, units)
    result.status = "isolated" if (result.drivers or result.necessary) else "inconclusive"
    result.rounds, result.probes = counter.rounds, counter.probes
    if progress:
        progress(result.message)
    return result


def _ordered_keys(first: Mapping[str, Any], second: Mapping[str, Any]) -> list[str]:
    keys = list(first)
    keys.extend(k for k in second if k not in first)
    return keys


def _check_ends(good: LevelOutcomes, bad: LevelOutcomes) -> tuple[IsolateStatus, str] | None:
    """A reason to stop when the two starting specs do not pass and fail as they should."""
    g, b = good.summary, bad.summary
    if g == "good" and b == "bad":
        return None
    if g == "skip" or b == "skip":
        which = "passing" if g == "skip" else "failing"
        return (
            "inconclusive",
            f"the {which} spec could not be tested (every probe was skipped): nothing to isolate",
        )
    if g == "flaky" or b == "flaky":
        lev, which = (good, "passing") if g == "flaky" else (bad, "failing")
        rate = lev.pass_rate or 0.0
        return "flaky", (
            f"the {which} spec is flaky (pass rate {round(rate * 100)}% over {lev.tested} probes): "
            "isolation needs a failure that reproduces"
        )
    if g == "bad":
        return "good_fails", "the passing spec fails here too: nothing to isolate"
    return "bad_passes", "the failing spec passes here: the failure did not reproduce, nothing to isolate"


def _judge_change(lev: LevelOutcomes, *, fails_means: bool, what: str) -> tuple[bool | None, str]:
    """Sufficient (fails_means=True) or necessary (False) from the probes of a one-dimension change."""
    s = lev.summary
    if s == "bad":
        return fails_means, ""
    if s == "good":
        return not fails_means, ""
    if s == "flaky":
        return None, f"flaky when {what} (pass rate {round((lev.pass_rate or 0.0) * 100)}%)"
    return None, f"could not be tested when {what}"


class _Counter:
    def __init__(self) -> None:
        self.rounds = 0
        self.probes = 0


def _drive(
    searches: Sequence[_FixedProbes | _ValueSearch],
    oracle: SpecOracle,
    parallel: int,
    counter: _Counter,
    progress: Progress,
    stop: Callable[[], bool] | None = None,
) -> None:
    """Run several searches in lock step: each round shares `parallel` slots among those still going,
    rotating who goes first so that no search waits for ever when there are fewer slots than searches."""
    live = list(searches)
    turn = 0
    while live:
        if stop is not None and stop():
            return
        order = live[turn % len(live) :] + live[: turn % len(live)]
        turn += 1
        shares = _split(parallel, len(order))
        plan: list[tuple[_FixedProbes | _ValueSearch, SpecRequest]] = []
        for search, share in zip(order, shares, strict=True):
            if share == 0:
                continue
            requests = search.propose(share)
            if not requests:
                live.remove(search)
                continue
            plan.extend((search, req) for req in requests)
        if not plan:
            continue
        batch = [spec for _search, (_tag, spec, count) in plan for _ in range(count)]
        counter.rounds += 1
        if progress:
            progress(
                f"round {counter.rounds}: probing {len(plan)} spec{'s' if len(plan) != 1 else ''} ({len(batch)} probes)"
            )
        answers = call_oracle(oracle, batch)
        counter.probes += len(batch)
        pos = 0
        for search, (tag, _spec, count) in plan:
            search.record(tag, answers[pos : pos + count])
            pos += count


__all__ = [
    "FLOAT_STEPS",
    "MISSING",
    "DimensionFinding",
    "IsolateResult",
    "IsolateStatus",
    "SpecOracle",
    "isolate",
    "spec_key",
    "value_grid",
]
