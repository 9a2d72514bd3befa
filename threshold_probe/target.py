"""The user's own function: FILE:FUNC, FILE:Class.method, pkg.module:func or NOTEBOOK:func, with arguments.

A target is loaded the way `python FILE` would load it: the file's folder comes first on
`sys.path`, so sibling modules import. Everything a user can get wrong (an unreadable file, a
syntax error, a missing or non-callable name, a required argument not given) is a UserError
raised before anything is dispatched.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import inspect
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import Field

from threshold_probe.errors import UserError
from threshold_probe.ladder.spec import Ladder, Level
from threshold_probe.ladder.workload import Workload
from threshold_probe.nested import reach_target


@dataclass(frozen=True)
class Target:
    """Where a user's function lives: a source text, its file (if any) and the dotted name in it."""

    text: str
    source: str
    filename: str
    #: The folder that goes first on sys.path while loading (the file's own folder).
    folder: str | None
    attr: str
    #: The package the module belongs to, so that its relative imports resolve.
    package: str | None = None


def parse_args(pairs: Sequence[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs as keyword arguments: a value is JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise UserError(f"--arg wants NAME=VALUE, got {pair!r}")
        try:
            out[name] = json.loads(raw)
        except ValueError:
            out[name] = raw
    return out


def _notebook_source(path: Path, text: str) -> str:
    """The code cells of a Jupyter notebook as one module; IPython magics become comments."""
    try:
        nb = json.loads(text)
        cells = nb["cells"]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a Jupyter notebook (no cells)") from None
    chunks: list[str] = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        lines = "".join(src) if isinstance(src, list) else str(src)
        kept = [f"# {ln}" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines.splitlines()]
        chunks.append("\n".join(kept))
    return "\n\n".join(chunks) + "\n"


def _split(text: str) -> tuple[str, str]:
    spec, sep, attr = text.rpartition(":")
    if not sep or not spec or not attr:
        raise UserError(f"--function wants FILE:FUNC or package.module:func, got {text!r}")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise UserError(f"--function: {attr!r} is not a function name (FUNC or Class.method)")
    return spec, attr


def _is_file_spec(spec: str) -> bool:
    return spec.endswith((".py", ".ipynb", ".pyw")) or "/" in spec or Path(spec).is_file()


def resolve_target(text: str) -> Target:
    """Read the target's source without running it; UserError when it cannot be read or compiled."""
    spec, attr = _split(text)
    package: str | None = None
    if _is_file_spec(spec):
        path = Path(spec).expanduser()
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"file not found: {path}") from None
        except IsADirectoryError:
            raise UserError(f"{path} is a folder; --function wants FILE:FUNC") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise UserError(f"cannot read {path}: {reason}") from None
        path = path.resolve()
        source = _notebook_source(path, raw) if path.suffix == ".ipynb" else raw
        folder = str(path.parent)
        filename = str(path)
    else:
        if not all(part.isidentifier() for part in spec.split(".")):
            raise UserError(f"--function: {spec!r} is neither a file nor a module name")
        cwd = str(Path.cwd())
        added = cwd not in sys.path
        if added:
            sys.path.insert(0, cwd)
        try:
            found = importlib.util.find_spec(spec)
        except (ImportError, ValueError) as exc:
            raise UserError(f"cannot find module {spec}: {exc}") from None
        if found is None or not found.origin or not found.has_location:
            raise UserError(f"no module named {spec!r} here (is its package installed or in this folder?)")
        path = Path(found.origin)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
        package = found.parent or None
        # The folder the package is imported from, so its absolute imports resolve too.
        depth = spec.count(".") + (1 if path.name == "__init__.py" else 0)
        folder = str(path.parents[depth]) if depth < len(path.parents) else cwd
        filename = str(path)
    try:
        compile(source, filename, "exec")
    except SyntaxError as exc:
        raise UserError(f"{filename}:{exc.lineno}: syntax error: {exc.msg}") from None
    return Target(text=text, source=source, filename=filename, folder=folder, attr=attr, package=package)


def _did_you_mean(name: str, namespace: Mapping[str, Any]) -> str:
    candidates = [k for k, v in namespace.items() if not k.startswith("__") and callable(v)]
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _lookup(target: Target, namespace: dict[str, Any]) -> Callable[..., Any]:
    obj: Any = None
    scope: Mapping[str, Any] = namespace
    parts = target.attr.split(".")
    for i, part in enumerate(parts):
        where = target.filename if i == 0 else ".".join(parts[:i])
        if part not in scope:
            raise UserError(f"{where} has no {part!r}{_did_you_mean(part, scope)}")
        obj = scope[part]
        scope = {k: getattr(obj, k, None) for k in dir(obj)} if i < len(parts) - 1 else {}
    if not callable(obj):
        raise UserError(f"{target.filename}: {target.attr} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def check_call(func: Callable[..., Any], name: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse a call that would fail for want of arguments, naming them."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return  # a builtin or C function: nothing to check here
    params = sig.parameters.values()
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(kwargs) - named) if not takes_any else []
    if unknown:
        hint = difflib.get_close_matches(unknown[0], sorted(named), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        takes = ", ".join(sorted(named)) or "none"
        raise UserError(f"{name} takes no argument {unknown[0]!r}{extra}; it takes: {takes}")
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in kwargs
    ]
    if any(p.kind is p.POSITIONAL_ONLY and p.default is inspect.Parameter.empty for p in params):
        missing += [p.name for p in params if p.kind is p.POSITIONAL_ONLY and p.default is inspect.Parameter.empty]
    if missing:
        given = " ".join(f"--arg {m}=VALUE" for m in missing)
        raise UserError(f"{name} needs {', '.join(missing)}: give {given}")


def _accessor(attr: str, kwargs: Mapping[str, Any]) -> str:
    """The expression that yields the function to call, with its arguments bound."""
    if not kwargs:
        return attr
    bound = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"__import__('functools').partial({attr}, {bound})"


def _reached(workload: Workload, namespace: dict[str, Any]) -> Callable[..., Any]:
    """A nested function, through its reach; UserError when the statements it repeats fail here."""
    try:
        func = eval(workload.accessor or workload.func_name, namespace)
    except BaseException as exc:  # the user's statements: anything may happen there
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"{workload.filename}: reaching {workload.name} failed: {type(exc).__name__}: {exc}") from None
    return func  # type: ignore[no-any-return]


def load_target(text: str, args: Mapping[str, Any] | None = None, *, ship_local_modules: bool = False) -> Workload:
    """The workload of a user's function, checked here: it loads, the name exists, the call fits.

    Loading runs the module's top level on this machine, as `python FILE` would (its folder first
    on sys.path); a failure there is the user's to fix, so it is a UserError, not a probe.
    """
    kwargs = dict(args or {})
    target = resolve_target(text)
    label = f"{Path(target.filename).name}:{target.attr}"
    # A function defined inside another (a test function, a factory) is reached without running
    # the function around it (threshold_probe/nested.py).
    nested = reach_target(target.source, target.attr, target.filename)
    if nested is not None:
        target = replace(target, source=nested[0])
    workload = Workload(
        name=label,
        source=target.source,
        func_name=target.attr.split(".")[-1] if nested else target.attr.split(".")[0],
        accessor=nested[1] if nested else target.attr,
        filename=target.filename,
        search_path=(target.folder,) if target.folder else (),
        package=target.package,
        ship_local_modules=ship_local_modules,
    )
    try:
        namespace = workload.namespace()
    except UserError:
        raise
    except SyntaxError as exc:
        raise UserError(f"{target.filename}:{exc.lineno}: syntax error: {exc.msg}") from None
    except BaseException as exc:  # the user's module top level: anything may happen there
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"{target.filename}: loading it here failed: {type(exc).__name__}: {exc}") from None
    func = _reached(workload, namespace) if nested else _lookup(target, namespace)
    check_call(func, label, kwargs)
    if not kwargs:
        return workload
    return Workload(
        name=label,
        source=target.source,
        func_name=workload.func_name,
        accessor=_accessor(workload.accessor or target.attr, kwargs),
        filename=target.filename,
        search_path=workload.search_path,
        package=target.package,
        ship_local_modules=ship_local_modules,
        spec={"args": kwargs},
    )


# -- scaling one argument into a ladder ------------------------------------------------------------


def _number(text: str, what: str) -> int | float:
    try:
        value = json.loads(text.strip().replace("_", ""))
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{what}: {text.strip()!r} is not a number")
    return value


def scale_values(scale: str, steps: int | None = None, values: str | None = None) -> tuple[str, list[int | float]]:
    """The argument name and its values, from `NAME=LO..HI` (with `--steps`) or `NAME` with `--values`.

    Steps are geometric when HI/LO >= 100 (two a decade by default, so 1e6 and 3.16e6 are
    neighbours), linear otherwise (ten by default); integers stay integers.
    """
    name, sep, span = scale.partition("=")
    name = name.strip()
    if not name.isidentifier():
        raise UserError(f"--scale wants NAME=LO..HI, got {scale!r}")
    if values is not None:
        if span:
            raise UserError("give either --scale NAME=LO..HI or --scale NAME with --values, not both")
        given = [_number(v, "--values") for v in values.split(",") if v.strip()]
        if not given:
            raise UserError("--values is empty")
        if sorted(set(given)) != given:
            raise UserError("--values must grow: each value above the one before")
        return name, given
    lo_text, dots, hi_text = span.partition("..")
    if not sep or not dots:
        raise UserError(f"--scale wants NAME=LO..HI (or NAME with --values), got {scale!r}")
    lo, hi = _number(lo_text, "--scale"), _number(hi_text, "--scale")
    if not lo < hi:
        raise UserError(f"--scale {name}: LO {lo} must be below HI {hi}")
    if steps is not None and steps < 2:
        raise UserError("--steps must be at least 2")
    integral = isinstance(lo, int) and isinstance(hi, int)
    geometric = lo > 0 and hi / lo >= 100
    if geometric:
        n = steps or math.ceil(2 * math.log10(hi / lo)) + 1
        raw = [lo * (hi / lo) ** (i / (n - 1)) for i in range(n)]
    else:
        n = steps or 10
        raw = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
    out: list[int | float] = []
    for v in raw:
        value: int | float = round(v) if integral else float(f"{v:.6g}")
        if not out or value > out[-1]:
            out.append(value)
    out[0], out[-1] = lo, hi
    return name, out


class ScaledLadder(Ladder):
    """A user's function with one argument scaled: level i calls it with the i-th value."""

    target: str
    arg_name: str
    values: list[int | float]
    args: dict[str, Any] = Field(default_factory=dict)
    ship_local_modules: bool = False
    #: What the function is: its source, bound arguments and how it travels (for cells and the cache).
    identity: str = ""

    def workload(self, number: int) -> Workload:
        """The user's function with the scaled argument bound to this level's value."""
        value = self.level(number).values[self.arg_name]
        return load_target(self.target, {**self.args, self.arg_name: value}, ship_local_modules=self.ship_local_modules)

    def value_text(self, number: int | None) -> str:
        """`n=3,162,278`: a level as the user thinks of it."""
        if number is None:
            return "-"
        value = self.level(number).values[self.arg_name]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"
        return f"{self.arg_name}={shown}"


def scaled_ladder(
    target: str,
    args: Mapping[str, Any],
    scale: str,
    steps: int | None = None,
    values: str | None = None,
    *,
    ship_local_modules: bool = False,
) -> ScaledLadder:
    """The ladder of one scaled argument, checked here before anything is dispatched."""
    name, vals = scale_values(scale, steps, values)
    if name in args:
        raise UserError(f"--scale {name} and --arg {name}=... name the same argument")
    # Load once with the first value: a bad target or a missing argument is the user's to fix now.
    first = load_target(target, {**args, name: vals[0]}, ship_local_modules=ship_local_modules)
    return ScaledLadder(
        name=f"{first.name}[{name}]",
        path=Path(first.filename or target),
        description=f"{first.name} with {name} scaled over {len(vals)} values",
        levels=[Level(number=i + 1, values={name: v}) for i, v in enumerate(vals)],
        target=target,
        arg_name=name,
        values=vals,
        args=dict(args),
        ship_local_modules=ship_local_modules,
        identity=hashlib.sha256(
            json.dumps([first.source, sorted(args.items()), ship_local_modules], default=str).encode()
        ).hexdigest(),
    )


__all__ = [
    "ScaledLadder",
    "Target",
    "check_call",
    "load_target",
    "parse_args",
    "resolve_target",
    "scale_values",
    "scaled_ladder",
]
