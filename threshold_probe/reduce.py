"""Source reducers: the smallest module source that a checker still accepts.

Two reducers, both deterministic (the same answers give the same questions, so a resumed shrink
replays its journal without dispatching anything it already asked):

- ``pysource-minimize`` (an AST reducer): removes and simplifies nodes, down to names and
  values. It re-renders the source with ``ast.unparse``, so it can only run when that round
  trip keeps the failure.
- ``statements``: removes whole statements (with their decorators) from the original text, by
  bisection over every block, outermost first. Formatting, comments and string literals stay as
  written, so a failure that depends on the text itself (an indented definition holding column-0
  lines: an IndentationError on the far side) survives it.

Speculation (``speculate``): a reducer asks one question at a time. To keep P probes in flight,
the process forks at each unanswered question; the child goes on assuming "no" (the most common
answer once a source is small) and reports the next questions it would ask, which are probed
together with the real one. The child only computes ASTs and exits: it never touches the
journal, the terminal or a connection.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator

from threshold_probe.ast_counts import parse as parse_source

Checker = Callable[[str], bool]


def source_hash(source: str) -> str:
    """The key a candidate is cached and journalled by."""
    return hashlib.sha256(source.encode()).hexdigest()


def nonblank_lines(source: str) -> int:
    """Lines that hold something: the size a shrink reports."""
    return sum(1 for line in source.splitlines() if line.strip())


def compiles(source: str) -> bool:
    """Whether the source compiles here (a candidate that does not is never probed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<candidate>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


# -- statement reducer -------------------------------------------------------------------------


def _bodies(tree: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every block of statements, outermost first (breadth first)."""
    queue: list[ast.AST] = [tree]
    while queue:
        node = queue.pop(0)
        for name in ("body", "orelse", "finalbody", "handlers"):
            block = getattr(node, name, None)
            if isinstance(block, list) and block and all(isinstance(s, ast.stmt) for s in block):
                yield block
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                queue.append(child)


def _span(stmt: ast.stmt) -> tuple[int, int]:
    """First and last line (1-based) of a statement, its decorators included."""
    first = stmt.lineno
    for deco in getattr(stmt, "decorator_list", []) or []:
        first = min(first, deco.lineno)
    return first, stmt.end_lineno or stmt.lineno


def _without(lines: list[str], body: list[ast.stmt], drop: set[int]) -> str:
    """The source with the statements of `body` at the indexes in `drop` removed."""
    removed: set[int] = set()
    for i in drop:
        first, last = _span(body[i])
        removed.update(range(first, last + 1))
    out: list[str] = []
    filler_at: int | None = None
    if len(drop) == len(body):
        # An empty block is a syntax error: a `pass` stands where the first statement was.
        filler_at = _span(body[0])[0]
    for n, line in enumerate(lines, start=1):
        if n == filler_at:
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}pass\n")
        if n not in removed:
            out.append(line)
    return "".join(out)


def _semicolon_free(body: list[ast.stmt]) -> bool:
    """Statements that share a line cannot be removed one at a time by lines."""
    seen: set[int] = set()
    for stmt in body:
        first, last = _span(stmt)
        lines = set(range(first, last + 1))
        if lines & seen:
            return False
        seen |= lines
    return True


def reduce_statements(source: str, check: Checker) -> str:
    """Remove whole statements while `check` accepts the result; the text of the rest is kept.

    One pass visits every block once, outermost first; after an accepted removal the source is
    parsed again and the pass goes on at the same block (the blocks before it are unchanged).
    Passes repeat until one removes nothing.
    """
    current = source
    changed = True
    while changed:
        changed = False
        index = 0
        while True:
            try:
                bodies = list(_bodies(parse_source(current)))
            except SyntaxError:
                return current
            if index >= len(bodies):
                break
            body = bodies[index]
            kept = _divide(current, body, check) if _semicolon_free(body) else None
            if kept is None:
                index += 1
                continue
            current = kept
            changed = True
    return current


def _divide(current: str, body: list[ast.stmt], check: Checker) -> str | None:
    """Bisection over one block: the first accepted removal (latest statements first), or None."""
    lines = current.splitlines(keepends=True)
    if len(body) == 1 and isinstance(body[0], ast.Pass):
        return None  # nothing left to remove: `pass` would only replace itself
    chunks = [list(range(len(body)))]
    while chunks:
        chunk = chunks.pop(0)
        candidate = _without(lines, body, set(chunk))
        if candidate != current and check(candidate):
            return candidate
        if len(chunk) > 1:
            mid = len(chunk) // 2
            # Later statements first: a use goes before its definition.
            chunks[:0] = [chunk[mid:], chunk[:mid]]
    return None


# -- pysource-minimize --------------------------------------------------------------------------


class RoundTripLost(Exception):
    """``ast.unparse`` of the source no longer fails the same way: the AST reducer cannot run."""


def reduce_ast(source: str, check: Checker) -> str:
    """pysource-minimize over the source; RoundTripLost when the re-rendered source is not accepted."""
    from pysource_minimize import CouldNotMinimize, minimize

    try:
        # retries=0: one round of every strategy without progress ends it. Its default of 1
        # spends a second such round, every candidate of which is a real probe here (and a
        # flaky failure is the job of --repeat, not of asking twice).
        return minimize(source, check, retries=0)
    except CouldNotMinimize as exc:
        raise RoundTripLost(str(exc)) from None


# -- speculation -------------------------------------------------------------------------------


class Speculator:
    """Forks at an unanswered question to learn the next ones the reducer would ask on "no".

    `known` is the checker's cache (hash -> answer) and `static` its probe-free filter (False
    rejects without a probe); both are read in the child, which is a copy of this process.
    """

    def __init__(self, known: dict[str, bool], static: Callable[[str], bool]) -> None:
        self.known = known
        self.static = static
        #: Set in a forked child: the questions seen so far, and how many to collect.
        self._child: list[str] | None = None
        self._want = 0
        self._fd = -1

    @staticmethod
    def available() -> bool:
        return hasattr(os, "fork")

    @property
    def in_child(self) -> bool:
        return self._child is not None

    def child_answer(self, source: str) -> bool:
        """In the child: a cached answer, else note the question and assume "no"."""
        assert self._child is not None
        key = source_hash(source)
        if key in self.known:
            return self.known[key]
        if not self.static(source):
            self.known[key] = False
            return False
        if source not in self._child:
            self._child.append(source)
        if len(self._child) >= self._want:
            self.child_exit()
        self.known[key] = False
        return False

    def child_exit(self) -> None:
        """In the child: hand the questions to the parent and end, whatever the reducer was doing."""
        data = json.dumps(self._child or []).encode()
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        finally:
            os._exit(0)

    def next_questions(self, pending: str, count: int) -> list[str]:
        """The next `count` questions after `pending`, assuming it and each of them is answered "no".

        Returns in the parent; the child returns "no" from the checker and runs on until it has
        them (or the reducer ends, see `finish`).
        """
        if count <= 0 or not self.available():
            return []
        read_fd, write_fd = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child runs no thread code
            pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            self._child = []
            self._want = count
            self._fd = write_fd
            self.known[source_hash(pending)] = False
            raise _ChildContinues
        os.close(write_fd)
        chunks: list[bytes] = []
        while True:
            block = os.read(read_fd, 65536)
            if not block:
                break
            chunks.append(block)
        os.close(read_fd)
        os.waitpid(pid, 0)
        try:
            found = json.loads(b"".join(chunks) or b"[]")
        except ValueError:
            return []
        return [s for s in found if isinstance(s, str)]

    def finish(self) -> None:
        """Called after the reducer returns: a child ends here with what it has."""
        if self.in_child:
            self.child_exit()


class _ChildContinues(Exception):
    """Raised in a freshly forked child: the checker answers "no" and the reducer runs on."""


def speculative_checker(
    answer: Callable[[list[str]], None],
    known: dict[str, bool],
    static: Callable[[str], bool],
    parallel: int,
) -> tuple[Checker, Speculator]:
    """A checker for a reducer: cached answers, the static filter, then probes in batches.

    `answer(sources)` probes the sources (the first is the one asked) and fills `known`.
    """
    spec = Speculator(known, static)

    def check(source: str) -> bool:
        if spec.in_child:
            return spec.child_answer(source)
        key = source_hash(source)
        if key in known:
            return known[key]
        if not static(source):
            known[key] = False
            return False
        batch = [source]
        if parallel > 1:
            try:
                batch += [s for s in spec.next_questions(source, parallel - 1) if s != source]
            except _ChildContinues:
                return False
        answer(batch)
        return known[key]

    return check, spec


def is_defined(source: str, name: str) -> bool:
    """Whether the module defines `name` at its top level (def, class, assignment or import)."""
    try:
        tree = parse_source(source)
    except SyntaxError:
        return False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            return True
    return False


__all__ = [
    "Checker",
    "RoundTripLost",
    "Speculator",
    "compiles",
    "is_defined",
    "nonblank_lines",
    "reduce_ast",
    "reduce_statements",
    "source_hash",
    "speculative_checker",
]
