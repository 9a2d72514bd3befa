"""The files of a job folder (JobPaths) and the small helpers every cluster shares.

A job folder exists twice: on the far side, where the job runs, and here, where its logs and
fetched files come back (JobSpec.local_dir). JobPaths names every file of either, so that the
clusters, the pipelines and the far-side scripts agree on one spelling. The far-side scripts
(remote/) run with the standard library only and cannot import this module: they spell the same
names themselves, and tests/test_jobpaths.py holds them to these.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from threshold_probe.models import PYTHON, shared_ref

#: How much of the end of stdout and stderr a JobResult keeps in memory.
TAIL_BYTES = 4096


@dataclass(frozen=True)
class JobPaths:
    """Every file of one job folder, by name; `folder` is a far-side path (POSIX) or a local one.

    The names are class constants (for code that only needs a name, such as a fetch list); the
    properties join them to `folder`.
    """

    folder: str = "."

    #: The job's standard output and error, as the cluster captured them.
    STDOUT: ClassVar[str] = "stdout.log"
    STDERR: ClassVar[str] = "stderr.log"
    #: The runner's JSON record of the call (timings, memory, exception) and of its result.
    META: ClassVar[str] = "meta.json"
    RESULT: ClassVar[str] = "result.json"
    #: What the pipelines ship: the pickled call, the source-pipeline payload, the workload source.
    PAYLOAD: ClassVar[str] = "payload.pkl"
    SOURCE_PAYLOAD: ClassVar[str] = "payload.json"
    SOURCE: ClassVar[str] = "source.json"
    #: The far-side programs, staged once per content hash (shared files).
    RUNNER: ClassVar[str] = "runner.py"
    SOURCE_RUNNER: ClassVar[str] = "source_runner.py"
    LAUNCHER: ClassVar[str] = "launcher.py"
    #: SLURM: the batch script, the job's start on the compute node's clock, the fetch folder.
    JOB_SCRIPT: ClassVar[str] = "job.sh"
    STARTED: ClassVar[str] = ".slurm-started"
    FETCH_DIR: ClassVar[str] = ".tp-fetch"

    def join(self, name: str) -> str:
        """`name` inside the folder."""
        return posixpath.join(self.folder, name)

    @property
    def stdout(self) -> str:
        return self.join(self.STDOUT)

    @property
    def stderr(self) -> str:
        return self.join(self.STDERR)

    @property
    def meta(self) -> str:
        return self.join(self.META)

    @property
    def result(self) -> str:
        return self.join(self.RESULT)

    @property
    def job_script(self) -> str:
        return self.join(self.JOB_SCRIPT)

    @property
    def started(self) -> str:
        return self.join(self.STARTED)

    @property
    def fetch_dir(self) -> str:
        return self.join(self.FETCH_DIR)

    @classmethod
    def local(cls, folder: Path) -> LocalJobPaths:
        """The same names in a folder on this machine, as Paths."""
        return LocalJobPaths(folder)


@dataclass(frozen=True)
class LocalJobPaths:
    """JobPaths of a folder on this machine (the job's local_dir), as Paths."""

    folder: Path

    @property
    def stdout(self) -> Path:
        return self.folder / JobPaths.STDOUT

    @property
    def stderr(self) -> Path:
        return self.folder / JobPaths.STDERR


def read_tail(path: Path, n_bytes: int = TAIL_BYTES) -> str:
    """The last `n_bytes` of a file, decoded leniently; empty when it does not exist."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - n_bytes))
            data = fh.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def safe_name(text: str, limit: int = 60) -> str:
    """`text` as a file or job name: letters, digits, `-_.` only, at most `limit` characters."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep[:limit] or "job"


def resolve_argv(argv: Sequence[str], python: Sequence[str], shared: Mapping[str, str]) -> list[str]:
    """A job's argv as the far side runs it: PYTHON becomes the interpreter's words, and each
    reference to a shared file becomes the path it was staged at."""
    out: list[str] = []
    for item in argv:
        if item == PYTHON:
            out.extend(python)
            continue
        for name, path in shared.items():
            item = item.replace(shared_ref(name), path)
        out.append(item)
    return out
