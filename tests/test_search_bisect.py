"""Bisect and sweep on synthetic verdict functions: bounds, skips, flakiness, confirmation, resume."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threshold_probe.errors import UserError
from threshold_probe.search import BisectResult, Outcome, bisect, sweep

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Recorder:
    """An oracle over a verdict function that keeps every batch it was asked."""

    def __init__(self, verdict: Callable[[int], Outcome]) -> None:
        self.verdict = verdict
        self.batches: list[list[int]] = []

    def __call__(self, batch: Sequence[int]) -> list[Outcome]:
        self.batches.append(list(batch))
        return [self.verdict(level) for level in batch]

    @property
    def probes(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def dispatched(self) -> list[int]:
        return [lvl for b in self.batches for lvl in b]


def monotone(threshold: int) -> Callable[[int], Outcome]:
    """Levels below `threshold` pass, the others fail."""
    return lambda level: "bad" if level >= threshold else "good"


def log_rounds(n: int, base: int) -> int:
    """ceil(log_base n) in exact integer arithmetic."""
    r, reach = 0, 1
    while reach < n:
        reach *= base
        r += 1
    return r


ladders = st.lists(st.integers(min_value=-50, max_value=1000), min_size=1, max_size=200, unique=True).map(sorted)


@FAST
@given(ladder=ladders, data=st.data())
def test_bisect_finds_the_exact_boundary_within_the_probe_bound(ladder: list[int], data: st.DataObject) -> None:
    n = len(ladder)
    cut = data.draw(st.integers(min_value=0, max_value=n), label="index of the first failing level")
    threshold = ladder[cut] if cut < n else ladder[-1] + 1
    oracle = Recorder(monotone(threshold))
    result = bisect(ladder, oracle, confirm=0)
    bound = math.ceil(math.log2(n)) + 2
    assert result.probes == oracle.probes <= bound
    assert all(len(b) == 1 for b in oracle.batches)  # parallel=1 probes one level at a time
    if cut == 0:
        assert (result.status, result.last_good, result.first_bad) == ("lowest_fails", None, ladder[0])
    elif cut == n:
        assert (result.status, result.last_good, result.first_bad) == ("highest_passes", ladder[-1], None)
    else:
        assert (result.status, result.last_good, result.first_bad) == ("found", ladder[cut - 1], ladder[cut])
    assert result.flaky_band is None


@FAST
@given(ladder=ladders, data=st.data(), confirm=st.integers(min_value=1, max_value=3))
def test_confirmation_costs_exactly_confirm_probes_per_boundary_level(
    ladder: list[int], data: st.DataObject, confirm: int
) -> None:
    n = len(ladder)
    cut = data.draw(st.integers(min_value=0, max_value=n))
    threshold = ladder[cut] if cut < n else ladder[-1] + 1
    result = bisect(ladder, Recorder(monotone(threshold)), confirm=confirm)
    assert result.search_probes <= math.ceil(math.log2(n)) + 2
    assert result.probes == result.search_probes + result.confirm_probes
    assert result.probes <= math.ceil(math.log2(n)) + 2 + 2 * confirm
    boundary = [x for x in (result.last_good, result.first_bad) if x is not None]
    assert result.confirm_probes == confirm * len(boundary)
    for level in boundary:
        assert len(result.levels[level].outcomes) == 1 + confirm
    assert result.status in ("found", "lowest_fails", "highest_passes")


@FAST
@given(ladder=ladders, data=st.data(), parallel=st.integers(min_value=2, max_value=9))
def test_parallel_bisect_stays_within_the_round_bound(ladder: list[int], data: st.DataObject, parallel: int) -> None:
    n = len(ladder)
    cut = data.draw(st.integers(min_value=0, max_value=n))
    threshold = ladder[cut] if cut < n else ladder[-1] + 1
    oracle = Recorder(monotone(threshold))
    result = bisect(ladder, oracle, parallel=parallel, confirm=0)
    assert result.rounds == len(oracle.batches) <= log_rounds(n, parallel + 1) + 1
    assert all(len(set(b)) <= parallel for b in oracle.batches)
    assert len(set(oracle.dispatched)) == len(oracle.dispatched)  # no level probed twice
    expected_first_bad = ladder[cut] if cut < n else None
    expected_last_good = ladder[cut - 1] if cut > 0 else None
    assert (result.last_good, result.first_bad) == (expected_last_good, expected_first_bad)
    # Both ends are verified in the first round.
    assert {ladder[0], ladder[-1]} <= set(oracle.batches[0])

    confirmed = bisect(ladder, Recorder(monotone(threshold)), parallel=parallel, confirm=1)
    assert confirmed.rounds <= log_rounds(n, parallel + 1) + 2
    assert (confirmed.last_good, confirmed.first_bad) == (expected_last_good, expected_first_bad)


def test_threshold_at_every_position_of_a_forty_level_ladder() -> None:
    ladder = list(range(1, 41))
    for threshold in range(1, 42):
        result = bisect(ladder, Recorder(monotone(threshold)))
        if threshold == 1:
            assert result.status == "lowest_fails"
            assert result.message == "the lowest level 1 already fails"
        elif threshold == 41:
            assert result.status == "highest_passes"
            assert result.message == "no level fails up to 40"
        else:
            assert result.status == "found"
            assert (result.last_good, result.first_bad) == (threshold - 1, threshold)
            assert result.message == f"level {threshold} is the first to fail"


def test_ends_are_probed_first_lowest_then_highest() -> None:
    oracle = Recorder(monotone(23))
    bisect(list(range(1, 41)), oracle, confirm=0)
    assert oracle.batches[:2] == [[1], [40]]
    parallel = Recorder(monotone(23))
    bisect(list(range(1, 41)), parallel, parallel=2, confirm=0)
    assert sorted(parallel.batches[0]) == [1, 40]


def test_lowest_failing_stops_without_searching() -> None:
    oracle = Recorder(monotone(-5))
    result = bisect(list(range(1, 101)), oracle, confirm=1)
    assert result.status == "lowest_fails"
    assert oracle.dispatched == [1, 1]  # the end, then its confirmation


# -- skips ------------------------------------------------------------------------------------------


@FAST
@given(
    ladder=ladders,
    data=st.data(),
    parallel=st.integers(min_value=1, max_value=5),
    retries=st.integers(min_value=0, max_value=3),
)
def test_a_skipped_level_is_never_reported_as_the_threshold(
    ladder: list[int], data: st.DataObject, parallel: int, retries: int
) -> None:
    n = len(ladder)
    cut = data.draw(st.integers(min_value=0, max_value=n))
    threshold = ladder[cut] if cut < n else ladder[-1] + 1
    always_skipped = set(data.draw(st.lists(st.sampled_from(ladder), unique=True), label="always skipped"))
    result = bisect(
        ladder,
        Recorder(lambda lvl: "skip" if lvl in always_skipped else monotone(threshold)(lvl)),
        parallel=parallel,
        max_skip_retries=retries,
    )
    assert result.last_good not in always_skipped or result.last_good is None
    assert result.first_bad not in always_skipped or result.first_bad is None
    testable = [lvl for lvl in ladder if lvl not in always_skipped]
    if not testable:
        assert result.status == "inconclusive"
        assert (result.last_good, result.first_bad) == (None, None)
        return
    good = [lvl for lvl in testable if lvl < threshold]
    bad = [lvl for lvl in testable if lvl >= threshold]
    assert result.last_good == (good[-1] if good else None)
    assert result.first_bad == (bad[0] if bad else None)
    if good and bad:
        between = [lvl for lvl in ladder if good[-1] < lvl < bad[0]]
        assert result.status == ("inconclusive" if between else "found")
        if between:
            assert f"level {good[-1]} passes, level {bad[0]} fails" in result.message
    else:
        assert result.status == ("lowest_fails" if bad else "highest_passes")
    for level in always_skipped & set(result.levels):
        # Retried at most max_skip_retries times after the first try.
        assert len(result.levels[level].outcomes) <= 1 + retries


@FAST
@given(
    ladder=ladders,
    data=st.data(),
    parallel=st.integers(min_value=1, max_value=5),
    repeat=st.integers(min_value=1, max_value=3),
    seed=st.integers(min_value=0, max_value=2**32),
    skip_rate=st.floats(min_value=0.0, max_value=0.9),
)
def test_with_transient_skips_any_reported_boundary_is_true_and_judged(
    ladder: list[int], data: st.DataObject, parallel: int, repeat: int, seed: int, skip_rate: float
) -> None:
    n = len(ladder)
    cut = data.draw(st.integers(min_value=0, max_value=n))
    threshold = ladder[cut] if cut < n else ladder[-1] + 1
    rng = random.Random(seed)
    oracle = Recorder(lambda lvl: "skip" if rng.random() < skip_rate else monotone(threshold)(lvl))
    result = bisect(ladder, oracle, parallel=parallel, repeat=repeat)
    assert result.status != "flaky"  # skips never make a clean ladder look flaky
    if result.last_good is not None:
        assert result.last_good < threshold and result.levels[result.last_good].tested > 0
    if result.first_bad is not None:
        assert result.first_bad >= threshold and result.levels[result.first_bad].tested > 0
    if result.status == "found":
        assert (result.last_good, result.first_bad) == (ladder[cut - 1], ladder[cut])
    for lev in result.levels.values():
        assert lev.skipped <= 3 * (repeat + 1)  # the skip budget of a level, confirmation included
    assert all(len(set(b)) <= parallel for b in oracle.batches)


def test_skip_moves_to_a_neighbour_like_git_bisect() -> None:
    # Level 20 is the midpoint of 1..40 after the ends: a skip there moves the search next door.
    oracle = Recorder(lambda lvl: "skip" if lvl == 20 else monotone(30)(lvl))
    result = bisect(list(range(1, 41)), oracle, confirm=0)
    assert oracle.dispatched[:4] == [1, 40, 20, 19]  # ties go to the lower neighbour
    assert (result.status, result.last_good, result.first_bad) == ("found", 29, 30)
    assert oracle.dispatched.count(20) == 1  # never needed again, so never retried


def test_everything_between_skipped_is_inconclusive_with_the_range() -> None:
    oracle = Recorder(lambda lvl: "skip" if 21 <= lvl <= 23 else monotone(22)(lvl))
    result = bisect(list(range(1, 41)), oracle, max_skip_retries=2)
    assert result.status == "inconclusive"
    assert (result.last_good, result.first_bad) == (20, 24)
    assert result.message.startswith("undecided between levels 20 and 24: ")
    assert "levels 21 to 23 could not be tested" in result.message
    for level in (21, 22, 23):
        assert result.levels[level].outcomes == ["skip"] * 3


def test_transient_skips_are_retried_and_the_threshold_still_found() -> None:
    rng = random.Random(7)
    result = bisect(
        list(range(1, 65)),
        Recorder(lambda lvl: "skip" if rng.random() < 0.3 else monotone(37)(lvl)),
        max_skip_retries=5,
    )
    assert (result.status, result.last_good, result.first_bad) == ("found", 36, 37)


def test_a_skipped_lowest_level_moves_the_end_inwards() -> None:
    oracle = Recorder(lambda lvl: "skip" if lvl == 1 else "bad")
    result = bisect(list(range(1, 11)), oracle, confirm=0, max_skip_retries=1)
    assert oracle.dispatched[:2] == [1, 2]
    assert result.status == "lowest_fails"
    assert result.first_bad == 2
    assert result.message == "the lowest testable level 2 already fails (level 1 could not be tested)"


# -- flakiness --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_a_workload_failing_at_random_is_reported_flaky(seed: int) -> None:
    rng = random.Random(seed)
    oracle = Recorder(lambda _lvl: "bad" if rng.random() < 0.5 else "good")
    result = bisect(list(range(1, 41)), oracle, repeat=5, confirm=2)
    assert result.status == "flaky", result.message
    assert result.flaky_band is not None
    assert "flaky" in result.message


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_flaky_band_between_clean_levels_is_narrowed_on_both_edges(parallel: int) -> None:
    rng = random.Random(3)

    def verdict(level: int) -> Outcome:
        if level < 20:
            return "good"
        if level > 26:
            return "bad"
        return "bad" if rng.random() < 0.5 else "good"

    result = bisect(list(range(1, 61)), Recorder(verdict), repeat=10, parallel=parallel)
    assert result.status == "flaky"
    assert result.flaky_band == (20, 26)
    assert (result.last_good, result.first_bad) == (19, 27)
    assert result.message.startswith("levels 20 to 26 are flaky")
    for level in (19, 27):
        assert not result.levels[level].flaky


def test_confirmation_that_contradicts_turns_the_result_flaky() -> None:
    calls: dict[int, int] = {}

    def verdict(level: int) -> Outcome:
        calls[level] = calls.get(level, 0) + 1
        if level == 23:  # fails the first time, passes on the confirmation
            return "bad" if calls[level] == 1 else "good"
        return monotone(23)(level)

    result = bisect(list(range(1, 41)), Recorder(verdict), confirm=1)
    assert result.status == "flaky"
    assert result.flaky_band == (23, 23)
    assert result.levels[23].pass_rate == 0.5
    assert (result.last_good, result.first_bad) == (22, 24)
    assert result.message == (
        "level 23 is flaky (pass rate 50% over 2 probes); level 22 passes every time and level 24 fails every time"
    )


def test_lowest_failing_but_highest_passing_is_not_a_threshold() -> None:
    result = bisect(list(range(1, 41)), Recorder(lambda lvl: "bad" if lvl == 1 else "good"), parallel=2)
    assert result.status == "flaky"
    assert "does not grow with the ladder" in result.message


# -- resume -----------------------------------------------------------------------------------------


def _replay_prefixes(ladder: list[int], verdict: Callable[[int], Outcome], **kwargs: Any) -> None:
    """Cut a finished run after every probe and resume from the outcomes journaled so far."""
    full = Recorder(verdict)
    reference = bisect(ladder, full, **kwargs)
    sequence = [(lvl, verdict(lvl)) for lvl in full.dispatched]
    round_ends = {sum(len(b) for b in full.batches[:k]) for k in range(len(full.batches) + 1)}
    repeat, confirm = kwargs.get("repeat", 1), kwargs.get("confirm", 1)
    for cut in range(len(sequence) + 1):
        known: dict[int, list[Outcome]] = {}
        for lvl, outcome in sequence[:cut]:
            known.setdefault(lvl, []).append(outcome)
        resumed_oracle = Recorder(verdict)
        resumed = bisect(ladder, resumed_oracle, known=known, **kwargs)
        assert resumed.known_outcomes == cut
        assert resumed.probes == len(resumed_oracle.dispatched)
        assert (resumed.status, resumed.last_good, resumed.first_bad) == (
            reference.status,
            reference.last_good,
            reference.first_bad,
        )
        # No level ever gets more verdicts than it needs, so nothing journaled was dispatched again.
        for lvl, lev in resumed.levels.items():
            need = repeat + (confirm if lvl in (resumed.last_good, resumed.first_bad) else 0)
            assert lev.tested <= need, (cut, lvl, lev.outcomes)
        if cut in round_ends:
            # Cut between rounds, the resumed run makes exactly the interrupted run's remaining choices.
            assert resumed_oracle.dispatched == full.dispatched[cut:]
            assert _answer(resumed) == _answer(reference)


def _answer(result: BisectResult) -> tuple[object, ...]:
    return (
        result.status,
        result.last_good,
        result.first_bad,
        result.flaky_band,
        {lvl: lev.outcomes for lvl, lev in result.levels.items()},
    )


def test_known_outcomes_are_never_probed_again() -> None:
    _replay_prefixes(list(range(1, 41)), monotone(23))
    _replay_prefixes(list(range(1, 41)), monotone(23), parallel=3, repeat=2)
    # Deterministic skips, so the replay meets the same skips.
    _replay_prefixes(list(range(1, 41)), lambda lvl: "skip" if lvl in (20, 21, 30) else monotone(25)(lvl))


def test_a_complete_journal_needs_no_probe_at_all() -> None:
    first = Recorder(monotone(11))
    reference = bisect(list(range(1, 31)), first, repeat=2)
    known: dict[int, list[Outcome]] = {lvl: list(lev.outcomes) for lvl, lev in reference.levels.items()}

    def refuse(_batch: Sequence[int]) -> list[Outcome]:
        raise AssertionError("a journaled probe was dispatched again")

    again = bisect(list(range(1, 31)), refuse, repeat=2, known=known)
    assert again.probes == 0 and again.rounds == 0
    assert again.known_outcomes == reference.probes
    assert _answer(again) == _answer(reference)


def test_known_outcomes_outside_the_range_are_ignored_and_inside_narrow_the_search() -> None:
    oracle = Recorder(monotone(23))
    result = bisect(list(range(1, 41)), oracle, known={15: ["good"], 30: ["bad"], 99: ["bad"]}, confirm=0)
    assert (result.status, result.last_good, result.first_bad) == ("found", 22, 23)
    assert 99 not in result.levels
    assert all(15 < lvl < 30 for lvl in oracle.dispatched)


# -- bad input --------------------------------------------------------------------------------------


def test_an_empty_range_is_a_user_error() -> None:
    with pytest.raises(UserError, match="empty"):
        bisect([], Recorder(monotone(1)))
    with pytest.raises(UserError, match="empty"):
        sweep([], Recorder(monotone(1)))


@pytest.mark.parametrize(("name", "value"), [("parallel", 0), ("repeat", 0), ("confirm", -1), ("max_skip_retries", -1)])
def test_settings_below_their_minimum_are_user_errors(name: str, value: int) -> None:
    settings: dict[str, Any] = {name: value}
    with pytest.raises(UserError, match=name):
        bisect([1, 2, 3], Recorder(monotone(2)), **settings)


def test_an_oracle_that_answers_the_wrong_number_of_items_is_caught() -> None:
    with pytest.raises(ValueError, match="returned 0 outcomes for a batch of 1"):
        bisect([1, 2, 3], lambda _b: [])
    with pytest.raises(ValueError, match="'pass' is not one of"):
        bisect([1, 2, 3], lambda b: ["pass"] * len(b))  # type: ignore[list-item]


def test_progress_reports_each_round_and_the_result() -> None:
    lines: list[str] = []
    bisect(list(range(1, 9)), Recorder(monotone(5)), progress=lines.append, confirm=0)
    assert lines[0] == "round 1: probing level 1"
    assert lines[-1] == "level 5 is the first to fail"
    assert any("level 4 passes, level 5 fails, 0 levels left between" in line for line in lines)


# -- sweep ------------------------------------------------------------------------------------------


@FAST
@given(ladder=ladders, data=st.data(), batch=st.integers(min_value=1, max_value=50))
def test_sweep_probes_every_level_once_and_finds_the_boundary(
    ladder: list[int], data: st.DataObject, batch: int
) -> None:
    n = len(ladder)
    cut = data.draw(st.integers(min_value=0, max_value=n))
    threshold = ladder[cut] if cut < n else ladder[-1] + 1
    oracle = Recorder(monotone(threshold))
    result = sweep(ladder, oracle, batch=batch)
    assert oracle.dispatched == ladder
    assert result.rounds == math.ceil(n / batch)
    assert result.first_bad == (ladder[cut] if cut < n else None)
    assert result.last_good == (ladder[cut - 1] if cut > 0 else None)
    assert result.status == ("lowest_fails" if cut == 0 else "highest_passes" if cut == n else "found")


def test_sweep_repeats_retries_skips_and_uses_known() -> None:
    tries: dict[int, int] = {}

    def verdict(level: int) -> Outcome:
        tries[level] = tries.get(level, 0) + 1
        if level == 4 and tries[level] == 1:
            return "skip"
        return monotone(6)(level)

    oracle = Recorder(verdict)
    result = sweep(range(1, 9), oracle, repeat=2, batch=3, known={1: ["good", "good"], 2: ["good"]})
    assert oracle.dispatched.count(1) == 0
    assert oracle.dispatched.count(2) == 1
    assert result.levels[4].outcomes == ["skip", "good", "good"]
    assert (result.status, result.last_good, result.first_bad) == ("found", 5, 6)
    assert result.known_outcomes == 3


def test_sweep_reports_a_flaky_band_with_pass_rates() -> None:
    pattern: dict[int, list[Outcome]] = {
        3: ["good", "bad", "good", "good"],
        4: ["bad", "good", "bad", "bad"],
    }
    counters: dict[int, int] = {}

    def verdict(level: int) -> Outcome:
        if level in pattern:
            counters[level] = counters.get(level, 0) + 1
            return pattern[level][counters[level] - 1]
        return monotone(5)(level)

    result = sweep(range(1, 8), Recorder(verdict), repeat=4, batch=7)
    assert result.status == "flaky"
    assert result.flaky_band == (3, 4)
    assert result.levels[3].pass_rate == 0.75 and result.levels[4].pass_rate == 0.25
    assert (result.last_good, result.first_bad) == (2, 5)
    assert result.message == (
        "levels 3 to 4 are flaky (pass rate 25% to 75% where mixed); "
        "level 2 passes every time and level 5 fails every time"
    )


def test_results_are_plain_json() -> None:
    import json

    b = bisect(list(range(1, 41)), Recorder(monotone(23)), repeat=2)
    decoded = json.loads(json.dumps(b.to_dict()))
    assert (decoded["status"], decoded["last_good"], decoded["first_bad"]) == ("found", 22, 23)
    assert decoded["levels"][0] == {
        "level": 1,
        "outcomes": ["good", "good"],
        "good": 2,
        "bad": 0,
        "skip": 0,
        "pass_rate": 1.0,
        "flaky": False,
        "summary": "good",
    }
    s = sweep(range(1, 6), Recorder(monotone(3)))
    assert json.loads(json.dumps(s.to_dict()))["first_bad"] == 3


def test_a_thousand_level_ladder_takes_at_most_log2_plus_two_search_probes() -> None:
    ladder = list(range(1, 1001))
    bound = math.ceil(math.log2(1000)) + 2  # 12
    worst = 0
    for cut in range(0, 1001):
        threshold = ladder[cut] if cut < 1000 else 1001
        oracle = Recorder(monotone(threshold))
        result = bisect(ladder, oracle, confirm=0)
        assert result.search_probes is not None and result.search_probes == oracle.probes <= bound
        if 0 < cut < 1000:
            assert (result.last_good, result.first_bad) == (ladder[cut - 1], ladder[cut])
        worst = max(worst, oracle.probes)
    assert worst <= bound
