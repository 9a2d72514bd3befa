"""AST counts that static metrics are made of: scopes, subprocess call sites, nesting, features."""

from __future__ import annotations

import ast
import builtins
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

#: CPython before 3.12 keeps the depth of the tree `ast.parse` is building per interpreter, not per
#: thread: a thread switch while two threads parse (the collector runs Python code in the middle of
#: a parse) makes one fail with "SystemError: AST constructor recursion depth mismatch". Probes are
#: built and measured in several threads at once.
_PARSE_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """`ast.parse`, one thread at a time (see _PARSE_LOCK); SyntaxError as ast.parse raises it."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename)


# -- scopes: free variables and global references ------------------------------------------

_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)
_BUILTINS = frozenset(dir(builtins))


class _Shallow(ast.NodeVisitor):
    """Bindings and loads of one scope, without entering nested scopes (which it collects)."""

    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.loads: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.children: list[ast.AST] = []

    def scan(self, node: ast.AST) -> None:
        """Scan the parts of a scope node that run inside that scope."""
        if isinstance(node, FunctionNode | ast.Lambda):
            args = node.args
            for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if a is not None:
                    self.bound.add(a.arg)
            body: list[ast.AST] = [node.body] if isinstance(node, ast.Lambda) else list(node.body)
            for stmt in body:
                self.visit(stmt)
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                self.visit(stmt)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            for n, gen in enumerate(node.generators):
                self.visit(gen.target)
                if n:  # the first iterable runs in the enclosing scope
                    self.visit(gen.iter)
                for cond in gen.ifs:
                    self.visit(cond)
            if isinstance(node, ast.DictComp):
                self.visit(node.key)
                self.visit(node.value)
            else:
                self.visit(node.elt)
        else:
            self.generic_visit(node)

    def _enclosing_parts(self, node: ast.AST) -> None:
        # What a nested scope evaluates in this scope: decorators, defaults, bases, annotations.
        if isinstance(node, FunctionNode | ast.Lambda):
            for d in [*node.args.defaults, *node.args.kw_defaults]:
                if d is not None:
                    self.visit(d)
        if isinstance(node, FunctionNode | ast.ClassDef):
            self.bound.add(node.name)
            for d in node.decorator_list:
                self.visit(d)
        if isinstance(node, FunctionNode):
            for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                if a.annotation is not None:
                    self.visit(a.annotation)
            if node.returns is not None:
                self.visit(node.returns)
        if isinstance(node, ast.ClassDef):
            for b in [*node.bases, *(k.value for k in node.keywords)]:
                self.visit(b)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            self.visit(node.generators[0].iter)

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, _SCOPES):
            self._enclosing_parts(node)
            self.children.append(node)
            return None
        return super().visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.bound.add(node.id)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bound.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound.add(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.nonlocals.update(node.names)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)


class _Refs:
    """Closure and global references of every function in a module, by node."""

    def __init__(self, tree: ast.Module) -> None:
        self.closure: dict[int, set[str]] = {}
        self.globals: dict[int, set[str]] = {}
        top = _Shallow()
        for stmt in tree.body:
            top.visit(stmt)
        self.module_bound = top.bound
        for child in top.children:
            self._scope(child, [])

    def _scope(self, node: ast.AST, chain: list[tuple[bool, set[str]]]) -> set[str]:
        """Names this scope leaves unresolved; records closure/global refs of functions."""
        s = _Shallow()
        s.scan(node)
        bound = (s.bound - s.globals) - s.nonlocals
        is_function = not isinstance(node, ast.ClassDef)
        pending: set[str] = set()
        for child in s.children:
            pending |= self._scope(child, [*chain, (is_function, bound)])
        if isinstance(node, ast.ClassDef):
            # A class body resolves its own loads, but its names are invisible to its methods.
            unresolved = (s.loads - bound) | pending | s.globals
        else:
            unresolved = ((s.loads | pending) - bound) | s.nonlocals
        if isinstance(node, FunctionNode):
            closure, glob = set(), set()
            for name in unresolved - s.globals:
                if any(fn and name in names for fn, names in chain):
                    closure.add(name)
                elif name in self.module_bound or name not in _BUILTINS:
                    glob.add(name)
            glob |= s.globals
            self.closure[id(node)] = closure
            self.globals[id(node)] = glob
        # A name declared global goes straight to the module; do not offer it to enclosing scopes.
        return unresolved - s.globals


# -- AST counts ----------------------------------------------------------------------------

_COMPOUND: tuple[type[ast.stmt], ...] = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.Try,
    ast.With,
    ast.AsyncWith,
    ast.Match,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)
if sys.version_info >= (3, 11):
    _COMPOUND = (*_COMPOUND, ast.TryStar)

_SUBPROCESS_FUNCS = frozenset({"run", "call", "check_call", "check_output", "Popen", "getoutput", "getstatusoutput"})
_OS_FUNCS = frozenset(
    {"system", "popen", "posix_spawn", "posix_spawnp"}
    | {f"spawn{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
    | {f"exec{s}" for s in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
)
_ASYNCIO_FUNCS = frozenset({"create_subprocess_exec", "create_subprocess_shell"})
_MODULE_FUNCS = {"subprocess": _SUBPROCESS_FUNCS, "os": _OS_FUNCS, "asyncio": _ASYNCIO_FUNCS}


class _Aliases:
    """How a module refers to subprocess, os and asyncio, and to their functions imported bare."""

    def __init__(self, tree: ast.Module) -> None:
        self.modules: dict[str, str] = {m: m for m in _MODULE_FUNCS}
        self.functions: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in _MODULE_FUNCS and alias.asname:
                        self.modules[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom) and node.module in _MODULE_FUNCS:
                for alias in node.names:
                    if alias.name in _MODULE_FUNCS[node.module]:
                        self.functions.add(alias.asname or alias.name)

    def is_subprocess_call(self, call: ast.Call) -> bool:
        f = call.func
        if isinstance(f, ast.Name):
            return f.id in self.functions
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            module = self.modules.get(f.value.id)
            return module is not None and f.attr in _MODULE_FUNCS[module]
        return False


def _max_nesting(stmts: Sequence[ast.stmt], depth: int = 0) -> int:
    best = depth
    for stmt in stmts:
        if not isinstance(stmt, _COMPOUND):
            continue
        inner = depth + 1
        blocks: list[Sequence[ast.stmt]] = []
        for field in ("body", "orelse", "finalbody"):
            blocks.append(getattr(stmt, field, []))
        blocks.extend(h.body for h in getattr(stmt, "handlers", []))
        blocks.extend(c.body for c in getattr(stmt, "cases", []))
        if isinstance(stmt, ast.If) and len(stmt.orelse) == 1:
            elif_ = stmt.orelse[0]
            if isinstance(elif_, ast.If) and elif_.col_offset == stmt.col_offset:
                # `elif` sits at the depth of its `if`, not inside it.
                blocks.remove(stmt.orelse)
                best = max(best, _max_nesting([elif_], depth))
        for block in blocks:
            best = max(best, _max_nesting(block, inner))
    return best


def _data_structures(node: ast.AST) -> int:
    if isinstance(node, ast.Dict | ast.List | ast.Set):
        # An empty display is an accumulator to fill, not a data structure written down.
        return 1 if (node.keys if isinstance(node, ast.Dict) else node.elts) else 0
    return sum(_data_structures(child) for child in ast.iter_child_nodes(node))


def _multiline_strings(node: ast.AST) -> int:
    """String literals spanning several lines; an f-string counts once, not once per part."""
    if isinstance(node, ast.JoinedStr):
        return int((node.end_lineno or node.lineno) > node.lineno)
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        return int((node.end_lineno or node.lineno) > node.lineno)
    return sum(_multiline_strings(child) for child in ast.iter_child_nodes(node))


def _is_range_loop(stmt: ast.stmt) -> bool:
    it = stmt.iter if isinstance(stmt, ast.For) else None
    return isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"


def _string_bytes(node: ast.AST) -> int:
    total = 0
    for n in ast.walk(node):
        if isinstance(n, ast.Constant):
            if isinstance(n.value, str):
                total += len(n.value.encode("utf-8", "surrogatepass"))
            elif isinstance(n.value, bytes):
                total += len(n.value)
    return total


# -- measuring -----------------------------------------------------------------------------


def _functions(tree: ast.Module) -> Iterator[tuple[FunctionNode, str]]:
    """Every function with its qualname, in source order (methods and nested ones included)."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[FunctionNode, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, FunctionNode):
                qual = f"{prefix}{child.name}"
                yield child, qual
                yield from walk(child, f"{qual}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.Lambda):
                yield from walk(child, f"{prefix}<lambda>.<locals>.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


# -- one walk for every count of a function ------------------------------------------------

_DISPLAYS = (ast.Dict, ast.List, ast.Set)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


class WalkCounts:
    """The counts of a function's subtree that one walk gives (see metrics.py for their meaning)."""

    __slots__ = (
        "ast_nodes",
        "comprehensions",
        "data_structures",
        "lambdas",
        "multiline_strings",
        "nested_functions",
        "string_literal_bytes",
        "subprocess_calls",
    )

    def __init__(self) -> None:
        self.ast_nodes = 0
        self.subprocess_calls = 0
        self.nested_functions = 0
        self.lambdas = 0
        self.comprehensions = 0
        self.data_structures = 0
        self.multiline_strings = 0
        self.string_literal_bytes = 0


def walk_counts(node: FunctionNode, aliases: _Aliases) -> WalkCounts:
    """Every count of one walk over a function's subtree.

    A function is walked once rather than once per count: on a long function the walks were most
    of the time `probe measure` took. The results equal ``_data_structures`` (outermost non-empty
    displays), ``_multiline_strings`` (an f-string counts once, not per part), ``_string_bytes``
    and ``ast.walk`` counts.
    """
    c = WalkCounts()
    # (node, inside a display, inside an f-string): what is below those is not counted again.
    stack: list[tuple[ast.AST, bool, bool]] = [(node, False, False)]
    pop, push = stack.pop, stack.append
    while stack:
        n, in_display, in_fstring = pop()
        c.ast_nodes += 1
        if isinstance(n, ast.Constant):
            v = n.value
            if isinstance(v, str):
                c.string_literal_bytes += len(v.encode("utf-8", "surrogatepass"))
            elif isinstance(v, bytes):
                c.string_literal_bytes += len(v)
            else:
                continue
            if not in_fstring and (n.end_lineno or n.lineno) > n.lineno:
                c.multiline_strings += 1
            continue
        if isinstance(n, ast.Name):
            c.ast_nodes += 1  # its ctx (Load, Store, Del), a node of its own to ast.walk
            continue
        if isinstance(n, ast.Call):
            if aliases.is_subprocess_call(n):
                c.subprocess_calls += 1
        elif isinstance(n, _DISPLAYS):
            if not in_display and (n.keys if isinstance(n, ast.Dict) else n.elts):
                c.data_structures += 1
            in_display = True
        elif isinstance(n, ast.JoinedStr):
            if not in_fstring and (n.end_lineno or n.lineno) > n.lineno:
                c.multiline_strings += 1
            in_fstring = True
        elif isinstance(n, FunctionNode):
            c.nested_functions += 1
        elif isinstance(n, ast.Lambda):
            c.lambdas += 1
        elif isinstance(n, _COMPREHENSIONS):
            c.comprehensions += 1
        for field in n._fields:
            v = getattr(n, field, None)
            if isinstance(v, ast.AST):
                push((v, in_display, in_fstring))
            elif isinstance(v, list):
                for item in v:
                    if isinstance(item, ast.AST):
                        push((item, in_display, in_fstring))
    c.nested_functions -= 1  # the function itself
    return c
