"""Shared vocabulary of the search strategies: outcomes, oracles, per-level tallies and the verdict
that turns a set of probed levels into a threshold (or a flaky band, or "could not tell").

A search never talks to a cluster. It asks an *oracle* for the outcome of a batch of levels and gets
one outcome per requested item back:

- ``"good"``: the probe passed;
- ``"bad"``: it failed with the failure being hunted;
- ``"skip"``: it could not be judged, either infrastructure trouble or, under ``--match``, a failure
  other than the one hunted (the same meaning as ``git bisect skip``). A skip is never a failure.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from threshold_probe.errors import UserError

Outcome = Literal["good", "bad", "skip"]
"""What one probe of one level said."""

Summary = Literal["good", "bad", "skip", "flaky"]
"""What all probes of one level say together."""

Status = Literal["found", "lowest_fails", "highest_passes", "flaky", "inconclusive"]
"""How a sweep or bisect ended."""

Oracle = Callable[[Sequence[int]], list[Outcome]]
"""Probes a batch of level numbers (duplicates mean repeats) and returns one outcome per item, aligned."""

Progress = Callable[[str], None] | None
"""Receives one human-readable line per step of a search, or is None."""

OUTCOMES: frozenset[str] = frozenset(get_args(Outcome))


def fold(outcomes: Iterable[Outcome]) -> Summary:
    """What probes of one level say together: good or bad when every judged probe agrees, flaky
    when they disagree, skip when none was judged. Every report and search folds with this."""
    seen = set(outcomes)
    if "good" in seen and "bad" in seen:
        return "flaky"
    if "good" in seen:
        return "good"
    if "bad" in seen:
        return "bad"
    return "skip"


@dataclass
class LevelOutcomes:
    """Every outcome seen for one level, and what they add up to."""

    level: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def good(self) -> int:
        """Number of passing probes."""
        return self.outcomes.count("good")

    @property
    def bad(self) -> int:
        """Number of probes that failed with the hunted failure."""
        return self.outcomes.count("bad")

    @property
    def skipped(self) -> int:
        """Number of probes that could not be judged."""
        return self.outcomes.count("skip")

    @property
    def tested(self) -> int:
        """Number of probes that gave a verdict (good or bad)."""
        return self.good + self.bad

    @property
    def pass_rate(self) -> float | None:
        """good / (good + bad), or None when no probe gave a verdict."""
        tested = self.tested
        return self.good / tested if tested else None

    @property
    def flaky(self) -> bool:
        """True when the level both passed and failed."""
        return self.good > 0 and self.bad > 0

    @property
    def summary(self) -> Summary:
        """good or bad when every judged probe agrees, flaky when they disagree, skip when none judged."""
        return fold(self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view: level, outcomes, counts, pass_rate, flaky and summary."""
        return {
            "level": self.level,
            "outcomes": list(self.outcomes),
            "good": self.good,
            "bad": self.bad,
            "skip": self.skipped,
            "pass_rate": self.pass_rate,
            "flaky": self.flaky,
            "summary": self.summary,
        }


def check_outcomes(outcomes: Iterable[object], where: str) -> list[Outcome]:
    """Validate outcomes from an oracle or a journal; a wrong value is a programming error upstream."""
    checked: list[Outcome] = []
    for outcome in outcomes:
        if outcome not in OUTCOMES:
            raise ValueError(f"{where}: outcome {outcome!r} is not one of good, bad, skip")
        checked.append(outcome)  # type: ignore[arg-type]  # narrowed by the membership test above
    return checked


def call_oracle(oracle: Callable[[Sequence[Any]], list[Outcome]], batch: Sequence[Any]) -> list[Outcome]:
    """Ask the oracle about a batch and check that it answered once per item, with valid outcomes."""
    answer = list(oracle(batch))
    if len(answer) != len(batch):
        raise ValueError(f"the oracle returned {len(answer)} outcomes for a batch of {len(batch)}")
    return check_outcomes(answer, "oracle")


def check_positive(name: str, value: int, minimum: int) -> None:
    """Reject a search setting below its minimum with one clear line."""
    if value < minimum:
        raise UserError(f"{name} must be at least {minimum}, not {value}")


def ladder_order(levels: Sequence[int]) -> Sequence[int]:
    """The levels in ascending order without duplicates; an empty range is the user's mistake.

    A ``range`` stays a range, so a value search over a billion ints costs no memory.
    """
    if isinstance(levels, range):
        return _nonempty(levels if levels.step > 0 else levels[::-1])
    return _nonempty(sorted(set(levels)))


def _nonempty(order: Sequence[int]) -> Sequence[int]:
    if not order:
        raise UserError("there is no level to probe: the range of levels is empty")
    return order


def seed_known(order: Sequence[int], known: Mapping[int, Sequence[Outcome]] | None) -> dict[int, LevelOutcomes]:
    """Tallies pre-filled from outcomes already journaled; levels outside the range are ignored."""
    data: dict[int, LevelOutcomes] = {}
    if not known:
        return data
    for level, outcomes in known.items():
        if outcomes and _contains(order, level):
            data[level] = LevelOutcomes(level, check_outcomes(outcomes, f"known outcomes of level {level}"))
    return data


def describe_levels(levels: Sequence[int]) -> str:
    """'level 4', 'levels 4 and 7', 'levels 4, 7 and 9', 'levels 4 to 9' for a run of consecutive ints,
    or '12 levels from 4 to 40' for a long scattered list."""
    items = sorted(levels)
    if len(items) == 1:
        return f"level {items[0]}"
    if len(items) > 2 and items[-1] - items[0] == len(items) - 1:
        return f"levels {items[0]} to {items[-1]}"
    if len(items) > 6:  # a sentence, not an inventory; the full list is in the JSON
        return f"{len(items)} levels from {items[0]} to {items[-1]}"
    return "levels " + ", ".join(str(x) for x in items[:-1]) + f" and {items[-1]}"


def _percent(rate: float) -> str:
    return f"{round(rate * 100)}%"


@dataclass
class Judgement:
    """What a set of probed levels says about where the failure starts."""

    status: Status
    last_good: int | None
    first_bad: int | None
    flaky_band: tuple[int, int] | None
    message: str


def judge(order: Sequence[int], data: Mapping[int, LevelOutcomes]) -> Judgement:
    """Turn the tallies of a ladder into a status, boundary and one plain sentence.

    - ``found``: every judged level up to ``last_good`` passes, every one from ``first_bad`` fails,
      and no level lies between them.
    - ``lowest_fails`` / ``highest_passes``: the lowest (highest) level that could be judged already
      fails (still passes).
    - ``flaky``: some level both passed and failed, or a level fails below one that passes. The band
      runs from the first level that does not always pass to the last that does not always fail;
      ``last_good`` is then the highest level below the band that always passed and ``first_bad`` the
      lowest level above it that always failed (either may be None).
    - ``inconclusive``: nothing could be judged, or every level between the last pass and the first
      failure was skipped; ``last_good`` and ``first_bad`` then bracket the range the threshold is in.

    A level whose probes were all skipped is never reported as ``last_good`` or ``first_bad``.
    """
    # Walk the probed levels only: a value search may span millions of levels.
    in_range = [lvl for lvl in sorted(data) if _contains(order, lvl)]
    judged = [lvl for lvl in in_range if data[lvl].tested]
    skipped = [lvl for lvl in in_range if not data[lvl].tested]
    if not judged:
        if skipped:
            msg = f"no level could be judged: every probe of {describe_levels(skipped)} was skipped"
        else:
            msg = "no level was probed"
        return Judgement("inconclusive", None, None, None, msg)

    summary = {lvl: data[lvl].summary for lvl in judged}
    not_good = [lvl for lvl in judged if summary[lvl] != "good"]
    not_bad = [lvl for lvl in judged if summary[lvl] != "bad"]
    band_start = not_good[0] if not_good else None
    band_end = not_bad[-1] if not_bad else None
    any_flaky = any(s == "flaky" for s in summary.values())

    if not any_flaky and (band_start is None or band_end is None or band_end < band_start):
        last_good, first_bad = band_end, band_start
        if first_bad is None:
            assert last_good is not None
            untested = [lvl for lvl in skipped if lvl > last_good]
            msg = f"no level fails up to {last_good}"
            if untested:
                msg += f" ({describe_levels(untested)} could not be tested)"
            return Judgement("highest_passes", last_good, None, None, msg)
        if last_good is None:
            untested = [lvl for lvl in skipped if lvl < first_bad]
            if untested:
                msg = (
                    f"the lowest testable level {first_bad} already fails "
                    f"({describe_levels(untested)} could not be tested)"
                )
            else:
                msg = f"the lowest level {first_bad} already fails"
            return Judgement("lowest_fails", None, first_bad, None, msg)
        between = list(order[bisect_right(order, last_good) : bisect_left(order, first_bad)])
        if between:
            # Not a threshold: the first failure is any of the untested levels, or first_bad.
            msg = (
                f"undecided between levels {last_good} and {first_bad}: level {last_good} passes, "
                f"level {first_bad} fails, and {describe_levels(between)} could not be tested"
            )
            return Judgement("inconclusive", last_good, first_bad, None, msg)
        return Judgement("found", last_good, first_bad, None, f"level {first_bad} is the first to fail")

    # Not a clean threshold: a flaky level or an inversion (a failure below a pass).
    assert band_start is not None and band_end is not None
    lo, hi = min(band_start, band_end), max(band_start, band_end)
    below = [lvl for lvl in judged if lvl < lo]
    above = [lvl for lvl in judged if lvl > hi]
    last_good = below[-1] if below else None
    first_bad = above[0] if above else None
    flaky_levels = [lvl for lvl in judged if summary[lvl] == "flaky"]
    rates = [data[lvl].pass_rate for lvl in flaky_levels]
    known_rates = [r for r in rates if r is not None]
    if flaky_levels and len(flaky_levels) == len(judged):
        msg = (
            f"every level tested is flaky (pass rate {_rate_range(known_rates)}): "
            "the failure comes and goes and does not follow the ladder"
        )
    elif flaky_levels:
        if lo == hi:
            lev = data[lo]
            msg = f"level {lo} is flaky (pass rate {_percent(lev.pass_rate or 0.0)} over {lev.tested} probes)"
        else:
            msg = f"levels {lo} to {hi} are flaky (pass rate {_rate_range(known_rates)} where mixed)"
        msg += _band_edges(data, last_good, first_bad)
    else:
        msg = (
            f"the outcome does not grow with the ladder: level {band_start} fails "
            f"but level {band_end} passes; no clean threshold between levels {lo} and {hi}"
        )
        msg += _band_edges(data, last_good, first_bad)
    return Judgement("flaky", last_good, first_bad, (lo, hi), msg)


def _contains(order: Sequence[int], level: int) -> bool:
    i = bisect_left(order, level)
    return i < len(order) and order[i] == level


def _rate_range(rates: Sequence[float]) -> str:
    if not rates:
        return "unknown"
    low, high = min(rates), max(rates)
    return _percent(low) if _percent(low) == _percent(high) else f"{_percent(low)} to {_percent(high)}"


def _band_edges(data: Mapping[int, LevelOutcomes], last_good: int | None, first_bad: int | None) -> str:
    # "every time" only where there was more than one probe to agree.
    parts = []
    if last_good is not None:
        parts.append(f"level {last_good} passes" + (" every time" if data[last_good].tested > 1 else ""))
    if first_bad is not None:
        parts.append(f"level {first_bad} fails" + (" every time" if data[first_bad].tested > 1 else ""))
    return "; " + " and ".join(parts) if parts else ""
