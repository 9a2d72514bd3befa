"""Bisection over a ladder: find the first level that fails, with git bisect's good/bad/skip semantics.

The search is a state machine (:class:`Bisection`) that proposes which levels to probe next and is fed
the outcomes; :func:`bisect` drives one of them against an oracle. Isolation drives several side by
side so that a parallel cluster receives the probes of every dimension in the same round.
"""

from __future__ import annotations

from bisect import bisect_left as _bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from threshold_probe.search.base import (
    Judgement,
    LevelOutcomes,
    Oracle,
    Outcome,
    Progress,
    Status,
    call_oracle,
    check_outcomes,
    check_positive,
    describe_levels,
    judge,
    ladder_order,
    seed_known,
)


@dataclass
class BisectResult:
    """Where the failure starts, and everything probed to find out.

    ``last_good`` / ``first_bad`` are level numbers, never a level whose probes were all skipped; see
    :func:`threshold_probe.search.base.judge` for their meaning under each ``status``. ``probes`` counts
    the probes dispatched through the oracle (outcomes passed in as ``known`` are not counted);
    ``search_probes + confirm_probes == probes``. ``rounds`` counts oracle calls.
    """

    status: Status
    last_good: int | None
    first_bad: int | None
    levels: dict[int, LevelOutcomes]
    rounds: int
    probes: int
    flaky_band: tuple[int, int] | None
    message: str
    search_probes: int = 0
    confirm_probes: int = 0
    known_outcomes: int = 0
    confirmed: list[int] = field(default_factory=list)

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
            "search_probes": self.search_probes,
            "confirm_probes": self.confirm_probes,
            "known_outcomes": self.known_outcomes,
            "confirmed": list(self.confirmed),
            "levels": [self.levels[lvl].to_dict() for lvl in sorted(self.levels)],
        }


Request = tuple[int, int]
"""(level, how many probes of it) in one round."""


class Bisection:
    """The state of one bisection; :meth:`propose` says what to probe, :meth:`record` takes the answer.

    What makes it resumable: every decision is a function of the outcomes recorded so far (``known``
    ones included) and a level is only ever asked for the outcomes it lacks. A journal cut between two
    rounds therefore replays into exactly the interrupted run's remaining choices; cut inside a round,
    the levels whose probes all finished steer the search at once, so it may choose other levels than
    the interrupted run would have, but it still dispatches nothing that was already journaled.
    """

    def __init__(
        self,
        levels: Sequence[int],
        *,
        repeat: int = 1,
        confirm: int = 1,
        max_skip_retries: int = 2,
        known: Mapping[int, Sequence[Outcome]] | None = None,
    ) -> None:
        check_positive("repeat", repeat, 1)
        check_positive("confirm", confirm, 0)
        check_positive("max_skip_retries", max_skip_retries, 0)
        self.order = ladder_order(levels)
        self.repeat = repeat
        self.confirm = confirm
        self.max_skip_retries = max_skip_retries
        self.data = seed_known(self.order, known)
        self.known_outcomes = sum(len(lev.outcomes) for lev in self.data.values())
        self._need: dict[int, int] = {}
        self._confirmed: list[int] = []
        self.search_probes = 0
        self.confirm_probes = 0

    # -- per-level bookkeeping -------------------------------------------------------------------

    def _need_of(self, level: int) -> int:
        return self._need.get(level, self.repeat)

    def _tally(self, level: int) -> LevelOutcomes | None:
        return self.data.get(level)

    def _skip_budget_left(self, level: int) -> int:
        # A skip budget in outcomes, not in dispatches, so that a resumed search counts the same way.
        lev = self._tally(level)
        return (1 + self.max_skip_retries) * self._need_of(level) - (lev.skipped if lev else 0)

    def _exhausted(self, level: int) -> bool:
        return self._skip_budget_left(level) <= 0

    def _wanted(self, level: int) -> int:
        """Probes to ask for: the verdicts missing, but never more than the skip budget has room for."""
        return max(0, min(self._need_of(level) - self._tested(level), self._skip_budget_left(level)))

    def _judged(self, level: int) -> bool:
        """Whether a level's outcomes steer the search.

        A level counts once it has ``repeat`` verdicts, or once it met a skip (it is then topped up),
        or ran out of retries. A level with fewer verdicts and no skip is a batch cut short (a resumed
        run) or a thin cache entry: it is treated as untested, so that the search chooses as if its
        round had not happened, and then only dispatches the probes that are missing.
        """
        lev = self._tally(level)
        if lev is None or lev.tested == 0:
            return False
        return lev.tested >= self.repeat or lev.skipped > 0 or self._exhausted(level)

    def _fresh(self, level: int) -> bool:
        """Not judged yet and never skipped: the first choice of the search."""
        lev = self._tally(level)
        return lev is None or (lev.skipped == 0 and not self._judged(level))

    def _retryable(self, level: int) -> bool:
        """Every probe so far was skipped, and retries are left."""
        lev = self._tally(level)
        return lev is not None and lev.skipped > 0 and lev.tested == 0 and not self._exhausted(level)

    def _wants_topup(self, level: int) -> int:
        """How many more probes a judged level needs: after a skip, or to confirm a boundary."""
        lev = self._tally(level)
        if lev is None or lev.tested == 0 or self._exhausted(level):
            return 0
        if lev.skipped == 0 and level not in self._confirmed:
            return 0
        return self._wanted(level)

    # -- brackets --------------------------------------------------------------------------------

    def brackets(self) -> list[tuple[int, int]]:
        """Open index intervals still to narrow: (last pass, first non-pass) and (last non-fail, first fail).

        Index -1 and len(levels) stand for "not found yet". For a clean, monotone ladder both brackets
        are the same interval; they differ only around a flaky band, whose two edges are then narrowed
        side by side.
        """
        n = len(self.order)
        summary = {self._pos(lvl): lev.summary for lvl, lev in self.data.items() if self._judged(lvl)}
        hi = min((i for i, s in summary.items() if s != "good"), default=n)
        lo = max((i for i, s in summary.items() if s == "good" and i < hi), default=-1)
        lo2 = max((i for i, s in summary.items() if s != "bad"), default=-1)
        hi2 = min((i for i, s in summary.items() if s == "bad" and i > lo2), default=n)
        return [(lo, hi)] if (lo, hi) == (lo2, hi2) else [(lo, hi), (lo2, hi2)]

    def _pos(self, level: int) -> int:
        return _bisect_left(self.order, level)

    def _inside(self, lo: int, hi: int) -> list[int]:
        """Indices in (lo, hi) of levels that have outcomes; the others are all untested."""
        return sorted(i for i in map(self._pos, self.data) if lo < i < hi)

    def _chooser(self, lo: int, hi: int, taken: set[int]) -> tuple[Callable[[int], bool], int]:
        """Which indices in (lo, hi) may be probed now, and how many there are.

        Untested levels first (git bisect skip moves to a neighbour); once none is left, skipped levels
        that still have retries. Works without listing the bracket, which may span millions of values.
        """
        inside = self._inside(lo, hi)
        busy = [i for i in inside if not self._fresh(self.order[i])]
        fresh = (hi - lo - 1) - len(busy) - sum(1 for i in taken if lo < i < hi and self._fresh(self.order[i]))
        if fresh > 0:
            return (lambda i: i not in taken and self._fresh(self.order[i])), fresh
        retry = {i for i in inside if i not in taken and self._retryable(self.order[i])}
        return retry.__contains__, len(retry)

    def _is_open(self, lo: int, hi: int) -> bool:
        return self._chooser(lo, hi, set())[1] > 0

    def _targets(self, lo: int, hi: int, slots: int, taken: set[int]) -> list[int]:
        """Up to `slots` indices in (lo, hi): the missing ends first, then evenly spaced interior points."""
        ok, available = self._chooser(lo, hi, taken)
        if slots <= 0 or available <= 0:
            return []
        if available <= slots:
            # Few enough to take them all; the bracket then holds at most `slots` + probed levels.
            return [i for i in range(lo + 1, hi) if ok(i)]
        n = len(self.order)
        chosen: list[int] = []
        first = next(i for i in range(lo + 1, hi) if ok(i))
        last = next(i for i in range(hi - 1, lo, -1) if ok(i))
        if lo == -1:
            chosen.append(first)
        if hi == n and len(chosen) < slots:
            chosen.append(last)
        a = first if lo == -1 else lo
        b = last if hi == n else hi
        interior = slots - len(chosen)
        for j in range(1, interior + 1):
            # Evenly spaced: each sub-interval is at most ceil(L / (k + 1)) long, which gives the
            # ceil(log_{k+1} N) round bound.
            target = a + (j * (b - a)) // (interior + 1)
            pick = _nearest(lo, hi, target, lambda i: ok(i) and i not in chosen)
            if pick is not None:
                chosen.append(pick)
        return sorted(chosen)

    # -- the protocol ----------------------------------------------------------------------------

    def propose(self, slots: int) -> list[Request]:
        """The probes of the next round, at most `slots` distinct levels; empty when the search is over."""
        slots = max(1, slots)
        requests: list[Request] = []
        for level in sorted(self.data):
            more = self._wants_topup(level)
            if more and len(requests) < slots:
                requests.append((level, more))
        if requests:
            return requests
        open_brackets = [(lo, hi) for lo, hi in self.brackets() if self._is_open(lo, hi)]
        taken: set[int] = set()
        if open_brackets:
            shares = _split(slots, len(open_brackets))
            for (lo, hi), share in zip(open_brackets, shares, strict=True):
                picks = self._targets(lo, hi, share, taken)
                taken.update(picks)
            return [(self.order[i], self._wanted(self.order[i])) for i in sorted(taken)]
        return self._propose_confirmation(slots)

    def _tested(self, level: int) -> int:
        lev = self._tally(level)
        return lev.tested if lev else 0

    def _propose_confirmation(self, slots: int) -> list[Request]:
        """Raise the need of the reported boundary levels by `confirm`, once each, and ask for the rest."""
        if self.confirm <= 0:
            return []
        judgement = self.judgement()
        requests: list[Request] = []
        for level in (judgement.last_good, judgement.first_bad):
            if level is None or level in self._confirmed or len(requests) >= slots:
                continue
            self._confirmed.append(level)
            self._need[level] = self._need_of(level) + self.confirm
            more = self._wants_topup(level)
            if more:
                requests.append((level, more))
        return requests

    def record(self, level: int, outcomes: Sequence[Outcome]) -> None:
        """Add the outcomes of `level` from one round."""
        lev = self.data.setdefault(level, LevelOutcomes(level))
        checked = check_outcomes(outcomes, f"outcomes of level {level}")
        lev.outcomes.extend(checked)
        if level in self._confirmed:
            self.confirm_probes += len(checked)
        else:
            self.search_probes += len(checked)

    def judgement(self) -> Judgement:
        """What the outcomes so far say."""
        return judge(self.order, self.data)

    def bracket_note(self) -> str:
        """One line on where the search stands, for progress output."""
        notes = []
        n = len(self.order)
        for lo, hi in self.brackets():
            left = self._chooser(lo, hi, set())[1]
            low = f"level {self.order[lo]} passes" if lo >= 0 else "no pass yet"
            high = f"level {self.order[hi]} fails" if hi < n else "no failure yet"
            notes.append(f"{low}, {high}, {left} level{'s' if left != 1 else ''} left between")
        return "; ".join(notes)

    def result(self, rounds: int, probes: int) -> BisectResult:
        """The final answer once :meth:`propose` returns nothing."""
        v = self.judgement()
        return BisectResult(
            status=v.status,
            last_good=v.last_good,
            first_bad=v.first_bad,
            levels={lvl: self.data[lvl] for lvl in sorted(self.data)},
            rounds=rounds,
            probes=probes,
            flaky_band=v.flaky_band,
            message=v.message,
            search_probes=self.search_probes,
            confirm_probes=self.confirm_probes,
            known_outcomes=self.known_outcomes,
            confirmed=list(self._confirmed),
        )


def _nearest(lo: int, hi: int, target: int, ok: Callable[[int], bool]) -> int | None:
    """The index in (lo, hi) closest to `target` that is ok; ties go to the lower index."""
    for distance in range(max(target - lo, hi - target) + 1):
        for i in (target - distance, target + distance):
            if lo < i < hi and ok(i):
                return i
    return None


def _split(slots: int, parts: int) -> list[int]:
    """Share `slots` among `parts` claimants, earlier ones first; a claimant may get none this round."""
    base, extra = divmod(slots, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def expand(requests: Sequence[Request]) -> list[int]:
    """The flat batch for an oracle: each level repeated as many times as requested, in order."""
    return [level for level, count in requests for _ in range(count)]


def bisect(
    levels: Sequence[int],
    oracle: Oracle,
    *,
    parallel: int = 1,
    repeat: int = 1,
    confirm: int = 1,
    max_skip_retries: int = 2,
    known: Mapping[int, Sequence[Outcome]] | None = None,
    progress: Progress = None,
) -> BisectResult:
    """Find the first failing level of a ladder, verifying both ends first.

    Rounds and cost, for a clean monotone ladder of N levels and ``repeat=1``:

    Levels are taken in ascending order, duplicates dropped.

    - ``parallel=1``: the lowest level, then the highest (unless the lowest already fails: there is
      nothing left to search), then a binary search. The search uses at
      most ``ceil(log2 N) + 2`` probes (``result.search_probes``); confirmation adds exactly
      ``confirm`` probes for each reported boundary level, so ``result.probes <= ceil(log2 N) + 2 +
      2 * confirm``. Pass ``confirm=0`` for the bare bound.
    - ``parallel=P > 1``: both ends in one round (with P - 2 interior levels), then a (P+1)-ary search
      with P evenly spaced levels per round: at most ``ceil(log_{P+1} N) + 1`` rounds before
      confirmation, which takes one more round.

    Each round's batch holds at most ``parallel`` distinct levels, each repeated ``repeat`` times.

    - ``skip``: the search moves to the nearest untested level, as ``git bisect skip`` does; a skipped
      level is retried only when nothing untested is left in the bracket, and gives up after
      ``max_skip_retries`` retries. A skipped level is never reported as ``last_good`` or
      ``first_bad``; if every level between the last pass and the first failure was skipped the
      status is ``inconclusive`` and the message names the range.
    - ``repeat``: each level is probed that many times; a level with mixed outcomes is flaky. The search
      then narrows both edges of the flaky band and reports status ``flaky`` with ``flaky_band``;
      a workload that fails at random is never reported as a clean threshold.
    - ``confirm``: before reporting, ``last_good`` and ``first_bad`` (or the single end that failed or
      passed) are probed ``confirm`` more times; a contradiction turns the result into ``flaky``.
    - ``known``: outcomes already journaled for some levels (a resumed run, or a cache). They count as
      if probed in this run, and a level is only dispatched for the outcomes it still lacks.
    """
    check_positive("parallel", parallel, 1)
    search = Bisection(levels, repeat=repeat, confirm=confirm, max_skip_retries=max_skip_retries, known=known)
    rounds = probes = 0
    while True:
        requests = search.propose(parallel)
        if not requests:
            break
        batch = expand(requests)
        if not batch:  # every request carries at least one probe; anything else would loop for ever
            raise RuntimeError(f"bisect proposed an empty round: {requests!r}")
        rounds += 1
        if progress:
            progress(f"round {rounds}: probing {_describe_requests(requests)}")
        answers = call_oracle(oracle, batch)
        probes += len(batch)
        for (level, _count), outcomes in zip(requests, _chunks(answers, requests), strict=True):
            search.record(level, outcomes)
        if progress:
            progress(f"round {rounds}: {_describe_answers(search, requests)}; {search.bracket_note()}")
    result = search.result(rounds, probes)
    if progress:
        progress(result.message)
    return result


def _chunks(answers: Sequence[Outcome], requests: Sequence[Request]) -> list[list[Outcome]]:
    out: list[list[Outcome]] = []
    pos = 0
    for _level, count in requests:
        out.append(list(answers[pos : pos + count]))
        pos += count
    return out


def _describe_requests(requests: Sequence[Request]) -> str:
    text = describe_levels([lvl for lvl, _ in requests])
    counts = {c for _, c in requests}
    if counts != {1}:
        text += " (" + ", ".join(f"{lvl}×{c}" for lvl, c in requests) + ")"
    return text


def _describe_answers(search: Bisection, requests: Sequence[Request]) -> str:
    parts = []
    for level, _ in requests:
        lev = search.data[level]
        parts.append(f"level {level} {lev.summary}")
    return ", ".join(parts)
