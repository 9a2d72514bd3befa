"""`--match`: a search hunts one failure and skips past a different one, through the CLI.

The ladder (tests/assets/ladders/match.toml) has two failures. On the in-process cluster here,
level 4 is killed at its time limit (`timeout`) and from level 6 on the function raises
MemoryError under the 300MB limit (`oom`); a bisect probes level 4 right after both ends. The same
hunt past a real time limit to a real RLIMIT_AS is in test_undecided_cli.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.inprocess_cluster import Outcome, Pass, Raise, TimedOut, routed
from threshold_probe.cli.app import app
from threshold_probe.models import JobSpec

LADDER = str(Path(__file__).parent / "assets" / "ladders" / "match.toml")
LIMITS = ("--ladder", LADDER, "--memory", "300MB", "--time", "6s")


def match_ladder(level: int | None, job: JobSpec) -> Outcome:
    """What match.toml does under 300MB and 6 s: level 4 times out, levels 6 to 8 run out of memory."""
    if level == 4:
        return TimedOut()
    return Raise("MemoryError") if level is not None and level >= 6 else Pass()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One reports folder for the module: later runs reuse the timeout verdict from the cache."""
    folder = tmp_path_factory.mktemp("match")
    (folder / "probe.toml").write_text("")  # no config from the folders above
    with routed(match_ladder):
        yield folder / "reports"


def invoke(reports: Path, *args: str) -> tuple[int, str, str]:
    config = str(reports.parent / "probe.toml")
    result = CliRunner().invoke(
        app, ["--config", config, "--reports-dir", str(reports), *args], env={"PROBE_REPORTS_DIR": None}
    )
    return result.exit_code, result.stdout, result.stderr


def run_count(reports: Path) -> int:
    code, out, err = invoke(reports, "runs", "--json", "--limit", "1000")
    assert code == 0, err
    return len(json.loads(out))


def bisect(reports: Path, *args: str) -> dict[str, object]:
    code, out, err = invoke(reports, "bisect", *LIMITS, "--json", "--quiet", *args)
    assert code == 0, err
    data: dict[str, object] = json.loads(out)
    return data


def test_without_match_the_first_failure_of_any_kind_is_taken(reports: Path) -> None:
    data = bisect(reports, "--fresh")
    assert data["first_fail"] == 4 and data["last_pass"] == 3
    assert data["failure"]["class"] == "timeout"  # type: ignore[index]


@pytest.mark.parametrize("pattern", ["oom", "re:memory ?error", "oom::out of memory"])
def test_match_skips_past_a_different_failure_to_the_one_hunted(reports: Path, pattern: str) -> None:
    data = bisect(reports, "--match", pattern)
    assert data["first_fail"] == 6 and data["last_pass"] == 5
    assert data["search_status"] == "found"
    failure = data["failure"]
    assert isinstance(failure, dict) and failure["class"] == "oom"
    assert any("MemoryError" in line for line in failure["evidence"])
    probes = data["probes"]
    assert isinstance(probes, list)
    at_4 = [p for p in probes if p["level"] == 4]
    assert at_4 and all(p["class"] == "timeout" and p["different_failure"] for p in at_4)
    assert not any(p["different_failure"] for p in probes if p["level"] != 4)
    # git bisect skip: after level 4 the search moves to a neighbour of it.
    order = [p["level"] for p in probes]
    assert order[order.index(4) + 1] in (3, 5)
    assert "level 4 failed differently (timeout)" in str(data["message"])
    levels = {row["level"]: row for row in data["levels"]}  # type: ignore[attr-defined]
    assert levels[4]["summary"] == "skip"


def test_a_sweep_with_match_reports_the_different_failure_and_the_hunted_threshold(reports: Path) -> None:
    code, out, err = invoke(reports, "sweep", *LIMITS, "--match", "oom", "--json", "--quiet")
    assert code == 0, err
    data = json.loads(out)
    assert data["first_fail"] == 6 and data["last_pass"] == 5
    assert data["failure"]["class"] == "oom"
    # Level 4 counts as a skip, and a sweep retries skips within its budget (two retries).
    different = [p["level"] for p in data["probes"] if p["different_failure"]]
    assert set(different) == {4} and len(different) <= 3
    assert [row["summary"] for row in data["levels"] if row["level"] == 4] == ["skip"]
    # The rendered report shows the hunted threshold, not the timeout.
    code, out, err = invoke(reports, "report", data["run_id"])
    assert code == 0, err
    assert "level 6 is the first to fail (oom)" in " ".join(out.split())


def test_a_pattern_that_matches_nothing_never_reports_a_threshold(reports: Path) -> None:
    data = bisect(reports, "--match", "ModuleNotFoundError")
    assert data["first_fail"] is None
    assert data["failure"] is None
    assert data["search_status"] != "found"


def test_an_invalid_regex_is_one_line_exit_2_before_any_probe(reports: Path) -> None:
    before = run_count(reports)
    code, _, err = invoke(reports, "bisect", *LIMITS, "--match", "re:(unclosed", "--quiet")
    assert code == 2
    assert err.strip().count("\n") == 0 and "not a valid regular expression" in err
    assert run_count(reports) == before
