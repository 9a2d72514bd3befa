"""Shared test setup: the loopback testbed fixtures (tests/testbed/fixtures.py), every-cluster runs,
and the `testbed` marker on every test that needs the loopback servers.

`pytest -m "not testbed"` (or `bash scripts/test -m "not testbed"`, which then starts no servers) runs
the fast part: unit tests, the in-process cluster and the quick `local` runs.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.testbed.fixtures", "tests.every_cluster", "tests.inprocess_cluster"]

#: Markers that say a test talks to the loopback servers.
_TESTBED_MARKERS = ("ssh", "slurm")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `testbed` every test that uses the testbed fixture or carries an `ssh`/`slurm` marker."""
    for item in items:
        uses_fixture = "testbed" in getattr(item, "fixturenames", ())
        if uses_fixture or any(item.get_closest_marker(name) for name in _TESTBED_MARKERS):
            item.add_marker(pytest.mark.testbed)
