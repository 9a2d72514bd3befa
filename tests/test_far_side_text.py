"""Text from the far side is data: a workload printing markup and escape sequences, rendered everywhere.

A real user function (`probe run --function FILE:FUNC`) prints Rich markup, a clear-screen and an
OSC title sequence, a backtick, HTML and a pipe to stdout and stderr, then raises with the same
text. `probe run` and `probe report` in every format must show that text as text: no traceback,
no terminal control sequence reaching stdout or stderr, Markdown whose code spans stay closed,
HTML without live tags, JUnit XML that parses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from threshold_probe.render import FORMATS

NOISY = Path(__file__).parent / "assets" / "functions" / "noisy.py"
CONTROL = ("\x1b", "\x07", "\x9b")


def probe(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(workspace / "reports"), *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_inert(res: subprocess.CompletedProcess[str]) -> None:
    for stream in (res.stdout, res.stderr):
        for ch in CONTROL:
            assert ch not in stream, f"{ch!r} reached the terminal:\n{stream!r}"
        # The workload's own traceback is evidence; one of this tool's is a crash.
        assert "MarkupError" not in stream and "internal error" not in stream, stream
        assert not re.search(r'File ".*(threshold_probe|site-packages)/', stream), stream


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workspace = tmp_path_factory.mktemp("noisy")
    (workspace / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{workspace / "wd"}"\n')
    res = probe(workspace, "run", "--function", f"{NOISY}:noisy")
    assert res.returncode == 1, res.stderr  # the workload raised: `probe run` says its probe failed
    assert_inert(res)
    # The markup is shown literally, not interpreted.
    assert "[bold red]boom[/]" in res.stdout
    runs = json.loads(probe(workspace, "runs", "--json").stdout)
    return workspace, runs[0]["run_id"]


def test_probe_run_shows_markup_literally_and_strips_escape_sequences(noisy_run: tuple[Path, str]) -> None:
    workspace, run_id = noisy_run
    summary = json.loads(probe(workspace, "report", run_id, "--json").stdout)
    assert summary["failure"]["class"] == "exception"
    assert "`tick`" in summary["failure"]["signature"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_in_every_format_keeps_far_side_text_inert(noisy_run: tuple[Path, str], fmt: str) -> None:
    workspace, run_id = noisy_run
    res = probe(workspace, "report", run_id, "--format", fmt)
    assert res.returncode == 0, res.stderr
    assert_inert(res)
    out = res.stdout
    if fmt != "junit":  # JUnit has a testcase per ladder level; an off-ladder function has none
        assert "boom" in out
    if fmt == "rich":
        assert "[bold red]boom[/]" in out
    if fmt == "md":
        html = MarkdownIt("commonmark").render(out)
        assert "<script>" not in html
        # The whole signature stays inside one code span, backtick and all.
        sig = next(line for line in out.splitlines() if line.startswith("**Signature:**"))
        rendered = MarkdownIt("commonmark").renderInline(sig)
        assert rendered.count("<code>") == 1 and "tick" in rendered.split("<code>")[1].split("</code>")[0]
    if fmt == "html":
        assert "<script>alert(1)</script>" not in out and "&lt;script&gt;" in out
    if fmt == "junit":
        ET.fromstring(out)


def test_report_to_a_file_and_error_lines_are_inert(noisy_run: tuple[Path, str]) -> None:
    workspace, run_id = noisy_run
    for fmt in ("md", "html", "junit"):
        target = workspace / f"report.{fmt}"
        res = probe(workspace, "report", run_id, "--format", fmt, "--output", str(target))
        assert res.returncode == 0, res.stderr
        data = target.read_text()
        for ch in CONTROL:
            assert ch not in data
    # An error message that quotes user input with markup and escapes stays one plain line.
    bad = probe(workspace, "report", "[/]\x1b[2J", "--format", "md")
    assert bad.returncode == 2
    assert_inert(bad)
    assert bad.stderr.count("\n") == 1 and "[/]" in bad.stderr


def test_a_ladder_named_with_markup_and_escapes_lists_and_compares(noisy_run: tuple[Path, str]) -> None:
    """Names from user files reach the runs table, history and compare: shown as text."""
    workspace, _ = noisy_run
    ladder = workspace / "hostile.toml"
    ladder.write_text(
        'name = "[/]lad\\u001b[2Jder\\u001b]0;pwned\\u0007"\n'
        'description = "markup [bold]x[/] and escapes"\n'
        "[ramp]\ncount = 2\nloc = { start = 10, step = 10 }\n"
    )
    for level in ("1", "2"):
        res = probe(workspace, "run", "--ladder", str(ladder), "--level", level)
        assert res.returncode == 0, res.stderr
        assert_inert(res)
    runs = json.loads(probe(workspace, "runs", "--json").stdout)
    ids = [r["run_id"] for r in runs if "lad" in r["ladder"]]
    assert len(ids) == 2
    for args in (("runs",), ("history",), ("compare", ids[1], ids[0]), ("report", ids[0])):
        res = probe(workspace, *args)
        assert res.returncode == 0, (args, res.stderr)
        assert_inert(res)
        assert "[/]lad" in res.stdout, (args, res.stdout)
