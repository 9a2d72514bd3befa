"""The dimensions of a workload: every knob a ladder can turn, with its unit, default and bounds."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

DimensionKind = Literal["size", "resource", "feature"]
DimensionValue = int | float | str


@dataclass(frozen=True)
class Dimension:
    """One knob of a workload. `type` is int, float or str; `default` is used when a level omits it."""

    name: str
    kind: DimensionKind
    type: type
    unit: str
    description: str
    default: DimensionValue
    minimum: float | None = 0
    #: Upper bounds keep generated code valid (CPython allows 20 nested blocks) and sane.
    maximum: float | None = None
    #: Allowed values of a str dimension.
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> DimensionValue:
        """The value converted to this dimension's type; ValueError with a short reason otherwise."""
        if self.type is str:
            if not isinstance(value, str):
                raise ValueError(f"must be a string, one of {', '.join(self.choices)}")
            if self.choices and value not in self.choices:
                raise ValueError(f"must be one of {', '.join(self.choices)}, not {value!r}")
            return str(value)
        # bool is an int in Python, but `memory_mb = true` in a ladder is surely a mistake.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a {'whole ' if self.type is int else ''}number, not {value!r}")
        number: int | float
        if self.type is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"must be a whole number, not {value!r}")
            number = int(value)
        else:
            number = float(value)
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"must be >= {_num(self.minimum)}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"must be <= {_num(self.maximum)}")
        return number


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _d(
    name: str,
    kind: DimensionKind,
    typ: type,
    unit: str,
    description: str,
    default: DimensionValue,
    minimum: float | None = 0,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
) -> Dimension:
    return Dimension(name, kind, typ, unit, description, default, minimum, maximum, choices)


_ALL: tuple[Dimension, ...] = (
    # size
    _d(
        "loc",
        "size",
        int,
        "lines",
        "target lines of the function (radon LOC), padded with simple statements",
        10,
        1,
        100_000,
    ),
    _d(
        "phases",
        "size",
        int,
        "phases",
        "steps of a multi-phase workflow, each in its own try/except",
        0,
        0,
        1_000,
    ),
    _d(
        "subprocess_calls",
        "size",
        int,
        "calls",
        "subprocess.run call sites (python -c ..., hostname)",
        0,
        0,
        5_000,
    ),
    _d(
        "data_structures",
        "size",
        int,
        "literals",
        "nested dict/list literals built and returned",
        0,
        0,
        5_000,
    ),
    # Alternating for/if: CPython allows 20 nested blocks, and each for (and a phase's try) is one.
    _d("nesting_depth", "size", int, "levels", "depth of one block of nested for/if statements", 0, 0, 30),
    _d("branches", "size", int, "ifs", "if/elif/else branch points", 0, 0, 5_000),
    _d("loops", "size", int, "loops", "small for loops that accumulate values", 0, 0, 5_000),
    # resource
    _d(
        "memory_mb",
        "resource",
        int,
        "MiB",
        "memory allocated, touched page by page, held until return",
        0,
        0,
        1_048_576,
    ),
    _d("runtime_s", "resource", float, "s", "CPU-busy wall time spent computing", 0.0, 0, 86_400),
    _d(
        "output_kb",
        "resource",
        int,
        "KiB",
        "text written, half to stdout and half to stderr",
        0,
        0,
        10_485_760,
    ),
    _d("result_kb", "resource", int, "KiB", "size of the returned value (as JSON)", 0, 0, 10_485_760),
    _d(
        "payload_kb",
        "resource",
        int,
        "KiB",
        "module-level bytes the function captures, so its pickle grows but its source does not",
        0,
        0,
        10_485_760,
    ),
)

#: Every dimension, by name, in the order a table should show them.
DIMENSIONS: dict[str, Dimension] = {d.name: d for d in _ALL}


def register(dimension: Dimension) -> None:
    """Add a dimension (the syntactic-feature module registers its own)."""
    DIMENSIONS[dimension.name] = dimension


def suggest(name: str) -> str:
    """' (did you mean X?)' for a misspelt dimension name, or ''."""
    close = difflib.get_close_matches(name, list(DIMENSIONS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def complete(values: Mapping[str, Any]) -> dict[str, DimensionValue]:
    """Checked values for every dimension, defaults filled in. ValueError('name: reason') on bad input."""
    for name in values:
        if name not in DIMENSIONS:
            raise ValueError(f"{name}: unknown dimension{suggest(name)}")
    out: dict[str, DimensionValue] = {}
    for name, dim in DIMENSIONS.items():
        try:
            out[name] = dim.check(values[name]) if name in values else dim.default
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return out
