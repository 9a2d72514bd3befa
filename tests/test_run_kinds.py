"""Commands that read a search's run refuse a run of another kind in one line (exit 2).

`compare`, `isolate`, `check --against`, `explain --from` and `report` in a search's formats read
a run's threshold; a shrink or a triage run has none. Each names the run's kind instead of
failing on its shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.inprocess_cluster import Outcome, Pass, Raise, Run, routed
from threshold_probe.cli.app import app
from threshold_probe.models import JobSpec

FAILING = """\
def job():
    data = [1, 2, 3]
    total = sum(data)
    raise ValueError(f"bad total {total}")


def fine():
    return 1
"""


def _probe(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _jobs(level: int | None, job: JobSpec) -> Outcome:
    """Ladder levels from 2 on fail with a MemoryError; a user's function runs as it is."""
    if level is None:
        return Run()
    return Raise("MemoryError", "cannot allocate") if level >= 2 else Pass()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A bisect, a shrink and a triage run in one journal (on the in-process test cluster)."""
    with routed(_jobs):
        return _record_runs(tmp_path_factory.mktemp("kinds"))


def _record_runs(tmp: Path) -> tuple[Path, dict[str, str]]:
    (tmp / "jobs").mkdir()
    (tmp / "jobs" / "f.py").write_text(FAILING)
    ids: dict[str, str] = {}
    code, out, err = _probe(tmp, "bisect", "--to", "3", "--json", "--quiet")
    assert code == 0, err
    ids["bisect"] = json.loads(out)["run_id"]
    code, out, err = _probe(tmp, "shrink", "--function", f"{tmp / 'jobs' / 'f.py'}:job", "--json", "--quiet")
    assert code == 0, err
    ids["shrink"] = json.loads(out)["run_id"]
    code, out, err = _probe(tmp, "triage", str(tmp / "jobs"), "--json", "--quiet")
    assert code == 0, err
    ids["triage"] = json.loads(out)["run_id"]
    return tmp, ids


def _one_line_refusal(code: int, out: str, err: str, run_id: str, kind: str) -> None:
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"run {run_id} is a {kind} run" in lines[0], err
    assert "internal error" not in err and "Traceback" not in err and "None" not in err


@pytest.mark.parametrize("kind", ["shrink", "triage"])
def test_compare_refuses_a_run_without_a_threshold(runs: tuple[Path, dict[str, str]], kind: str) -> None:
    tmp, ids = runs
    for pair in ((ids[kind], ids["bisect"]), (ids["bisect"], ids[kind])):
        code, out, err = _probe(tmp, "compare", *pair)
        _one_line_refusal(code, out, err, ids[kind], kind)
        code, out, err = _probe(tmp, "compare", *pair, "--json")
        _one_line_refusal(code, out, err, ids[kind], kind)


@pytest.mark.parametrize("kind", ["shrink", "triage"])
def test_isolate_refuses_a_run_without_a_boundary(runs: tuple[Path, dict[str, str]], kind: str) -> None:
    tmp, ids = runs
    code, out, err = _probe(tmp, "isolate", ids[kind])
    _one_line_refusal(code, out, err, ids[kind], kind)


@pytest.mark.parametrize("kind", ["shrink", "triage"])
def test_check_refuses_a_run_without_thresholds(runs: tuple[Path, dict[str, str]], kind: str) -> None:
    tmp, ids = runs
    code, out, err = _probe(tmp, "check", str(tmp / "jobs"), "--against", ids[kind])
    _one_line_refusal(code, out, err, ids[kind], kind)


def test_the_bisect_is_still_compared_with_itself(runs: tuple[Path, dict[str, str]]) -> None:
    """The guard lets the runs of searches through."""
    tmp, ids = runs
    code, out, err = _probe(tmp, "compare", ids["bisect"], ids["bisect"], "--json")
    assert code == 0, err
    assert json.loads(out)["same_cell"] is True


def test_repro_of_a_shrink_run_names_the_failure_it_kept(runs: tuple[Path, dict[str, str]]) -> None:
    """A shrink started from a function (no run behind it) still states the signature to expect."""
    tmp, ids = runs
    code, out, err = _probe(tmp, "report", ids["shrink"], "--format", "json")
    assert code == 0, err
    kept = json.loads(out)["signature"]
    assert kept and "ValueError" in kept
    folder = tmp / "repro-shrink"
    code, out, err = _probe(tmp, "repro", ids["shrink"], "-o", str(folder))
    assert code == 0, err
    assert json.loads((folder / "expected.json").read_text())["signature"] == kept
    assert f"the root error of `{kept}`" in (folder / "README.md").read_text()


def test_resuming_a_run_of_another_kind_names_both_kinds(runs: tuple[Path, dict[str, str]]) -> None:
    tmp, ids = runs
    code, _, err = _probe(tmp, "isolate", "--resume", ids["bisect"], "--quiet")
    assert code == 2, err
    assert f"run {ids['bisect']} is a bisect run, not an isolate: resume it with probe bisect" in err


def test_a_nightly_baseline_pinned_to_a_shrink_run_is_refused_before_anything_runs(
    runs: tuple[Path, dict[str, str]],
) -> None:
    tmp, ids = runs
    config = tmp / "nightly.toml"
    config.write_text(
        '[nightly]\nclusters = ["local"]\npipelines = ["native"]\nladders = ["default"]\n'
        f'[nightly.baseline]\n"local/native/default" = "{ids["shrink"]}"\n'
    )
    before = _probe(tmp, "runs", "--json")[1]
    code, _, err = _probe(tmp, "--config", str(config), "nightly", "-o", str(tmp / "night"))
    assert code == 2, err
    assert f"names run '{ids['shrink']}', a shrink run: a baseline is the run of a sweep or bisect" in err
    assert _probe(tmp, "runs", "--json")[1] == before  # nothing ran
