"""SIGINT and SIGTERM as :class:`~threshold_probe.errors.Interrupted`, raised where it is safe.

While a command runs under :func:`interruptible`, the first SIGINT or SIGTERM raises
Interrupted (exit 130 or 143) in the main thread, so that the run cancels its cluster work and
journals on the way out. Two things make that safe:

- a section that starts remote work and records it (so that ``cancel_all`` can find it) runs
  under :func:`held`: a signal that arrives inside it is raised when the section ends, never
  between "started" and "recorded", where it would leave a job that nobody cancels;
- a second signal while the first is being handled is ignored, so that the clean-up (cancel,
  journal, report) is never cut short and the journal is never left half written.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from threshold_probe.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Guard:
    """The state of one interruptible command."""

    def __init__(self) -> None:
        self.raised = False
        self.depth = 0
        self.pending: int | None = None

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.raised or self.pending is not None:
            return  # the first signal is being handled: let its clean-up finish
        if self.depth:
            self.pending = signum
            return
        self.raised = True
        raise Interrupted("interrupted", signum)

    def release(self) -> None:
        signum, self.pending = self.pending, None
        if signum is not None:
            self.raised = True
            raise Interrupted("interrupted", signum)


_guard: _Guard | None = None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into Interrupted for the duration of the block (main thread only)."""
    global _guard
    if not _main_thread():  # signal handlers can only be set there; other threads run unguarded
        yield
        return
    old = {s: signal.getsignal(s) for s in SIGNALS}
    previous, guard = _guard, _Guard()
    for s in SIGNALS:
        signal.signal(s, guard.on_signal)
    _guard = guard
    try:
        yield
    finally:
        _guard = previous
        for s, handler in old.items():
            signal.signal(s, handler)


@contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then raise Interrupted if one came.

    For a few lines that must not be separated: start a job, then record it where cancel_all looks.
    Outside an interruptible command, or in another thread, it does nothing.
    """
    guard = _guard
    if guard is None or not _main_thread():
        yield
        return
    guard.depth += 1
    try:
        yield
    finally:
        guard.depth -= 1
        if guard.depth == 0:
            guard.release()
