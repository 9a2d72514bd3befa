"""Each log of a probe is capped (head and tail kept), and the evidence says what was dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from threshold_probe.cli.app import app

LOUD = """
import sys


def loud():
    sys.stderr.write("FIRST LINE\\n")
    chunk = "x" * 1023 + "\\n"
    for _ in range(20 * 1024):  # 20 MiB of stderr
        sys.stderr.write(chunk)
    sys.stderr.write("LAST LINE\\n")
    sys.stderr.flush()
    raise RuntimeError("too loud")
"""

CAP = 8 * 1024 * 1024


def test_a_20mib_stderr_keeps_8mib_head_and_tail_and_the_evidence_says_so(tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(LOUD)
    (tmp_path / "probe.toml").write_text("")
    result = CliRunner().invoke(
        app,
        ["--config", str(tmp_path / "probe.toml"), "--reports-dir", str(tmp_path / "r"), "run",
         "--function", f"{tmp_path / 'loud.py'}:loud", "--memory", "2GB", "--json"],
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    evidence = data["failure"]["evidence"]
    assert evidence[0].startswith("RuntimeError: too loud")
    notes = [
        m
        for line in evidence
        if (
            m := re.fullmatch(
                r"stderr log capped at 8MB: (\d+) bytes dropped "
                r"\(head and tail kept\)",
                line,
            )
        )
    ]
    assert len(notes) == 1
    dropped = int(notes[0].group(1))
    # 20 MiB and two marker lines were written, then the traceback: everything above 8 MiB is dropped.
    assert dropped > 20 * 1024 * 1024 - CAP

    (log,) = [p for p in (tmp_path / "r").rglob("stderr.log")]
    size = log.stat().st_size
    assert size == CAP + len(f"\n[... {dropped} bytes dropped: this log is capped at 8MB, head and tail kept ...]\n")
    data_bytes = log.read_bytes()
    assert data_bytes.startswith(b"FIRST LINE\n")
    assert b"RuntimeError: too loud" in data_bytes[-4096:]  # the tail keeps the traceback
    assert f"[... {dropped} bytes dropped".encode() in data_bytes
