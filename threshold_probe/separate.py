"""Which static feature separates the functions that fail from those that pass: pure logic.

For one failure class, every feature of every probed function is tried as a single threshold
rule, "fails iff FEATURE >= T" (or <= T, or == V for a category), and scored by how many
functions it puts on the right side. A rule is a *separator* when it puts every one of them on
the right side. When no single feature separates them, the best pair of rules, joined by "or"
(two causes) or "and" (both needed), is tried too.

Support is given the way a reader checks it: "fails iff multiline_strings_col0 >= 1: 4 of 4
fail, 0 of 9 pass" (of the failing functions, 4 of 4 hold the rule; of the passing ones, 0 of 9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Literal

from pydantic import BaseModel, Field

Value = int | float | str
Op = Literal[">=", "<=", "=="]

#: Features a separator is searched over: (name shown, what it measures). Syntactic features
#: come first, so that among equally good separators the one a user can act on is named first.
FEATURES: tuple[tuple[str, str], ...] = (
    ("multiline_strings_col0", "multi-line strings with a line at column 0, in an indented definition"),
    ("closure_refs", "names read from an enclosing function (closure cells)"),
    ("global_refs", "module-level names read, imports excluded"),
    ("imported_names", "imported modules and names read"),
    ("definition_scope", "module, method or nested"),
    ("decorators", "decorators on the function"),
    ("top_level_range_loops", "`for ... in range(...)` loops directly in the body"),
    ("multiline_strings", "multi-line string literals"),
    ("nested_functions", "functions defined inside"),
    ("lambdas", "lambdas"),
    ("comprehensions", "comprehensions"),
    ("default_args", "parameters with defaults"),
    ("star_args", "*args and **kwargs"),
    ("subprocess_calls", "subprocess call sites"),
    ("loc", "lines of code"),
    ("cc", "cyclomatic complexity"),
    ("pickle_bytes", "bytes of the function pickled by value"),
    ("source_bytes", "bytes of the function's source"),
    ("string_literal_bytes", "bytes of its string and bytes constants"),
    ("max_nesting", "deepest nesting of compound statements"),
    ("loops", "for and while loops"),
    ("try_blocks", "try blocks"),
    ("data_structures", "dict, list and set displays"),
    ("ast_nodes", "syntax tree nodes"),
    ("halstead_volume", "Halstead volume"),
)
FEATURE_NAMES = tuple(name for name, _ in FEATURES)

#: How far size is from separating, always reported: lines, complexity and pickled size.
SIZE_FEATURES: tuple[str, ...] = ("loc", "cc", "pickle_bytes")

_LABEL = {"loc": "LOC", "cc": "CC", "pickle_bytes": "pickle bytes"}


def label(feature: str) -> str:
    """How a feature is named in a sentence: LOC, CC, or its own name."""
    return _LABEL.get(feature, feature)


class Rule(BaseModel):
    """One threshold rule on one feature, and its support among failing and passing functions."""

    feature: str
    op: Op
    threshold: Value
    fail_hits: int
    fail_total: int
    pass_hits: int
    pass_total: int

    @property
    def correct(self) -> int:
        return self.fail_hits + (self.pass_total - self.pass_hits)

    @property
    def separates(self) -> bool:
        return self.fail_hits == self.fail_total and self.pass_hits == 0

    def condition(self) -> str:
        """`multiline_strings_col0 >= 1`."""
        value = f"{self.threshold:g}" if isinstance(self.threshold, float) else str(self.threshold)
        return f"{label(self.feature)} {self.op} {value}"

    def support(self) -> str:
        """`4 of 4 fail, 0 of 9 pass`."""
        return f"{self.fail_hits} of {self.fail_total} fail, {self.pass_hits} of {self.pass_total} pass"

    def statement(self) -> str:
        """`fails iff X >= 1: 4 of 4 fail, 0 of 9 pass` for a separator; `X >= 1: 3 of 4 ...` otherwise."""
        lead = "fails iff " if self.separates else ""
        return f"{lead}{self.condition()}: {self.support()}"

    def holds(self, value: Value | None) -> bool:
        return _holds(self.op, self.threshold, value)


class Pair(BaseModel):
    """Two rules joined by `or` or `and`, with the support of the pair."""

    join: Literal["or", "and"]
    first: Rule
    second: Rule
    fail_hits: int
    fail_total: int
    pass_hits: int
    pass_total: int

    @property
    def separates(self) -> bool:
        return self.fail_hits == self.fail_total and self.pass_hits == 0

    def statement(self) -> str:
        lead = "fails iff " if self.separates else ""
        return (
            f"{lead}{self.first.condition()} {self.join} {self.second.condition()}: {self.fail_hits} of"
            f" {self.fail_total} fail, {self.pass_hits} of {self.pass_total} pass"
        )


class Split(BaseModel):
    """What separates one failure class from the passing functions."""

    #: Every single-feature rule that separates them, best first (syntactic features first).
    separators: list[Rule] = Field(default_factory=list)
    #: The best single rule when none separates (else the first separator).
    best: Rule | None = None
    #: The best pair, when no single rule separates.
    pair: Pair | None = None
    #: How far LOC, CC and pickled size are from separating them: the best rule on each.
    sizes: list[Rule] = Field(default_factory=list)


def _holds(op: Op, threshold: Value, value: Value | None) -> bool:
    if value is None:
        return False
    if op == "==":
        return value == threshold
    if isinstance(value, str) or isinstance(threshold, str):
        return False
    return value >= threshold if op == ">=" else value <= threshold


def _rules(feature: str, fails: Sequence[Value | None], passes: Sequence[Value | None]) -> list[Rule]:
    """Every candidate rule on one feature (thresholds at the values the functions have)."""
    values = [v for v in [*fails, *passes] if v is not None]
    if not values:
        return []
    out: list[Rule] = []
    if any(isinstance(v, str) for v in values):
        candidates: list[tuple[Op, Value]] = [("==", v) for v in sorted({str(v) for v in values})]
    else:
        numbers = sorted({v for v in values if not isinstance(v, str)})
        # ">= min" holds for everything: a rule that says nothing.
        candidates = [(">=", t) for t in numbers[1:]]
        candidates += [("<=", t) for t in numbers[:-1]]
    for op, t in candidates:
        out.append(
            Rule(
                feature=feature,
                op=op,
                threshold=t,
                fail_hits=sum(_holds(op, t, v) for v in fails),
                fail_total=len(fails),
                pass_hits=sum(_holds(op, t, v) for v in passes),
                pass_total=len(passes),
            )
        )
    return out


def _rank(rule: Rule, order: Mapping[str, int]) -> tuple[float, int, int, int, int]:
    # The share of failures caught minus the share of passes caught (so that a rare failure is
    # not "separated" by a rule that catches nothing); then most functions on the right side;
    # then ">=" (more of a feature fails); then feature order.
    return (
        -(rule.fail_hits / max(1, rule.fail_total) - rule.pass_hits / max(1, rule.pass_total)),
        -rule.correct,
        0 if rule.op in (">=", "==") else 1,
        order.get(rule.feature, 99),
        rule.pass_hits,
    )


def _size_rank(rule: Rule) -> tuple[float, int, float]:
    # "Is it size?" asks whether more of it fails: only ">=" rules, the lowest threshold on a tie.
    threshold = float(rule.threshold) if not isinstance(rule.threshold, str) else 0.0
    score = rule.fail_hits / max(1, rule.fail_total) - rule.pass_hits / max(1, rule.pass_total)
    return (-score, -rule.correct, threshold)


def best_rule(feature: str, fails: Sequence[Value | None], passes: Sequence[Value | None]) -> Rule | None:
    """The best single rule on one feature."""
    rules = _rules(feature, fails, passes)
    order = {feature: 0}
    return min(rules, key=lambda r: _rank(r, order)) if rules else None


def split(
    failing: Sequence[Mapping[str, Value | None]],
    passing: Sequence[Mapping[str, Value | None]],
    features: Sequence[str] = FEATURE_NAMES,
) -> Split:
    """Separators of the failing functions from the passing ones, each given as a feature map."""
    order = {name: i for i, name in enumerate(features)}
    result = Split()
    if not failing or not passing:
        return result
    every: dict[str, list[Rule]] = {}
    for feature in features:
        fails = [f.get(feature) for f in failing]
        passes = [p.get(feature) for p in passing]
        every[feature] = _rules(feature, fails, passes)
    singles = [r for rules in every.values() for r in rules]
    if not singles:
        return result
    ranked = sorted(singles, key=lambda r: _rank(r, order))
    # One separator per feature: its best threshold.
    seen: set[str] = set()
    for rule in ranked:
        if rule.separates and rule.feature not in seen:
            seen.add(rule.feature)
            result.separators.append(rule)
    result.best = result.separators[0] if result.separators else ranked[0]
    for feature in SIZE_FEATURES:
        rules = [r for r in every.get(feature) or [] if r.op == ">="]
        if rules:
            result.sizes.append(min(rules, key=_size_rank))
    if not result.separators:
        result.pair = _best_pair(every, failing, passing, order)
    return result


def _best_pair(
    every: Mapping[str, list[Rule]],
    failing: Sequence[Mapping[str, Value | None]],
    passing: Sequence[Mapping[str, Value | None]],
    order: Mapping[str, int],
) -> Pair | None:
    """The best two rules on two features, joined by `or` or `and`."""
    # The few best rules of each feature are enough: a pair's parts are good rules on their own.
    short = {f: sorted(rules, key=lambda r: _rank(r, order))[:6] for f, rules in every.items() if rules}
    best: tuple[tuple[float, int, int, int], Pair] | None = None
    for fa, fb in combinations(short, 2):
        for a in short[fa]:
            for b in short[fb]:
                joins: tuple[Literal["or", "and"], ...] = ("or", "and")
                for join in joins:

                    def hit(values: Mapping[str, Value | None], a: Rule = a, b: Rule = b, join: str = join) -> bool:
                        x, y = a.holds(values.get(a.feature)), b.holds(values.get(b.feature))
                        return (x or y) if join == "or" else (x and y)

                    fh = sum(hit(f) for f in failing)
                    ph = sum(hit(p) for p in passing)
                    score = fh / max(1, len(failing)) - ph / max(1, len(passing))
                    key = (-score, ph, order.get(fa, 99) + order.get(fb, 99), 0 if join == "or" else 1)
                    if best is None or key < best[0]:
                        pair = Pair(
                            join=join,
                            first=a,
                            second=b,
                            fail_hits=fh,
                            fail_total=len(failing),
                            pass_hits=ph,
                            pass_total=len(passing),
                        )
                        best = (key, pair)
    return best[1] if best else None


__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "SIZE_FEATURES",
    "Pair",
    "Rule",
    "Split",
    "best_rule",
    "label",
    "split",
]
