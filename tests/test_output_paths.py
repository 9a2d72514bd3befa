"""A report written with `-o` to a path that cannot take it: one line naming the path, exit 2.

A folder that cannot hold files (/proc), a path that is a folder, a parent that is a file: the
user gave a path, so the error is about that path, never an internal error about a temporary
file next to it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.inprocess_cluster import Raise, first_fail, routed
from threshold_probe.cli.app import app


def _probe(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("out")
    with routed(first_fail(3, Raise("MemoryError"))):
        code, out, err = _probe(tmp, "sweep", "--to", "4", "--json", "--quiet")
    assert code == 0, err
    return tmp, json.loads(out)["run_id"]


@pytest.mark.parametrize("fmt", ["html", "junit", "json"])
@pytest.mark.parametrize("where", ["proc", "folder", "under-a-file"])
def test_a_report_to_a_path_that_cannot_take_it_is_one_line(swept: tuple[Path, str], fmt: str, where: str) -> None:
    tmp, run_id = swept
    (tmp / "a-file").write_text("x")
    target = {
        "proc": Path("/proc") / f"report.{fmt}",
        "folder": tmp,
        "under-a-file": tmp / "a-file" / f"report.{fmt}",
    }[where]
    code, out, err = _probe(tmp, "report", run_id, "--format", fmt, "-o", str(target))
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and str(target) in lines[0], err
    assert "internal error" not in err and ".tmp" not in err
    assert not list(tmp.glob(".*.tmp")) and (tmp / "a-file").read_text() == "x"


@pytest.mark.parametrize("where", ["proc", "under-a-file", "dangling-link"])
def test_a_repro_folder_that_cannot_be_made_is_one_line(swept: tuple[Path, str], where: str) -> None:
    tmp, run_id = swept
    (tmp / "a-file").write_text("x")
    link = tmp / "dangling"
    if not link.is_symlink():
        link.symlink_to(tmp / "nowhere")
    target = {"proc": Path("/proc/repro"), "under-a-file": tmp / "a-file" / "repro", "dangling-link": link}[where]
    code, out, err = _probe(tmp, "repro", run_id, "-o", str(target))
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot write {target}" in lines[0], err


FUNCS = """
def passes():
    return 1


def fails():
    raise ValueError("always")
"""


@pytest.mark.parametrize(
    "command",
    [
        ("triage", "funcs.py"),
        ("explain", "--to", "2", "--no-preflight", "--no-shrink"),
        ("shrink", "--function", "funcs.py:fails", "--no-preflight"),
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("where", ["proc", "folder", "under-a-file"])
def test_an_output_that_cannot_be_written_is_refused_before_any_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...], where: str
) -> None:
    """A long explanation, triage or shrink is not run only to be lost at its last step."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "funcs.py").write_text(FUNCS)
    (tmp_path / "a-file").write_text("x")
    target = {"proc": Path("/proc/out/page.html"), "folder": tmp_path, "under-a-file": tmp_path / "a-file" / "p"}[where]
    code, out, err = _probe(tmp_path, *command, "-o", str(target))
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"cannot write {target}" in lines[0], err
    assert out == ""
    code, out, err = _probe(tmp_path, "runs", "--json")
    assert code == 0 and json.loads(out) == [], out  # nothing ran


@pytest.mark.parametrize("command", [("runs",), ("run", "--no-preflight")], ids=lambda c: c[0])
def test_a_reports_dir_that_is_a_file_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file"
    result = CliRunner().invoke(app, ["--reports-dir", str(target), *command], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: cannot write {target}: Not a directory"], result.stderr
    assert target.read_text() == "x"


def test_a_nightly_output_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    """`probe nightly --output` under a file: the same line as any other output path, exit 2,
    and no cell runs."""
    config = tmp_path / "probe.toml"
    config.write_text('[nightly]\nclusters = ["local"]\nladders = ["seed"]\n')
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / "a-file" / "nightly"
    result = CliRunner().invoke(
        app,
        ["--config", str(config), "--reports-dir", str(tmp_path / "reports"), "nightly", "--output", str(target)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: cannot write {target}: Not a directory"], result.stderr
