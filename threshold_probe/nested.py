"""Functions defined inside other functions: reached without running the function around them.

Runner test suites define their payloads inside test functions and factories::

    def test_level5(cluster):
        factor = 3
        def level5():
            return factor * 2
        assert cluster.run(level5) == 6

`level5` only exists while `test_level5` runs, and running the test would call the runner. So
the module gets a *reach* for it: a module-level function appended to the source that repeats
the statements of the enclosing function that `level5` reads (here `factor = 3`, and what those
statements read in turn), then the definition of `level5` itself, verbatim, and returns it::

    def _probe_reach__test_level5__level5():
        factor = 3
        def level5():
            return factor * 2
        return level5

The definition keeps its text, its column and its closure, so it pickles, ships and measures as
the original would (a column-0 line in it stays at column 0). Nothing else of the enclosing
function runs: not the runner call, not the assertions. A definition that cannot be reached
this way says why (it reads a parameter of the enclosing function, such as a fixture; it sits
in a loop or a branch; it reads a name set only after it).

Every reachable definition of a file gets its reach in one appended block, so the source of a
file is the same whichever of its functions is loaded (the cache and linecache see one text).
"""

from __future__ import annotations

import ast
import types
from collections.abc import Iterator
from dataclasses import dataclass, field

from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.errors import UserError

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

#: The prefix of every reach; a user's own names never start with it.
REACH_PREFIX = "_probe_reach__"


@dataclass(frozen=True)
class Definition:
    """One function definition of a module, with the path that names it (`Class.method`, `outer.inner`)."""

    path: str
    node: FunctionNode
    #: The definitions (classes and functions) that enclose it, outermost first.
    chain: tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, ...]
    #: False when it sits in a loop, branch, `with` or `try` of its parent rather than in its body.
    direct: bool = True

    @property
    def nested(self) -> bool:
        """Defined inside a function (not only inside classes)."""
        return any(isinstance(p, FunctionNode) for p in self.chain)


@dataclass
class Reach:
    """How to get a nested function: the appended reach's name, or why there is none."""

    path: str
    accessor: str | None = None
    reason: str | None = None
    text: str = ""
    needed: list[str] = field(default_factory=list)


def definitions(tree: ast.Module) -> list[Definition]:
    """Every function definition of a module in source order, with its dotted path."""
    out: list[Definition] = []

    def walk(
        body: list[ast.stmt],
        chain: tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, ...],
        prefix: str,
        direct: bool,
    ) -> None:
        for stmt in body:
            if isinstance(stmt, FunctionNode):
                path = f"{prefix}{stmt.name}"
                out.append(Definition(path=path, node=stmt, chain=chain, direct=direct))
                walk(stmt.body, (*chain, stmt), f"{path}.", True)
            elif isinstance(stmt, ast.ClassDef):
                walk(stmt.body, (*chain, stmt), f"{prefix}{stmt.name}.", direct)
            else:
                for block in _blocks(stmt):
                    # Inside a module-level `if`/`try` a definition still exists after import.
                    walk(block, chain, prefix, direct and not chain)

    walk(tree.body, (), "", True)
    return out


def _blocks(stmt: ast.stmt) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        block = getattr(stmt, name, None)
        if isinstance(block, list) and block and isinstance(block[0], ast.stmt):
            yield block
    for handler in getattr(stmt, "handlers", []):
        yield handler.body
    for case in getattr(stmt, "cases", []):
        yield case.body


def _code_of(module_code: types.CodeType, chain: list[ast.AST]) -> list[types.CodeType] | None:
    """The code objects along a chain of definitions (classes and functions), from the module's."""
    codes: list[types.CodeType] = []
    current = module_code
    for node in chain:
        assert isinstance(node, FunctionNode | ast.ClassDef)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        found = None
        for const in _all_code(current):
            if const.co_name == node.name and first <= const.co_firstlineno <= node.lineno:
                found = const
        if found is None:
            return None
        codes.append(found)
        current = found
    return codes


def _all_code(code: types.CodeType) -> Iterator[types.CodeType]:
    """Code objects directly inside `code`, and inside its comprehensions (not other functions)."""
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield const
            if const.co_name.startswith("<"):
                yield from _all_code(const)


class _Names(ast.NodeVisitor):
    """Names a statement binds and reads in its own scope; nested scopes only for what they read."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.loads: set[str] = set()
        self.rebinds_only = True

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.bound.add(node.id)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.rebinds_only = False
        if isinstance(node.target, ast.Name):
            self.loads.add(node.target.id)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bound.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.bound.add(alias.asname or alias.name)

    def _scope(self, node: FunctionNode | ast.ClassDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            self.bound.add(node.name)
            for d in node.decorator_list:
                self.visit(d)
        # What an inner scope reads may come from here: an over-approximation, which only keeps
        # a statement more.
        inner = _Names()
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.expr) or isinstance(node, ast.Lambda):
                inner.visit(child)
        self.loads |= inner.loads

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scope(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scope(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scope(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scope(node)


def _names(stmt: ast.stmt) -> _Names:
    names = _Names()
    names.visit(stmt)
    return names


def _segment(lines: list[str], first: int, last: int) -> list[str]:
    return lines[first - 1 : last]


def _stmt_lines(lines: list[str], stmt: ast.stmt) -> list[str]:
    first = stmt.lineno
    if isinstance(stmt, FunctionNode | ast.ClassDef) and stmt.decorator_list:
        first = min(d.lineno for d in stmt.decorator_list)
    return _segment(lines, first, stmt.end_lineno or stmt.lineno)


def _select(
    body: list[ast.stmt], upto: ast.stmt, want: set[str], local: set[str]
) -> tuple[list[ast.stmt], set[str]] | None:
    """The statements before `upto` that bind what is wanted (and what they read, in turn).

    Returns them in source order, and the wanted local names nothing before `upto` binds; None
    when `upto` is not a statement of `body` itself (it sits in a block).
    """
    if upto not in body:
        return None
    index = body.index(upto)
    kept: list[ast.stmt] = []
    pending = set(want)
    for stmt in reversed(body[:index]):
        names = _names(stmt)
        if not (names.bound & pending):
            continue
        kept.append(stmt)
        if names.rebinds_only and not isinstance(stmt, ast.If | ast.For | ast.While | ast.Try | ast.With):
            pending -= names.bound
        pending |= names.loads & local
    kept.reverse()
    return kept, pending & local


def reach_of(source: str, tree: ast.Module, module_code: types.CodeType, d: Definition) -> Reach:
    """The reach of one nested definition, or why it has none."""
    reach = Reach(path=d.path)
    functions = [i for i, p in enumerate(d.chain) if isinstance(p, FunctionNode)]
    start = functions[0]
    outer_chain = list(d.chain[start:])
    # Only a chain of functions inside the first one (a class inside a function is too much).
    if any(not isinstance(p, FunctionNode) for p in outer_chain):
        reach.reason = "defined in a class inside a function: reached only by running that function"
        return reach
    if not d.direct:
        reach.reason = f"defined in a loop, branch or block of {d.chain[-1].name}: reached only by running it"
        return reach
    codes = _code_of(module_code, [*d.chain, d.node])
    if codes is None:
        reach.reason = "its code could not be found in the compiled module"
        return reach
    fn_codes = codes[start:]
    lines = source.splitlines()
    funcs: list[FunctionNode] = [p for p in outer_chain if isinstance(p, FunctionNode)]
    targets: list[FunctionNode] = [*funcs[1:], d.node]
    # From the innermost enclosing function outwards: what each level must define for the next.
    want = set(fn_codes[-1].co_freevars)
    picked: list[list[ast.stmt]] = []
    for level in range(len(funcs) - 1, -1, -1):
        fn, code = funcs[level], fn_codes[level]
        local = set(code.co_varnames) | set(code.co_cellvars)
        mine = want & local
        selected = _select(fn.body, targets[level], mine, local)
        if selected is None:
            reach.reason = f"defined in a loop, branch or block of {fn.name}: reached only by running it"
            return reach
        kept, missing = selected
        params = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
        for extra in (fn.args.vararg, fn.args.kwarg):
            if extra is not None:
                params.add(extra.arg)
        if missing & params:
            name = sorted(missing & params)[0]
            reach.reason = (
                f"reads {name}, a parameter of {fn.name}: it exists only when {fn.name} is called"
                " (a fixture or an argument)"
            )
            return reach
        if missing:
            name = sorted(missing)[0]
            reach.reason = f"reads {name}, which {fn.name} sets only after defining {targets[level].name}"
            return reach
        picked.append(kept)
        reads: set[str] = set()
        for stmt in kept:
            reads |= _names(stmt).loads
        want = (want - local) | (reads & set(code.co_freevars))
    picked.reverse()
    name = REACH_PREFIX + d.path.replace(".", "__")
    for inner in targets[:-1]:
        a = inner.args
        if a.args or a.posonlyargs or a.kwonlyargs or a.vararg or a.kwarg:
            reach.reason = f"{inner.name}, which encloses it, takes arguments: reached only by calling it"
            return reach

    def body(level: int) -> list[str]:
        # The body of funcs[level], at the column of its inner definition, as in the file.
        inner = targets[level]
        col = " " * inner.col_offset
        out: list[str] = []
        for stmt in picked[level]:
            out += _stmt_lines(lines, stmt)
        if inner is d.node:
            out += _stmt_lines(lines, inner)
            out.append(f"{col}return {inner.name}")
        else:
            out.append(f"{col}def {inner.name}():")
            out += body(level + 1)
            out.append(f"{col}return {inner.name}()")
        return out

    reach.accessor = f"{name}()"
    reach.text = "\n".join([f"def {name}():", *body(0)]) + "\n"
    reach.needed = sorted({n for kept in picked for s in kept for n in _names(s).bound})
    try:
        compile(source + "\n\n" + reach.text, "<reach>", "exec")
    except SyntaxError as exc:
        reach.accessor = None
        reach.reason = f"its definition cannot be repeated on its own ({exc.msg})"
    return reach


def reaches(source: str, filename: str = "<source>") -> dict[str, Reach]:
    """The reach of every nested definition of a module, by dotted path."""
    try:
        tree = parse_source(source)
        code = compile(source, filename, "exec")
    except SyntaxError:
        return {}
    out: dict[str, Reach] = {}
    for d in definitions(tree):
        if d.nested:
            out[d.path] = reach_of(source, tree, code, d)
    return out


def with_reaches(source: str, found: dict[str, Reach]) -> str:
    """The module source with every working reach appended (unchanged when there is none)."""
    texts = [r.text for r in found.values() if r.accessor is not None]
    if not texts:
        return source
    sep = "" if source.endswith("\n") else "\n"
    return source + sep + "\n\n# Reaches of nested definitions (threshold-probe).\n" + "\n\n".join(texts)


def reach_target(source: str, attr: str, filename: str) -> tuple[str, str] | None:
    """(source with reaches, accessor) for a dotted name that goes through a function; None for
    any other name. UserError, with the reason, when the nested function cannot be reached."""
    parts = attr.split(".")
    if len(parts) < 2:
        return None
    found = reaches(source, filename)
    reach = found.get(attr)
    if reach is None:
        return None
    if reach.accessor is None:
        raise UserError(f"{filename}: {attr} cannot be loaded on its own: {reach.reason}")
    return with_reaches(source, found), reach.accessor


__all__ = ["REACH_PREFIX", "Definition", "Reach", "definitions", "reach_of", "reach_target", "reaches", "with_reaches"]
