"""`probe measure` is static: it parses files and never runs them, unless --pickle asks for it.

With --pickle, each file is imported in a child process with a time limit; a file that hangs,
exits or crashes while being imported is one line of the report, and the other files are still
measured. The commands run as real subprocesses: a file calling os._exit must not end the
process that measures it, and this test's own process must survive it too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

FINE = "def fine(a, b):\n    return a + b\n"


def probe(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},  # a table row on one line
    )


def measured(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in data["functions"]}


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "fine.py").write_text(FINE)
    marker = tmp_path / "marker.txt"
    (tmp_path / "sleeper.py").write_text(
        "import pathlib\nimport time\n\n"
        f"pathlib.Path({str(marker)!r}).write_text('imported')\n"
        "time.sleep(20)\n\n\n"
        "def sleepy():\n    return 1\n"
    )
    (tmp_path / "osexit.py").write_text("import os\n\nos._exit(0)\n\n\ndef never():\n    return 2\n")
    (tmp_path / "segfault.py").write_text("import ctypes\n\nctypes.string_at(0)\n\n\ndef crashes():\n    return 3\n")
    (tmp_path / "raises.py").write_text(
        'raise RuntimeError("refuses to be imported")\n\n\ndef refuses():\n    return 4\n'
    )
    return tmp_path


def test_measure_never_imports_a_file_by_default(files: Path) -> None:
    started = time.monotonic()
    proc = probe(files, "measure", "fine.py", "sleeper.py", "osexit.py", "segfault.py", "raises.py", "--json")
    took = time.monotonic() - started
    data = measured(proc)
    assert not (files / "marker.txt").exists(), "the file was executed"
    assert took < 15, took  # the file sleeps 20 s when it is imported
    funcs = by_name(data)
    assert set(funcs) == {"fine", "sleepy", "never", "crashes", "refuses"}
    assert all(f["pickle_bytes"] is None for f in funcs.values())
    assert data["errors"] == []


def test_measure_of_a_file_that_exits_still_prints_the_others(files: Path) -> None:
    proc = probe(files, "measure", "fine.py", "osexit.py")
    assert proc.returncode == 0, proc.stderr
    assert "fine.py:fine" in proc.stdout and "osexit.py:never" in proc.stdout


def test_pickle_sizes_run_in_a_child_with_a_time_limit(files: Path) -> None:
    started = time.monotonic()
    proc = probe(files, "measure", "--pickle", "--pickle-timeout", "2", "fine.py", "sleeper.py", "--json")
    took = time.monotonic() - started
    data = measured(proc)
    assert took < 15, took
    funcs = by_name(data)
    assert (funcs["fine"]["pickle_bytes"] or 0) > 100
    assert funcs["sleepy"]["pickle_bytes"] is None and funcs["sleepy"]["loc"] == 2
    (error,) = data["errors"]
    assert error["path"] == "sleeper.py"
    assert "still importing after 2 s" in error["message"], error
    # The file did run (that is what --pickle means), in the measured file's own folder on sys.path.
    assert (files / "marker.txt").read_text() == "imported"


def test_pickle_reports_a_file_that_exits_crashes_or_raises_and_measures_the_rest(files: Path) -> None:
    proc = probe(files, "measure", "--pickle", "fine.py", "osexit.py", "segfault.py", "raises.py", "--json")
    data = measured(proc)
    funcs = by_name(data)
    assert (funcs["fine"]["pickle_bytes"] or 0) > 100
    assert all(funcs[name]["pickle_bytes"] is None for name in ("never", "crashes", "refuses"))
    errors = {e["path"]: e["message"] for e in data["errors"]}
    assert set(errors) == {"osexit.py", "segfault.py", "raises.py"}
    assert "exited with code 0 while being imported" in errors["osexit.py"]
    assert "crashed (SIGSEGV) while being imported" in errors["segfault.py"]
    assert "RuntimeError: refuses to be imported" in errors["raises.py"]
    assert all("\n" not in message for message in errors.values())


def test_pickle_problems_are_one_line_each_in_the_table(files: Path) -> None:
    proc = probe(files, "measure", "--pickle", "fine.py", "osexit.py", "segfault.py")
    assert proc.returncode == 0, proc.stderr
    assert "fine.py:fine" in proc.stdout and "segfault.py:crashes" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("osexit.py: ") and lines[1].startswith("segfault.py: ")


def test_pickle_option_documents_what_it_runs(files: Path) -> None:
    proc = probe(files, "measure", "--help")
    text = " ".join(proc.stdout.split())
    assert "--pickle" in text and "--pickle-timeout" in text
    assert "imports" in text and "sys.path" in text
