"""Sweep: probe every level of a ladder in order, then say where the failure starts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from threshold_probe.search.base import (
    LevelOutcomes,
    Oracle,
    Outcome,
    Progress,
    Status,
    call_oracle,
    check_positive,
    describe_levels,
    judge,
    ladder_order,
    seed_known,
)


@dataclass
class SweepResult:
    """Every level's outcomes and what they add up to (see :func:`threshold_probe.search.base.judge`)."""

    levels: dict[int, LevelOutcomes]
    last_good: int | None
    first_bad: int | None
    status: Status
    flaky_band: tuple[int, int] | None
    message: str
    rounds: int = 0
    probes: int = 0
    known_outcomes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with the same keys as the fields; levels as a list in ladder order."""
        return {
            "status": self.status,
            "last_good": self.last_good,
            "first_bad": self.first_bad,
            "flaky_band": list(self.flaky_band) if self.flaky_band else None,
            "message": self.message,
            "rounds": self.rounds,
            "probes": self.probes,
            "known_outcomes": self.known_outcomes,
            "levels": [self.levels[lvl].to_dict() for lvl in sorted(self.levels)],
        }


def sweep(
    levels: Sequence[int],
    oracle: Oracle,
    *,
    repeat: int = 1,
    batch: int = 1,
    max_skip_retries: int = 2,
    known: Mapping[int, Sequence[Outcome]] | None = None,
    progress: Progress = None,
) -> SweepResult:
    """Probe every level ``repeat`` times, ``batch`` levels per oracle call, in ladder order.

    Skipped probes are retried after the first pass, at most ``max_skip_retries`` times per level.
    Outcomes in ``known`` are used as they are; a level is dispatched only for what it still lacks.
    A sweep never stops early: the whole curve is the point of it.
    """
    check_positive("repeat", repeat, 1)
    check_positive("batch", batch, 1)
    check_positive("max_skip_retries", max_skip_retries, 0)
    order = ladder_order(levels)
    data = seed_known(order, known)
    known_outcomes = sum(len(lev.outcomes) for lev in data.values())
    rounds = probes = 0

    def missing(level: int) -> int:
        lev = data.get(level)
        if lev is None:
            return repeat
        # Never more than the skip budget has room for, so a level meets at most that many skips.
        room = (1 + max_skip_retries) * repeat - lev.skipped
        return max(0, min(repeat - lev.tested, room))

    # Pass 0 is the sweep itself; later passes retry what was skipped, within each level's budget.
    for attempt in range(1 + max_skip_retries):
        todo = [(lvl, missing(lvl)) for lvl in order if missing(lvl)]
        if not todo:
            break
        if attempt and progress:
            progress(f"retrying {describe_levels([lvl for lvl, _ in todo])} after skips")
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            flat = [lvl for lvl, count in chunk for _ in range(count)]
            rounds += 1
            if progress:
                progress(f"round {rounds}: probing {describe_levels([lvl for lvl, _ in chunk])}")
            answers = call_oracle(oracle, flat)
            probes += len(flat)
            for lvl, outcome in zip(flat, answers, strict=True):
                data.setdefault(lvl, LevelOutcomes(lvl)).outcomes.append(outcome)
            if progress:
                progress(", ".join(f"level {lvl} {data[lvl].summary}" for lvl, _ in chunk))
    judgement = judge(order, data)
    if progress:
        progress(judgement.message)
    return SweepResult(
        levels={lvl: data[lvl] for lvl in order if lvl in data},
        last_good=judgement.last_good,
        first_bad=judgement.first_bad,
        status=judgement.status,
        flaky_band=judgement.flaky_band,
        message=judgement.message,
        rounds=rounds,
        probes=probes,
        known_outcomes=known_outcomes,
    )
