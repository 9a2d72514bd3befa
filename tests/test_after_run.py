"""After a run: what the end of `bisect`, `sweep` and `isolate` says, read from the real output.

Every run here is a real one on the local cluster (real interpreters under a real RLIMIT_AS),
through a subprocess, at 80 columns, at 200 columns and piped with no width given. The output
must fold the levels that were not probed into one row, end with a pytest-style summary line,
name the run folder, say where each limit came from and which commands come next, say "no
failure up to level N" once and what would find one, and say where the journal is when the
run creates it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ISOLATE_LADDER = str(ROOT / "tests" / "assets" / "ladders" / "isolate.toml")

#: How the output is read: a narrow terminal, a wide one, and a pipe with no width given.
MODES = {"80": {"COLUMNS": "80"}, "200": {"COLUMNS": "200"}, "piped": {}}

RUN_ID = r"\d{8}-\d{6}-[a-z-]+-[0-9a-f]{4}"
SUMMARY_LINE = re.compile(r"^(\d+) probes?(?: \((\d+) cached\))?: (.+) in (\d[\d.]*) (ms|s)$")


def probe(cwd: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`probe ARGS` in `cwd`, its stdout read as a pipe; `mode` sets the width (or none)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES", "PROBE_REPORTS_DIR", "PROBE_CONFIG", "FORCE_COLOR", "TTY_COMPATIBLE")
    }
    env.update(MODES[mode])
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of its own: an empty probe.toml (no config from the folders above), reports/ in it."""
    (tmp_path / "probe.toml").write_text("")
    return tmp_path


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the tests of every mode: the first run creates the journal, the others
    reuse verdicts (which keeps them fast, and shows the cached count)."""
    path = tmp_path_factory.mktemp("after-run")
    (path / "probe.toml").write_text("")
    return path


def run_id_of(out: str) -> str:
    found = re.search(rf"run\s+({RUN_ID})\s", out)
    assert found, out
    return found.group(1)


def summary_line(out: str) -> re.Match[str]:
    """The last non-empty line of the output, which must be the summary line."""
    last = [line for line in out.splitlines() if line.strip()][-1].strip()
    match = SUMMARY_LINE.match(last)
    assert match, f"the output does not end with a summary line: {last!r}"
    return match


def level_rows(out: str) -> list[str]:
    """The rows of the levels table, as printed (box characters and spaces squeezed)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "levels")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            rows.append(" ".join(c for c in cells if c))
    return rows


def check_summary_line(out: str, data: dict[str, Any]) -> None:
    """The summary line agrees with the run's JSON: probes, cached ones, verdicts, classes."""
    match = summary_line(out)
    probes = data["probes"]
    assert int(match.group(1)) == len(probes)
    cached = sum(p["cached"] for p in probes)
    assert int(match.group(2) or 0) == cached
    counts = Counter(p["verdict"] for p in probes)
    parts = match.group(3).split(", ")
    words = {re.sub(r" \(.*\)$", "", part).split(" ", 1)[1]: int(part.split(" ")[0]) for part in parts}
    assert words == {k: v for k, v in counts.items() if v}
    classes = sorted({p["class"] for p in probes if p["verdict"] == "fail"})
    if classes:
        fail_part = next(part for part in parts if " fail" in part)
        assert all(c in fail_part for c in classes), fail_part


def check_footer(out: str, folder: Path, run_id: str) -> None:
    """The run folder exists where the footer says, as one unbroken line."""
    found = re.search(rf"^run folder\s+(\S*{run_id})$", out, re.M)
    assert found, out
    assert (folder / found.group(1)).is_dir() or Path(found.group(1)).is_dir()


@pytest.mark.parametrize("mode", list(MODES))
def test_a_bisect_ends_with_what_to_do_next(shared: Path, mode: str) -> None:
    folder = shared
    new = not (folder / "reports" / "probe.db").exists()
    first = probe(folder, mode, "bisect", "--hi", "12", "--memory", "300MB")
    out = ok(first)
    run_id = run_id_of(out)
    # A new journal: where it is, said once; an existing one: nothing to say.
    assert len(re.findall(r"^journal\s+reports/probe\.db\s", out, re.M)) == (1 if new else 0), out
    assert "probe.db" not in first.stderr
    data = json.loads(ok(probe(folder, mode, "report", run_id, "--json")))
    assert data["first_fail"] is not None and data["last_pass"] is not None

    rows = level_rows(out)
    probed = sorted({p["level"] for p in data["probes"]})
    # Every probed level has its row; every stretch between them is one "not probed" row.
    assert len(rows) < 12, rows
    assert [int(r.split()[0]) for r in rows if "not probed" not in r] == probed
    folded = [r for r in rows if "not probed" in r]
    assert folded and all(re.match(r"^\d+(–\d+)? not probed$", r) for r in folded), folded
    assert "2–5 not probed" in folded, folded
    assert all(re.search(r" (pass|fail|skip|flaky) ", f" {r} ") for r in rows if "not probed" not in r), rows

    check_summary_line(out, data)
    check_footer(out, folder, run_id)
    assert re.search(r"^limits\s+memory 300MB: --memory$", out, re.M), out
    assert re.search(r"^\s+time 120s: local cluster default; change with --time$", out, re.M), out
    assert re.search(rf"^(next\s+|\s+)probe isolate {run_id}(\s|$)", out, re.M), out
    assert re.search(rf"^\s+probe report {run_id} --format html -o report\.html(\s+#.*)?$", out, re.M), out
    assert out.count(f"level {data['first_fail']} is the first to fail") == 1, out

    if new:
        assert summary_line(out).group(2) is None  # nothing to reuse yet: no "(0 cached)"
    else:
        assert int(summary_line(out).group(2)) > 0  # verdicts reused: "(N cached)"


@pytest.mark.parametrize("mode", list(MODES))
def test_no_failure_is_said_once_with_what_would_find_one(shared: Path, mode: str) -> None:
    folder = shared
    out = ok(probe(folder, mode, "bisect", "--hi", "6"))
    assert out.count("no failure up to level 6") == 1, out
    assert "no level fails up to 6" not in out
    # The limit in force is the local cluster's default, and the footer says so.
    assert re.search(r"^limits\s+memory 1GB: local cluster default; change with --memory$", out, re.M), out
    for way in ("--pipeline", "--ladder features", "compare-pipelines", "--memory"):
        assert re.search(rf"^(next\s+|\s+)probe .*{re.escape(way)}", out, re.M), (way, out)
    run_id = run_id_of(out)
    data = json.loads(ok(probe(folder, mode, "report", run_id, "--json")))
    check_summary_line(out, data)
    check_footer(out, folder, run_id)


def test_a_limit_from_the_config_file_says_so(folder: Path) -> None:
    (folder / "probe.toml").write_text('[clusters.local]\ntype = "local"\ntime = "60s"\n')
    out = ok(probe(folder, "80", "bisect", "--hi", "2"))
    assert re.search(r"^limits\s+memory 1GB: local cluster default; change with --memory$", out, re.M), out
    assert re.search(r"^\s+time 60s: \[clusters\.local\] in probe\.toml; change with --time$", out, re.M), out


def test_all_levels_shows_the_stretches_not_probed(shared: Path) -> None:
    folder = shared
    out = ok(probe(folder, "200", "bisect", "--hi", "12", "--memory", "300MB", "--all-levels"))
    rows = level_rows(out)
    assert [int(r.split()[0]) for r in rows] == list(range(1, 13)), rows
    assert not any("not probed" in r for r in rows)
    run_id = run_id_of(out)
    # `probe report` prints the same table: folded by default, every level with --all-levels.
    again = ok(probe(folder, "200", "report", run_id))
    assert any("not probed" in r for r in level_rows(again))
    assert "run folder" not in again  # the footer is the end of a run, not of a report
    every = ok(probe(folder, "200", "report", run_id, "--all-levels"))
    assert [int(r.split()[0]) for r in level_rows(every)] == list(range(1, 13))


def test_a_sweep_ends_with_a_summary_line_and_the_next_step(shared: Path) -> None:
    folder = shared
    for mode in MODES:
        out = ok(probe(folder, mode, "sweep", "--from", "7", "--to", "10", "--memory", "300MB", "--all-levels"))
        run_id = run_id_of(out)
        data = json.loads(ok(probe(folder, mode, "report", run_id, "--json")))
        check_summary_line(out, data)
        check_footer(out, folder, run_id)
        assert re.search(rf"^(next\s+|\s+)probe isolate {run_id}(\s|$)", out, re.M), out


def test_an_isolate_ends_with_a_summary_line_and_the_report(folder: Path) -> None:
    ok(probe(folder, "200", "bisect", "--ladder", ISOLATE_LADDER, "--memory", "300MB", "-q"))
    out = ok(probe(folder, "200", "isolate", "--all-levels"))
    run_id = run_id_of(out)
    data = json.loads(ok(probe(folder, "200", "report", run_id, "--json")))
    assert data["kind"] == "isolate"
    check_summary_line(out, data)
    check_footer(out, folder, run_id)
    assert re.search(r"^limits\s+memory 300MB: --memory", out, re.M), out
    assert re.search(rf"^(next\s+|\s+)probe report {run_id} --format html -o report\.html(\s+#.*)?$", out, re.M)
    assert "probe isolate" not in out.split("run folder")[-1]


def test_json_output_has_no_footer(shared: Path) -> None:
    folder = shared
    result = probe(folder, "200", "bisect", "--hi", "6", "--json")
    data = json.loads(ok(result))  # the whole of stdout is the JSON document
    assert data["kind"] == "bisect"
    assert "run folder" not in result.stdout and "probes" in data


def test_probe_run_says_where_the_journal_is_when_it_creates_it(folder: Path) -> None:
    first = ok(probe(folder, "piped", "run", "--level", "1"))
    assert first.count("journal: reports/probe.db") == 1, first
    assert (folder / "reports" / "probe.db").is_file()
    again = ok(probe(folder, "piped", "run", "--level", "1"))
    assert "journal:" not in again


def _readme_sample() -> Any:
    """scripts/readme_sample.py, which writes the README's sample from a real run."""
    spec = importlib.util.spec_from_file_location("readme_sample", ROOT / "scripts" / "readme_sample.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_sample_has_the_shape_of_a_real_run(tmp_path: Path) -> None:
    sample = _readme_sample()
    block = sample.readme_block((ROOT / "README.md").read_text())
    output = sample.run_sample(tmp_path / "threshold-probe")
    assert sample.shape(block) == sample.shape(output), (
        "README.md's sample is out of date: run scripts/readme_sample.py"
    )
    # The shape keeps what a reader relies on: the folded rows, the footer and the summary line.
    shaped = sample.shape(output)
    assert any(re.match(r"│ N–N │ .*not probed", line) for line in shaped), shaped
    assert shaped[-1].startswith("N probes: N pass, N fail (oom) in N")
    assert any(line.startswith("limits memory N: local cluster default; change with --memory") for line in shaped)
