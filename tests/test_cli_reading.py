"""What people read: errors and tables as printed to a terminal of 80 or 200 columns, and piped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

WIDTHS = [80, 200]


def probe(cwd: Path, columns: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, its output piped (as in `probe ... | cat`), with COLUMNS set."""
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    env.pop("PROBE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


CONFIG_ERRORS = [
    (
        '[clusters.local]\ntype = "local"\nmemroy = "1GB"\n',
        "probe.toml: [clusters.local] unknown key 'memroy' (did you mean 'memory'?)",
    ),
    ('[clusters.x]\ntype = "sge"\n', "probe.toml: [clusters.x] type 'sge' is not one of local, ssh, slurm"),
    ('[clusters.hpc]\nhost = "a"\n', "probe.toml: [clusters.hpc] needs a type (one of local, ssh, slurm)"),
    ('[defaults]\nclsuter = "x"\n', "probe.toml: [defaults] unknown key 'clsuter' (did you mean 'cluster'?)"),
    ('reprots_dir = "x"\n', "probe.toml: unknown key 'reprots_dir' (did you mean 'reports_dir'?)"),
    (
        '[clusters.s]\ntype = "ssh"\nhost = "h"\ncores = 0\n',
        "probe.toml: [clusters.s] cores: Input should be greater than or equal to 1",
    ),
]


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize(("toml", "expected"), CONFIG_ERRORS)
def test_config_errors_name_the_table_and_key(tmp_path: Path, columns: int, toml: str, expected: str) -> None:
    (tmp_path / "probe.toml").write_text(toml)
    res = probe(tmp_path, columns, "clusters", "list")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr  # one line, however narrow the terminal
    assert lines[0].endswith(expected), lines[0]
    for jargon in ("Extra inputs", "discriminator", "Input tag", ".local.local."):
        assert jargon not in res.stderr


@pytest.mark.parametrize("columns", WIDTHS)
def test_integer_memory_is_megabytes(tmp_path: Path, columns: int) -> None:
    (tmp_path / "probe.toml").write_text('[clusters.local]\ntype = "local"\nmemory = 1024\n')
    res = probe(tmp_path, columns, "clusters", "list", "--json")
    assert res.returncode == 0, res.stderr
    assert "1024MB" in res.stdout


@pytest.mark.parametrize("columns", WIDTHS)
def test_brackets_survive_in_errors(tmp_path: Path, columns: int) -> None:
    (tmp_path / "empty.toml").write_text('name = "x"\n')
    res = probe(tmp_path, columns, "levels", "--ladder", "empty.toml")
    assert res.returncode == 2
    assert "add a [ramp] with count = N, or [[levels]] rows" in res.stderr


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A journal with one real run (two levels of the default ladder on the local cluster)."""
    where = tmp_path_factory.mktemp("runs")
    res = probe(where, 200, "--reports-dir", "reports", "sweep", "--from", "1", "--to", "2", "--json")
    assert res.returncode == 0, res.stderr
    listed = probe(where, 200, "--reports-dir", "reports", "runs", "--json")
    return where, str(json.loads(listed.stdout)[0]["run_id"])


@pytest.mark.parametrize("columns", [*WIDTHS, 60])
def test_runs_never_cuts_the_run_id(one_run: tuple[Path, str], columns: int) -> None:
    where, run_id = one_run
    res = probe(where, columns, "--reports-dir", "reports", "runs")
    assert res.returncode == 0, res.stderr
    assert run_id in res.stdout, res.stdout  # whole, on one line
    assert res.stdout.startswith("1 run ") or res.stdout.startswith("1 run\n"), res.stdout
    assert all(len(line) <= columns for line in res.stdout.splitlines()), res.stdout


@pytest.mark.parametrize("columns", WIDTHS)
def test_brackets_survive_in_help(tmp_path: Path, columns: int) -> None:
    res = probe(tmp_path, columns, "clusters", "--help")
    assert res.returncode == 0
    assert "ClustriX config into a [clusters.NAME]" in " ".join(res.stdout.split())


MEASURED = """
def a_rather_long_function_name_that_must_stay_whole(x):
    return x + 1


def tangled(x):
    for i in range(x):
        if i % 2:
            while x:
                x -= 1
                if x % 3:
                    return i
    return None
"""


@pytest.mark.parametrize("columns", WIDTHS)
def test_measure_never_folds_function_names(tmp_path: Path, columns: int) -> None:
    (tmp_path / "deep" / "folder").mkdir(parents=True)
    (tmp_path / "deep" / "folder" / "funcs.py").write_text(MEASURED)
    res = probe(tmp_path, columns, "measure", "deep", "--sort", "mi")
    assert res.returncode == 0, res.stderr
    assert "deep/folder/funcs.py:a_rather_long_function_name_that_must_stay_whole" in res.stdout, res.stdout
    assert all(len(line) <= columns for line in res.stdout.splitlines()), res.stdout
    # --sort mi: the least maintainable first.
    assert res.stdout.index(":tangled") < res.stdout.index(":a_rather_long"), res.stdout
    assert "2 functions, by mi" in res.stdout


def test_compare_and_history_write_no_python_none(one_run: tuple[Path, str]) -> None:
    """A run without a failure has no first failing level: shown as a dash, as in every table."""
    where, run_id = one_run
    res = probe(where, 200, "--reports-dir", "reports", "compare", run_id, run_id)
    assert res.returncode == 0, res.stderr
    assert "threshold: first fail - -> -" in res.stdout, res.stdout
    res = probe(where, 200, "--reports-dir", "reports", "history")
    assert res.returncode == 0, res.stderr
    assert "trend per cell" in res.stdout, res.stdout
    for out in (res.stdout,):
        assert "None" not in out, out


def test_runs_filter_that_matches_nothing_says_so(one_run: tuple[Path, str]) -> None:
    where, _ = one_run
    res = probe(where, 200, "--reports-dir", "reports", "runs", "--cluster", "elsewhere")
    assert res.returncode == 0, res.stderr
    assert "no run matches --cluster elsewhere" in res.stdout, res.stdout
    assert "yet" not in res.stdout, res.stdout  # the journal does hold a run


@pytest.mark.parametrize("command", ["runs", "history"])
def test_unknown_run_kind_is_bad_input(one_run: tuple[Path, str], command: str) -> None:
    where, _ = one_run
    res = probe(where, 200, "--reports-dir", "reports", command, "--kind", "swep")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "unknown run kind 'swep': choose one of" in lines[0] and "isolate" in lines[0], lines[0]


@pytest.mark.parametrize("command", ["measure", "triage"])
def test_files_that_all_fail_to_parse_are_bad_input(tmp_path: Path, command: str) -> None:
    """Nothing could be read: exit 2 with the reason, and no empty table or empty triage on stdout."""
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")
    res = probe(tmp_path, 200, "--reports-dir", "reports", command, "broken.py")
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stdout == "", res.stdout
    assert "broken.py:1:" in res.stderr and "invalid syntax" in res.stderr, res.stderr
    listed = probe(tmp_path, 200, "--reports-dir", "reports", "runs", "--json")
    assert json.loads(listed.stdout or "[]") == [], listed.stdout  # no run was started


@pytest.mark.parametrize("columns", [*WIDTHS, 60])
def test_history_never_cuts_a_name(one_run: tuple[Path, str], columns: int) -> None:
    """At 80 columns the history is read as words: ids and cells whole, no column cut to '…'."""
    where, run_id = one_run
    res = probe(where, columns, "--reports-dir", "reports", "history")
    assert res.returncode == 0, res.stderr
    assert run_id in res.stdout, res.stdout
    assert "local/native/default," in res.stdout, res.stdout
    assert "…" not in res.stdout, res.stdout
    if columns >= 80:  # narrower, an id and a cell side by side are wider: printed whole all the same
        assert all(len(line) <= columns for line in res.stdout.splitlines()), res.stdout


@pytest.mark.parametrize("columns", WIDTHS)
def test_run_names_its_full_logs_whole(tmp_path: Path, columns: int) -> None:
    """`probe run` shows the tail of each log and where the whole log is: that path is never cut."""
    res = probe(tmp_path, columns, "--reports-dir", "reports", "run", "--level", "3", "--fresh")
    assert res.returncode == 0, res.stderr
    logs = sorted(tmp_path.glob("reports/*/probes/*/std*"))
    assert logs, list(tmp_path.rglob("*"))
    flat = re.sub(r"[\s│]", "", res.stdout)  # a path folded over lines of a panel, joined again
    for log in logs:
        assert str(log.relative_to(tmp_path)) in flat, (log, res.stdout)
    assert "…" not in res.stdout, res.stdout


def test_nightly_table_never_cuts_a_cell_or_a_run_id(tmp_path: Path) -> None:
    """The night's table at 80 columns: cell names and baseline run ids whole, never '…'."""
    ladder = Path(__file__).resolve().parent / "assets" / "ladders" / "memory.toml"
    (tmp_path / "probe.toml").write_text(
        f'[nightly]\nclusters = ["local"]\npipelines = ["native"]\nladders = [{json.dumps(str(ladder))}]\n'
        'output = "night"\n'
    )
    first = probe(tmp_path, 80, "nightly")
    assert first.returncode == 0, first.stderr
    res = probe(tmp_path, 80, "nightly")  # the first night is this one's baseline
    assert res.returncode == 0, res.stderr
    night = json.loads((tmp_path / "night" / "nightly.json").read_text())
    baseline = night["cells"][0]["baseline"]
    assert baseline and baseline in res.stdout, res.stdout
    assert "local/native/memory" in res.stdout, res.stdout
    assert "…" not in res.stdout, res.stdout
    for name in ("nightly.html", "nightly.junit.xml", "nightly.json"):
        assert str(tmp_path / "night" / name) in res.stdout, res.stdout  # a path is never folded
