"""The states a run and a probe go through, as the journal stores them and the reports show them.

Each state is a string enum: it compares equal to its value, prints as its value and is written to
JSON as its value, so the journal and every report hold the same words as before there were enums.
"""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):
    """enum.StrEnum (Python 3.11) for Python 3.10: str() and f-strings give the value."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


class RunState(_StrEnum):
    """Where a run stands (column `runs.status` of the journal, `status` of run.json)."""

    #: A process runs it, or ran it and was killed before it could say anything else.
    RUNNING = "running"
    #: The search ended with an answer (which may be "undecided").
    COMPLETED = "completed"
    #: Stopped by SIGINT/SIGTERM or by a cluster lost mid-run: resumable.
    INTERRUPTED = "interrupted"
    #: The run could not go on (an error the search could not turn into a verdict).
    ERROR = "error"
    #: Shown, never stored: a `running` run that no process owns any more (killed with -9).
    STOPPED = "stopped"


#: The run states the journal holds; STOPPED is worked out when a run is shown.
STORED_RUN_STATES: frozenset[RunState] = frozenset(s for s in RunState if s is not RunState.STOPPED)


class ProbeState(_StrEnum):
    """Where one probe stands (column `probes.state` of the journal)."""

    #: Journalled just before it was handed to the cluster; no verdict yet.
    DISPATCHED = "dispatched"
    #: Finished: its record (observation and verdict) is stored.
    DONE = "done"
    #: In flight when the run was interrupted or killed: a resumed run dispatches it again.
    CANCELLED = "cancelled"


def stored_run_state(status: str) -> RunState:
    """`status` as a RunState the journal may hold; ValueError for any other word (or `stopped`)."""
    state = RunState(status)
    if state not in STORED_RUN_STATES:
        raise ValueError(f"run state {state.value!r} is only shown, never stored")
    return state
