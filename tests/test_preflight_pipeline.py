"""The preflight asks only what the chosen pipeline needs: source shipping needs no cloudpickle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real interpreter without cloudpickle: a fresh virtualenv with nothing installed."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import cloudpickle"], capture_output=True)
    assert probe.returncode != 0  # the far side really lacks it
    return python


def run(tmp_path: Path, python: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "probe.toml"
    config.write_text(f'[clusters.bare]\ntype = "local"\npython = "{python}"\n')
    result = CliRunner().invoke(
        app, ["--config", str(config), "--reports-dir", str(tmp_path / "r"), "run", "--cluster", "bare", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_source_pipeline_runs_on_a_host_without_cloudpickle(bare_python: Path, tmp_path: Path) -> None:
    code, out, err = run(tmp_path, bare_python, "--pipeline", "source", "--level", "3", "--json")
    assert code == 0, err + out
    assert '"verdict": "pass"' in out


def test_native_pipeline_is_still_refused_there(bare_python: Path, tmp_path: Path) -> None:
    code, _, err = run(tmp_path, bare_python, "--pipeline", "native", "--level", "3")
    assert code == 3
    assert "cloudpickle is not importable" in err and len(err.strip().splitlines()) == 1
