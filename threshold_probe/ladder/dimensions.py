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


_INT, _FLOAT, _STR = int, float, str
_BIG = 10_485_760

# name, kind, type, unit, default, minimum, maximum, description
_TABLE: tuple[tuple[str, DimensionKind, type, str, DimensionValue, float, float, str], ...] = (
    ("loc", "size", _INT, "lines", 10, 1, 100_000, "target lines of the function (radon LOC); a floor"),
    ("phases", "size", _INT, "phases", 0, 0, 1_000, "steps of a multi-phase workflow, each in a try/except"),
    ("subprocess_calls", "size", _INT, "calls", 0, 0, 5_000, "subprocess.run call sites (python -c, hostname)"),
    ("data_structures", "size", _INT, "literals", 0, 0, 5_000, "nested dict/list literals built and returned"),
    # Alternating for/if: CPython allows 20 nested blocks, and each for (and a phase's try) is one.
    ("nesting_depth", "size", _INT, "levels", 0, 0, 30, "depth of one block of nested for/if statements"),
    ("branches", "size", _INT, "ifs", 0, 0, 5_000, "if/else branch points"),
    ("loops", "size", _INT, "loops", 0, 0, 5_000, "small for loops that accumulate values"),
    ("memory_mb", "resource", _INT, "MiB", 0, 0, 1_048_576, "memory written page by page and held until return"),
    ("runtime_s", "resource", _FLOAT, "s", 0.0, 0, 86_400, "CPU-busy wall time spent computing"),
    ("output_kb", "resource", _INT, "KiB", 0, 0, _BIG, "text written, half to stdout and half to stderr"),
    ("result_kb", "resource", _INT, "KiB", 0, 0, _BIG, "size of the returned value (as JSON)"),
    # The payload is a literal in the source, so the generator itself holds it: 1 GiB at most.
    ("payload_kb", "resource", _INT, "KiB", 0, 0, 1_048_576, "bytes held in a constant of the function (pickle grows)"),
    ("multiline_strings", "feature", _INT, "strings", 0, 0, 1_000, "triple-quoted scripts and f-strings at column 0"),
    ("closure_refs", "feature", _INT, "names", 0, 0, 1_000, "names read from an enclosing function (forces nested)"),
    ("global_refs", "feature", _INT, "names", 0, 0, 1_000, "module-level constants and helper functions used"),
    ("nested_functions", "feature", _INT, "defs", 0, 0, 1_000, "helper functions defined inside the function"),
    ("lambdas", "feature", _INT, "lambdas", 0, 0, 1_000, "lambda expressions"),
    ("decorators", "feature", _INT, "decorators", 0, 0, 100, "decorators on the function, multi-line calls included"),
    ("comprehensions", "feature", _INT, "comprehensions", 0, 0, 1_000, "list, dict, set and generator comprehensions"),
    (
        "top_level_range_loops",
        "feature",
        _INT,
        "loops",
        0,
        0,
        1_000,
        "`for i in range(n):` at the function's top level",
    ),
    ("default_args", "feature", _INT, "args", 0, 0, 200, "parameters with large default values"),
    ("star_args", "feature", _INT, "args", 0, 0, 2, "1: *args, 2: *args and **kwargs"),
)

#: Where the workload function is defined; `nested` and `method` are what source shipping trips on.
SCOPES = ("module", "nested", "method")

_ALL: tuple[Dimension, ...] = (
    *(Dimension(n, k, t, u, desc, d, lo, hi) for n, k, t, u, d, lo, hi, desc in _TABLE),
    Dimension(
        name="definition_scope",
        kind="feature",
        type=_STR,
        unit="",
        description="module: module level; nested: inside a factory function; method: a static method",
        default="module",
        minimum=None,
        choices=SCOPES,
    ),
)

#: Every dimension, by name, in the order a table should show them.
DIMENSIONS: dict[str, Dimension] = {d.name: d for d in _ALL}


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
