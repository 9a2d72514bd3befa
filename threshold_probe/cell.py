"""What a threshold belongs to: the cluster fingerprint and the comparison cell.

A verdict, or a threshold, is only meaningful together with what produced it.

- The **cluster fingerprint** is the resolved cluster config (host, user, python, partition,
  setup lines, ...; but not the limits, which travel on their own, and not how patiently the
  tool talks to the cluster: timeouts, retries, poll intervals), the far side's Python and
  cloudpickle versions and hostname as the preflight saw them, the pipeline and its options,
  and this tool's version. A cached verdict is reused only under the same fingerprint, so any
  change dispatches the probes again.
- A **cell** is (cluster fingerprint, pipeline, ladder content hash, limits, level range); a run
  of a user's own function is keyed by the function (its path, name and source hash) instead
  of a ladder. `compare`, `history` and `nightly` compare runs of one cell only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from threshold_probe.units import format_memory

#: Cluster settings that change how the tool waits for or talks to a cluster, never what a
#: probe does there; changing them keeps the fingerprint (and so the cache and the cell).
PATIENCE_FIELDS = frozenset(
    {
        "connect_timeout",
        "command_timeout",
        "retries",
        "retry_backoff",
        "poll_interval",
        "max_poll_interval",
        "controller_timeout",
        "queue_timeout",
        "array_throttle",
        "host_key_policy",
        "password_env",
    }
)
#: The limits are part of the cache key and the cell on their own (with command-line overrides).
LIMIT_FIELDS = frozenset({"memory", "time", "cores"})

#: The far side was not asked (--no-preflight): nothing is known of its versions.
UNCHECKED = "unchecked"


def digest(data: Any, length: int = 16) -> str:
    """A short, stable hash of JSON-able data."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class Fingerprint(BaseModel):
    """The cluster as configured and as seen, with the pipeline and the tool's version."""

    cluster: str
    config: dict[str, Any] = Field(default_factory=dict)
    #: python, cloudpickle and hostname as the preflight saw them, or {"far_side": "unchecked"}.
    far_side: dict[str, str] = Field(default_factory=dict)
    pipeline: dict[str, str] = Field(default_factory=dict)
    probe_version: str = ""

    @property
    def digest(self) -> str:
        """The hash every part goes into."""
        return digest(self.model_dump(mode="json"))

    @property
    def checked(self) -> bool:
        """Whether the far side's versions are known (the preflight ran)."""
        return bool(self.far_side) and self.far_side.get("far_side") != UNCHECKED


def cluster_config(config: BaseModel) -> dict[str, Any]:
    """The resolved cluster config that decides what a probe does there."""
    data = config.model_dump(mode="json")
    return {k: v for k, v in sorted(data.items()) if k not in PATIENCE_FIELDS and k not in LIMIT_FIELDS}


def fingerprint(
    cluster: str,
    config: BaseModel,
    far_side: Mapping[str, str] | None,
    pipeline: Mapping[str, str],
    probe_version: str,
) -> Fingerprint:
    """The fingerprint of one cluster; `far_side` None or empty when the preflight did not run."""
    seen = dict(far_side) if far_side else {"far_side": UNCHECKED}
    return Fingerprint(
        cluster=cluster,
        config=cluster_config(config),
        far_side=seen,
        pipeline=dict(pipeline),
        probe_version=probe_version,
    )


class Cell(BaseModel):
    """What a run's threshold belongs to; runs compare only within one cell."""

    cluster: str
    fingerprint: Fingerprint | None = None
    pipeline: str
    #: The ladder's name; null for a run of a user's own function.
    ladder: str | None = None
    ladder_hash: str | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    #: [lowest, highest] level searched; null for a function.
    levels: list[int] | None = None
    #: FILE:FUNC and its source hash, for a run of a user's own function.
    function: str | None = None
    function_hash: str | None = None

    @property
    def key(self) -> str:
        """Equal keys, same cell."""
        return digest(self._identity(), 12)

    def _identity(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint.digest if self.fingerprint else self.cluster,
            "pipeline": self.pipeline,
            "ladder_hash": self.ladder_hash if self.function is None else None,
            "limits": self.limits,
            "levels": self.levels if self.function is None else None,
            "function": [self.function, self.function_hash] if self.function else None,
        }

    @property
    def label(self) -> str:
        """cluster/pipeline/ladder, limits and levels, for people."""
        what = self.function or (self.ladder or "?")
        parts = [f"{self.cluster}/{self.pipeline}/{what}"]
        limits = limits_words(self.limits)
        if limits:
            parts.append(limits)
        if self.levels and self.function is None:
            lo, hi = self.levels[0], self.levels[-1]
            parts.append(f"levels {lo}..{hi}" if lo != hi else f"level {lo}")
        return ", ".join(parts)


def ladder_hash(levels: Sequence[tuple[int, Mapping[str, Any]]]) -> str:
    """The content hash of a ladder: every level's number and dimension values."""
    return digest([[n, dict(values)] for n, values in levels])


def limits_words(limits: Mapping[str, Any]) -> str:
    """memory 400MB, time 120s, cores 2: only the limits that are set."""
    out = []
    mem = limits.get("memory_bytes")
    if mem is not None:
        out.append(f"memory {format_memory(int(mem))}")
    t = limits.get("time_s")
    if t is not None:
        out.append(f"time {float(t):g}s")
    cores = limits.get("cores")
    if cores is not None:
        out.append(f"cores {cores}")
    return ", ".join(out)


def cell_of(summary: Any) -> Cell:
    """The cell of a run summary; runs recorded before cells existed get one from their header."""
    raw = getattr(summary, "cell", None)
    if raw:
        return Cell.model_validate(raw)
    levels = sorted(r.level for r in summary.levels)
    function = (summary.params.get("options") or {}).get("function") if summary.params else None
    return Cell(
        cluster=summary.cluster,
        pipeline=summary.pipeline,
        ladder=None if function else summary.ladder,
        limits=dict(summary.limits),
        levels=[levels[0], levels[-1]] if levels and not function else None,
        function=function,
    )


def _words(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _dict_changes(prefix: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{prefix}{key} {_words(a.get(key))} -> {_words(b.get(key))}")
    return out


def differences(a: Cell, b: Cell) -> list[str]:
    """What differs between two cells, most telling first: limits, range, versions, config.

    Empty when they are the same cell. Old runs without a fingerprint compare by what they have.
    """
    out: list[str] = []
    if a.limits != b.limits:
        out.append(f"limits: {limits_words(a.limits) or 'none'} -> {limits_words(b.limits) or 'none'}")
    if a.function or b.function:
        if (a.function, a.function_hash) != (b.function, b.function_hash):
            if a.function != b.function:
                out.append(f"function: {a.function or a.ladder} -> {b.function or b.ladder}")
            else:
                out.append(f"function: the source of {a.function} changed")
    else:
        if a.levels != b.levels:
            out.append(f"level range: {_range(a.levels)} -> {_range(b.levels)}")
        if a.ladder != b.ladder:
            out.append(f"ladder: {a.ladder} -> {b.ladder}")
        elif a.ladder_hash and b.ladder_hash and a.ladder_hash != b.ladder_hash:
            out.append(f"ladder: the levels of {a.ladder} changed (content {a.ladder_hash[:8]} -> {b.ladder_hash[:8]})")
    fa, fb = a.fingerprint, b.fingerprint
    if fa is not None and fb is not None:
        out.extend(_dict_changes("far side: ", fa.far_side, fb.far_side))
        if fa.probe_version != fb.probe_version:
            out.append(f"threshold-probe {fa.probe_version} -> {fb.probe_version}")
        if a.cluster != b.cluster:
            out.append(f"cluster: {a.cluster} -> {b.cluster}")
        out.extend(_dict_changes(f"config [clusters.{b.cluster}] ", fa.config, fb.config))
        out.extend(_dict_changes("pipeline ", fa.pipeline, fb.pipeline))
    elif a.cluster != b.cluster:
        out.append(f"cluster: {a.cluster} -> {b.cluster}")
    if a.pipeline != b.pipeline:
        out.append(f"pipeline: {a.pipeline} -> {b.pipeline}")
    if not out and a.key != b.key:
        out.append("the cluster fingerprint changed")
    return out


def _range(levels: list[int] | None) -> str:
    if not levels:
        return "-"
    return f"{levels[0]}..{levels[-1]}"
