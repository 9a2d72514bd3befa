"""compare-pipelines and bisect --pipelines on the local cluster: whose threshold is it?"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.compare_pipelines import parse_pipelines
from threshold_probe.errors import UserError


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_native_passes_where_inline_fails_and_the_threshold_is_the_pipelines(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli,
        tmp_path,
        "compare-pipelines",
        "--pipelines",
        "native,inline",
        "--from",
        "10",
        "--to",
        "13",
        "--json",
        "--quiet",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["pipelines"] == ["native", "inline"] and data["cluster"] == "local"
    rows = {row["level"]: row["cells"] for row in data["matrix"]}
    assert sorted(rows) == [10, 11, 12, 13]
    assert all(rows[n]["native"]["verdict"] == "pass" for n in rows)
    failing = [n for n in rows if rows[n]["inline"]["verdict"] == "fail"]
    assert failing and all(rows[n]["inline"]["class"] == "arg_too_long" for n in failing)
    inline = next(t for t in data["thresholds"] if t["pipeline"] == "inline")
    assert inline["first_fail"] == min(failing) and inline["owner"] == "pipeline"
    assert "belongs to the inline pipeline, not to the cluster" in inline["statement"]
    assert data["findings"] == [inline["statement"]]


def test_rich_report_says_the_threshold_belongs_to_the_pipeline(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli, tmp_path, "compare-pipelines", "--pipelines", "inline", "--from", "11", "--to", "12", "--quiet"
    )
    assert code == 0, err
    flat = " ".join(out.split())
    assert "inline fails first at level 12 (arg_too_long) while native passes at level 12" in flat
    assert "belongs to the inline pipeline, not to the cluster" in flat


def test_bisect_with_pipelines_settles_the_owner_with_a_native_probe(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli, tmp_path, "bisect", "--pipelines", "native,source,inline", "--hi", "20", "--json", "--quiet"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["kind"] == "bisect" and data["pipelines"] == ["native", "source", "inline"]
    by_name = {t["pipeline"]: t for t in data["thresholds"]}
    assert by_name["native"]["first_fail"] is None and by_name["source"]["first_fail"] is None
    level = by_name["inline"]["first_fail"]
    assert level is not None and by_name["inline"]["owner"] == "pipeline"
    # The native bisect never probed that level; one native run did, and it passed.
    cell = next(r["cells"] for r in data["matrix"] if r["level"] == level)
    assert cell["native"]["verdict"] == "pass" and cell["inline"]["class"] == "arg_too_long"
    assert len(data["run_ids"]["native"]) == 2


def test_pipeline_list_is_checked_before_any_probe() -> None:
    assert parse_pipelines("source, inline") == ["native", "source", "inline"]
    with pytest.raises(UserError, match="unknown pipeline 'nope'"):
        parse_pipelines("native,nope")


def test_unknown_pipeline_is_a_user_error_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "compare-pipelines", "--pipelines", "native,nope", "--quiet")
    assert code == 2 and "unknown pipeline 'nope'" in err
