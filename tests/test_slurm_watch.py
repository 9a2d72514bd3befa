"""The watcher's batching, back-off and bounds, driven by a scripted submit host.

The integration tests (test_slurm.py) run the watcher against the real SLURM; here a scripted
host answers squeue and scontrol so that the timing rules can be checked exactly.
"""

from __future__ import annotations

import itertools
import threading
import time

from threshold_probe.clusters.slurm_state import JobKey
from threshold_probe.clusters.slurm_watch import SlurmWatcher
from threshold_probe.clusters.transport import CommandResult


class ScriptedHost:
    """Answers squeue with the states in `states`, scontrol with a record per job."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.commands: list[tuple[float, str]] = []
        self.down = False
        self.lock = threading.Lock()

    def __call__(self, command: str) -> CommandResult:
        with self.lock:
            self.commands.append((time.monotonic(), command))
            if self.down:
                return CommandResult(
                    exit_code=1, stderr=b"slurm_load_jobs error: Unable to contact slurm controller (connect failure)"
                )
            if command.startswith("squeue"):
                rows = [f"{j}|{j}|{j}|N/A|{s}|None|n1" for j, s in self.states.items()]
                return CommandResult(exit_code=0, stdout="\n".join(rows).encode())
            if command.startswith("scontrol"):
                rows = [f"JobId={j} JobState={s} Reason=None ExitCode=0:0 NodeList=n1" for j, s in self.states.items()]
                return CommandResult(exit_code=0, stdout="\n".join(rows).encode())
            return CommandResult(exit_code=1, stderr=b"Slurm accounting storage is disabled")

    def squeues(self) -> list[tuple[float, str]]:
        with self.lock:
            return [c for c in self.commands if c[1].startswith("squeue")]


def test_every_live_job_is_in_one_squeue_per_poll() -> None:
    host = ScriptedHost()
    host.states = {str(i): "RUNNING" for i in range(1, 6)}
    watcher = SlurmWatcher(host, poll_interval=0.05, max_poll_interval=0.2)
    tickets = watcher.track([JobKey(str(i)) for i in range(1, 6)])
    time.sleep(0.5)
    with host.lock:
        host.states = {str(i): "COMPLETED" for i in range(1, 6)}
    assert watcher.wait(tickets, timeout=5)
    watcher.stop()
    polls = host.squeues()
    assert polls and all("-j 1,2,3,4,5 " in cmd for _, cmd in polls)
    assert all(t.fields["JobState"] == "COMPLETED" and t.error is None for t in tickets)
    # One scontrol for the five of them, not five.
    assert sum(cmd.startswith("scontrol") for _, cmd in host.commands) == 1


def test_polls_back_off_while_nothing_changes() -> None:
    host = ScriptedHost()
    host.states = {"7": "PENDING"}
    watcher = SlurmWatcher(host, poll_interval=0.05, max_poll_interval=0.4)
    tickets = watcher.track([JobKey("7")])
    time.sleep(2.5)
    with host.lock:
        host.states = {"7": "COMPLETED"}
    assert watcher.wait(tickets, timeout=5)
    watcher.stop()
    times = [t for t, _ in host.squeues()]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < 0.3 and max(gaps) >= 0.35
    assert max(gaps) < 1.0  # bounded by max_poll_interval (plus scheduling slack)
    # 2.5 s at a fixed 50 ms would be 50 queries.
    assert len(times) < 20


def test_unreachable_controller_ends_the_watch_with_an_error() -> None:
    host = ScriptedHost()
    host.states = {"9": "RUNNING"}
    watcher = SlurmWatcher(host, poll_interval=0.05, max_poll_interval=0.1, controller_timeout=0.5)
    tickets = watcher.track([JobKey("9")])
    time.sleep(0.2)
    host.down = True
    started = time.monotonic()
    assert watcher.wait(tickets, timeout=5)
    assert time.monotonic() - started < 2
    watcher.stop()
    assert tickets[0].error and "Unable to contact slurm controller" in tickets[0].error


def test_short_outage_is_ridden_out() -> None:
    host = ScriptedHost()
    host.states = {"11": "RUNNING"}
    watcher = SlurmWatcher(host, poll_interval=0.05, max_poll_interval=0.1, controller_timeout=5)
    tickets = watcher.track([JobKey("11")])
    host.down = True
    time.sleep(0.5)
    with host.lock:
        host.down = False
        host.states = {"11": "COMPLETED"}
    assert watcher.wait(tickets, timeout=5)
    watcher.stop()
    assert tickets[0].error is None and tickets[0].fields["JobState"] == "COMPLETED"
