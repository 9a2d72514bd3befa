"""Property tests of what `--resume` relies on: a search killed after any probe, replayed from its
journal, reaches the same answer and asks for no finished probe again.

A resumed run answers the n-th ask of a workload from the n-th finished probe of that workload in
its journal and dispatches only what the journal lacks (threshold_probe/probe.py). That is exact
only if the searches ask in the same order when given the same answers. These tests kill sweep,
bisect and isolate after any number of probes, even in the middle of a batch, resume them with
such a journal, and compare with an uninterrupted run.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from threshold_probe.search import Outcome, bisect, isolate, sweep
from threshold_probe.search.isolate import spec_key

K = TypeVar("K", bound=Hashable)


class Killed(Exception):
    """The probe process died (kill -9): nothing after this answer was journalled."""


class Journal:
    """Finished probes by (workload, attempt), as the SQLite journal holds them."""

    def __init__(self) -> None:
        self.done: dict[tuple[Hashable, int], Outcome] = {}
        self.dispatched: Counter[tuple[Hashable, int]] = Counter()


def oracle(
    truth: Callable[[Any, int], Outcome],
    key: Callable[[Any], Hashable],
    journal: Journal,
    kill_after: int | None = None,
) -> tuple[Callable[[Sequence[Any]], list[Outcome]], Counter[str]]:
    """An oracle that replays the journal first, dispatches the rest, and dies after `kill_after`
    dispatches; the counter says how many were replayed and dispatched."""
    asked: Counter[Hashable] = Counter()
    tally: Counter[str] = Counter()

    def answer(batch: Sequence[Any]) -> list[Outcome]:
        out: list[Outcome] = []
        for item in batch:
            k = key(item)
            asked[k] += 1
            slot = (k, asked[k])
            if slot in journal.done:
                tally["replayed"] += 1
                out.append(journal.done[slot])
                continue
            if kill_after is not None and tally["dispatched"] >= kill_after:
                raise Killed
            tally["dispatched"] += 1
            journal.dispatched[slot] += 1
            journal.done[slot] = truth(item, asked[k])
            out.append(journal.done[slot])
        return out

    return answer, tally


def noisy(seed: int, item: Hashable, attempt: int, rate: int) -> bool:
    """A deterministic coin for (item, attempt): the same probe always gives the same verdict."""
    digest = hashlib.sha256(f"{seed}:{item!r}:{attempt}".encode()).digest()
    return digest[0] < rate


def check_resume(
    run: Callable[[Callable[[Sequence[Any]], list[Outcome]]], Any],
    truth: Callable[[Any, int], Outcome],
    key: Callable[[Any], Hashable],
    cut: float,
) -> None:
    reference_journal = Journal()
    ask, full = oracle(truth, key, reference_journal)
    expected = run(ask)
    total = full["dispatched"]

    kill_after = int(cut * total)
    journal = Journal()
    ask, first = oracle(truth, key, journal, kill_after=kill_after)
    try:
        run(ask)
    except Killed:
        pass
    else:
        assert kill_after >= total
    ask, second = oracle(truth, key, journal)
    resumed = run(ask)

    assert _answer(resumed) == _answer(expected)
    assert first["dispatched"] == min(kill_after, total)
    assert first["dispatched"] + second["dispatched"] == total  # nothing finished was asked again
    assert second["replayed"] == first["dispatched"]
    assert max(journal.dispatched.values(), default=1) == 1


def _answer(result: Any) -> Any:
    if hasattr(result, "drivers"):
        return (result.status, result.drivers, [(f.dimension, f.threshold) for f in result.findings])
    return (result.status, result.last_good, result.first_bad, result.flaky_band)


search_settings = settings(max_examples=150, deadline=None)


@search_settings
@given(
    n=st.integers(min_value=1, max_value=40),
    data=st.data(),
    repeat=st.integers(min_value=1, max_value=3),
    parallel=st.integers(min_value=1, max_value=4),
    confirm=st.integers(min_value=0, max_value=2),
    skip_rate=st.sampled_from([0, 40, 120]),
    flaky_rate=st.sampled_from([0, 128]),
    seed=st.integers(min_value=0, max_value=10**6),
    cut=st.floats(min_value=0, max_value=1),
)
def test_a_killed_bisect_resumes_to_the_same_answer_without_asking_again(
    n: int,
    data: st.DataObject,
    repeat: int,
    parallel: int,
    confirm: int,
    skip_rate: int,
    flaky_rate: int,
    seed: int,
    cut: float,
) -> None:
    threshold = data.draw(st.integers(min_value=1, max_value=n + 1))
    flaky_level = data.draw(st.integers(min_value=1, max_value=n)) if flaky_rate else None

    def truth(level: int, attempt: int) -> Outcome:
        if noisy(seed, ("skip", level), attempt, skip_rate):
            return "skip"  # infrastructure trouble, or a different failure under --match
        if level == flaky_level:
            return "bad" if noisy(seed, level, attempt, flaky_rate) else "good"
        return "bad" if level >= threshold else "good"

    def run(ask: Callable[[Sequence[int]], list[Outcome]]) -> Any:
        return bisect(range(1, n + 1), ask, parallel=parallel, repeat=repeat, confirm=confirm)

    check_resume(run, truth, lambda level: level, cut)


@search_settings
@given(
    n=st.integers(min_value=1, max_value=30),
    repeat=st.integers(min_value=1, max_value=3),
    batch=st.integers(min_value=1, max_value=8),
    skip_rate=st.sampled_from([0, 60]),
    seed=st.integers(min_value=0, max_value=10**6),
    cut=st.floats(min_value=0, max_value=1),
    threshold=st.integers(min_value=1, max_value=31),
)
def test_a_killed_sweep_resumes_to_the_same_answer_without_asking_again(
    n: int, repeat: int, batch: int, skip_rate: int, seed: int, cut: float, threshold: int
) -> None:
    def truth(level: int, attempt: int) -> Outcome:
        if noisy(seed, level, attempt, skip_rate):
            return "skip"
        return "bad" if level >= threshold else "good"

    def run(ask: Callable[[Sequence[int]], list[Outcome]]) -> Any:
        return sweep(range(1, n + 1), ask, repeat=repeat, batch=batch)

    check_resume(run, truth, lambda level: level, cut)


@search_settings
@given(
    memory=st.integers(min_value=1, max_value=400),
    loc=st.integers(min_value=1, max_value=50),
    calls=st.integers(min_value=1, max_value=9),
    parallel=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=10**6),
    skip_rate=st.sampled_from([0, 30]),
    cut=st.floats(min_value=0, max_value=1),
)
def test_a_killed_isolate_resumes_to_the_same_finding_without_asking_again(
    memory: int, loc: int, calls: int, parallel: int, seed: int, skip_rate: int, cut: float
) -> None:
    good = {"memory_mb": 0, "loc": 10, "subprocess_calls": 0}
    bad = {"memory_mb": 400, "loc": 60, "subprocess_calls": 10}

    def truth(spec: Mapping[str, int], attempt: int) -> Outcome:
        if noisy(seed, spec_key(spec), attempt, skip_rate):
            return "skip"
        fails = spec["memory_mb"] >= memory or (spec["loc"] >= loc and spec["subprocess_calls"] >= calls)
        return "bad" if fails else "good"

    if truth(good, 0) != "good" or truth(bad, 0) != "bad":
        return  # not a boundary: isolation stops at once, which the search tests cover

    def run(ask: Callable[[Sequence[Mapping[str, int]]], list[Outcome]]) -> Any:
        return isolate(good, bad, ask, parallel=parallel)

    check_resume(run, truth, spec_key, cut)
