"""JobPaths names every file of a job folder once, and the far-side scripts spell the same names."""

from __future__ import annotations

import ast
from pathlib import Path

from threshold_probe.clusters.jobpaths import JobPaths, read_tail, resolve_argv, safe_name
from threshold_probe.models import PYTHON, JobSpec, shared_ref
from threshold_probe.remote import LAUNCHER_PATH, RUNNER_PATH


def _constants(path: Path) -> dict[str, str]:
    tree = ast.parse(path.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def test_far_side_scripts_spell_the_jobpaths_names() -> None:
    runner = _constants(RUNNER_PATH)
    assert runner["META_NAME"] == JobPaths.META
    assert runner["RESULT_NAME"] == JobPaths.RESULT
    assert runner["SOURCE_NAME"] == JobPaths.SOURCE
    launcher = LAUNCHER_PATH.read_text()
    assert f'"{JobPaths.STDOUT}"' in launcher and f'"{JobPaths.STDERR}"' in launcher
    assert LAUNCHER_PATH.name == JobPaths.LAUNCHER and RUNNER_PATH.name == JobPaths.RUNNER


def test_jobspec_fetches_the_runner_records_by_default(tmp_path: Path) -> None:
    job = JobSpec(probe_id="p", argv=["true"], local_dir=tmp_path)
    assert job.fetch == [JobPaths.META, JobPaths.RESULT]


def test_paths_join_names_to_the_folder(tmp_path: Path) -> None:
    far = JobPaths("/w/jobs/p-1")
    assert far.stdout == "/w/jobs/p-1/stdout.log"
    assert far.job_script == "/w/jobs/p-1/job.sh"
    assert far.fetch_dir == "/w/jobs/p-1/.tp-fetch"
    here = JobPaths.local(tmp_path)
    assert here.stderr == tmp_path / "stderr.log"


def test_read_tail_keeps_the_end_and_tolerates_a_missing_file(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_bytes(b"a" * 10 + b"\xff" + b"end")
    assert read_tail(log, 4) == "\ufffdend"
    assert read_tail(tmp_path / "missing.log") == ""


def test_safe_name_and_resolve_argv() -> None:
    assert safe_name("lvl 3/../x;rm") == "lvl_3_.._x_rm"
    assert safe_name("", 10) == "job"
    assert len(safe_name("x" * 100, 48)) == 48
    argv = [PYTHON, shared_ref("runner.py"), "--in", "payload.pkl"]
    assert resolve_argv(argv, ["/opt/py", "-X", "utf8"], {"runner.py": "/s/ab/runner.py"}) == [
        "/opt/py",
        "-X",
        "utf8",
        "/s/ab/runner.py",
        "--in",
        "payload.pkl",
    ]
