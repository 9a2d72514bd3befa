"""Ctrl-C while `probe` is still loading its modules (the first half second of every command).

A real SIGINT is sent once the process has mapped pydantic's compiled core, which happens early
in the loading of the command line: the command ends with exit 130 and one line, never with
Python's KeyboardInterrupt traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LOADING_MARK = "_pydantic_core"


def _interrupt_while_loading(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str] | None:
    """Run argv and send SIGINT as soon as it is loading; None when it finished loading first."""
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A background job of a non-interactive shell inherits SIGINT ignored: restore it, as a
        # terminal's foreground process has it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            break
        if LOADING_MARK in maps:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.001)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "threshold_probe", "levels"],
        [str(Path(sys.executable).with_name("probe")), "levels"],
    ],
    ids=["python-m", "console-script"],
)
def test_ctrl_c_while_loading_is_one_line_and_130(tmp_path: Path, argv: list[str]) -> None:
    res = _interrupt_while_loading(argv, tmp_path)
    assert res is not None
    assert "Traceback" not in res.stderr and "KeyboardInterrupt" not in res.stderr, res.stderr
    assert res.returncode == 130, (res.returncode, res.stderr)
    assert res.stderr.strip().splitlines() == ["error: interrupted by SIGINT"], res.stderr
    assert res.stdout == ""
