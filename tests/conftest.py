"""Shared test setup: the loopback testbed fixtures (tests/testbed/fixtures.py), every-cluster runs,
the in-process cluster (tests/inprocess_cluster.py), and the `testbed` and `timeout` marks.

`testbed` marks an integration test against real components. It is set here on every test that
uses the `testbed` fixture or carries `ssh` or `slurm`, and on the local-cluster integration tests
listed below (real processes killed, real limits, real mounts, a real browser), which take
seconds each. `pytest -m "not testbed"` (or `bash scripts/test -m "not testbed"`, which then
starts no servers) runs the fast part: the unit tests, the in-process cluster and the quick
`local` runs, in under 3 minutes on 2 cores.
"""

from __future__ import annotations

import os

import pytest

# Each test chooses the terminal it runs under (a COLUMNS of its own, or none: piped). The
# workers of pytest-xdist inherit COLUMNS=80 and LINES=24, which would fold long lines there only.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

pytest_plugins = ["tests.testbed.fixtures", "tests.every_cluster", "tests.inprocess_cluster"]

#: Markers that say a test talks to the loopback servers.
_TESTBED_MARKERS = ("ssh", "slurm")

#: Local-cluster integration tests, by node id prefix: what real component each one exercises.
_LOCAL_INTEGRATION = {
    "tests/test_resume_kill.py": "kill -9 of real probe processes, then resume",
    "tests/test_interrupt_signals.py": "real SIGINT and SIGTERM to real probe processes",
    "tests/test_journal_safety.py": "a real full tmpfs, a real read-only bind mount, real damaged journals",
    "tests/test_run_ownership.py": "two real probe processes resuming one run",
    "tests/test_store_files.py::test_many_processes_open_one_new_journal_at_once": "many real processes",
    "tests/test_isolate_cli.py": "isolation under a real 300MB RLIMIT_AS",
    "tests/test_undecided_cli.py": "a real time limit and a real RLIMIT_AS on one ladder",
    "tests/test_flaky_cli.py::test_a_sweep_reports": "real out-of-memory on a random half of the probes",
    "tests/test_flaky_cli.py::test_a_bisect_reports": "real out-of-memory on a random half of the probes",
    "tests/test_flaky_cli.py::test_run_repeat": "real out-of-memory on a random half of the probes",
    "tests/test_history.py": "real runs under a real RLIMIT_DATA",
    "tests/test_compare.py": "real runs under a real RLIMIT_DATA",
    "tests/test_cells.py": "real runs with a second real interpreter",
    "tests/test_nightly.py": "real matrix runs and a real dead cluster",
    "tests/test_pipelines_compare.py": "real runs of every pipeline",
    "tests/test_pipelines_source.py::test_bisect_and_isolate": "a real bisect and isolate through the source pipeline",
    "tests/test_pipelines_source.py::test_features_ladder_closure": "real runs through two pipelines",
    "tests/test_pipelines_inline.py::test_bisect_finds": "a real bisect over the real argument-size limit",
    "tests/test_pipelines_submitit.py::test_local_timeout": "a real time limit through submitit",
    "tests/test_ladders_clean.py::test_source_runners_pass_every_level": "every level of the default ladder, twice",
    "tests/test_ladders_clean.py::test_isolate_names_the_feature": "a real bisect and isolate per feature",
    "tests/test_ladders_clean.py::test_every_level_of_the_size_ladders": "every level of a ladder run for real",
    "tests/test_check.py::test_a_run_driven_by_memory": "a real bisect and isolate under a real memory limit",
    "tests/test_runner.py::test_cloudpickle_version_difference": "a real venv with another cloudpickle",
    "tests/test_your_function_clusters.py::test_scaled_bisect_on_a_real_memory_limit[local]": "a real RLIMIT_AS",
    "tests/test_render_html_chromium.py": "a real headless Chromium",
    "tests/test_check_precommit.py": "real pre-commit",
    "tests/test_shrink.py": "real shrinks, each candidate a real probe, kill -9 and resume",
    "tests/test_repro.py": "repro folders run by hand under real limits",
    "tests/test_triage.py": "real probes of a runner-style test suite, a real SIGINT and resume",
    "tests/test_report_reading.py": "a real bisect and isolate under a real RLIMIT_AS, a real triage",
    "tests/test_explain.py": "real bisects, isolates and shrinks under a real memory limit, kill -9 and resume",
    "tests/test_journal_versions.py": "real runs on a migrated journal, a real read-only bind mount",
    "tests/test_after_run.py": "real bisects, sweeps and isolates under a real RLIMIT_AS",
}
#: Fixtures that record a real run for the tests that use them.
_LOCAL_INTEGRATION_FIXTURES = {
    "source_run": "a real bisect and isolate through the source pipeline (tests/test_check.py)",
}

#: The slowest tests (40-level ladders over real servers take about 170 s on an idle machine)
#: get this limit instead of the global one in pyproject.toml, unless they set their own.
SLOW_TIMEOUT_S = 1800


def _local_integration(item: pytest.Item) -> bool:
    nodeid = item.nodeid
    if any(nodeid == prefix or nodeid.startswith(prefix) for prefix in _LOCAL_INTEGRATION):
        return True
    return any(name in _LOCAL_INTEGRATION_FIXTURES for name in getattr(item, "fixturenames", ()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `testbed` the tests of the loopback servers and the local integration tests; give the
    `slow` ones a longer timeout."""
    for item in items:
        uses_fixture = "testbed" in getattr(item, "fixturenames", ())
        if uses_fixture or any(item.get_closest_marker(name) for name in _TESTBED_MARKERS) or _local_integration(item):
            item.add_marker(pytest.mark.testbed)
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
