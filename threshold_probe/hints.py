"""A fix hint from a failure's class and the dimension that drives it: one rule per known cause.

Each rule names the cause in one line and what to do about it. The rules (docs/triage.md lists
them with examples):

- ``closure-or-global-lost``: a NameError for a name the function reads from an enclosing
  function or from its module; the pipeline shipped the source without it.
- ``column0-in-indented-def``: a syntax or indentation error from a multi-line string with a
  line at column 0 inside an indented definition; a source fallback cannot dedent it.
- ``argv-too-long``: the command line was too long to start (E2BIG).
- ``oom``: the job ran out of memory.
- ``far-side-module-missing``: a module the function needs is not installed on the far side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel


class Hint(BaseModel):
    """The cause of a failure and what to do about it."""

    rule: str
    cause: str
    fix: str

    def text(self) -> str:
        return f"{self.cause}: {self.fix}"


@dataclass(frozen=True)
class Facts:
    """What a hint is chosen from."""

    failure_class: str | None
    driver: str | None
    evidence: Sequence[str]
    pipeline: str
    cluster: str
    limits: str = ""


@dataclass(frozen=True)
class Rule:
    """One known cause: when it applies, and the hint it gives."""

    id: str
    applies: Callable[[Facts], bool]
    hint: Callable[[Facts], Hint]


_NAMES = {"closure_refs", "global_refs", "definition_scope", "nested_functions"}
_COLUMN0 = {"multiline_strings", "multiline_strings_col0"}


def _has(facts: Facts, *words: str) -> bool:
    text = "\n".join(facts.evidence)
    return any(w in text for w in words)


RULES: tuple[Rule, ...] = (
    Rule(
        "closure-or-global-lost",
        lambda f: f.failure_class == "name" and (f.driver in _NAMES or f.driver is None or _has(f, "NameError")),
        lambda f: Hint(
            rule="closure-or-global-lost",
            cause=f"the {f.pipeline} pipeline ships the function without the names it reads from its enclosing"
            f" function or module ({f.driver or 'a closure or global'})",
            fix="pass values as arguments or ship by value (cloudpickle carries closures and module globals;"
            " cloudpickle.register_pickle_by_value for a module of your own)",
        ),
    ),
    Rule(
        "column0-in-indented-def",
        lambda f: f.failure_class == "syntax" and (f.driver in _COLUMN0 or _has(f, "IndentationError", "indent")),
        lambda f: Hint(
            rule="column0-in-indented-def",
            cause="a multi-line string with a line at column 0 sits in an indented def: the runner's source"
            " fallback cannot dedent it",
            fix="move the string to module level, or build it with textwrap.dedent or '\\n'.join, or define the"
            " function at module level",
        ),
    ),
    Rule(
        "argv-too-long",
        lambda f: f.failure_class == "arg_too_long" or _has(f, "Argument list too long", "E2BIG"),
        lambda f: Hint(
            rule="argv-too-long",
            cause=f"the {f.pipeline} pipeline puts the payload on the command line, past the system's limit",
            fix="ship the payload as a file (or on stdin), not as an argument",
        ),
    ),
    Rule(
        "oom",
        lambda f: f.failure_class == "oom",
        lambda f: Hint(
            rule="oom",
            cause=f"the job ran out of memory on {f.cluster}"
            + (f" ({f.limits})" if f.limits else "")
            + (f", driven by {f.driver}" if f.driver else ""),
            fix="raise the memory or shrink the data (--memory, the cluster's memory setting, or a smaller input)",
        ),
    ),
    Rule(
        "far-side-module-missing",
        lambda f: f.failure_class == "import",
        lambda f: Hint(
            rule="far-side-module-missing",
            cause=f"a module the function imports is missing on {f.cluster}",
            fix="install it there or `register_pickle_by_value` (probe: --ship-local-modules) so it travels"
            " with the function",
        ),
    ),
)


def hint_for(facts: Facts) -> Hint | None:
    """The first rule that applies, or None when no known cause fits."""
    for rule in RULES:
        if rule.applies(facts):
            return rule.hint(facts)
    return None


__all__ = ["RULES", "Facts", "Hint", "Rule", "hint_for"]
