"""Ladders measure what they claim: a size or resource dimension adds no syntactic feature.

A runner that ships only a function's own source (no module globals, no closures, no helpers,
no decorators, no column-0 lines) must be able to run every level of the default ladder that
the native pipeline runs: otherwise a size dimension takes the blame for a feature, which is the
misreading this tool exists to prevent. Each feature dimension, raised alone from a clean base,
must be what `isolate` names; the features ladder has levels whose first loop is a top-level
`for ... in range(...)`, the loop ClustriX's `auto_parallel` splits.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.ladder import DIMENSIONS, generate, load_ladder
from threshold_probe.ladder.workload import Workload
from threshold_probe.metrics import measure_workload
from threshold_probe.pipelines.source import SourcePipeline

SIZE_AND_RESOURCE = [name for name, dim in DIMENSIONS.items() if dim.kind in ("size", "resource")]
FEATURES = [name for name, dim in DIMENSIONS.items() if dim.kind == "feature" and name != "definition_scope"]


class FunctionOnlySource(SourcePipeline):
    """A runner that ships the function's source and the module's imports, and nothing else.

    Module-level constants do not travel: what many source-shipping runners do.
    """

    name: ClassVar[str] = "function-only"
    ship_assignments: ClassVar[bool] = False


FUNCTION_ONLY = f"{__name__}:FunctionOnlySource"


# -- static: what a clean workload looks like ----------------------------------------------


def syntactic_features(workload: Workload) -> list[str]:
    """Everything in a workload that a bare source runner could trip on, as readable notes."""
    found: list[str] = []
    tree = ast.parse(workload.source)
    imported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and node is tree.body[0]:
            continue  # the module docstring
        elif isinstance(node, ast.FunctionDef) and node.name == workload.func_name:
            continue
        else:
            found.append(f"module-level statement at line {node.lineno}: {ast.dump(node)[:60]}")
    if workload.definition_scope != "module":
        found.append(f"definition scope {workload.definition_scope}")
    m = measure_workload(workload)
    if m.free_vars:
        found.append(f"closure variables {m.free_var_names}")
    if set(m.global_ref_names) - imported:
        found.append(f"module globals {sorted(set(m.global_ref_names) - imported)}")
    for feature in FEATURES:
        if feature in ("global_refs", "closure_refs"):
            continue  # measured above, as module globals and closure variables
        if getattr(m, feature):
            found.append(f"{feature} = {getattr(m, feature)}")
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == workload.func_name)
    lines = workload.source.splitlines()[func.lineno : func.end_lineno]
    column0 = [i for i, line in enumerate(lines, start=func.lineno + 1) if line and not line[0].isspace()]
    if column0:
        found.append(f"column-0 lines inside the function: {column0[:5]}")
    return found


@pytest.mark.parametrize("dimension", SIZE_AND_RESOURCE)
def test_a_size_or_resource_dimension_alone_adds_no_syntactic_feature(dimension: str) -> None:
    dim = DIMENSIONS[dimension]
    for value in (1, 3, 8) if dim.type is int else (0.01,):
        w = generate({dimension: value}, level=4)
        assert syntactic_features(w) == [], (dimension, value)


@pytest.mark.parametrize("ladder", ["default", "seed"])
def test_every_level_of_the_size_ladders_is_clean(ladder: str) -> None:
    lad = load_ladder(ladder)
    for n in lad.numbers():
        assert syntactic_features(lad.workload(n)) == [], (ladder, n)


def test_payload_travels_inside_the_function_and_grows_its_pickle() -> None:
    small, big = generate({"payload_kb": 0}, level=2), generate({"payload_kb": 64}, level=2)
    assert "PAYLOAD" not in big.source
    grown = measure_workload(big).pickle_bytes - (measure_workload(small).pickle_bytes or 0)  # type: ignore[operator]
    assert 64 * 1024 <= grown <= 64 * 1024 + 2048
    # The function runs on its own: nothing from its module but the imports is needed.
    namespace: dict[str, Any] = {}
    exec("import hashlib", namespace)
    func_source = ast.get_source_segment(
        big.source, next(n for n in ast.parse(big.source).body if isinstance(n, ast.FunctionDef))
    )
    assert func_source is not None
    exec(func_source, namespace)
    report = namespace[big.func_name]()
    assert len(report["payload_sha256"]) == 64


# -- the features ladder: a top-level range loop that is the first loop ----------------------


def the_function(workload: Workload) -> ast.FunctionDef:
    return next(
        n
        for n in ast.walk(ast.parse(workload.source))
        if isinstance(n, ast.FunctionDef) and n.name == workload.func_name
    )


def first_loop(workload: Workload) -> ast.stmt | None:
    """The first for/while statement of the function's source, as ClustriX's loop detector visits it."""
    for node in _preorder(the_function(workload)):
        if isinstance(node, ast.For | ast.While):
            return node
    return None


def _preorder(node: ast.AST) -> list[ast.AST]:
    out = [node]
    for child in ast.iter_child_nodes(node):
        out.extend(_preorder(child))
    return out


def is_top_level_range_loop(workload: Workload, loop: ast.stmt | None) -> bool:
    func = the_function(workload)
    return (
        isinstance(loop, ast.For)
        and isinstance(loop.iter, ast.Call)
        and isinstance(loop.iter.func, ast.Name)
        and loop.iter.func.id == "range"
        and any(stmt.lineno == loop.lineno for stmt in func.body)
    )


def test_features_ladder_has_levels_whose_first_loop_is_a_top_level_range_loop() -> None:
    ladder = load_ladder("features")
    levels = [
        n
        for n in ladder.numbers()
        if ladder.workload(n).definition_scope == "module"
        and is_top_level_range_loop(ladder.workload(n), first_loop(ladder.workload(n)))
    ]
    assert levels, "no level of the features ladder starts its loops with a top-level range loop"
    first = min(levels)
    assert int(ladder.level(first).values["top_level_range_loops"]) == 1
    assert int(ladder.level(first - 1).values["top_level_range_loops"]) == 0
    # Memory is held through the level all the same: the range loop comes first, then the memory.
    assert int(ladder.level(first).values["memory_mb"]) > 0


# -- through the CLI: sweeps and isolation on the local cluster -------------------------------


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    (tmp_path / "probe.toml").write_text("")  # no config from the folders above
    return tmp_path / "reports"


def run_json(reports: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["--config", str(reports.parent / "probe.toml"), "--reports-dir", str(reports), *args, "--json", "--quiet"],
        env={"PROBE_REPORTS_DIR": None},
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.slow
def test_source_runners_pass_every_level_of_the_default_ladder_that_native_passes(reports: Path) -> None:
    data = run_json(reports, "sweep", "--pipeline", "native", "--ladder", "default", "--fresh")
    native = {p["level"]: p["verdict"] for p in data["probes"]}
    passed = [n for n, v in native.items() if v == "pass"]
    assert len(passed) >= 20, native  # the default limits leave most levels passing
    verdicts: dict[str, dict[int, str]] = {}
    for pipeline in ("source", FUNCTION_ONLY):
        # Up to native's last pass: above it native fails (oom), and only its passes are compared.
        data = run_json(reports, "sweep", "--pipeline", pipeline, "--ladder", "default", "--to", str(max(passed)))
        verdicts[pipeline] = {p["level"]: p["verdict"] for p in data["probes"]}
    for pipeline in ("source", FUNCTION_ONLY):
        lost = [n for n in passed if verdicts[pipeline][n] != "pass"]
        assert lost == [], f"{pipeline} fails levels {lost} that native passes"


#: A clean base and the same base grown in size and resources: only the feature tells them apart.
BASE = {"loc": 20, "subprocess_calls": 1, "data_structures": 1, "memory_mb": 8}
GROWN = {
    "loc": 40,
    "subprocess_calls": 2,
    "data_structures": 2,
    "branches": 1,
    "loops": 1,
    "nesting_depth": 2,
    "memory_mb": 24,
    "output_kb": 1,
    "result_kb": 1,
    "payload_kb": 8,
}


def clean_ladder(folder: Path, feature: str, value: int | str, base: dict[str, Any] | None = None) -> Path:
    """Level 1 the clean base, level 2 the grown base plus one feature."""
    lines = [f'name = "clean-{feature}"', ""]
    for values in (base or BASE, {**GROWN, feature: value}):
        lines.append("[[levels]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        lines.append("")
    path = folder / f"clean-{feature}.toml"
    path.write_text("\n".join(lines))
    return path


def check_isolated(data: dict[str, Any], feature: str, good: int = 1) -> None:
    assert (data["last_pass"], data["first_fail"]) == (good, good + 1), data["message"]
    iso = data["isolate"]
    assert iso["drivers"] == [feature], iso["message"]
    assert iso["necessary"] == [feature], iso["message"]
    assert iso["undecided"] == [], iso["message"]
    assert iso["message"].startswith(f"The failure follows `{feature}` alone"), iso["message"]
    assert "failed differently" not in data["message"]
    assert not [p for p in data["probes"] if p.get("different_failure")]


@pytest.mark.parametrize(("feature", "value"), [("global_refs", 2), ("closure_refs", 1)])
def test_isolate_names_the_feature_not_a_size(reports: Path, feature: str, value: int) -> None:
    ladder = clean_ladder(reports.parent, feature, value)
    data = run_json(
        reports, "bisect", "--ladder", str(ladder), "--pipeline", FUNCTION_ONLY, "--isolate", "--confirm", "0"
    )
    check_isolated(data, feature)


@pytest.mark.ssh
@pytest.mark.slow
def test_clustrix_range_split_is_isolated_to_top_level_range_loops(testbed: Testbed, tmp_path: Path) -> None:
    """ClustriX's auto_parallel calls the function with `_chunk_range_i=` when its first loop is a
    range loop. The TypeError names the function (`workload_2()` at the level, `workload()` in
    isolation's own probes): one failure all the same, driven by top_level_range_loops alone,
    although memory's `while` loop and the tuple loops of `loops` and `nesting_depth` grow too."""
    base = {"loc": 20, "memory_mb": 8, "loops": 1}
    grown = {"loc": 40, "memory_mb": 24, "loops": 2, "nesting_depth": 2, "payload_kb": 8}
    lines = ['name = "range-split"']
    for values in (base, {**grown, "top_level_range_loops": 1}):
        lines += ["", "[[levels]]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    ladder = tmp_path / "range-split.toml"
    ladder.write_text("\n".join(lines) + "\n")
    args = ["bisect", "-C", "testbed-ssh", "--pipeline", "clustrix", "--ladder", str(ladder), "--isolate"]
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(testbed.config_path),
            "--reports-dir",
            str(tmp_path / "r"),
            *args,
            "--confirm",
            "0",
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert data["first_fail"] == 2, data["message"]
    boundary = next(p for p in data["probes"] if p["level"] == 2)
    assert boundary["signature"] == "exception:TypeError:<func>() got an unexpected keyword argument '_chunk_range_i'"
    check_isolated(data, "top_level_range_loops")
