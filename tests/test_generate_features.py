"""Syntactic-feature dimensions: valid Python at every count, run for real, and counted by the metrics."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
import textwrap
from typing import Any

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threshold_probe.errors import UserError
from threshold_probe.ladder import DIMENSIONS, generate, load_ladder
from threshold_probe.metrics import measure_source as measure_source_of
from threshold_probe.metrics import measure_workload

FEATURES = [name for name, d in DIMENSIONS.items() if d.kind == "feature" and d.type is int]

#: The metric that counts each feature dimension.
METRIC = {
    "multiline_strings": "multiline_strings",
    "closure_refs": "free_vars",
    "global_refs": "global_refs",
    "nested_functions": "nested_functions",
    "lambdas": "lambdas",
    "decorators": "decorators",
    "comprehensions": "comprehensions",
    "top_level_range_loops": "top_level_range_loops",
    "default_args": "default_args",
    "star_args": "star_args",
}


def _counts(name: str) -> range:
    return range(int(min(DIMENSIONS[name].maximum or 7, 7)) + 1)


def test_every_feature_has_a_metric() -> None:
    assert sorted(FEATURES) == sorted(METRIC)


@pytest.mark.parametrize("feature", FEATURES)
def test_feature_at_every_count_compiles_runs_and_is_counted(feature: str) -> None:
    for count in _counts(feature):
        w = generate({feature: count, "phases": count % 3}, level=4)
        compile(w.source, "<feature>", "exec")
        m = measure_workload(w)
        assert getattr(m, METRIC[feature]) == count, (feature, count)
        result = w.load()()
        assert json.loads(json.dumps(result)) == result
        assert result["level"] == 4
        # A feature never disturbs the size dimensions' own counts.
        expected_calls = (count + 1) // 2 if feature == "multiline_strings" else 0
        assert m.subprocess_calls == expected_calls
        assert m.data_structures == 0


@pytest.mark.parametrize("feature", FEATURES)
def test_feature_runs_in_a_fresh_interpreter_pickled_by_value(feature: str) -> None:
    count = max(_counts(feature))
    w = generate({feature: count, "subprocess_calls": 1, "loc": 60}, level=6)
    runner = (
        "import sys, json, cloudpickle\n"
        "func = cloudpickle.loads(sys.stdin.buffer.read())\n"
        "sys.stdout.write(json.dumps(func()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", runner],
        input=cloudpickle.dumps(w.load()),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["level"] == 6 and result["proc_1"] == "45"


def test_feature_values_reach_the_result() -> None:
    w = generate(
        {
            "multiline_strings": 2,
            "closure_refs": 2,
            "global_refs": 2,
            "nested_functions": 1,
            "lambdas": 1,
            "decorators": 3,
            "comprehensions": 4,
            "top_level_range_loops": 1,
            "default_args": 2,
            "star_args": 2,
        },
        level=8,
    )
    r = w.load()()
    assert r["script_1"] == "script 1: 10 3"
    assert r["summary_2"].startswith("Summary 2 of level 8\nkeys so far: ")
    assert (r["closure_1"], r["closure_2"]) == (11, "enclosing-2")
    assert (r["global_1"], r["global_2"]) == (4, 5)
    assert r["nested_1"] == 3 and r["lambda_1"] == [1, 2, 3]
    assert r["stamps"] == 2 and r["label_step-2"] == 2
    assert r["comprehension_1"] == [0, 1, 4] and r["comprehension_2"] == {"0": 0, "1": 1, "2": 2, "3": 0}
    assert r["comprehension_3"] == [0, 1, 2, 3] and r["comprehension_4"] == 1 + 3 + 5
    assert r["range_1"] == 0 + 1 + 2
    assert (r["default_1"], r["default_2"]) == (500, 2048)
    assert (r["extra_args"], r["extra_kwargs"]) == (0, [])


def test_multiline_strings_start_at_column_zero_inside_the_function() -> None:
    w = generate({"multiline_strings": 2, "definition_scope": "nested"}, level=3)
    text = inspect.getsource(w.load())
    assert text.startswith("    def workload_3(")
    assert "\nimport sys\n" in text and "\nkeys so far: " in text
    # This is what breaks source shipping: dedent cannot remove indentation a line does not have.
    with pytest.raises(IndentationError):
        compile(textwrap.dedent(text), "<shipped>", "exec")


def test_default_args_grow_the_pickle_more_than_the_source() -> None:
    small, big = generate({}, level=1), generate({"default_args": 4}, level=1)
    grown_source = len(big.source) - len(small.source)
    grown_pickle = len(cloudpickle.dumps(big.load())) - len(cloudpickle.dumps(small.load()))
    assert grown_pickle > 10 * grown_source


@pytest.mark.parametrize("scope", ["module", "nested", "method"])
def test_every_definition_scope_loads_measures_and_shows_its_source(scope: str) -> None:
    w = generate({"definition_scope": scope, "decorators": 2, "loc": 40, "subprocess_calls": 2}, level=9)
    assert w.definition_scope == scope
    assert w.accessor == {"module": None, "nested": "make_workload_9()", "method": "Workload9.workload_9"}[scope]
    func = w.load()
    assert func.__name__ == "workload_9"
    assert func()["stamps"] == 1
    m = measure_workload(w)
    assert m.name == "workload_9"
    assert (
        m.qualname
        == {
            "module": "workload_9",
            "nested": "make_workload_9.<locals>.workload_9",
            "method": "Workload9.workload_9",
        }[scope]
    )
    assert m.subprocess_calls == 2
    assert m.decorators == 2 + (scope == "method")  # @staticmethod is a decorator too
    assert m.pickle_bytes is not None and m.pickle_bytes > 500
    assert abs(m.loc - 40) <= 4
    text = inspect.getsource(func)
    indent = "" if scope == "module" else "    "
    assert text.startswith(f"{indent}@")
    assert f"{indent}def workload_9(" in text


def test_closure_refs_force_a_nested_definition() -> None:
    w = generate({"closure_refs": 3, "definition_scope": "method"}, level=2)
    assert w.definition_scope == "nested" and w.accessor == "make_workload_2()"
    m = measure_workload(w)
    assert m.free_var_names == ["label_2", "threshold_1", "threshold_3"]
    func = w.load()
    assert sorted(func.__code__.co_freevars) == m.free_var_names


def test_unknown_scope_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"definition_scope: must be one of module, nested, method, not 'global'"):
        generate({"definition_scope": "global"})


def test_features_ladder_adds_features_one_by_one() -> None:
    ladder = load_ladder("features")
    default = load_ladder("default")
    assert len(ladder.levels) == len(default.levels)
    first: dict[str, int] = {}
    for level in ladder.levels:
        for name in FEATURES:
            if level.values[name] and name not in first:
                first[name] = level.number
        # The default ladder's growth is kept.
        base = default.level(level.number).values
        assert all(level.values[k] == base[k] for k, d in DIMENSIONS.items() if d.kind != "feature")
    assert sorted(first) == sorted(FEATURES)
    assert len(set(first.values())) == len(first), "two features appear at the same level"
    assert first["comprehensions"] < first["multiline_strings"] < first["closure_refs"]
    scopes = [lvl.values["definition_scope"] for lvl in ladder.levels]
    assert scopes.index("method") < scopes.index("nested")
    assert max(first.values()) < 28  # all in place below the default memory threshold


def test_features_ladder_levels_all_run() -> None:
    ladder = load_ladder("features")
    # Every third level, plus the levels where the definition scope changes.
    for n in sorted({*range(1, len(ladder.levels) + 1, 3), 21, 23}):
        w = ladder.workload(n)
        m = measure_workload(w)
        assert m.loc >= int(ladder.level(n).values["loc"]) - 2
        assert w.definition_scope == ("module" if n < 21 else "method" if n < 23 else "nested")
        # Run the same shape without the memory, output and runtime, which other tests cover.
        quiet = {**ladder.level(n).values, "memory_mb": 0, "output_kb": 0, "runtime_s": 0.0}
        result = generate(quiet, level=n).load()()
        assert result["level"] == n


_FEATURE_VALUES: dict[str, Any] = {name: st.integers(0, 6) for name in METRIC}
_FEATURE_VALUES["star_args"] = st.integers(0, 2)
_FEATURE_VALUES["definition_scope"] = st.sampled_from(["module", "nested", "method"])
_FEATURE_VALUES["phases"] = st.integers(0, 4)
_FEATURE_VALUES["loc"] = st.integers(1, 150)
_FEATURE_VALUES["nesting_depth"] = st.integers(0, 6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({}, optional=_FEATURE_VALUES))
def test_any_mix_of_features_is_valid_and_counted(values: dict[str, Any]) -> None:
    w = generate(values, level=3)
    assert w.source == generate(values, level=3).source
    compile(w.source, "<hypothesis>", "exec")
    m = next(m for m in measure_source_of(w.source) if m.name == w.func_name)
    scope = "nested" if values.get("closure_refs") else values.get("definition_scope", "module")
    assert w.definition_scope == scope
    for feature, metric in METRIC.items():
        want = values.get(feature, 0) + (feature == "decorators" and scope == "method")
        got = getattr(m, metric)
        if feature == "global_refs":
            # The embedded scripts of multiline_strings run through subprocess and sys.
            got = len(set(m.global_ref_names) - {"subprocess", "sys"})
        assert got == want, feature
    assert m.subprocess_calls == (values.get("multiline_strings", 0) + 1) // 2


def test_generated_sources_use_only_python_3_8_syntax() -> None:
    """The far side may run Python 3.8 (the runner supports it): no newer syntax in a workload."""
    sources = [
        load_ladder(name).workload(n).source
        for name in ("default", "seed", "features")
        for n in (1, 5, 40)
        if n <= len(load_ladder(name).levels)
    ]
    every = {name: 3 for name in METRIC} | {"star_args": 2, "phases": 2, "subprocess_calls": 4}
    sources += [generate({**every, "definition_scope": s}, level=7).source for s in ("module", "nested", "method")]
    for source in sources:
        ast.parse(source, feature_version=(3, 8))
