"""Isolation on synthetic spec oracles: drivers, thresholds, necessary and sufficient, batching, resume."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threshold_probe.errors import UserError
from threshold_probe.search import Outcome, isolate
from threshold_probe.search.isolate import spec_key

Spec = Mapping[str, Any]


class SpecRecorder:
    """A spec oracle over a verdict function that keeps every batch it was asked."""

    def __init__(self, verdict: Callable[[Spec], Outcome]) -> None:
        self.verdict = verdict
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, batch: Sequence[Spec]) -> list[Outcome]:
        self.batches.append([dict(s) for s in batch])
        return [self.verdict(s) for s in batch]

    @property
    def probes(self) -> int:
        return sum(len(b) for b in self.batches)


def level(i: int) -> dict[str, Any]:
    """A ladder where every dimension grows with the level, as in the default ladder."""
    return {"loc": 10 * i, "subprocess_calls": i, "nesting_depth": 1 + i, "memory_mb": 50 * i}


def fails_on_memory(spec: Spec) -> Outcome:
    return "bad" if spec["memory_mb"] >= 380 else "good"


def test_one_driving_dimension_is_named_with_its_exact_threshold() -> None:
    oracle = SpecRecorder(fails_on_memory)
    result = isolate(level(7), level(8), oracle, units={"memory_mb": "MB"})
    assert result.status == "isolated"
    assert result.drivers == ["memory_mb"]
    assert result.necessary == ["memory_mb"]
    assert result.irrelevant == ["loc", "subprocess_calls", "nesting_depth"]
    memory = next(f for f in result.findings if f.dimension == "memory_mb")
    assert (memory.low_value, memory.high_value) == (350, 400)
    assert (memory.sufficient, memory.necessary) == (True, True)
    assert (memory.threshold, memory.last_passing, memory.exact) == (380, 379, True)
    assert memory.threshold_base == "good"
    for f in result.findings:
        if f.dimension != "memory_mb":
            assert (f.sufficient, f.necessary, f.threshold) == (False, False, None)
    assert result.message == (
        "The failure follows `memory_mb` alone (threshold 380 MB); "
        "`loc`, `subprocess_calls` and `nesting_depth` do not matter."
    )
    # The threshold search holds everything else at the passing spec.
    for batch in oracle.batches[1 + 2 * 4 + 1 :]:
        for spec in batch:
            assert {k: v for k, v in spec.items() if k != "memory_mb"} == {
                k: v for k, v in level(7).items() if k != "memory_mb"
            }
    # Phase one costs 2 + 2D probes, the bisection of 51 values at most ceil(log2 51) more.
    assert result.probes == oracle.probes <= 2 + 2 * 4 + 6
    assert sum(f.probes for f in result.findings) + 2 == result.probes


def test_an_and_of_two_dimensions_is_necessary_but_not_sufficient() -> None:
    def verdict(spec: Spec) -> Outcome:
        return "bad" if spec["a"] >= 5 and spec["b"] >= 9 else "good"

    good = {"a": 3, "b": 6, "c": "x"}
    bad = {"a": 7, "b": 12, "c": "y"}
    result = isolate(good, bad, SpecRecorder(verdict))
    found = {f.dimension: f for f in result.findings}
    assert (found["a"].sufficient, found["a"].necessary) == (False, True)
    assert (found["b"].sufficient, found["b"].necessary) == (False, True)
    assert (found["c"].sufficient, found["c"].necessary) == (False, False)
    assert result.drivers == []
    assert result.necessary == ["a", "b"]
    # With the rest at the failing spec, each still has a threshold.
    assert (found["a"].threshold, found["a"].threshold_base) == (5, "bad")
    assert (found["b"].threshold, found["b"].threshold_base) == (9, "bad")
    assert found["c"].threshold is None
    assert result.message == (
        "No single dimension causes the failure: it needs `a` (threshold 5 with the rest at the failing spec) "
        "and `b` (threshold 9 with the rest at the failing spec) together; `c` does not matter."
    )


def test_an_or_of_two_dimensions_makes_each_sufficient_and_neither_necessary() -> None:
    def verdict(spec: Spec) -> Outcome:
        return "bad" if spec["a"] >= 5 or spec["b"] >= 9 else "good"

    result = isolate({"a": 1, "b": 1}, {"a": 20, "b": 20}, SpecRecorder(verdict))
    found = {f.dimension: f for f in result.findings}
    assert (found["a"].sufficient, found["a"].necessary, found["a"].threshold) == (True, False, 5)
    assert (found["b"].sufficient, found["b"].necessary, found["b"].threshold) == (True, False, 9)
    assert result.drivers == ["a", "b"]
    assert result.message == "Each of `a` (threshold 5) and `b` (threshold 9) causes the failure on its own."


def test_a_float_dimension_is_searched_on_a_grid_and_a_string_is_not_bisected() -> None:
    def verdict(spec: Spec) -> Outcome:
        return "bad" if spec["ratio"] >= 2.3 or spec["mode"] == "spawn" else "good"

    good = {"ratio": 1.0, "mode": "fork"}
    result = isolate(good, {"ratio": 5.0, "mode": "spawn"}, SpecRecorder(verdict))
    found = {f.dimension: f for f in result.findings}
    assert (found["ratio"].threshold, found["ratio"].last_passing, found["ratio"].exact) == (2.25 + 0.25, 2.25, False)
    assert (found["mode"].threshold, found["mode"].last_passing) == ("spawn", "fork")
    assert (
        result.message
        == "Each of `ratio` (threshold about 2.5) and `mode` (at mode=spawn) causes the failure on its own."
    )


@settings(max_examples=150, deadline=None)
@given(
    low=st.integers(min_value=-100, max_value=100),
    span=st.integers(min_value=1, max_value=300),
    data=st.data(),
    parallel=st.integers(min_value=1, max_value=6),
)
def test_the_threshold_of_a_driver_is_exact_for_any_int_range(
    low: int, span: int, data: st.DataObject, parallel: int
) -> None:
    high = low + span
    threshold = data.draw(st.integers(min_value=low + 1, max_value=high))
    oracle = SpecRecorder(lambda s: "bad" if s["x"] >= threshold else "good")
    result = isolate({"x": low, "y": 0}, {"x": high, "y": 1}, oracle, parallel=parallel)
    assert result.drivers == ["x"]
    finding = result.findings[0]
    assert (finding.threshold, finding.last_passing) == (threshold, threshold - 1)
    assert all(len({spec_key(s) for s in b}) <= parallel for b in oracle.batches)


def test_independent_probes_go_out_together_on_a_parallel_cluster() -> None:
    oracle = SpecRecorder(fails_on_memory)
    result = isolate(level(1), level(12), oracle, parallel=16)
    # Round one: both specs and the 2 x 4 one-dimension changes, in a single batch.
    assert len(oracle.batches[0]) == 10
    assert len({spec_key(s) for s in oracle.batches[0]}) == 10
    assert result.findings[3].threshold == 380
    # 551 memory values: a 17-ary search needs ceil(log17 550) = 3 more rounds.
    assert result.rounds <= 1 + 3


def test_value_searches_of_several_dimensions_share_rounds() -> None:
    def verdict(spec: Spec) -> Outcome:
        return "bad" if spec["a"] >= 40 or spec["b"] >= 70 else "good"

    oracle = SpecRecorder(verdict)
    result = isolate({"a": 0, "b": 0}, {"a": 100, "b": 100}, oracle, parallel=2)
    assert [f.threshold for f in result.findings] == [40, 70]
    assert all(len(b) <= 2 for b in oracle.batches)
    # Phase one is 6 specs in 3 rounds of 2; then each round probes one value of `a` and one of `b`.
    first_search_round = oracle.batches[3]
    assert sorted(("a" if s["b"] == 0 else "b") for s in first_search_round) == ["a", "b"]
    assert result.rounds < 3 + 7 + 7  # side by side, not one search after the other


def test_one_probe_at_a_time_when_parallel_is_one() -> None:
    oracle = SpecRecorder(fails_on_memory)
    isolate(level(7), level(8), oracle)
    assert all(len(b) == 1 for b in oracle.batches)
    assert oracle.batches[0] == [level(7)] and oracle.batches[1] == [level(8)]


@pytest.mark.parametrize(
    ("verdict", "status", "message"),
    [
        (lambda s: "bad", "good_fails", "the passing spec fails here too: nothing to isolate"),
        (
            lambda s: "good",
            "bad_passes",
            "the failing spec passes here: the failure did not reproduce, nothing to isolate",
        ),
        (
            lambda s: "skip" if s["memory_mb"] == 350 else "bad",
            "inconclusive",
            "the passing spec could not be tested (every probe was skipped): nothing to isolate",
        ),
    ],
)
def test_wrong_ends_stop_isolation_early(verdict: Callable[[Spec], Outcome], status: str, message: str) -> None:
    oracle = SpecRecorder(verdict)
    result = isolate(level(7), level(8), oracle, max_skip_retries=1)
    assert (result.status, result.message) == (status, message)
    assert result.drivers == []
    # Sequentially, nothing beyond the two ends (and their retries) was probed.
    assert all(s in (level(7), level(8)) for b in oracle.batches for s in b)


def test_identical_specs_have_nothing_to_isolate() -> None:
    result = isolate(level(3), level(3), SpecRecorder(fails_on_memory))
    assert result.status == "no_difference"
    assert result.probes == 0


def test_known_outcomes_are_not_dispatched_again() -> None:
    first = SpecRecorder(fails_on_memory)
    reference = isolate(level(7), level(8), first, repeat=2)
    journal = [(spec, [fails_on_memory(spec)]) for batch in first.batches for spec in batch]

    def refuse(_batch: Sequence[Spec]) -> list[Outcome]:
        raise AssertionError("a journaled spec was dispatched again")

    again = isolate(level(7), level(8), refuse, repeat=2, known=journal)
    assert again.probes == 0
    memory = again.findings[3]
    assert memory.tried == reference.findings[3].tried
    assert all(len(outcomes) == 2 for _value, outcomes in memory.tried)  # nothing counted twice
    assert (memory.tried[0][0], memory.tried[-1][0]) == (350, 400)
    assert again.message == reference.message
    assert [f.threshold for f in again.findings] == [f.threshold for f in reference.findings]

    # Half a journal: only the rest goes out.
    half = SpecRecorder(fails_on_memory)
    resumed = isolate(level(7), level(8), half, repeat=2, known=journal[: len(journal) // 2])
    assert resumed.probes == half.probes == len(journal) - len(journal) // 2
    assert resumed.message == reference.message


def test_a_flaky_one_dimension_probe_leaves_that_dimension_undecided() -> None:
    calls = [0]

    def verdict(spec: Spec) -> Outcome:
        if spec["memory_mb"] >= 380:
            return "bad"
        if spec["loc"] == 80 and spec["subprocess_calls"] == 7:  # loc raised alone: fails every other time
            calls[0] += 1
            return "bad" if calls[0] % 2 else "good"
        return "good"

    result = isolate(level(7), level(8), SpecRecorder(verdict), repeat=6)
    loc = next(f for f in result.findings if f.dimension == "loc")
    assert loc.sufficient is None and loc.necessary is False
    assert "loc" in result.undecided
    assert result.drivers == ["memory_mb"]
    assert result.message == (
        "The failure follows `memory_mb` alone (threshold 380); `subprocess_calls` and `nesting_depth` "
        "do not matter; `loc` was not decided: flaky when raised alone (pass rate 50%)."
    )


def test_a_driver_whose_lowering_could_not_be_tested_is_not_said_to_survive_it() -> None:
    """Memory alone fails; the bad spec with memory lowered is never judged (every probe skipped).
    The sentence must not claim that lowering memory "does not remove" the failure."""

    def verdict(spec: Spec) -> Outcome:
        if spec["memory_mb"] < 380 and spec["loc"] == 80:
            return "skip"
        return fails_on_memory(spec)

    result = isolate(level(7), level(8), SpecRecorder(verdict))
    memory = next(f for f in result.findings if f.dimension == "memory_mb")
    assert (memory.sufficient, memory.necessary) == (True, None)
    assert "does not remove it" not in result.message
    assert result.message.startswith("`memory_mb` alone is enough to cause the failure (threshold 380);")
    assert "`memory_mb` was not decided: could not be tested when lowered alone" in result.message


def test_skipped_probes_are_retried_within_the_budget() -> None:
    tries: dict[str, int] = {}

    def verdict(spec: Spec) -> Outcome:
        key = spec_key(spec)
        tries[key] = tries.get(key, 0) + 1
        if tries[key] == 1:
            return "skip"  # every spec fails to dispatch once
        return fails_on_memory(spec)

    result = isolate(level(7), level(8), SpecRecorder(verdict), parallel=4)
    assert result.drivers == ["memory_mb"]
    assert result.findings[3].threshold == 380


def test_bad_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="parallel"):
        isolate(level(1), level(2), SpecRecorder(fails_on_memory), parallel=0)


def test_a_dimension_set_in_one_spec_only_is_probed_by_adding_and_removing_it() -> None:
    oracle = SpecRecorder(lambda s: "bad" if s.get("use_threads") else "good")
    result = isolate({"loc": 10}, {"loc": 20, "use_threads": True}, oracle)
    threads = next(f for f in result.findings if f.dimension == "use_threads")
    assert (threads.low_value, threads.high_value) == (None, True)
    assert (threads.sufficient, threads.necessary, threads.threshold) == (True, True, True)
    assert {"loc": 10, "use_threads": True} in [s for b in oracle.batches for s in b]  # added
    assert {"loc": 20} in [s for b in oracle.batches for s in b]  # removed
    assert result.message == "The failure follows `use_threads` alone (at use_threads=True); `loc` does not matter."


def test_results_are_plain_json() -> None:
    import dataclasses
    import json

    result = isolate(level(7), level(8), SpecRecorder(fails_on_memory))
    assert json.loads(json.dumps(result.to_dict()))["drivers"] == ["memory_mb"]
    for finding in result.findings:
        json.dumps(dataclasses.asdict(finding))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), parallel=st.integers(min_value=1, max_value=8))
def test_sufficient_necessary_and_thresholds_are_exact_for_any_monotone_formula(
    data: st.DataObject, parallel: int
) -> None:
    # The failure is a monotone formula in DNF: it happens when, for some clause, every dimension of the
    # clause has reached its threshold. The good spec sits below every threshold, the bad above all.
    dims = [f"d{i}" for i in range(data.draw(st.integers(min_value=1, max_value=4), label="dimensions"))]
    low = {d: data.draw(st.integers(min_value=0, max_value=50), label=f"{d} low") for d in dims}
    high = {d: low[d] + data.draw(st.integers(min_value=1, max_value=60), label=f"{d} span") for d in dims}
    cut = {d: data.draw(st.integers(min_value=low[d] + 1, max_value=high[d]), label=f"{d} threshold") for d in dims}
    clauses = data.draw(
        st.lists(st.frozensets(st.sampled_from(dims), min_size=1), min_size=1, max_size=4), label="clauses"
    )

    def verdict(spec: Spec) -> Outcome:
        fails = any(all(spec[d] >= cut[d] for d in clause) for clause in clauses)
        return "bad" if fails else "good"

    oracle = SpecRecorder(verdict)
    result = isolate(low, high, oracle, parallel=parallel)
    assert result.status == "isolated" or not (result.drivers or result.necessary)
    for f in result.findings:
        d = f.dimension
        assert f.sufficient == any(clause == {d} for clause in clauses)
        assert f.necessary == all(d in clause for clause in clauses)
        if f.sufficient or f.necessary:
            assert (f.threshold, f.last_passing) == (cut[d], cut[d] - 1)
            assert f.threshold_base == ("good" if f.sufficient else "bad")
        else:
            assert f.threshold is None
    assert all(len({spec_key(s) for s in b}) <= parallel for b in oracle.batches)


def test_a_billion_values_are_searched_without_listing_them() -> None:
    # Under a real 1 GiB address-space limit: listing 10**9 ints would need tens of GiB.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from threshold_probe.search import bisect, isolate
        r = isolate({"payload_kb": 0, "loc": 1}, {"payload_kb": 10**9, "loc": 2},
                    lambda b: ["bad" if s["payload_kb"] >= 765432101 else "good" for s in b], parallel=3)
        print(r.findings[0].threshold, r.probes)
        b = bisect(range(10**9, 0, -1), lambda b: ["bad" if x >= 123457 else "good" for x in b], confirm=0)
        print(b.first_bad, b.probes)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    threshold, probes, first_bad, bisect_probes = done.stdout.split()
    assert (threshold, first_bad) == ("765432101", "123457")
    assert int(probes) <= 2 + 2 * 2 + 30 + 30  # both specs, two changes each, ceil(log2 1e9) twice
    assert int(bisect_probes) <= 30 + 2
