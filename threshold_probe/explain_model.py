"""The result of `probe explain`: its steps, the reproducer and the explanation (--json, run.json, reports).

`ExplainOptions` is what an explanation needs besides where it runs; `load_explanation` reads a
recorded one back; `conclusion_text` writes the paragraph that heads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from threshold_probe.hints import Hint

KIND = "explain"
SCHEMA_VERSION = 1

Owner = Literal["pipeline", "cluster", "undecided", "none"]


class Step(BaseModel):
    """One step of an explanation: its run (when it has one), its status and one line."""

    name: str
    status: Literal["pending", "done", "skipped", "failed"] = "pending"
    run_id: str | None = None
    line: str = ""


class Reproducer(BaseModel):
    """A small function that fails the same way."""

    via: Literal["ladder", "shrink", "function"]
    source: str
    lines: int
    target: str | None = None
    spec: dict[str, Any] | None = None
    verdict: str | None = None
    signature: str | None = None
    native_verdict: str | None = None
    #: "signature", or "signature+difference" (it also passes through native).
    kept: str | None = None
    features: dict[str, Any] = Field(default_factory=dict)


class Explanation(BaseModel):
    """Every part of `probe explain` (its --json, run.json and each report format)."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["explain"] = "explain"
    run_id: str
    status: Literal["running", "completed", "interrupted", "error"] = "running"
    cluster: str
    pipeline: str
    ladder: str | None = None
    function: str | None = None
    limits: dict[str, Any] = Field(default_factory=dict)
    #: What the explanation is about, from its first search: versions here, the cluster as its
    #: preflight saw it.
    versions: dict[str, str] = Field(default_factory=dict)
    cluster_info: dict[str, str] = Field(default_factory=dict)
    conclusion: str = ""
    owner: Owner = "undecided"
    owner_statement: str = ""
    first_fail: int | None = None
    last_pass: int | None = None
    failure_class: str | None = Field(default=None, alias="class")
    signature: str | None = None
    evidence: list[str] = Field(default_factory=list)
    native_first_fail: int | None = None
    native_message: str | None = None
    driver: str | None = None
    driver_threshold: Any = None
    driver_statement: str | None = None
    reproducer: Reproducer | None = None
    shrink: dict[str, Any] | None = None
    hint: Hint | None = None
    steps: list[Step] = Field(default_factory=list)
    started_at: float
    finished_at: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    reports_dir: str | None = None

    model_config = {"populate_by_name": True}


@dataclass
class ExplainOptions:
    """What an explanation needs besides where it runs."""

    ladder: str | None = None
    function: str | None = None
    lo: int | None = None
    hi: int | None = None
    fresh: bool = False
    preflight: bool = True
    shrink: bool = True


def load_explanation(data: Mapping[str, Any]) -> Explanation:
    """A recorded explanation (run.json, the journal)."""
    return Explanation.model_validate(data)


def conclusion_text(r: Explanation, pipeline: str, cluster: str) -> str:
    """The one paragraph that heads an explanation."""
    where = f"through {pipeline} on {cluster}"
    if r.function:
        head = f"{r.function.rpartition(':')[2] or r.function} fails {where} ({r.failure_class})"
    else:
        head = f"Level {r.first_fail} of the {r.ladder} ladder is the first to fail {where} ({r.failure_class})"
    parts = [head]
    if r.owner_statement:
        parts.append(r.owner_statement)
    if r.driver:
        threshold = f" from {r.driver_threshold}" if r.driver_threshold is not None else ""
        parts.append(f"it follows {r.driver}{threshold}")
    if r.reproducer is not None and r.reproducer.kept:
        kept = r.reproducer.kept.replace("+", " and the ")
        parts.append(f"a {r.reproducer.lines}-line reproducer keeps the {kept}")
    text = "; ".join(parts) + "."
    if r.hint is not None:
        text += f" Fix: {r.hint.fix}."
    return text
