"""`probe measure --json` without holding the rows: each function's JSON goes to a spool file.

What stays in memory per function is its sort key and where its text sits in the spool (a few
dozen bytes), not its metrics (a few kilobytes as a model): a tree of 100,000 functions is
measured in about the memory of one of 10,000. The output is the same text `print_json` gives for
``{"errors": [...], "functions": [...]}``: sorted keys, two-space indent, functions in the order
of the sort field, and nothing is written before every file is measured, so that an error that
stops the command (a FILE:FUNC that names no function) leaves no half-written JSON.
"""

from __future__ import annotations

import heapq
import json
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from threshold_probe.metrics import FileError, FunctionMetrics

#: (sort value, path, line, arrival, spool offset, text length): the arrival keeps ties stable.
_Key = tuple[float, str, int, int, int, int]


def sort_key(metrics: FunctionMetrics, sort: str) -> tuple[float, str, int]:
    """Highest first, except the maintainability index: the least maintainable (lowest MI) first."""
    sign = 1 if sort == "mi" else -1
    return sign * (getattr(metrics, sort) or 0), metrics.path or "", metrics.lineno


def _dumps(data: Any, indent: str) -> str:
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    return text.replace("\n", "\n" + indent)


def measure_json_chunks(
    files: Iterable[tuple[list[FunctionMetrics], list[FileError]]], sort: str, top: int | None
) -> Iterator[str]:
    """The JSON text of a measure run, in chunks; the files are measured before the first chunk."""
    errors: list[dict[str, Any]] = []
    keys: list[_Key] = []
    with tempfile.TemporaryFile(mode="w+b", prefix="probe-measure-") as spool:
        offset = 0
        for functions, file_errors in files:
            errors.extend(e.model_dump() for e in file_errors)
            for m in functions:
                data = ("    " + _dumps(m.model_dump(), "    ")).encode()
                spool.write(data)
                value, path, line = sort_key(m, sort)
                keys.append((value, path, line, len(keys), offset, len(data)))
                offset += len(data)
        ordered = heapq.nsmallest(top, keys) if top is not None and top >= 0 else sorted(keys)[:top]
        del keys
        yield '{\n  "errors": ' + _dumps(errors, "  ") + ',\n  "functions": '
        if not ordered:
            yield "[]\n}\n"
            return
        yield "[\n"
        for n, (_v, _p, _l, _a, at, length) in enumerate(ordered):
            spool.seek(at)
            yield spool.read(length).decode() + (",\n" if n + 1 < len(ordered) else "\n")
        yield "  ]\n}\n"
