"""Reading what the far-side runner left behind (meta.json, result.json), for every pipeline.

The client reads JSON only: a malformed or missing file is evidence for the diagnosis, never a
crash and never code to run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.models import STAGES, JobResult, Observation

#: Files the runner writes and a pipeline fetches.
META_NAME = JobPaths.META
RESULT_NAME = JobPaths.RESULT
#: Larger files are not parsed: a runner never writes one, so it is evidence of something else.
MAX_JSON_BYTES = 16 * 1024**2

#: Runner time stamps (meta["t"]) that bound each runner stage.
_RUNNER_STAGES = {
    "deserialize": ("deserialize_start", "deserialize_end"),
    "execute": ("execute_start", "execute_end"),
    "serialize": ("serialize_start", "serialize_end"),
}


def read_json_file(path: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """(data, None) for a readable JSON object; (None, note) when missing or malformed."""
    if path is None:
        return None, None
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            return None, f"{path.name} is {size} bytes, too large to be a runner file"
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path.name} could not be read: {exc.strerror or exc}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, f"{path.name} is not valid JSON ({exc}); it starts {text[:80]!r}"
    if not isinstance(data, dict):
        return None, f"{path.name} holds a {type(data).__name__}, not an object"
    return data, None


def runner_timings(meta: dict[str, Any] | None, result: JobResult) -> dict[str, float]:
    """Stage timings (seconds, STAGES names) merged from the cluster and the runner's stamps.

    `startup` needs the cluster's launch time (`launched_at` in JobResult.timings, same clock).
    """
    timings = {k: float(v) for k, v in result.timings.items() if k in STAGES}
    stamps = meta.get("t") if meta else None
    if not isinstance(stamps, dict):
        return timings

    def stamp(name: str) -> float | None:
        value = stamps.get(name)
        return float(value) if isinstance(value, (int, float)) else None

    start = stamp("runner_start")
    launched = result.timings.get("launched_at")
    if start is not None and launched is not None:
        timings["startup"] = max(0.0, start - launched)
    for stage, (begin, end) in _RUNNER_STAGES.items():
        b, e = stamp(begin), stamp(end)
        if b is not None and e is not None:
            timings[stage] = max(0.0, e - b)
    return timings


def runner_peak_rss_mb(meta: dict[str, Any] | None) -> float | None:
    """The runner's peak RSS in MB (its own or its children's, whichever is larger)."""
    if not meta:
        return None
    values = [meta.get("rss_peak_kb_self"), meta.get("rss_peak_kb_children")]
    kb = [float(v) for v in values if isinstance(v, (int, float))]
    return max(kb) / 1024 if kb else None


def fill_observation(obs: Observation, result: JobResult) -> Observation:
    """Read meta.json and result.json from the fetched files and merge them into `obs`."""
    meta, meta_note = read_json_file(result.files.get(META_NAME))
    summary, result_note = read_json_file(result.files.get(RESULT_NAME))
    obs.meta = meta
    obs.result = summary
    obs.notes.extend(note for note in (meta_note, result_note) if note)
    obs.timings = runner_timings(meta, result)
    peaks = [p for p in (runner_peak_rss_mb(meta), result.peak_rss_mb) if p is not None]
    obs.peak_rss_mb = max(peaks) if peaks else None
    return obs


__all__ = [
    "META_NAME",
    "RESULT_NAME",
    "fill_observation",
    "read_json_file",
    "runner_peak_rss_mb",
    "runner_timings",
]
