"""The code that runs on the far side: `runner.py` (stdlib + cloudpickle, Python >= 3.8)."""

from __future__ import annotations

from pathlib import Path

RUNNER_PATH = Path(__file__).with_name("runner.py")


def runner_source() -> bytes:
    """The bytes of the far-side runner script, as a pipeline ships it."""
    return RUNNER_PATH.read_bytes()


__all__ = ["RUNNER_PATH", "runner_source"]
