"""The `probe` console script: loading the command line takes about half a second, and a Ctrl-C
(or SIGTERM) in it ends the command as one anywhere else does, with one line and exit 130 (143)."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    sys.stderr.write(f"error: interrupted by {name}\n")
    # Nothing has started yet: no run to journal, no far-side work to cancel.
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point of `probe` and `python -m threshold_probe`."""
    before = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        from threshold_probe.cli.app import main as run
    finally:
        # The commands install their own handlers (interruptible): give them back the defaults.
        for sig, handler in before.items():
            signal.signal(sig, handler)
    run()
