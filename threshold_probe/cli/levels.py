"""`probe levels` and `probe measure`: the ladder and static metrics, no dispatch."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from threshold_probe.cli import complete
from threshold_probe.cli.common import (
    command,
    console,
    err_console,
    fit_table,
    get_state,
    print_json,
    print_table,
    safe,
)
from threshold_probe.errors import UserError
from threshold_probe.ladder import load_ladder
from threshold_probe.ladder.dimensions import DIMENSIONS
from threshold_probe.measure_json import measure_json_chunks, sort_key
from threshold_probe.metrics import PICKLE_TIMEOUT_S, FileError, FunctionMetrics, iter_measure, measure_workload
from threshold_probe.store import atomic_write

LadderOpt = Annotated[
    str | None,
    typer.Option(
        "--ladder",
        "-l",
        help="A shipped ladder name (default, seed, features) or a path to a ladder TOML.",
        autocompletion=complete.ladders,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of a table.")]


@command
def levels(
    ladder: LadderOpt = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="Write each level's generated source to DIR/level_NNN.py.")
    ] = None,
    dimensions: Annotated[
        bool, typer.Option("--dimensions", help="List every dimension a ladder can turn: meaning, unit, default.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the ladder: one row per level, with its dimensions and static metrics.

    The features column names each syntactic feature a level has (comprehensions=2, ...).
    """
    if dimensions:
        _dimensions(as_json)
        return
    cfg = get_state().config()
    lad = load_ladder(ladder or cfg.defaults.ladder)
    rows: list[dict[str, Any]] = []
    for number in lad.numbers():
        workload = lad.workload(number)
        m = measure_workload(workload)
        rows.append({"level": number, "values": dict(lad.level(number).values), "metrics": m.model_dump()})
        if write is not None:
            atomic_write(write / f"level_{number:03d}.py", workload.source)
    if as_json:
        print_json({"ladder": lad.name, "path": str(lad.path), "description": lad.description, "levels": rows})
        return
    columns = ["level", "LOC", "subproc", "structs", "nesting", "CC", "pickle B", "memory MB", "runtime s"]
    cells: list[dict[str, str]] = []
    for row in rows:
        m, v = row["metrics"], row["values"]
        figures = [row["level"], m["loc"], m["subprocess_calls"], m["data_structures"], m["max_nesting"], m["cc"]]
        figures += [m["pickle_bytes"], v.get("memory_mb", ""), v.get("runtime_s", "")]
        # The feature dimensions a level turns on, one `name=value` word each (the features ladder).
        cells.append({**dict(zip(columns, map(str, figures), strict=True)), "features": escape(row_features(v))})
    if any(c["features"] for c in cells):
        columns.append("features")
    # On a narrow terminal the static metrics go first: the dimensions are what the ladder is.
    droppable = ["pickle B", "structs", "nesting", "CC", "subproc"]
    title = f"ladder {lad.name} ({len(rows)} levels)"
    right = tuple(c for c in columns if c != "features")
    print_table(fit_table(title, cells, columns, whole=("level",), droppable=droppable, right=right))
    if write is not None:
        err_console.print(f"wrote {len(rows)} sources to {write}")


def row_features(values: dict[str, Any]) -> str:
    """The feature dimensions a level sets away from their default, as `name=value` words."""
    return " ".join(
        f"{name}={values[name]}"
        for name, dim in DIMENSIONS.items()
        if dim.kind == "feature" and name in values and values[name] != dim.default
    )


def _dimensions(as_json: bool) -> None:
    """Every dimension: name, kind, unit, default, bounds and meaning (ladder/dimensions.py)."""
    dims = list(DIMENSIONS.values())
    if as_json:
        print_json(
            [
                {
                    "name": d.name,
                    "kind": d.kind,
                    "unit": d.unit,
                    "default": d.default,
                    "minimum": d.minimum,
                    "maximum": d.maximum,
                    "choices": list(d.choices),
                    "description": d.description,
                }
                for d in dims
            ]
        )
        return
    rows = [
        {
            "dimension": d.name,
            "kind": d.kind,
            "unit": escape(d.unit or "-"),
            "default": escape(str(d.default)),
            "meaning": escape(d.description),
        }
        for d in dims
    ]
    columns = ["dimension", "kind", "unit", "default", "meaning"]
    if console.width < 110:  # the meaning needs the room more than the kind (the name tells it)
        columns.remove("kind")
    table = fit_table(f"{len(dims)} dimensions", rows, columns, whole=("dimension",), droppable=["kind"])
    print_table(table)


_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f]")


def printable(text: str) -> str:
    """Text from a user's file without terminal control sequences (an exception message is data)."""
    return _CONTROL.sub("", text)


SORT_FIELDS = (
    "loc",
    "sloc",
    "cc",
    "halstead_effort",
    "mi",
    "ast_nodes",
    "max_nesting",
    "subprocess_calls",
    "pickle_bytes",
)


def sort_column(sort: str) -> str:
    """The table column a --sort field is shown in."""
    names = {"loc": "LOC", "sloc": "SLOC", "cc": "CC", "mi": "MI", "max_nesting": "nesting"}
    names.update({"subprocess_calls": "subproc", "pickle_bytes": "pickle B"})
    return names.get(sort, sort)


@command
def measure(
    targets: Annotated[
        list[str], typer.Argument(metavar="TARGET...", help="Files, folders (searched recursively) or FILE:FUNC.")
    ],
    as_json: JsonOpt = False,
    top: Annotated[int | None, typer.Option("--top", min=1, help="Show only the first N by the sort field.")] = None,
    sort: Annotated[
        str, typer.Option("--sort", metavar="FIELD", help=f"Sort field: one of {', '.join(SORT_FIELDS)}.")
    ] = "loc",
    pickle: Annotated[
        bool,
        typer.Option(
            "--pickle",
            help="Also size each function's pickle (cloudpickle, by value). This imports every file, so its "
            "top-level code runs, with its side effects (files written, processes started, network calls): "
            "in a child process, from the current folder, with the file's folder first on sys.path, its "
            "output discarded, stopped after --pickle-timeout seconds. Without it, nothing is imported.",
        ),
    ] = False,
    pickle_timeout: Annotated[
        float,
        typer.Option("--pickle-timeout", min=0.1, help="Seconds a file may take to import with --pickle."),
    ] = PICKLE_TIMEOUT_S,
) -> None:
    """Static metrics of every function in files or folders, or of single functions (FILE:FUNC).

    Files are parsed, never imported or run, unless --pickle is given.
    """
    if sort not in SORT_FIELDS:
        raise UserError(f"cannot sort by {sort!r}: choose one of {', '.join(SORT_FIELDS)}")
    files = iter_measure(targets, pickle=pickle, pickle_timeout=pickle_timeout)
    seen = {"functions": 0, "errors": 0}

    def counted() -> Iterator[tuple[list[FunctionMetrics], list[FileError]]]:
        for functions, errors in files:
            seen["functions"] += len(functions)
            seen["errors"] += len(errors)
            yield functions, errors

    if as_json:
        # Streamed through a spool file: memory stays flat however many functions the tree holds.
        for chunk in measure_json_chunks(counted(), sort, top):
            sys.stdout.write(chunk)
        sys.stdout.flush()
    else:
        # A table is read by a person and sized to its widest cells: it holds every row it shows.
        all_functions: list[FunctionMetrics] = []
        all_errors: list[FileError] = []
        for functions, errors in counted():
            all_functions.extend(functions)
            all_errors.extend(errors)
        funcs = sorted(all_functions, key=lambda f: sort_key(f, sort))
        if top is not None:
            funcs = funcs[:top]
        rows = [
            {
                "function": escape(printable(f"{f.path}:{f.qualname}" if f.path else f.qualname)),
                "line": str(f.lineno),
                "LOC": str(f.loc),
                "SLOC": str(f.sloc),
                "CC": str(f.cc),
                "rank": f.cc_rank,
                "MI": f"{f.mi:.0f}",
                "nesting": str(f.max_nesting),
                "subproc": str(f.subprocess_calls),
                "structs": str(f.data_structures),
                "free": str(f.free_vars),
                "pickle B": "-" if f.pickle_bytes is None else str(f.pickle_bytes),
            }
            for f in funcs
        ]
        columns = list(rows[0]) if rows else ["function"]
        # A function's name is what the reader acts on: never folded. On a narrow terminal the
        # metric columns go, rightmost first, except the one sorted by.
        droppable = [c for c in reversed(columns) if c not in ("function", sort_column(sort))]
        title = f"{len(funcs)} function{'' if len(funcs) == 1 else 's'}, by {sort}"
        right = tuple(c for c in columns if c != "function")
        if rows or not all_errors:
            # When no file could be read, the errors below are the whole answer: no empty table.
            print_table(fit_table(title, rows, columns, whole=("function",), droppable=droppable, right=right))
        for e in all_errors:
            where = f"{e.path}:{e.lineno}:" if e.lineno is not None else f"{e.path}:"
            err_console.print(f"[red]{safe(where)}[/] {safe(e.message)}", highlight=False)
    if seen["errors"] and not seen["functions"]:
        raise typer.Exit(2)
