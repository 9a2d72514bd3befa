"""The code that runs on the far side: `runner.py` (stdlib + cloudpickle, Python >= 3.8) and
`launcher.py` (stdlib only), which runs one job under its limits."""

from __future__ import annotations

from pathlib import Path

RUNNER_PATH = Path(__file__).with_name("runner.py")
LAUNCHER_PATH = Path(__file__).with_name("launcher.py")


def runner_source() -> bytes:
    """The bytes of the far-side runner script, as a pipeline ships it."""
    return RUNNER_PATH.read_bytes()


def launcher_source() -> bytes:
    """The bytes of the far-side launcher, as a cluster stages it."""
    return LAUNCHER_PATH.read_bytes()


__all__ = ["LAUNCHER_PATH", "RUNNER_PATH", "launcher_source", "runner_source"]
