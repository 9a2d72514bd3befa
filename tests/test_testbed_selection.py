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


def test_every_listed_local_integration_test_exists_and_is_marked_testbed() -> None:
    """A renamed test must not slip out of the list (and into the fast part) unnoticed."""
    from tests.conftest import _LOCAL_INTEGRATION

    files = sorted({prefix.split("::")[0] for prefix in _LOCAL_INTEGRATION})
    others = ["tests/test_ssh_cluster.py", "tests/test_slurm.py", "tests/test_search_bisect.py"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "testbed",
            *files,
            *others,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    marked = [line for line in proc.stdout.splitlines() if "::" in line]
    for prefix in _LOCAL_INTEGRATION:
        assert any(nodeid.startswith(prefix) for nodeid in marked), f"{prefix} matches no test marked testbed"
    # The tests of the loopback servers are marked whatever their file.
    assert any(nodeid.startswith("tests/test_ssh_cluster.py::") for nodeid in marked)
    assert any(nodeid.startswith("tests/test_slurm.py::") for nodeid in marked)
    assert not any(nodeid.startswith("tests/test_search_bisect.py::") for nodeid in marked)
