"""The pieces a workload's source is assembled from; the size and feature emitters fill them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INDENT = "    "
#: Marks a line that must stay at column 0 (the inside of a multi-line string); removed at the end.
COLUMN0 = "\0"


@dataclass
class Item:
    """A few lines of the function body (relative indentation) and the modules they need."""

    lines: list[str]
    imports: set[str] = field(default_factory=set)


@dataclass
class Parts:
    """Everything the generator assembles into a module; feature emitters add to it."""

    level: int | None
    func_name: str
    values: dict[str, Any]
    imports: set[str] = field(default_factory=set)
    #: Module-level statements after the imports (constants, helpers, decorators).
    module_lines: list[str] = field(default_factory=list)
    #: Lines above `def` (decorators), at the function's own indentation.
    decorators: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    #: Statements right after the docstring and `report`, before memory (a feature's setup, and the
    #: top-level range loops, which must be the function's first loops).
    head: list[Item] = field(default_factory=list)
    #: Work items spread over the phases.
    work: list[Item] = field(default_factory=list)
    #: Statements after the work and before the resource tail.
    tail: list[Item] = field(default_factory=list)
    #: `report[...] = ...` lines just before the return.
    report_lines: list[str] = field(default_factory=list)
    #: Statements of an enclosing factory function, before the nested `def` (closure variables).
    enclosing: list[str] = field(default_factory=list)
    uses_tally: bool = False
