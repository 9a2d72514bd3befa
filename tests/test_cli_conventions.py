"""Conventions people rely on: help that reads as words, usage errors, piped output, completion,
one spelling per option, the dimension list, measure's bad input and run-id prefixes.

Each test reads the real output of `python -m threshold_probe` at 80 and 200 columns and piped
(stdout not a terminal and no COLUMNS, as in `probe ... | cat` from a script or CI job).
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
import typer

MODES = ["80", "200", "piped"]


def probe(cwd: Path, mode: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, stdout and stderr piped; `mode` is a COLUMNS value, or `piped` for none."""
    full = {**os.environ, "NO_COLOR": "1", **(env or {})}
    for name in ("PROBE_CONFIG", "PROBE_REPORTS_DIR", "COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE"):
        full.pop(name, None)
    if mode != "piped":
        full["COLUMNS"] = mode
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def width(mode: str) -> int | None:
    return None if mode == "piped" else int(mode)


def fits(text: str, mode: str) -> bool:
    """No line wider than the terminal (piped: no width to keep to)."""
    cols = width(mode)
    return cols is None or all(len(line) <= cols for line in text.splitlines())


# -- help ----------------------------------------------------------------------------------------

HELP_PAGES = [
    (),
    ("bisect",),
    ("sweep",),
    ("compare",),
    ("measure",),
    ("report",),
    ("isolate",),
    ("levels",),
    ("clusters", "check"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", HELP_PAGES, ids=lambda p: "-".join(p) or "probe")
def test_help_shows_words_not_types(tmp_path: Path, mode: str, page: tuple[str, ...]) -> None:
    res = probe(tmp_path, mode, *page, "--help")
    assert res.returncode == 0, res.stderr
    for noise in ("<bool>", "<str>", "<path>", "<int", "<float", "<list", "{"):
        assert noise not in res.stdout, (noise, res.stdout)
    assert fits(res.stdout, mode), res.stdout


@pytest.mark.parametrize("mode", MODES)
def test_argument_metavars_read_as_words(tmp_path: Path, mode: str) -> None:
    res = probe(tmp_path, mode, "compare", "--help")
    assert "compare [OPTIONS] RUN_A RUN_B" in res.stdout, res.stdout
    res = probe(tmp_path, mode, "report", "--help")
    assert "report [OPTIONS] [RUN_ID]" in res.stdout, res.stdout
    res = probe(tmp_path, mode, "measure", "--help")
    assert "measure [OPTIONS] TARGET..." in res.stdout, res.stdout
    # An option that takes a value says what it takes, in a word.
    res = probe(tmp_path, mode, "bisect", "--help")
    assert "--memory" in res.stdout and "SIZE" in res.stdout, res.stdout


def _description(help_text: str) -> list[str]:
    """The lines of the help's description: after the usage line, before the first panel."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return [line.strip() for line in lines[start:end]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", [(), ("isolate",), ("runs",)], ids=["probe", "isolate", "runs"])
def test_help_text_is_wrapped_once(tmp_path: Path, mode: str, page: tuple[str, ...]) -> None:
    res = probe(tmp_path, mode, *page, "--help")
    cols = width(mode) or 80  # Typer's help keeps to 80 columns when piped
    lines = _description(res.stdout)
    for line, following in itertools.pairwise(lines):
        if not line or not following:
            continue  # a paragraph break
        # A line only ends early when the next word would not have fitted on it.
        next_word = following.split()[0]
        assert len(line) + 1 + len(next_word) > cols - 4, (line, following, res.stdout)


# -- usage errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_usage_error_piped_is_one_line(tmp_path: Path, mode: str) -> None:
    res = probe(tmp_path, mode, "sweep", "--frm", "1")
    assert res.returncode == 2
    assert res.stderr.splitlines() == ["probe: error: no such option --frm (did you mean --from?)"], res.stderr
    assert res.stdout == ""


def test_usage_error_on_a_terminal_keeps_its_box(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm", "NO_COLOR": "1"}
    env.pop("PROBE_CONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "threshold_probe", "sweep", "--frm", "1"],
        cwd=tmp_path,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    out = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal is closed once the process is gone
            break
        if not chunk:
            break
        out += chunk
    os.close(primary)
    assert proc.wait(timeout=60) == 2
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.decode(errors="replace"))
    assert "╭─ Error" in text and "No such option: --frm" in text, text


# -- piped output --------------------------------------------------------------------------------

LONG_NAME = "a_function_whose_name_is_long_enough_to_be_folded_on_eighty_columns_by_rich"


@pytest.mark.parametrize("mode", MODES)
def test_piped_measure_is_not_wrapped(tmp_path: Path, mode: str) -> None:
    folder = tmp_path / "some" / "deeper" / "folder"
    folder.mkdir(parents=True)
    (folder / "funcs.py").write_text(f"def {LONG_NAME}(x):\n    return x + 1\n")
    res = probe(tmp_path, mode, "measure", "some")
    assert res.returncode == 0, res.stderr
    assert f"some/deeper/folder/funcs.py:{LONG_NAME}" in res.stdout, res.stdout
    # Only a name wider than the terminal itself takes the table past its edge (the terminal wraps it).
    row = next(line for line in res.stdout.splitlines() if LONG_NAME in line)
    assert all(len(line) <= max(width(mode) or 0, len(row)) for line in res.stdout.splitlines()), res.stdout
    if mode != "80":  # 80 columns drop metric columns; a pipe or a wide terminal keeps them all
        header = next(line for line in res.stdout.splitlines() if "function" in line and "LOC" in line)
        for column in ("line", "LOC", "SLOC", "CC", "MI", "nesting", "subproc", "structs", "free"):
            assert f" {column} " in header, header


@pytest.mark.parametrize("mode", MODES)
def test_piped_observation_keeps_paths_whole(tmp_path: Path, mode: str) -> None:
    (tmp_path / "talk.py").write_text("def talk():\n    print('hello from the far side')\n    return 1\n")
    reports = tmp_path / "a_reports_folder_with_a_name_long_enough_to_fold"
    res = probe(tmp_path, mode, "--reports-dir", str(reports), "run", "--function", "talk.py:talk", "-q")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    logs = [line for line in lines if "full log:" in line]
    assert logs, res.stdout
    if mode != "80":
        # The log's path and the run's folder, whole, each on its line.
        assert all(f"{reports}/" in line and "stdout" in line for line in logs), res.stdout
        assert any(line.startswith("run ") and f": {reports}/" in line for line in lines), res.stdout
    assert fits(res.stdout, mode), res.stdout
    if mode == "piped":
        # The panel fits its content: it neither folds at 80 columns nor stretches to a pipe's width.
        assert max(len(line) for line in lines) < 400, res.stdout


@pytest.mark.parametrize("mode", MODES)
def test_clusters_list_never_cuts_the_python_path(tmp_path: Path, mode: str) -> None:
    python = "/opt/venvs/threshold-probe-cluster/bin/python3.11"
    (tmp_path / "probe.toml").write_text(
        f'[clusters.hpc]\ntype = "ssh"\nhost = "login.example"\npython = "{python}"\n'
        'workdir = "/scratch/probe/work"\nmemory = "4GB"\n'
    )
    res = probe(tmp_path, mode, "clusters", "list")
    assert res.returncode == 0, res.stderr
    assert python in res.stdout, res.stdout
    assert fits(res.stdout, mode), res.stdout
    assert res.stdout.startswith("2 clusters"), res.stdout


# -- journal with runs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A journal with two real runs (level 1 of the default ladder on the local cluster)."""
    where = tmp_path_factory.mktemp("runs")
    (where / "probe.toml").write_text('[clusters.hpc]\ntype = "ssh"\nhost = "login.example"\n')
    for _ in range(2):
        res = probe(where, "200", "sweep", "--from", "1", "--to", "1", "--json", "-q")
        assert res.returncode == 0, res.stderr
    listed = probe(where, "200", "runs", "--json")
    return where, [str(row["run_id"]) for row in json.loads(listed.stdout)]


def complete(cwd: Path, line: str) -> list[str]:
    """What bash completion offers for the last word of `line`, through the completion protocol."""
    words = line.split(" ")
    res = probe(
        cwd,
        "80",
        env={"_PROBE_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)},
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_completion_completes_values(two_runs: tuple[Path, list[str]]) -> None:
    where, run_ids = two_runs
    assert {"local", "hpc"} <= set(complete(where, "probe bisect --cluster "))
    assert complete(where, "probe bisect -C h") == ["hpc"]
    assert {"default", "features", "seed"} <= set(complete(where, "probe sweep --ladder "))
    assert {"native", "source", "inline"} <= set(complete(where, "probe bisect --pipeline "))
    assert set(complete(where, "probe report --format ")) == {"rich", "json", "md", "html", "junit"}
    assert set(run_ids) <= set(complete(where, "probe report "))
    assert set(complete(where, f"probe compare {run_ids[0][:-1]}")) == {run_ids[0]}
    assert set(run_ids) <= set(complete(where, "probe isolate "))
    assert {"local", "hpc"} <= set(complete(where, "probe clusters check "))
    assert "--from" in complete(where, "probe bisect --fr")


@pytest.mark.parametrize("mode", MODES)
def test_a_run_id_prefix_is_enough(two_runs: tuple[Path, list[str]], mode: str) -> None:
    where, run_ids = two_runs
    newest = run_ids[0]
    res = probe(where, mode, "report", newest[:-1], "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["run_id"] == newest
    # The longest prefix both ids share (run ids start with the date and time they started).
    common = run_ids[0][: next(i for i, (a, b) in enumerate(zip(*run_ids, strict=False)) if a != b)]
    for args in (("report", common), ("compare", common, newest), ("isolate", common)):
        res = probe(where, mode, *args)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert f"run id prefix {common!r} matches 2 runs" in lines[0], lines[0]


def test_a_run_id_prefix_is_not_a_pattern(two_runs: tuple[Path, list[str]]) -> None:
    where, _ = two_runs
    res = probe(where, "80", "report", "_")
    assert res.returncode == 2
    assert "no run '_'" in res.stderr, res.stderr


# -- one spelling per idea -----------------------------------------------------------------------


def _options() -> list[tuple[str, str, list[str], bool]]:
    """(command path, parameter name, its option strings, hidden) for every option of the app."""
    from threshold_probe.cli.app import app

    found: list[tuple[str, str, list[str], bool]] = []

    def walk(cmd: object, path: str) -> None:
        for param in getattr(cmd, "params", []):
            opts = [*param.opts, *getattr(param, "secondary_opts", [])]
            if any(o.startswith("-") for o in opts):
                found.append((path, str(param.name), opts, bool(getattr(param, "hidden", False))))
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "probe")
    return found


def test_one_meaning_per_short_option() -> None:
    meaning: dict[str, set[str]] = {}
    for _, _, opts, _ in _options():
        longs = [o for o in opts if o.startswith("--")]
        for short in (o for o in opts if len(o) == 2):
            meaning.setdefault(short, set()).update(longs[:1])
    assert {k: v for k, v in meaning.items() if len(v) > 1} == {}
    assert not ({"-l", "-L"} <= set(meaning)), meaning


def test_levels_are_from_and_to_everywhere() -> None:
    for path, _, opts, hidden in _options():
        assert not ({"--lo", "--hi"} & set(opts)) or hidden, (path, opts)
    ranged = {path for path, _, opts, hidden in _options() if "--from" in opts and not hidden}
    assert {"probe bisect", "probe sweep", "probe explain", "probe compare-pipelines"} <= ranged


@pytest.mark.parametrize("spelling", [("--lo", "--hi"), ("--from", "--to")])
def test_lo_and_hi_still_work(tmp_path: Path, spelling: tuple[str, str]) -> None:
    lo, hi = spelling
    res = probe(tmp_path, "80", "bisect", "--ladder", "seed", lo, "1", hi, "2", "--json", "-q")
    assert res.returncode == 0, res.stderr
    levels = sorted(p["level"] for p in json.loads(res.stdout)["probes"])
    assert levels[0] == 1 and levels[-1] == 2, levels


# -- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_levels_lists_every_dimension(tmp_path: Path, mode: str) -> None:
    from threshold_probe.ladder.dimensions import DIMENSIONS

    res = probe(tmp_path, mode, "levels", "--dimensions")
    assert res.returncode == 0, res.stderr
    assert fits(res.stdout, mode), res.stdout
    rows = res.stdout.splitlines()
    flat = " ".join(res.stdout.replace("│", " ").split())
    for dim in DIMENSIONS.values():
        row = next((line for line in rows if f" {dim.name} " in line), None)
        assert row is not None, (dim.name, res.stdout)  # the name whole, on one line
        if dim.unit:
            assert f" {dim.unit} " in row, (dim.name, row)
        assert " ".join(dim.description.split()[:3]) in flat, (dim.name, res.stdout)
    data = json.loads(probe(tmp_path, mode, "levels", "--dimensions", "--json").stdout)
    assert [d["name"] for d in data] == list(DIMENSIONS)
    assert data[0].keys() >= {"name", "kind", "unit", "default", "description"}


@pytest.mark.parametrize("mode", MODES)
def test_levels_of_the_features_ladder_show_the_features(tmp_path: Path, mode: str) -> None:
    res = probe(tmp_path, mode, "levels", "--ladder", "features")
    assert res.returncode == 0, res.stderr
    assert fits(res.stdout, mode), res.stdout
    flat = " ".join(res.stdout.replace("│", " ").split())
    for shown in ("comprehensions=1", "multiline_strings=1", "star_args=2", "definition_scope=nested"):
        assert shown in flat, (shown, res.stdout)
    level_three = next(line for line in res.stdout.splitlines() if line.startswith("│     3 "))
    assert "comprehensions=1" in level_three, level_three


# -- measure -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_measure_negative_top_is_bad_input(tmp_path: Path, mode: str) -> None:
    (tmp_path / "f.py").write_text("def f():\n    return 1\n")
    res = probe(tmp_path, mode, "measure", "f.py", "--top", "-1")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--top" in lines[0], res.stderr


@pytest.mark.parametrize("mode", MODES)
def test_measure_unknown_function_suggests_one(tmp_path: Path, mode: str) -> None:
    names = [f"handler_number_{i:03d}" for i in range(150)]
    (tmp_path / "many.py").write_text("".join(f"def {n}():\n    return {i}\n\n" for i, n in enumerate(names)))
    res = probe(tmp_path, mode, "measure", "many.py:handler_numbr_042")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "no function 'handler_numbr_042'" in lines[0] and "did you mean 'handler_number_042'?" in lines[0]
    assert len(lines[0]) < 300, lines[0]


def test_piped_pages_of_panels_fit_their_content(tmp_path: Path) -> None:
    """triage and explain print a page of panels: piped, none stretches to the pipe's width."""
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_small.py").write_text("def test_adds():\n    assert 1 + 1 == 2\n")
    res = probe(tmp_path, "piped", "--reports-dir", str(tmp_path / "reports"), "triage", "suite", "-q")
    assert res.returncode == 0, res.stderr
    assert "triage" in res.stdout, res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) < 400, res.stdout


def test_piped_error_lines_are_not_wrapped(tmp_path: Path) -> None:
    """stderr piped: a line naming a long path stays one line, as `grep` and CI logs want it."""
    folder = tmp_path / "code" / ("deep" * 25)
    folder.mkdir(parents=True)
    (folder / "broken.py").write_text("def (\n")
    proc = probe(tmp_path, "piped", "measure", "code")
    whole = f"code/{'deep' * 25}/broken.py:1: SyntaxError: invalid syntax"
    assert whole in proc.stderr.splitlines(), proc.stderr


def test_nightly_help_names_its_folder_and_command(tmp_path: Path) -> None:
    """The value words say what to give: a folder for --output, a command for --notify-command."""
    proc = probe(tmp_path, "200", "nightly", "--help")
    rows = {line.split()[1]: line for line in proc.stdout.splitlines() if line.startswith("│ --")}
    assert " DIR " in rows["--output"] and "FILE" not in rows["--output"], proc.stdout
    assert " CMD " in rows["--notify-command"], proc.stdout
