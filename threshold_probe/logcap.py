"""Per-stream log caps: a probe keeps at most the head and the tail of each log, and says so.

A workload that prints 64 MiB would otherwise leave 64 MiB per probe in the reports folder (and
in every report that embeds it). The cap keeps the first and last half of it, with one marker
line between them naming the bytes dropped, and the observation notes the cap (so the evidence
of a failure says the log is not whole).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from threshold_probe.models import Observation
from threshold_probe.units import format_memory

#: Bytes of each log (stdout, stderr) a probe keeps: the head and the tail, half each.
LOG_CAP_BYTES = 8 * 1024 * 1024


def cap_file(path: Path, cap: int) -> int:
    """Keep the head and tail of a file, `cap` bytes in all; the number of bytes dropped (0 if none)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size <= cap:
        return 0
    half = cap // 2
    dropped = size - 2 * half
    tmp = path.with_name(path.name + ".cap")
    marker = f"\n[... {dropped} bytes dropped: this log is capped at {format_memory(cap)}, head and tail kept ...]\n"
    try:
        with path.open("rb") as src, tmp.open("wb") as dst:
            dst.write(src.read(half))
            dst.write(marker.encode())
            src.seek(size - half)
            dst.write(src.read(half))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return 0
    return dropped


def cap_logs(obs: Observation, cap: int = LOG_CAP_BYTES) -> list[str]:
    """Cap the probe's stdout and stderr logs; one note per capped log (also added to obs.notes)."""
    notes = []
    for name, path in (("stdout", obs.job.stdout_path), ("stderr", obs.job.stderr_path)):
        if path is None:
            continue
        dropped = cap_file(Path(path), cap)
        if dropped:
            notes.append(f"{name} log capped at {format_memory(cap)}: {dropped} bytes dropped (head and tail kept)")
    obs.notes.extend(notes)
    return notes
