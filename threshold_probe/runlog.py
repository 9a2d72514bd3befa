"""The run's log file: what libraries log while a run goes on, kept beside its report.

paramiko logs a traceback on its own threads when a connection fails (a banner that never
comes, a socket closed under it). Without a handler Python prints such records on stderr, in
the middle of the terminal's output. A run sends them to `<run folder>/run.log` instead, and
outside a run they are dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

#: The loggers a run keeps: the SSH library's and the tool's own.
LOGGERS = ("paramiko", "threshold_probe")

for _name in LOGGERS:
    # Never Python's last-resort handler (stderr): nothing below the CLI prints.
    logging.getLogger(_name).addHandler(logging.NullHandler())


@contextlib.contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Append the records of LOGGERS (INFO and up) to `path` while the block runs.

    A log that cannot be opened is not a reason to stop a run: the records are dropped.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    except OSError:
        yield
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
        handler.close()
