"""An undecided search is an answer, never a threshold: no boundary rests on an untested level.

On the local cluster, with real limits: level 4 of the ladder below computes for a minute and is
killed by a real `--time` limit (`timeout`); level 5 runs past a real 300MB RLIMIT_AS (`oom`).
Hunting `oom`, level 4 is a skip (a different failure), so all that is known is "level 3 passes,
level 5 fails, and level 4 could not be tested": the first `oom` may be level 4 or level 5.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from threshold_probe.cli.app import app

LADDER = """
name = "undecided"
description = "Level 4 times out; level 5 runs out of memory under 300MB."
[ramp]
count = 5
memory_mb = { start = 20, step = 20 }
[[levels]]
level = 4
runtime_s = 60
[[levels]]
level = 5
memory_mb = 360
"""


def invoke(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    config = tmp_path / "probe.toml"
    config.write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "--reports-dir", str(tmp_path / "reports"), *args],
        env={"PROBE_REPORTS_DIR": None},
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_bisect_with_an_untested_level_between_its_pass_and_failure_stores_no_threshold(tmp_path: Path) -> None:
    ladder = tmp_path / "undecided.toml"
    ladder.write_text(LADDER)
    limits = ("--ladder", str(ladder), "--memory", "300MB", "--time", "2s", "--match", "oom")
    code, out, err = invoke(tmp_path, "bisect", *limits, "--json", "--quiet")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "completed" and summary["search_status"] == "inconclusive"
    assert summary["message"].startswith("undecided between levels 3 and 5: "), summary["message"]
    assert "level 4 could not be tested" in summary["message"]
    assert summary["first_fail"] is None and summary["last_pass"] is None
    run_id = summary["run_id"]
    # Nothing claims level 5 elsewhere either: runs, history, the terminal report.
    code, out, err = invoke(tmp_path, "runs", "--json")
    assert code == 0, err
    assert [(r["first_fail"], r["last_pass"]) for r in json.loads(out) if r["run_id"] == run_id] == [(None, None)]
    code, out, err = invoke(tmp_path, "history", "--json")
    assert code == 0, err
    assert [e["first_fail"] for e in json.loads(out)["runs"] if e["run_id"] == run_id] == [None]
    code, out, err = invoke(tmp_path, "report", run_id)
    assert code == 0, err
    assert "first to fail" not in out and "undecided between levels 3 and 5" in " ".join(out.split())
    code, out, err = invoke(tmp_path, "report", run_id, "--format", "md")
    assert code == 0, err
    assert "❌" not in out and "✅" not in out and "undecided between levels 3 and 5" in out
