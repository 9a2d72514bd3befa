"""Syntactic-feature emitters: the parts of real functions that trip up runners which ship source.

Each feature dimension is a count; `apply` adds that many instances to the parts of a workload:

- multiline_strings: odd instances are embedded scripts (a triple-quoted string whose lines start
  at column 0, run with `python -c`, so each also adds a subprocess call site); even instances
  are multi-line f-strings, also at column 0;
- closure_refs: variables of an enclosing factory function that the workload reads. They need
  an enclosing function, so closure_refs > 0 always gives a `nested` definition, whatever
  definition_scope says (Workload.definition_scope tells the truth);
- global_refs: module-level constants (odd) and helper functions (even) the workload uses;
- nested_functions, lambdas, comprehensions: defined and used in the body;
- decorators: `@stamped` (odd) and a multi-line `@labelled(...)` call (even), both module-level
  decorators built on functools.wraps, so the loaded function is the wrapper;
- top_level_range_loops: `for i in range(n):` loops at the function's top level, outside phases,
  before anything else in the body, so the first of them is the function's first loop;
- default_args: parameters with large defaults built by expressions (a tuple of ints, a long
  string), so the pickle grows more than the source;
- star_args: 1 adds `*args`, 2 adds `*args, **kwargs`.

The workload still takes no arguments: every parameter has a default or is a star parameter.
"""

from __future__ import annotations

from threshold_probe.ladder.parts import COLUMN0, INDENT, Item, Parts

_STAMPED = [
    "def stamped(func):",
    f'{INDENT}"""A plain decorator: counts the decorated calls in the report."""',
    "",
    f"{INDENT}@functools.wraps(func)",
    f"{INDENT}def wrapper(*args, **kwargs):",
    f"{INDENT * 2}result = func(*args, **kwargs)",
    f'{INDENT * 2}result["stamps"] = result.get("stamps", 0) + 1',
    f"{INDENT * 2}return result",
    "",
    f"{INDENT}return wrapper",
]

_LABELLED = [
    "def labelled(label, weight=1):",
    f'{INDENT}"""A decorator factory, called over several lines where it is used."""',
    "",
    f"{INDENT}def decorate(func):",
    f"{INDENT * 2}@functools.wraps(func)",
    f"{INDENT * 2}def wrapper(*args, **kwargs):",
    f"{INDENT * 3}result = func(*args, **kwargs)",
    f'{INDENT * 3}result["label_" + label] = weight',
    f"{INDENT * 3}return result",
    "",
    f"{INDENT * 2}return wrapper",
    "",
    f"{INDENT}return decorate",
]


def _item(lines: list[str], imports: set[str] | None = None) -> Item:
    return Item(lines, imports or set())


def _multiline(k: int) -> Item:
    if k % 2:
        return _item(
            [
                f'script_{k} = """',
                f"{COLUMN0}import sys",
                f"{COLUMN0}values = [n * {k} for n in range(5)]",
                f'{COLUMN0}print("script {k}:", sum(values), sys.version_info[0])',
                f'{COLUMN0}"""',
                f'run_{k} = subprocess.run((sys.executable, "-c", script_{k}), '
                "capture_output=True, text=True, timeout=60)",
                f'report["script_{k}"] = run_{k}.stdout.strip()',
            ],
            {"subprocess", "sys"},
        )
    return _item(
        [
            f'summary_{k} = f"""Summary {k} of level {{report[\'level\']}}',
            f"{COLUMN0}keys so far: {{len(report)}}",
            f"{COLUMN0}last key: {{sorted(report)[-1]}}",
            f'{COLUMN0}"""',
            f'report["summary_{k}"] = summary_{k}',
        ]
    )


def _comprehension(k: int) -> Item:
    n = k + 2
    shape = k % 4
    if shape == 1:
        expr = f"[value * value for value in range({n})]"
    elif shape == 2:
        expr = f"{{str(value): value % 3 for value in range({n})}}"
    elif shape == 3:
        expr = f"sorted({{value % 4 for value in range({n + 3})}})"
    else:
        expr = f"sum(value for value in range({n}) if value % 2)"
    return _item([f'report["comprehension_{k}"] = {expr}'])


def apply(p: Parts) -> None:
    """Add the syntactic features the values ask for to the parts of a workload."""
    v = p.values
    count = {name: int(v[name]) for name in v if name != "definition_scope" and name in _FEATURES}

    for k in range(1, count["comprehensions"] + 1):
        p.work.append(_comprehension(k))
    for k in range(1, count["multiline_strings"] + 1):
        p.work.append(_multiline(k))

    for k in range(1, count["global_refs"] + 1):
        if k % 2:
            p.module_lines += [f"SETTING_{k} = {k * 3}  # a module-level constant the workload reads"]
            p.work.append(_item([f'report["global_{k}"] = SETTING_{k} + 1']))
        else:
            p.module_lines += [
                "",
                "",
                f"def scaled_{k}(value):",
                f'{INDENT}"""A module-level helper the workload calls."""',
                f"{INDENT}return value * {k} + 1",
                "",
            ]
            p.work.append(_item([f'report["global_{k}"] = scaled_{k}({k})']))

    for k in range(1, count["lambdas"] + 1):
        p.work.append(_item([f'report["lambda_{k}"] = list(map(lambda value: value * {k} + 1, range(3)))']))

    for k in range(1, count["nested_functions"] + 1):
        p.work.append(
            _item(
                [
                    f"def step_{k}(value):",
                    f"{INDENT}return value * {k + 1} + 1",
                    f'report["nested_{k}"] = step_{k}({k})',
                ]
            )
        )

    decorators = count["decorators"]
    if decorators:
        p.imports.add("functools")
        p.module_lines += ["", "", *_STAMPED]
        if decorators > 1:
            p.module_lines += ["", "", *_LABELLED]
        for k in range(1, decorators + 1):
            if k % 2:
                p.decorators.append("@stamped")
            else:
                p.decorators += ["@labelled(", f'{INDENT}"step-{k}",', f"{INDENT}weight={k},", ")"]

    for k in range(1, count["default_args"] + 1):
        if k % 2:
            p.params.append(f"weights_{k}=tuple(range({500 * k}))")
            p.work.append(_item([f'report["default_{k}"] = len(weights_{k})']))
        else:
            p.params.append(f'banner_{k}="=" * {1024 * k}')
            p.work.append(_item([f'report["default_{k}"] = len(banner_{k})']))

    stars = count["star_args"]
    if stars >= 1:
        p.params.append("*args")
        p.work.append(_item(['report["extra_args"] = len(args)']))
    if stars >= 2:
        p.params.append("**kwargs")
        p.work.append(_item(['report["extra_kwargs"] = sorted(kwargs)']))

    # First in the body, before the memory's `while`: a runner that looks at a function's first
    # loop (ClustriX's auto_parallel) sees the range loop there.
    for k in range(1, count["top_level_range_loops"] + 1):
        p.head.append(
            _item(
                [
                    f"count_{k} = 0",
                    f"for i in range({k + 2}):",
                    f"{INDENT}count_{k} += i",
                    f'report["range_{k}"] = count_{k}',
                ]
            )
        )

    for k in range(1, count["closure_refs"] + 1):
        if k % 2:
            p.enclosing.append(f"threshold_{k} = {k * 11}")
            p.work.append(_item([f'report["closure_{k}"] = threshold_{k}']))
        else:
            p.enclosing.append(f'label_{k} = "enclosing-{k}"')
            p.work.append(_item([f'report["closure_{k}"] = label_{k}']))


_FEATURES = frozenset(
    {
        "multiline_strings",
        "closure_refs",
        "global_refs",
        "nested_functions",
        "lambdas",
        "decorators",
        "comprehensions",
        "top_level_range_loops",
        "default_args",
        "star_args",
    }
)
