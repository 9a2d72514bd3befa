"""Whether a pytest command line can select a test that needs the loopback testbed.

`scripts/test` asks this before it starts the servers: `bash scripts/test -m "not testbed"` (the
fast part) starts none. Only the marker expression is read, the way pytest reads it (the last
`-m` wins); a command line without one may select any test, so it needs the testbed.

Command line: `python -m tests.testbed.selection PYTEST_ARGS...` exits 0 when the testbed is
needed, 1 when it is not.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence

from _pytest.mark.expression import Expression

#: The marker every testbed test carries (tests/conftest.py adds it to the ssh and slurm ones).
TESTBED = "testbed"
_KEYWORDS = {"and", "or", "not", "True", "False", "None"}
#: Past this many other names, trying every combination costs more than starting the servers.
_MAX_NAMES = 12


def marker_expression(args: Sequence[str]) -> str | None:
    """The `-m` expression pytest would use (the last one given), or None."""
    found: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            break
        if arg == "-m" and i + 1 < len(args):
            found = args[i + 1]
            i += 2
            continue
        if arg.startswith("-m") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:]
        i += 1
    return found


def expression_allows_testbed(expr: str) -> bool:
    """True when some test marked `testbed` (with any other markers) matches `expr`."""
    try:
        compiled = Expression.compile(expr)
    except SyntaxError:
        return True  # pytest will say what is wrong with it; do not guess
    names = sorted({n for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr) if n not in _KEYWORDS} - {TESTBED})
    if len(names) > _MAX_NAMES:
        return True
    for values in itertools.product((False, True), repeat=len(names)):
        marks = {TESTBED, *(n for n, on in zip(names, values, strict=True) if on)}

        def matcher(name: str, /, **kwargs: object) -> bool:
            return not kwargs and name in marks  # noqa: B023 - evaluated at once, inside this iteration

        if compiled.evaluate(matcher):
            return True
    return False


def needs_testbed(args: Sequence[str]) -> bool:
    """Whether pytest with these arguments may run a test that needs the loopback testbed."""
    expr = marker_expression(args)
    return expr is None or expression_allows_testbed(expr)


if __name__ == "__main__":
    sys.exit(0 if needs_testbed(sys.argv[1:]) else 1)
