"""The source pipeline on the local cluster: it carries what source text can, and fails for real on the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder import load_ladder
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Verdict
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.source import module_preamble

LIMITS = Limits(memory_bytes=1024**3, time_s=60)


def probe(workload: Workload, tmp_path: Path) -> tuple[Verdict, object]:
    obs = make_pipeline("source").dispatch(workload, make_cluster("local", ProbeConfig()), "s", LIMITS, tmp_path)
    return diagnose(obs), obs


MODULE = """
import json
import sys

SCALE = 3


def _helper(x):
    return x + 1


def plain():
    return json.dumps({"v": SCALE * 2, "py": sys.version_info[0]})


def uses_helper():
    return _helper(SCALE)
"""


def test_module_function_with_imports_and_constants_passes(tmp_path: Path) -> None:
    verdict, obs = probe(Workload(name="m", source=MODULE, func_name="plain"), tmp_path)
    assert verdict.status == "pass", verdict
    assert obs.result["repr"] == repr(json.dumps({"v": 6, "py": 3}))  # type: ignore[attr-defined]
    # The far side timed its stages like the native runner: compile stands in deserialize's place.
    assert {"deserialize", "execute", "serialize"} <= set(obs.timings)  # type: ignore[attr-defined]
    assert obs.meta["mode"] == "source"  # type: ignore[attr-defined]


def test_module_level_helper_does_not_travel(tmp_path: Path) -> None:
    verdict, _ = probe(Workload(name="m", source=MODULE, func_name="uses_helper"), tmp_path)
    assert verdict.status == "fail" and verdict.failure_class == "name"
    assert verdict.evidence[0] == "NameError: name '_helper' is not defined"
    assert "stage: execute" in verdict.evidence


NESTED = """
import math


def make_workload():
    factor = 21

    def workload():
        return math.floor(factor * 2.0)

    return workload
"""


def test_closure_reference_fails_for_real_but_native_carries_it(tmp_path: Path) -> None:
    workload = Workload(
        name="n", source=NESTED, func_name="workload", definition_scope="nested", accessor="make_workload()"
    )
    verdict, _ = probe(workload, tmp_path / "source")
    assert verdict.failure_class == "name", verdict
    assert verdict.evidence[0] == "NameError: name 'factor' is not defined"
    # The text the far side got: the indented definition, not its enclosing factory.
    shipped = json.loads((tmp_path / "source" / "payload.json").read_text())
    assert shipped["source"].startswith("    def workload():") and "factor = 21" not in shipped["source"]
    native = make_pipeline("native").dispatch(
        workload, make_cluster("local", ProbeConfig()), "n", LIMITS, tmp_path / "native"
    )
    assert diagnose(native).status == "pass"
    assert native.result["repr"] == "42"  # type: ignore[index]


METHOD = '''
import functools


def tagged(label):
    def wrap(fn):
        return fn
    return wrap


class Work:
    @staticmethod
    @tagged(
        "multi-line decorator call",
    )
    def run():
        return functools.reduce(lambda a, b: a + b, [1, 2, 3])

    @staticmethod
    def script():
        text = """
import sys
print(sys.argv)
"""
        return len(text)
'''


def test_static_method_is_dedented_and_its_decorators_stripped(tmp_path: Path) -> None:
    workload = Workload(name="c", source=METHOD, func_name="run", definition_scope="method", accessor="Work.run")
    verdict, obs = probe(workload, tmp_path)
    assert verdict.status == "pass", verdict
    assert obs.result["repr"] == "6"  # type: ignore[attr-defined]


def test_column_zero_lines_in_an_indented_method_cannot_be_dedented(tmp_path: Path) -> None:
    workload = Workload(name="c", source=METHOD, func_name="script", definition_scope="method", accessor="Work.script")
    verdict, _ = probe(workload, tmp_path)
    assert verdict.failure_class == "syntax", verdict
    assert verdict.evidence[0].startswith("IndentationError: unexpected indent")
    assert "stage: compile" in verdict.evidence


def test_preamble_holds_imports_and_assignments_only() -> None:
    text = module_preamble(MODULE)
    assert "import json" in text and "SCALE = 3" in text
    assert "def _helper" not in text and "def plain" not in text
    assert module_preamble(MODULE, assignments=False).strip().splitlines() == ["import json", "import sys"]


def test_default_ladder_level_runs_through_source(tmp_path: Path) -> None:
    workload = load_ladder("default").workload(3)
    verdict, obs = probe(workload, tmp_path)
    assert verdict.status == "pass", verdict
    assert obs.peak_rss_mb is not None and obs.peak_rss_mb > 90  # type: ignore[attr-defined]


def test_features_ladder_closure_level_fails_through_source_not_native(tmp_path: Path) -> None:
    ladder = load_ladder("features")
    level = next(
        lv.number
        for lv in ladder.levels
        if lv.values.get("definition_scope") == "nested" and int(lv.values.get("closure_refs", 0)) > 0
    )
    workload = ladder.workload(level)
    verdict, _ = probe(workload, tmp_path / "source")
    assert verdict.status == "fail" and verdict.failure_class in ("name", "syntax"), verdict
    native = make_pipeline("native").dispatch(
        workload, make_cluster("local", ProbeConfig()), "n", LIMITS, tmp_path / "native"
    )
    assert diagnose(native).status == "pass"


def test_bisect_and_isolate_name_the_feature_source_cannot_carry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "--reports-dir",
            str(tmp_path / "r"),
            "bisect",
            "--pipeline",
            "source",
            "--ladder",
            "features",
            "--hi",
            "14",
            "--isolate",
            "--json",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["failure"]["class"] == "name"
    assert any(line.startswith("NameError: name ") for line in data["failure"]["evidence"])
    # The features ladder adds module-level helper functions with global_refs: they do not travel.
    assert data["isolate"]["drivers"] == ["global_refs"]
