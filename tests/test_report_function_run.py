"""The report of `probe run --function`: one probe of the user's own function, no level.

Its answer is the function's verdict, in every format: a failing function is never headed
"no level was tested to completion" under a green tick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app

FUNCS = """
def passes():
    return 1


def fails():
    raise ValueError("always")
"""


def _probe(where: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["--reports-dir", str(where / "reports"), *args], env={"COLUMNS": "200"})
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A real run on the local cluster of a function that fails and of one that passes."""
    where = tmp_path_factory.mktemp("fn")
    (where / "funcs.py").write_text(FUNCS)
    ids = {}
    for name, code in (("fails", 1), ("passes", 0)):
        got, out, err = _probe(where, "run", "--function", f"{where / 'funcs.py'}:{name}", "--json", "--quiet")
        assert got == code, err
        ids[name] = json.loads(out)["run_id"]
    return where, ids


def test_markdown_heads_a_failing_function_with_its_failure(runs: tuple[Path, dict[str, str]]) -> None:
    where, ids = runs
    code, out, err = _probe(where, "report", ids["fails"], "--format", "md")
    assert code == 0, err
    headline = out.splitlines()[2]
    assert headline.startswith("**❌ ") and "funcs.py:fails fails (exception)" in headline, out
    assert "no level was tested" not in out


def test_markdown_heads_a_passing_function_with_its_pass(runs: tuple[Path, dict[str, str]]) -> None:
    where, ids = runs
    code, out, err = _probe(where, "report", ids["passes"], "--format", "md")
    assert code == 0, err
    headline = out.splitlines()[2]
    assert headline.startswith("**✅ ") and "funcs.py:passes passes" in headline, out


def test_every_format_states_the_functions_verdict(runs: tuple[Path, dict[str, str]]) -> None:
    where, ids = runs
    code, out, err = _probe(where, "report", ids["fails"])
    assert code == 0, err
    assert "funcs.py:fails fails (exception)" in out and "no level was tested" not in out, out
    code, out, err = _probe(where, "report", ids["fails"], "--format", "html")
    assert code == 0, err
    assert '<div class="verdict failed" id="verdict">' in out
    assert "funcs.py:fails fails (exception)" in out
    code, out, err = _probe(where, "report", ids["fails"], "--format", "junit")
    assert code == 0, err
    assert 'name="threshold" value="' in out and "funcs.py:fails fails (exception)" in out, out


@pytest.mark.parametrize("fmt", ["junit", "html"])
def test_a_function_probe_is_not_called_an_isolate_probe(runs: tuple[Path, dict[str, str]], fmt: str) -> None:
    where, ids = runs
    code, out, err = _probe(where, "report", ids["fails"], "--format", fmt)
    assert code == 0, err
    assert "funcs.py:fails" in out
    assert "isolate probe" not in out, out


@pytest.mark.parametrize("fmt", ["rich", "md", "html"])
def test_a_triage_states_what_it_ran_under(tmp_path: Path, fmt: str) -> None:
    """As a search report does: the cluster as its preflight saw it, the limits and the versions."""
    (tmp_path / "funcs.py").write_text(FUNCS)
    code, out, err = _probe(tmp_path, "triage", str(tmp_path / "funcs.py"), "--quiet", "--memory", "700MB")
    assert code == 0, err
    code, out, err = _probe(tmp_path, "report", "latest", "--format", fmt)
    assert code == 0, err
    text = " ".join(out.split())
    for fact in ("memory 700MB", "time 120s", "cloudpickle ", "threshold_probe ", "python_version="):
        assert fact in text, (fact, out)
