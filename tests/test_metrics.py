"""Static metrics against hand-counted examples (tests/assets/metrics/) and against CPython itself."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from threshold_probe.errors import UserError
from threshold_probe.ladder import generate, load_ladder
from threshold_probe.metrics import measure_paths, measure_source, measure_workload

ASSETS = Path(__file__).parent / "assets" / "metrics"
EXPECTED = {k: v for k, v in json.loads((ASSETS / "expected.json").read_text()).items() if k != "_comment"}


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, object]]:
    result = measure_paths([str(ASSETS / "examples.py")])
    assert result.errors == []
    return {m.qualname: m.model_dump() for m in result.functions}


@pytest.mark.parametrize("qualname", sorted(EXPECTED))
def test_hand_counted(examples: dict[str, dict[str, object]], qualname: str) -> None:
    got = examples[qualname]
    want = EXPECTED[qualname]
    assert {k: got[k] for k in want} == want
    assert got["free_vars"] == len(want["free_var_names"])  # type: ignore[arg-type]
    assert got["global_refs"] == len(want["global_ref_names"])  # type: ignore[arg-type]


def test_every_function_is_found_in_source_order(examples: dict[str, dict[str, object]]) -> None:
    assert list(examples) == [
        "plain",
        "runs_things",
        "outer",
        "outer.<locals>.inner",
        "outer.<locals>.Box.get",
        "Service.method",
        "uses_global",
        "spawn",
        "accumulates",
    ]


def test_radon_figures_are_filled(examples: dict[str, dict[str, object]]) -> None:
    m = examples["Service.method"]
    assert m["cc_rank"] == "B"  # cc 7 is rank B in radon
    assert m["sloc"] == 18 and m["lloc"] >= 15
    assert float(m["halstead_volume"]) > 0 and float(m["halstead_effort"]) > 0  # type: ignore[arg-type]
    assert 0 < float(m["mi"]) <= 100  # type: ignore[arg-type]
    # A single-line docstring and a comment are not source lines.
    assert examples["runs_things"]["sloc"] == 7


def _code_objects(code: types.CodeType) -> dict[tuple[str, int], types.CodeType]:
    out = {(code.co_name, code.co_firstlineno): code}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out.update(_code_objects(const))
    return out


def _assert_free_vars_match_cpython(source: str) -> int:
    """free_var_names of every function equals the co_freevars CPython compiles; returns how many."""
    codes = _code_objects(compile(source, "<check>", "exec"))
    checked = 0
    for m in measure_source(source):
        code = codes[(m.name, m.lineno)]
        assert m.free_var_names == sorted(set(code.co_freevars) - {"__class__"}), m.qualname
        checked += 1
    return checked


def test_free_vars_agree_with_cpython_on_examples() -> None:
    assert _assert_free_vars_match_cpython((ASSETS / "examples.py").read_text()) == 9


def test_folder_reports_syntax_error_and_measures_the_rest() -> None:
    result = measure_paths([str(ASSETS)])
    assert [(Path(e.path).name, e.lineno) for e in result.errors] == [("broken.py", 5)]
    assert "SyntaxError" in result.errors[0].message
    names = {(Path(m.path or "").name, m.qualname) for m in result.functions}
    assert ("helpers.py", "hostname") in names
    assert ("raises_on_import.py", "survives") in names
    assert ("examples.py", "Service.method") in names
    assert not any(Path(m.path or "").name == "broken.py" for m in result.functions)


def test_pickle_bytes_for_files() -> None:
    result = measure_paths([str(ASSETS)], pickle=True)
    by = {(Path(m.path or "").name, m.qualname): m for m in result.functions}
    # Module-level functions and methods are imported and pickled by value.
    assert (by["helpers.py", "hostname"].pickle_bytes or 0) > 300
    assert (by["examples.py", "Service.method"].pickle_bytes or 0) > 300
    # A nested function only exists while its parent runs; a module that fails to import has none.
    assert by["examples.py", "outer.<locals>.inner"].pickle_bytes is None
    assert by["raises_on_import.py", "survives"].pickle_bytes is None
    assert [Path(e.path).name for e in result.errors if "no pickle sizes" in e.message] == ["raises_on_import.py"]
    # Without pickle=True (the default) nothing is imported, so there is no pickle size.
    assert measure_paths([str(ASSETS / "examples.py")]).functions[0].pickle_bytes is None


def test_file_func_target() -> None:
    one = measure_paths([f"{ASSETS / 'examples.py'}:Service.method"]).functions
    assert [m.qualname for m in one] == ["Service.method"]
    by_name = measure_paths([f"{ASSETS / 'examples.py'}:inner"]).functions
    assert [m.qualname for m in by_name] == ["outer.<locals>.inner"]


def test_bad_targets_are_user_errors() -> None:
    with pytest.raises(UserError, match=r"^no such file or folder: .*nope\.py$"):
        measure_paths([str(ASSETS / "nope.py")])
    with pytest.raises(UserError, match=r"examples\.py: no function 'missing' \(functions: plain, "):
        measure_paths([f"{ASSETS / 'examples.py'}:missing"])


def test_measure_source_raises_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        measure_source("def f(:\n    pass\n")


def test_workload_metrics_follow_the_dimensions() -> None:
    m = measure_workload(
        generate({"loc": 80, "subprocess_calls": 6, "data_structures": 4, "nesting_depth": 5}, level=3)
    )
    assert m.name == "workload_3" and m.qualname == "workload_3"
    assert m.loc == 80
    assert m.subprocess_calls == 6
    assert m.max_nesting == 5
    assert m.data_structures == 4
    assert m.pickle_bytes is not None and m.pickle_bytes > 1000


def test_default_ladder_metrics_grow() -> None:
    ladder = load_ladder("default")
    first, last = (measure_workload(ladder.workload(n)) for n in (2, 40))
    assert last.loc > 10 * first.loc / 2
    assert last.cc > first.cc and last.subprocess_calls == 20
    assert (last.pickle_bytes or 0) > 300 * 1024 > (first.pickle_bytes or 0)
