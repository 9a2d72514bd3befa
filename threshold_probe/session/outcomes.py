"""Verdicts as a search reads them: each probe's outcome under the failure hunted, and the oracles.

A pass is ``good``; a failure is ``bad`` when it is the one hunted (``--match``, or for isolation
the signature of the boundary's failure) and ``skip`` otherwise, like infrastructure trouble; such
probes are flagged ``different_failure`` and named in the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from threshold_probe.models import ProbeRecord
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.search import Outcome
from threshold_probe.search.base import describe_levels, fold
from threshold_probe.session.workloads import Workloads
from threshold_probe.signature import matches
from threshold_probe.summary import VERDICT_WORDS


def outcome_of(record: ProbeRecord, match: str | None) -> Outcome:
    """good, bad or skip: what one probe says about the failure hunted (`match`, or any failure)."""
    v = record.verdict
    if v.status == "pass":
        return "good"
    if v.status == "skip":
        return "skip"
    if match and not matches(v, match):
        # A different failure from the one hunted: git bisect's skip, never the threshold.
        return "skip"
    return "bad"


def overall(outcomes: Sequence[Outcome]) -> str:
    """pass, fail, flaky or skip: what repeated probes of one thing say together."""
    return VERDICT_WORDS[fold(outcomes)]


def pass_rate_text(outcomes: Sequence[Outcome]) -> str:
    """'7 of 10 probes passed (70%)', counting only the probes that gave a verdict."""
    judged = [o for o in outcomes if o != "skip"]
    if not judged:
        return f"all {len(outcomes)} probes were skipped"
    good = judged.count("good")
    text = f"{good} of {len(judged)} probes passed ({round(100 * good / len(judged))}%)"
    skipped = len(outcomes) - len(judged)
    return text + (f", {skipped} skipped" if skipped else "")


def different_failures_text(records: Sequence[ProbeRecord], match_of: Mapping[str, str | None]) -> str:
    """One sentence on the failures that --match passed over (counted as skips), or ''."""
    diff = [r for r in records if r.verdict.status == "fail" and outcome_of(r, match_of.get(r.probe_id)) == "skip"]
    if not diff:
        return ""
    parts = []
    levels = sorted({r.level for r in diff if r.level is not None})
    if levels:
        classes = sorted({r.verdict.failure_class or "unclassified" for r in diff if r.level is not None})
        verb = "was" if len(levels) == 1 else "were"
        parts.append(
            f"{describe_levels(levels)} failed differently ({', '.join(classes)}) and {verb} counted as"
            f" {'a skip' if len(levels) == 1 else 'skips'}, not as the failure hunted"
        )
    off = [r for r in diff if r.level is None]
    if off:
        parts.append(f"{len(off)} off-ladder probe{'s' if len(off) != 1 else ''} failed differently")
    return "; ".join(parts)


def skip_causes(records: Sequence[ProbeRecord]) -> str:
    """The infrastructure trouble behind skipped probes, most frequent first: 'a; b', or ''."""
    counts: dict[str, int] = {}
    for r in records:
        cause = r.observation.job.infra_error if r.verdict.status == "skip" else None
        if cause:
            counts[cause] = counts.get(cause, 0) + 1
    top = sorted(counts, key=lambda c: -counts[c])[:2]
    return "; ".join(top)


class Oracles:
    """The oracles a search strategy asks: probes dispatched through the prober, judged against
    the failure hunted at the time each probe finished."""

    def __init__(self, prober: Prober, workloads: Workloads, match: str | None) -> None:
        self.prober = prober
        self.workloads = workloads
        self.match = match
        #: The failure being hunted right now: --match, or (isolation) the boundary's signature.
        self.hunt: str | None = match
        self._hunt_of: dict[str, str | None] = {}

    def hunted(self, record: ProbeRecord) -> None:
        """Remember what was hunted when this probe finished (its outcome depends on it)."""
        self._hunt_of[record.probe_id] = self.hunt

    def match_of(self, record: ProbeRecord) -> str | None:
        """The failure hunted when this probe finished (--match for probes from the journal)."""
        return self._hunt_of.get(record.probe_id, self.match)

    def outcome(self, record: ProbeRecord) -> Outcome:
        """This probe's outcome under what was hunted when it finished."""
        return outcome_of(record, self.match_of(record))

    def run(self, requests: Sequence[ProbeRequest]) -> list[Outcome]:
        """Dispatch a batch of probe requests; their outcomes under the failure hunted now."""
        return [outcome_of(r, self.hunt) for r in self.prober.run(list(requests))]

    def levels(self, levels: Sequence[int]) -> list[Outcome]:
        """Outcomes of a batch of levels (duplicates are repeats), for the search strategies."""
        return self.run([self.workloads.level_request(n) for n in levels])

    def specs(self, specs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Outcomes of a batch of specs, for isolation."""
        return self.run([self.workloads.spec_request(s) for s in specs])
