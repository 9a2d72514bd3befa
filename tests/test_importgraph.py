"""scripts/importgraph.py: the import graph, its cycles and the module sizes of a package tree,
and the files one `probe` command calls into."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "importgraph.py"


def importgraph(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "threshold_probe" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_through_an_import_in_a_function_and_a_long_module_fail_the_check(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from threshold_probe import b\n",
            "b.py": "def f():\n    from threshold_probe.a import x\n    return x\n",
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from threshold_probe import d\n",
            "d.py": "from . import c\n",
            "sub/__init__.py": "",
            "sub/big.py": "x = 1\n" * 601,
            "sub/ok.py": "from ..sub import big\n" + "y = 2\n" * 599,
        },
    )
    done = importgraph("--root", str(root), "--check")
    assert done.returncode == 1
    assert "2 module(s)" not in done.stderr and "1 import cycle(s), 1 module(s) over 600 lines" in done.stderr
    out = done.stdout
    assert "threshold_probe.a <-> threshold_probe.b" in out
    assert "threshold_probe.b:2 -> threshold_probe.a (in function)" in out
    # A typing-only import never runs: c and d form no cycle, but the edge is shown.
    assert "-> threshold_probe.d  (typing only)" in out and "threshold_probe.c <-> " not in out
    assert "601  threshold_probe/sub/big.py  over the limit" in out
    data = json.loads(importgraph("--root", str(root), "--json").stdout)
    assert data["cycles"] == [["threshold_probe.a", "threshold_probe.b"]]
    assert data["lines_per_package"]["sub/"] == {"lines": 1201, "modules": 3}
    assert data["lines_per_package"]["threshold_probe/"]["modules"] == 5
    assert {"module": "threshold_probe.sub.big", "kind": "module", "line": 1} in data["graph"]["threshold_probe.sub.ok"]


def test_a_tree_without_cycles_or_long_modules_passes(tmp_path: Path) -> None:
    root = tree(tmp_path, {"__init__.py": "", "a.py": "import threshold_probe.b\n", "b.py": "import json\n"})
    done = importgraph("--root", str(root), "--check")
    assert done.returncode == 0, done.stderr
    assert "Import cycles: 0" in done.stdout


def test_trace_lists_the_project_files_a_command_calls_into(tmp_path: Path) -> None:
    done = importgraph("--json", "--trace", "--reports-dir", str(tmp_path / "reports"), "runs")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout[done.stdout.index('{\n  "command"') :])
    assert data["exit_code"] == 0
    files = {f["path"] for f in data["files"]}
    assert {"threshold_probe/cli/app.py", "threshold_probe/cli/runs.py", "threshold_probe/store.py"} <= files
    assert all(f["calls"] > 0 for f in data["files"])
    # Modules that were only imported (no function of theirs called) are not listed.
    assert "threshold_probe/cli/nightly.py" not in files
    # The path: files that call into a file they import; every other called file is a leaf.
    path = {p["path"]: set(p["calls_into"]) for p in data["path"]}
    assert "threshold_probe/cli/common.py" in path["threshold_probe/cli/runs.py"]
    assert set(path) | set(data["leaves"]) == files and not set(path) & set(data["leaves"])
    assert all(targets <= files for targets in path.values())
    # What must be read: the definitions called, never more than the files hold; `runs` calls
    # into the journal, so store.py has some.
    called = {f["path"]: f["called_lines"] for f in data["files"]}
    assert called["threshold_probe/store.py"] > 0
    assert 0 < data["called_lines"] == sum(called.values()) < data["called_file_lines"]
    assert 1 <= data["packed_floor"] <= len(files)


def test_the_package_has_no_import_cycle_and_no_module_over_600_lines() -> None:
    """The shape the code keeps: every module under 600 lines, no two modules importing each other
    (imports inside functions included)."""
    proc = importgraph("--check", "--json")
    shape = json.loads(proc.stdout)
    assert shape["cycles"] == []
    assert shape["over_limit"] == []
    assert proc.returncode == 0, proc.stderr
