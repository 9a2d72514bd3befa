"""The live part of the progress display: each live probe's job and what its scheduler says.

On a terminal the live jobs are drawn under the progress bar and redrawn as they move; piped,
each change is one line (`level 3  job 812_2 PENDING (JobArrayTaskLimit)`), so a log of a long
run still says what the queue did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from rich.console import RenderableType
from rich.progress import Progress
from rich.text import Text

from threshold_probe.clusters.base import JobState
from threshold_probe.textsafe import strip_control

#: At most this many live jobs are drawn under the bar; the rest are counted.
SHOWN_JOBS = 12


def job_text(label: str, state: JobState) -> Text:
    """`  level 3    job 812_2 RUNNING on node1`: one live job, far-side words stripped of controls."""
    words = [strip_control(state.state)]
    if state.reason:
        words.append(f"({strip_control(state.reason)})")
    if state.node and state.state != "PENDING":
        words.append(f"on {strip_control(state.node)}")
    return Text(f"  {strip_control(label):<10} job {strip_control(state.job_id)} {' '.join(words)}", style="dim")


class LiveJobs:
    """The jobs of live probes, by probe id, as their scheduler last described them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[str, JobState]] = {}

    def update(self, label: str, state: JobState) -> bool:
        """Record a state; False when nothing a reader sees has changed."""
        with self._lock:
            before = self._jobs.get(state.probe_id)
            if state.final:
                self._jobs.pop(state.probe_id, None)
                return False
            self._jobs[state.probe_id] = (label, state)
            return before != (label, state)

    def drop(self, probe_id: str) -> None:
        """The probe has finished: its job is no longer shown."""
        with self._lock:
            self._jobs.pop(probe_id, None)

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()

    def lines(self) -> list[Text]:
        """One line per live job (at most SHOWN_JOBS, then how many more)."""
        with self._lock:
            jobs = list(self._jobs.values())
        out = [job_text(label, state) for label, state in jobs[:SHOWN_JOBS]]
        if len(jobs) > SHOWN_JOBS:
            out.append(Text(f"  ... {len(jobs) - SHOWN_JOBS} more live jobs", style="dim"))
        return out


class JobsProgress(Progress):
    """A Rich progress bar with the live jobs drawn under it."""

    def __init__(self, *columns: object, jobs: LiveJobs, **kwargs: object) -> None:
        self.jobs = jobs  # before Progress starts drawing
        super().__init__(*columns, **kwargs)  # type: ignore[arg-type]

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        yield from self.jobs.lines()
