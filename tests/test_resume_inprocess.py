"""Resume, journal and summary of a run that its cluster interrupted, on the in-process cluster.

The cluster is lost at one level (as when an SSH host stays down): the run ends interrupted,
exit 3, and keeps what it finished; `--resume` then dispatches only what the journal lacks and
reaches the answer an uninterrupted run gives. The in-process cluster counts every job it is
given, so "nothing finished is dispatched again" is checked exactly. The same with a real sshd
killed and kept down is in test_ssh_faults.py; with a real kill -9 of the client in
test_resume_kill.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.inprocess_cluster import Handler, Infra, InProcessCluster, Outcome, Raise, first_fail
from tests.test_report_support import probe
from threshold_probe.models import JobSpec

RESUME16 = str(Path(__file__).parent / "assets" / "ladders" / "resume16.toml")
THRESHOLD = first_fail(11, Raise("MemoryError"))


def lost_once_at(level: int, then: Handler) -> Handler:
    """The cluster is lost the first time `level` is dispatched; afterwards `then` decides."""
    lost: list[int] = []

    def handler(lvl: int | None, job: JobSpec) -> Outcome:
        if lvl == level and not lost:
            lost.append(lvl)
            return Infra("in-process cluster: host unreachable through the retry budget", lost=True)
        return then(lvl, job)

    return handler


@pytest.mark.parametrize("kind", ["bisect", "sweep"])
def test_a_lost_cluster_interrupts_the_run_and_resume_dispatches_only_what_is_missing(
    tmp_path: Path, inprocess: Callable[..., InProcessCluster], kind: str
) -> None:
    args = (kind, "--ladder", RESUME16, "--memory", "300MB", "--fresh", "--json", "--quiet")
    whole = inprocess(THRESHOLD)
    (tmp_path / "whole").mkdir()
    uninterrupted = probe(tmp_path / "whole", *args)
    assert uninterrupted.code == 0, uninterrupted.err
    expected = json.loads(uninterrupted.out)

    cluster = inprocess(lost_once_at(8, THRESHOLD))
    broken = probe(tmp_path, *args)
    assert broken.code == 3, broken.err
    assert "--resume" in broken.err and "Traceback" not in broken.err
    dispatched_before = len(cluster.jobs)
    assert cluster.levels[-1] == 8
    runs = probe(tmp_path, "runs", "--json").json()
    assert [r["status"] for r in runs] == ["interrupted"]
    run_id = runs[0]["run_id"]
    partial = probe(tmp_path, "report", run_id, "--json").json()
    assert partial["status"] == "interrupted" and partial["first_fail"] is None
    finished_before = {(p["level"], p["attempt"]) for p in partial["probes"]}
    assert (8, 1) not in finished_before  # the lost probe got no verdict

    resumed = probe(tmp_path, kind, "--resume", run_id, "--json", "--quiet")
    assert resumed.code == 0, resumed.err
    summary = resumed.json()
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    for key in ("first_fail", "last_pass", "search_status"):
        assert summary[key] == expected[key]
    assert summary["failure"]["class"] == expected["failure"]["class"] == "oom"
    # The resume dispatched the lost probe and what the search still needed, nothing it had.
    again = Counter(cluster.levels[dispatched_before:])
    assert again[8] >= 1
    assert len(cluster.jobs) == len(whole.jobs) + 1  # the uninterrupted run's jobs and the lost one
    assert Counter((p["level"], p["attempt"]) for p in summary["probes"]) == Counter(
        (p["level"], p["attempt"]) for p in expected["probes"]
    )
    assert finished_before <= {(p["level"], p["attempt"]) for p in summary["probes"]}
    assert "the first to fail" in probe(tmp_path, "report", run_id).out


def test_a_skip_between_the_pass_and_the_failure_leaves_the_search_undecided(
    tmp_path: Path, inprocess: Callable[..., InProcessCluster]
) -> None:
    """Level 10 is a skip on every try (infrastructure trouble that passes): no threshold is stored."""

    def flaky_host(level: int | None, job: JobSpec) -> Outcome:
        if level == 10:
            return Infra("in-process cluster: connection reset")
        return THRESHOLD(level, job)

    cluster = inprocess(flaky_host)
    done = probe(tmp_path, "bisect", "--ladder", RESUME16, "--memory", "300MB", "--json", "--quiet")
    assert done.code == 0, done.err
    summary = done.json()
    assert summary["status"] == "completed"
    assert summary["first_fail"] is None and summary["last_pass"] is None
    assert "undecided between levels 9 and 11" in summary["message"]
    assert cluster.levels.count(10) >= 2  # a skip is retried
    assert {p["verdict"] for p in summary["probes"] if p["level"] == 10} == {"skip"}
