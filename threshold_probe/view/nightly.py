"""The typed view of a nightly run: every cell of the matrix, its run and baseline, and the night.

nightly.py fills it; render/nightly.py draws the night's JUnit and HTML from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from threshold_probe.summary import RunSummary
from threshold_probe.view import RunView, level_views

#: new-baseline: the matrix entry's latest earlier run is of another cell (config, limits,
#: interpreter, ladder changed): nothing to compare with, so this run starts the new series.
CellStatus = Literal["ok", "regressed", "new-baseline", "unreachable", "error"]


class NightlyCell(BaseModel):
    """One cell of the matrix: its run, its baseline and what the comparison found."""

    cluster: str
    pipeline: str
    ladder: str
    status: CellStatus
    run_id: str | None = None
    #: A run id, "pinned:N" for a pinned first failing level, or None (no baseline of the same
    #: cell: the first night, or a new baseline).
    baseline: str | None = None
    #: new-baseline: the earlier run of another cell, and what differs from it.
    previous_run: str | None = None
    changes: list[str] = Field(default_factory=list)
    first_fail: int | None = None
    baseline_first_fail: int | None = None
    threshold: str = ""
    failure_class: str | None = None
    threshold_moved: str | None = None
    regressions: list[str] = Field(default_factory=list)
    #: Levels that passed in the baseline and fail now.
    newly_failing: list[int] = Field(default_factory=list)
    error: str | None = None
    report: str | None = None

    @property
    def key(self) -> str:
        """cluster/pipeline/ladder as written in the config (the baseline table's key)."""
        return f"{self.cluster}/{self.pipeline}/{self.ladder}"

    @property
    def baseline_text(self) -> str:
        """The baseline used, for people: which run (or pin), or why there is none."""
        if self.baseline is not None and self.baseline.startswith("pinned:"):
            return f"pinned first fail {self.baseline_first_fail}"
        if self.baseline is not None:
            ff = "none" if self.baseline_first_fail is None else str(self.baseline_first_fail)
            return f"{self.baseline} (first fail {ff})"
        if self.status == "new-baseline":
            return f"none: new baseline (was {self.previous_run})"
        if self.run_id is None:
            return "-"
        return "none: first run of this cell"

    @property
    def change_text(self) -> str:
        """What the comparison found, in one line."""
        if self.regressions:
            return "; ".join(self.regressions)
        if self.error:
            return self.error
        if self.status == "new-baseline":
            return "new baseline: " + "; ".join(self.changes)
        if self.baseline is None:
            return "no baseline yet"
        return f"threshold {self.threshold_moved}" if self.threshold_moved else ""

    @property
    def label(self) -> str:
        """cluster/pipeline/ladder for people: a ladder file shows as its stem."""
        ladder = Path(self.ladder).stem if self.ladder.endswith(".toml") else self.ladder
        return f"{self.cluster}/{self.pipeline}/{ladder}"


class NightlyResult(BaseModel):
    """The whole night: every cell, the unreachable clusters, the files written, the exit code."""

    schema_version: int = 1
    started_at: float
    finished_at: float
    kind: str
    output: str
    cells: list[NightlyCell]
    unreachable: dict[str, str] = Field(default_factory=dict)
    regressed: bool
    exit_code: int
    files: dict[str, str] = Field(default_factory=dict)
    notified: dict[str, Any] | None = None


@dataclass(frozen=True)
class NightCellView:
    """One cell as the night's reports show it: the cell, its run's view, and its known failures."""

    cell: NightlyCell
    run: RunView | None = None
    #: Failing levels that are no news (see expected_failures): reported as skipped, not failed.
    expected_failures: frozenset[int] = frozenset()


def expected_failures(cell: NightlyCell, summary: RunSummary | None, baseline: RunSummary | None) -> frozenset[int]:
    """Failing levels that are no news: they failed in the baseline, or lie at or above its threshold."""
    if summary is None:
        return frozenset()
    failing = {v.level for v in level_views(summary) if v.verdict in ("fail", "flaky")}
    if cell.baseline is None:
        return frozenset(failing)  # first night: nothing to regress against
    expected: set[int] = set()
    if baseline is not None:
        expected |= {v.level for v in level_views(baseline) if v.verdict in ("fail", "flaky")}
    if cell.baseline_first_fail is not None:
        expected |= {n for n in failing if n >= cell.baseline_first_fail}
    return frozenset(expected & failing)
