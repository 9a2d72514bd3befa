"""`scripts/test` starts the loopback testbed only when the pytest command line can select a test
that needs it: `bash scripts/test -m "not testbed"` runs the fast part without servers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed.selection import marker_expression, needs_testbed

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("args", "needed"),
    [
        ([], True),
        (["tests/test_units.py", "-q"], True),
        (["-m", "not testbed"], False),
        (["-mnot testbed"], False),
        (["-m", "not testbed and not slow", "-x"], False),
        (["-m", "slow and not testbed"], False),
        (["-m", "testbed"], True),
        (["-m", "ssh"], True),
        (["-m", "not ssh"], True),  # a SLURM test is still a testbed test
        (["-m", "not testbed or slurm"], True),
        (["-m", "not testbed", "-m", "slow"], True),  # pytest uses the last -m
        (["-m", "slow", "-m", "not testbed"], False),
        (["-m", "(not testbed"], True),  # malformed: pytest says so, the servers are started as before
        (["--", "-m", "not testbed"], True),
    ],
)
def test_the_marker_expression_decides_whether_the_servers_start(args: list[str], needed: bool) -> None:
    assert needs_testbed(args) is needed


def test_the_last_marker_expression_is_the_one_pytest_uses() -> None:
    assert marker_expression(["-m", "a", "-k", "x", "-mb"]) == "b"
    assert marker_expression(["-k", "not testbed"]) is None


def test_scripts_test_runs_the_fast_part_without_starting_the_testbed(tmp_path: Path) -> None:
    """The real script: with `-m "not testbed"` pytest runs without a testbed config (none was started)."""
    probe_env = tmp_path / "test_env.py"
    probe_env.write_text("import os\n\ndef test_env():\n    assert 'TP_TESTBED_CONFIG' not in os.environ\n")
    proc = subprocess.run(
        ["bash", "scripts/test", "-m", "not testbed", "-q", "-p", "no:cacheprovider", str(probe_env)],
        cwd=ROOT,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "TP_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
