"""What an isolation finds: each dimension's finding, the result, and the sentence that states it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from threshold_probe.search.base import Outcome, Status

IsolateStatus = Literal["isolated", "no_difference", "good_fails", "bad_passes", "flaky", "inconclusive"]


class _Missing:
    """Stands for a dimension that one of the two specs does not set."""

    def __repr__(self) -> str:
        return "<unset>"


MISSING: Any = _Missing()


@dataclass
class DimensionFinding:
    """What isolation learnt about one dimension that differs between the good and the bad spec.

    ``sufficient``: raising it alone (from ``low_value`` to ``high_value``) makes the good spec fail.
    ``necessary``: lowering it alone makes the bad spec pass. None when the probes could not tell
    (flaky or skipped; ``note`` says which). ``threshold`` is the first failing value of the dimension
    with everything else at ``threshold_base``'s values ("good" for a sufficient dimension, "bad" for
    one that is only necessary), and ``last_passing`` the value just below it on the grid that was
    searched; ``exact`` is False when the grid was coarser than the values (floats). ``probes`` counts
    the probes dispatched for this dimension; ``tried`` lists each value of the threshold search with
    its outcomes, ends included.
    """

    dimension: str
    low_value: Any
    high_value: Any
    sufficient: bool | None
    necessary: bool | None
    threshold: Any | None = None
    probes: int = 0
    last_passing: Any | None = None
    threshold_base: Literal["good", "bad"] | None = None
    exact: bool = True
    raised_outcomes: list[Outcome] = field(default_factory=list)
    lowered_outcomes: list[Outcome] = field(default_factory=list)
    search_status: Status | None = None
    note: str = ""
    tried: list[tuple[Any, list[Outcome]]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with the same keys as the fields."""
        return {
            "dimension": self.dimension,
            "low_value": self.low_value,
            "high_value": self.high_value,
            "sufficient": self.sufficient,
            "necessary": self.necessary,
            "threshold": jsonable(self.threshold),
            "last_passing": jsonable(self.last_passing),
            "threshold_base": self.threshold_base,
            "exact": self.exact,
            "probes": self.probes,
            "raised_outcomes": list(self.raised_outcomes),
            "lowered_outcomes": list(self.lowered_outcomes),
            "search_status": self.search_status,
            "note": self.note,
            "tried": [{"value": jsonable(v), "outcomes": list(o)} for v, o in self.tried],
        }


@dataclass
class IsolateResult:
    """The finding: which dimensions drive the failure, with evidence per dimension.

    ``drivers`` are the sufficient dimensions, ``necessary`` the necessary ones, ``irrelevant`` those
    that are neither, ``undecided`` those the probes could not judge.
    """

    good_spec: dict[str, Any]
    bad_spec: dict[str, Any]
    findings: list[DimensionFinding]
    drivers: list[str]
    message: str
    status: IsolateStatus = "isolated"
    necessary: list[str] = field(default_factory=list)
    irrelevant: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    good_outcomes: list[Outcome] = field(default_factory=list)
    bad_outcomes: list[Outcome] = field(default_factory=list)
    rounds: int = 0
    probes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with the same keys as the fields."""
        return {
            "status": self.status,
            "message": self.message,
            "good_spec": {k: jsonable(v) for k, v in self.good_spec.items()},
            "bad_spec": {k: jsonable(v) for k, v in self.bad_spec.items()},
            "drivers": list(self.drivers),
            "necessary": list(self.necessary),
            "irrelevant": list(self.irrelevant),
            "undecided": list(self.undecided),
            "good_outcomes": list(self.good_outcomes),
            "bad_outcomes": list(self.bad_outcomes),
            "findings": [f.to_dict() for f in self.findings],
            "rounds": self.rounds,
            "probes": self.probes,
        }


def jsonable(value: Any) -> Any:
    """The value as JSON shows it: an unset dimension is None."""
    return None if value is MISSING else value


def format_value(value: Any) -> str:
    """A dimension value as a message shows it (floats without trailing zeros)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def is_number(value: Any) -> bool:
    """True for an int or float dimension value (a bool is a flag, not a number)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finding_message(findings: Sequence[DimensionFinding], result: IsolateResult, units: Mapping[str, str]) -> str:
    """One sentence that reads like a diagnosis."""

    def name(f: DimensionFinding) -> str:
        return f"`{f.dimension}`"

    def threshold(f: DimensionFinding) -> str:
        if f.threshold is None:
            return " (no clean threshold)" if f.search_status not in (None, "found") else ""
        unit = f" {units[f.dimension]}" if f.dimension in units else ""
        if is_number(f.threshold):
            approx = "" if f.exact else "about "
            text = f"threshold {approx}{format_value(f.threshold)}{unit}"
        else:
            text = f"at {f.dimension}={format_value(f.threshold)}"
        if f.threshold_base == "bad" and not f.sufficient:
            text += " with the rest at the failing spec"
        return f" ({text})"

    by_name = {f.dimension: f for f in findings}
    sufficient = [by_name[d] for d in result.drivers]
    necessary = [by_name[d] for d in result.necessary]
    irrelevant = [by_name[d] for d in result.irrelevant]
    undecided = [by_name[d] for d in result.undecided]

    if len(sufficient) == 1:
        f = sufficient[0]
        if f.necessary:
            head = f"The failure follows {name(f)} alone{threshold(f)}"
        else:
            others = [g for g in necessary if g is not f]
            head = f"{name(f)} alone is enough to cause the failure{threshold(f)}"
            # Only a lowering that was judged (and still failed) may be said not to remove it.
            if not others and f.necessary is False:
                head += ", though lowering it alone does not remove it"
    elif sufficient:
        head = "Each of " + _and([name(f) + threshold(f) for f in sufficient]) + " causes the failure on its own"
    elif len(necessary) >= 2:
        head = (
            "No single dimension causes the failure: it needs "
            + _and([name(f) + threshold(f) for f in necessary])
            + " together"
        )
    elif necessary:
        f = necessary[0]
        head = f"{name(f)} is needed for the failure{threshold(f)} but is not enough on its own"
    else:
        head = (
            "No single dimension explains the failure: raising any one alone passes "
            "and lowering any one alone still fails"
        )
        if undecided:
            head = "No dimension could be shown to drive the failure"

    tail = []
    if irrelevant:
        verb = "does" if len(irrelevant) == 1 else "do"
        tail.append(f"{_and([name(f) for f in irrelevant])} {verb} not matter")
    if undecided:
        for f in undecided:
            tail.append(f"{name(f)} was not decided: {f.note or 'no verdict'}")
    return head + ("; " + "; ".join(tail) if tail else "") + "."


def _and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
