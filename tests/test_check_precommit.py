"""The shipped `probe-check` hook, run by real pre-commit against a repository with a committed summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app

ROOT = Path(__file__).resolve().parents[1]

LADDER = """
name = "methods"
description = "Static methods that grow column-0 multi-line strings."

[defaults]
definition_scope = "method"

[ramp]
count = 8
loc = { start = 15, step = 5 }
multiline_strings = { from = 4, start = 1, step = 1, every = 1 }
"""

FLAGGED = '''
class Jobs:
    @staticmethod
    def script():
        return """
import sys
print(sys.argv)
"""
'''

CLEAN = '''
def script():
    return """
import sys
print(sys.argv)
"""
'''


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def summary_json(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real run: the source pipeline fails on column-0 strings in static methods (IndentationError)."""
    tmp = tmp_path_factory.mktemp("run")
    (tmp / "methods.toml").write_text(LADDER)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.delenv("PROBE_CONFIG", raising=False)
        result = CliRunner().invoke(
            app,
            [
                "--reports-dir",
                str(tmp / "r"),
                "bisect",
                "--pipeline",
                "source",
                "--ladder",
                "methods.toml",
                "--isolate",
                "--json",
                "--quiet",
            ],
        )
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One hook environment for both runs: pre-commit builds it (pip install of this project) once.
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(summary_json: str, home: Path, tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "dev@example.invalid")
    git(repo, "config", "user.name", "dev")
    (repo / "probe-summary.json").write_text(summary_json)
    (repo / "jobs.py").write_text(code)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "code and its measured thresholds")
    env = {**os.environ, "PRE_COMMIT_HOME": str(home)}
    env.pop("PROBE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(ROOT), "probe-check", "--all-files", "--verbose"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_hook_fails_on_a_function_the_run_predicts_to_fail(
    summary_json: str, pre_commit_home: Path, tmp_path: Path
) -> None:
    proc = try_repo(summary_json, pre_commit_home, tmp_path, FLAGGED)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "probe check" in proc.stdout and "Failed" in proc.stdout
    assert "jobs.py:4 Jobs.script: multiline_strings=1 >= 1 (source pipeline on local fails with IndentationError" in (
        proc.stdout
    )


@pytest.mark.slow
def test_hook_passes_without_a_finding(summary_json: str, pre_commit_home: Path, tmp_path: Path) -> None:
    proc = try_repo(summary_json, pre_commit_home, tmp_path, CLEAN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "probe check" in proc.stdout and "Passed" in proc.stdout
