"""The client side of the far-side launcher (remote/launcher.py): what it reads, and its records as they stream in.

The launcher's stdin is one header line (a Python literal: the launcher reads it without
importing json), then the shared files it is to stage, then the job's files.

A record is ``TPREC <json>\\n`` followed by exactly ``json["size"]`` raw bytes: ``pid``, then
``status``, then every fetched file, then the full logs, then ``end``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import IO, Any

from threshold_probe.models import JobResult, JobSpec

MAGIC = b"TPREC "

#: Runs the script named next on the command line exactly as ``python SCRIPT ARGS...`` would
#: (``__main__``, sys.argv, sys.path[0] the script's folder, the script's file name in its
#: tracebacks), but from the bytecode cached in ``__pycache__`` beside it, which the first run
#: writes: compiling the runner again for every probe costs a few milliseconds each time.
SCRIPT_BOOT = (
    "import sys, __main__ as m; from importlib.machinery import SourceFileLoader as L; "
    "del sys.argv[0]; sys.path[0] = sys.argv[0].rpartition('/')[0]; m.__file__ = sys.argv[0]; "
    "exec(L('__main__', sys.argv[0]).get_code('__main__'), m.__dict__)"
)


def cached_script_argv(argv: Sequence[str], python: Sequence[str], staged: Collection[str]) -> list[str]:
    """`argv` with ``PYTHON SCRIPT.py ARGS`` run through SCRIPT_BOOT when SCRIPT.py is a staged file.

    Only staged files (ours, content-hashed, in a folder of the user's) are started this way;
    anything else runs as given.
    """
    k = len(python)
    script = argv[k] if len(argv) > k else ""
    if list(argv[:k]) == list(python) and script.endswith(".py") and script.startswith("/") and script in staged:
        return [*python, "-c", SCRIPT_BOOT, *argv[k:]]
    return list(argv)


def launcher_stdin(
    *, job_dir: str, argv: list[str], job: JobSpec, time_s: float, carried: Sequence[tuple[str, bytes]]
) -> bytes:
    """What the launcher reads: its header, the shared files it carries (`(path, data)`), the job's files."""
    limits = job.limits
    names = list(job.files)
    header = {
        "dir": job_dir,
        "argv": argv,
        "env": job.env,
        "memory": limits.memory_bytes,
        "time": time_s,
        "cores": limits.cores,
        "fetch": job.fetch,
        "keep": job.keep_remote,
        "files": [[n, len(job.files[n])] for n in names],
        "shared": [[path, len(data)] for path, data in carried],
    }
    # A Python literal on one line: the launcher reads it without importing json (see there).
    return repr(header).encode() + b"\n" + b"".join(data for _, data in carried) + b"".join(job.files[n] for n in names)


def fill_result(result: JobResult, status: dict[str, Any], argv: list[str], python_argv: list[str], name: str) -> None:
    """JobResult fields from the launcher's status record (`name` is the cluster's, for messages)."""
    result.host = str(status.get("host") or result.host)
    if "stage_error" in status:
        result.launch_error = f"stage_in: {status['stage_error']}"
        return
    launch = status.get("launch_error")
    if isinstance(launch, dict):
        text = f"{launch.get('type')}: {launch.get('message')}"
        no_python = argv and argv[0] == python_argv[0]
        if no_python and launch.get("errno") in (errno.ENOENT, errno.EACCES):
            result.infra_error = f"{name}: cannot run {argv[0]} on {result.host}: {launch.get('message')}"
        else:
            result.launch_error = text
        return
    if status.get("dir_gone"):
        # Someone removed the probe's folder while it ran: nothing is known about the workload.
        result.infra_error = f"{name}: the probe's folder {status.get('dir')} disappeared while it ran"
        return
    result.exit_code = status.get("exit_code")
    result.signal = status.get("signal")
    result.timed_out = bool(status.get("timed_out"))
    if "launched_at" in status:
        # The far side's clock, like the runner's stamps it is compared with.
        result.timings["launched_at"] = float(status["launched_at"])
        result.timings["process"] = float(status.get("process_s", 0.0))


class RecordReader:
    """Parses the launcher's framed stdout as it streams in, writing bodies to their files.

    Memory stays bounded: only headers, `pid` and `status` bodies are held; files and logs go
    straight to disk under local_dir.
    """

    def __init__(self, local_dir: Path, fetch: Sequence[str]) -> None:
        self.local_dir = local_dir
        self.fetch = set(fetch)
        self._buf = bytearray()
        self._head: dict[str, Any] | None = None
        self._left = 0
        self._sink: IO[bytes] | None = None
        self._mem: bytearray | None = None
        self._part: Path | None = None
        self._final: Path | None = None
        self.pid: int | None = None
        self.status: dict[str, Any] | None = None
        self.status_at: float | None = None
        self.files: dict[str, Path] = {}
        self.logs: dict[str, Path] = {}
        self.ended = False
        self.garbage = b""

    def feed(self, data: bytes) -> None:
        """Take the next chunk of the stream."""
        view = memoryview(data)
        while view:
            if self._head is None:
                self._buf += view
                view = memoryview(b"")
                nl = self._buf.find(b"\n")
                if nl < 0:
                    if len(self._buf) > 65536:
                        self._garbage()
                    return
                line = bytes(self._buf[:nl])
                rest = bytes(self._buf[nl + 1 :])
                self._buf.clear()
                if not line.startswith(MAGIC):
                    self.garbage += line[:2000]
                    view = memoryview(rest)
                    continue
                try:
                    head = json.loads(line[len(MAGIC) :])
                except ValueError:
                    self.garbage += line[:2000]
                    view = memoryview(rest)
                    continue
                self._begin(head)
                view = memoryview(rest)
                if self._left == 0:
                    self._finish()
            else:
                take = min(self._left, len(view))
                chunk = view[:take]
                if self._sink is not None:
                    self._sink.write(chunk)
                elif self._mem is not None:
                    self._mem += chunk
                self._left -= take
                view = view[take:]
                if self._left == 0:
                    self._finish()

    def _garbage(self) -> None:
        self.garbage += bytes(self._buf[:2000])
        self._buf.clear()

    def _begin(self, head: dict[str, Any]) -> None:
        self._head = head
        self._left = int(head.get("size", 0))
        kind = head.get("kind")
        name = str(head.get("name", ""))
        if kind in ("file", "log") and name and ".." not in Path(name).parts and not Path(name).is_absolute():
            if kind == "file" and name not in self.fetch:
                self._mem = None  # not asked for: drop its bytes
                self._sink = None
                return
            self._final = self.local_dir / name
            self._final.parent.mkdir(parents=True, exist_ok=True)
            self._part = self._final.with_name(f".{self._final.name}.part")
            self._sink = open(self._part, "wb")  # noqa: SIM115 - closed in _finish
        else:
            self._mem = bytearray()

    def _finish(self) -> None:
        head = self._head or {}
        kind = head.get("kind")
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            assert self._part is not None and self._final is not None
            os.replace(self._part, self._final)
            (self.logs if kind == "log" else self.files)[str(head["name"])] = self._final
        elif self._mem is not None:
            body = bytes(self._mem)
            if kind == "pid":
                self.pid = int(head.get("pid", 0)) or None
            elif kind == "status":
                with contextlib.suppress(ValueError):
                    self.status = json.loads(body)
                self.status_at = time.monotonic()
        if kind == "end":
            self.ended = True
        self._head = None
        self._mem = None
        self._part = self._final = None

    def abort(self) -> None:
        """Close and remove a half-written file after a broken stream."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            if self._part is not None:
                self._part.unlink(missing_ok=True)
