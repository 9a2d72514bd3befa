"""The source generator: dimension values in, one readable, deterministic Python module out.

The generated module imports only the standard library and defines one function,
`workload_<level>()`, callable without arguments, that returns a JSON-able dict. The same values
always give the same source, byte for byte: nothing here reads the clock, the host or a random
generator.

Layout of the function body, top to bottom:

1. docstring, a `report` dict and the `tally` that simple statements compute, then the top-level
   range loops (`top_level_range_loops`), so that the first of them is the function's first loop;
2. memory (`memory_mb`), allocated first among the work so that it is held through everything else;
3. the work items (`subprocess_calls`, `data_structures`, `branches`, `loops`, `nesting_depth`,
   most syntactic features, and the padding that brings the function to `loc` lines), in
   contiguous runs over `phases` try/except blocks, or inline when `phases` is 0;
4. runtime, output, result and payload;
5. the first failure of any phase is re-raised with its own traceback, then `return report`.

A size or resource dimension never adds a syntactic feature: no module-level name but the
imports, no closure, helper, decorator, default argument or column-0 line. The payload is a
constant of the function itself. Only the feature dimensions (features.py) add those, so a runner
that ships nothing but a function's source runs every level a feature does not break, and
`isolate` never blames a size for a feature.

Resource work stays outside the phases on purpose: a phase swallows `Exception`, and a
MemoryError that a phase swallowed would turn an out-of-memory level into a pass.

Where the function lives follows `definition_scope` (see features.py): at module level, inside
a factory function `make_workload_<level>()` (accessor `make_workload_<level>()`), or as a static
method of a class `Workload<level>` (accessor `Workload<level>.workload_<level>`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from typing import Any

from threshold_probe.errors import UserError
from threshold_probe.ladder import dimensions, features
from threshold_probe.ladder.parts import COLUMN0, INDENT, Item, Parts
from threshold_probe.ladder.workload import Workload

#: Harmless commands the subprocess call sites cycle through.
_COMMANDS = (
    '(sys.executable, "-c", "print(sum(range({n})))")',
    '(sys.executable, "-c", "import platform; print(platform.python_version())")',
    '("hostname",)',
    '(sys.executable, "-c", "import os; print(os.cpu_count())")',
)


def function_name(level: int | None) -> str:
    """The name of the generated function: workload_<level>, or workload without a level."""
    return f"workload_{level}" if level is not None else "workload"


def generate(values: Mapping[str, Any], *, level: int | None = None, name: str | None = None) -> Workload:
    """The workload for these dimension values (missing ones take their defaults).

    Raises UserError naming the dimension when a value is unknown or out of range.
    """
    try:
        spec = dimensions.complete(values)
    except ValueError as exc:
        raise UserError(f"workload values: {exc}") from None
    func_name = function_name(level)
    parts = Parts(level=level, func_name=func_name, values=spec)
    _size_parts(parts)
    features.apply(parts)
    source, scope, accessor = _assemble(parts)
    return Workload(
        name=name or func_name,
        source=source,
        func_name=func_name,
        level=level,
        spec=dict(spec),
        definition_scope=scope,
        accessor=accessor,
    )


# -- the size and resource dimensions ------------------------------------------------------


def _size_parts(p: Parts) -> None:
    v = p.values
    lvl = p.level if p.level is not None else 0
    for i in range(1, int(v["subprocess_calls"]) + 1):
        p.work.append(_subprocess_item(i))
    for i in range(1, int(v["data_structures"]) + 1):
        p.work.append(_data_structure_item(i, lvl))
    for i in range(1, int(v["branches"]) + 1):
        p.uses_tally = True
        p.work.append(
            Item(
                [
                    f"if tally % {i % 5 + 2} == 0:",
                    f"{INDENT}tally = tally // {i % 5 + 2} + {i}",
                    "else:",
                    f"{INDENT}tally = tally * 3 + {i}",
                ]
            )
        )
    for i in range(1, int(v["loops"]) + 1):
        p.uses_tally = True
        p.work.append(
            Item(
                [
                    f"for step in {tuple(range(i % 7 + 2))}:",
                    f"{INDENT}tally = (tally * 31 + step + {i}) % 1000003",
                ]
            )
        )
    depth = int(v["nesting_depth"])
    if depth:
        p.uses_tally = True
        lines = [f"# Nesting: {depth} levels of for/if."]
        for d in range(1, depth + 1):
            pad = INDENT * (d - 1)
            # Alternate: every for is one of CPython's 20 static blocks, an if is not. Loops here
            # and below avoid range(): `for i in range(n)` at the top level is a feature of its own.
            if d % 2:
                lines.append(f"{pad}for depth_{d} in (0, 1):")
            else:
                lines.append(f"{pad}if depth_{d - 1} >= 0:")
        lines.append(f"{INDENT * depth}tally += 1")
        p.work.insert(0, Item(lines))


def _subprocess_item(i: int) -> Item:
    command = _COMMANDS[(i - 1) % len(_COMMANDS)].replace("{n}", str(i * 10))
    imports = {"subprocess"} | ({"sys"} if "sys." in command else set())
    return Item(
        [
            f"proc_{i} = subprocess.run({command}, capture_output=True, text=True, timeout=60)",
            f'report["proc_{i}"] = proc_{i}.stdout.strip()',
        ],
        imports,
    )


def _data_structure_item(i: int, level: int) -> Item:
    shape = i % 3
    if shape == 1:
        literal = f'{{"id": {i}, "tags": ["alpha", "level-{level}"], "limits": {{"low": {i}, "high": {i * 10}}}}}'
        var = f"records_{i}"
    elif shape == 2:
        literal = f'[{{"index": 0, "value": {i}}}, {{"index": 1, "value": {i * 2}}}]'
        var = f"samples_{i}"
    else:
        literal = f'{{"columns": ["a", "b"], "rows": [[{i}, {i + 1}], [{i + 2}, {i + 3}]]}}'
        var = f"table_{i}"
    return Item([f"{var} = {literal}", f'report["{var}"] = {var}'])


def _memory_lines(mb: int) -> list[str]:
    return [
        f"# Memory: {mb} MiB in 1 MiB blocks, every page written, held until the function returns.",
        "held = []",
        f"while len(held) < {mb}:",
        f'{INDENT}held.append(b"\\x01" * 1048576)',
        'report["memory_mb"] = len(held)',
    ]


def _runtime_lines(seconds: float) -> list[str]:
    return [
        f"# Runtime: keep the CPU busy for {seconds!r} s.",
        f"deadline = time.perf_counter() + {seconds!r}",
        "spins = 0",
        "while time.perf_counter() < deadline:",
        f"{INDENT}spins += 1",
        'report["spins"] = spins',
    ]


def _output_lines(kb: int) -> list[str]:
    # 64-byte lines, 8 per KiB on each stream: half the output to stdout, half to stderr.
    return [
        f"# Output: {kb} KiB in 64-byte lines, half to stdout and half to stderr.",
        "line_no = 0",
        f"while line_no < {kb * 8}:",
        f'{INDENT}sys.stdout.write("stdout line %06d %s\\n" % (line_no, "." * 44))',
        f'{INDENT}sys.stderr.write("stderr line %06d %s\\n" % (line_no, "." * 44))',
        f"{INDENT}line_no += 1",
        "sys.stdout.flush()",
        "sys.stderr.flush()",
    ]


def _result_lines(kb: int) -> list[str]:
    # A 1020-character row costs about 1 KiB in JSON, with its quotes and separator.
    return [
        f"# Result: about {kb} KiB of rows in the returned value.",
        "rows = []",
        f"while len(rows) < {kb}:",
        f'{INDENT}rows.append("row %06d %s" % (len(rows), "x" * 1009))',
        'report["rows"] = rows',
    ]


@functools.lru_cache(maxsize=4)
def _payload_line(kb: int) -> str:
    """`payload = b"..."` with `kb` KiB of base64 of a SHAKE-256 stream: deterministic, printable,
    no escapes, one byte of pickle a character. Built once: the body is assembled several times."""
    chars = kb * 1024
    stream = hashlib.shake_256(b"threshold-probe payload").digest(chars * 3 // 4 + 3)
    return 'payload = b"' + base64.b64encode(stream).decode("ascii")[:chars] + '"'


def _payload_lines(kb: int) -> list[str]:
    # A constant of the function's own code, on one line: it travels wherever the function's
    # source or code goes, so the size grows without a module global, a closure or a default.
    return [
        f"# Payload: {kb} KiB carried as a constant of the function; its source and pickle carry them.",
        _payload_line(kb),
        'report["payload_sha256"] = hashlib.sha256(payload).hexdigest()',
    ]


# -- padding -------------------------------------------------------------------------------

# Padding only touches `tally`, so it needs no scaffolding beyond the one `tally` line.
_PADDING = (
    "tally = (tally * 31 + {k}) % 1000003",
    "tally ^= {x}",
    "tally += len(str(tally)) + {k}",
    "tally = max(tally - {k}, tally // {m})",
)


def _padding(k: int) -> str:
    return _PADDING[k % len(_PADDING)].format(k=k, m=k % 89 + 2, x=k * 7919 % 65536)


# -- assembly ------------------------------------------------------------------------------


def _indent(lines: list[str], depth: int) -> list[str]:
    """Indent lines by `depth` levels, except blank lines and lines marked COLUMN0."""
    return [line if not line or line.startswith(COLUMN0) else INDENT * depth + line for line in lines]


def _body(p: Parts, pad: int) -> list[str]:
    """The function body at relative indentation 0, with `pad` padding statements."""
    v = p.values
    lvl = p.level
    title = f"Level {lvl} of a threshold-probe ladder" if lvl is not None else "A threshold-probe workload"
    body: list[str] = [f'"""{title}; returns a report of the work it did."""']
    body.append("report = {}")
    body.append(f'report["level"] = {lvl if lvl is not None else "None"}')
    needs_tally = p.uses_tally or pad > 0
    if needs_tally:
        body.append(f"tally = {lvl if lvl is not None else 0}")
    for item in p.head:
        body.extend(item.lines)
    mb = int(v["memory_mb"])
    if mb:
        body.extend(_memory_lines(mb))

    phases = int(v["phases"])
    slots = max(phases, 1)
    # Work items go to the phases in contiguous runs, so related calls stay together; padding
    # is spread evenly so that every phase (or the inline block) gets its share.
    chunks: list[list[str]] = []
    for n in range(slots):
        run = p.work[n * len(p.work) // slots : (n + 1) * len(p.work) // slots]
        chunk = [line for item in run for line in item.lines]
        chunk += [_padding(k) for k in range(n, pad, slots)]
        chunks.append(chunk)
    if phases:
        body.append("failures = []")
        for n, chunk in enumerate(chunks, start=1):
            body.append(f"# Phase {n} of {phases}.")
            body.append("try:")
            body.extend(_indent([*chunk, f'report["phase_{n}"] = "done"'], 1))
            body.append("except Exception as exc:  # a multi-phase job records the failure and goes on")
            body.append(f"{INDENT}failures.append(exc)")
    else:
        body.extend(chunks[0])
    for item in p.tail:
        body.extend(item.lines)

    if float(v["runtime_s"]) > 0:
        body.extend(_runtime_lines(float(v["runtime_s"])))
    if int(v["output_kb"]):
        body.extend(_output_lines(int(v["output_kb"])))
    if int(v["result_kb"]):
        body.extend(_result_lines(int(v["result_kb"])))
    if int(v["payload_kb"]):
        body.extend(_payload_lines(int(v["payload_kb"])))
    if needs_tally:
        body.append('report["tally"] = tally')
    body.extend(p.report_lines)
    if phases:
        body.append("if failures:")
        body.append(f"{INDENT}# The first failed phase fails the workload, with its own traceback.")
        body.append(f"{INDENT}raise failures[0]")
    body.append("return report")
    return body


def _imports(p: Parts) -> list[str]:
    v = p.values
    mods = set(p.imports)
    for item in [*p.head, *p.work, *p.tail]:
        mods |= item.imports
    if float(v["runtime_s"]) > 0:
        mods.add("time")
    if int(v["output_kb"]):
        mods.add("sys")
    if int(v["payload_kb"]):
        mods.add("hashlib")
    return [f"import {m}" for m in sorted(mods)]


def _header(p: Parts) -> list[str]:
    lvl = p.level
    title = "A threshold-probe workload."
    if lvl is not None:
        title = f"Workload of level {lvl} of a threshold-probe ladder."
    lines = [
        f'"""{title}',
        "",
        "Generated from these dimension values; the same values give this file, byte for byte.",
        "",
    ]
    for name, value in p.values.items():
        lines.append(f"    {name} = {value!r}")
    lines.append('"""')
    return lines


def _function(p: Parts, pad: int, depth: int) -> list[str]:
    """The decorated `def` at indentation `depth`."""
    params = ", ".join(p.params)
    lines = _indent(p.decorators, depth)
    lines.append(f"{INDENT * depth}def {p.func_name}({params}):")
    lines.extend(_indent(_body(p, pad), depth + 1))
    return lines


def _function_loc(p: Parts, pad: int) -> int:
    # Indentation does not change the line count, so measure at depth 0.
    return len(_function(p, pad, 0))


def _assemble(p: Parts) -> tuple[str, str, str | None]:
    scope = str(p.values.get("definition_scope", "module"))
    if p.enclosing:
        # Closure variables need an enclosing function: such a workload is always nested.
        scope = "nested"
    if scope == "method":
        p.decorators.insert(0, "@staticmethod")
    target = int(p.values["loc"])
    first = max(0, target - _function_loc(p, 0))
    # The first padding statement can add two `tally` lines of scaffolding: take the closest fit.
    pad = min(range(max(0, first - 3), first + 1), key=lambda n: (abs(_function_loc(p, n) - target), n))

    lines = _header(p)
    imports = _imports(p)
    if imports:
        lines += ["", *imports]
    if p.module_lines:
        lines += ["", *p.module_lines]
    accessor: str | None
    if scope == "nested":
        factory = f"make_{p.func_name}"
        lines += ["", "", f"def {factory}():"]
        lines.append(f'{INDENT}"""Define the workload inside a function, as a test or a notebook cell does."""')
        lines += _indent(p.enclosing, 1)
        lines += ["", *_function(p, pad, 1), "", f"{INDENT}return {p.func_name}"]
        accessor = f"{factory}()"
    elif scope == "method":
        cls = "Workload" + (str(p.level) if p.level is not None else "")
        lines += ["", "", f"class {cls}:"]
        lines.append(f'{INDENT}"""Holds the workload as a static method."""')
        lines += ["", *_function(p, pad, 1)]
        accessor = f"{cls}.{p.func_name}"
    else:
        lines += ["", "", *_function(p, pad, 0)]
        accessor = None
    # Blocks of module-level helpers each bring their blank lines: keep at most two in a row.
    # (Lines inside multi-line strings are marked COLUMN0 and are never empty, so none is lost.)
    tidy: list[str] = []
    for line in lines:
        if not (line == "" and tidy[-2:] == ["", ""]):
            tidy.append(line)
    text = "\n".join(line.removeprefix(COLUMN0) for line in tidy) + "\n"
    return text, scope, accessor
