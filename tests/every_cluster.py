"""Running one test on every kind of cluster: local, the testbed's SSH host and its SLURM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: Parametrize a test's `cluster` argument with these; the far-side ones carry their markers.
CLUSTERS = [
    "local",
    pytest.param("testbed-ssh", marks=pytest.mark.ssh),
    pytest.param("testbed-slurm", marks=pytest.mark.slurm),
]


@pytest.fixture
def cluster_config(request: pytest.FixtureRequest) -> Path | None:
    """The testbed's config for the far-side clusters (local needs none)."""
    if request.node.callspec.params["cluster"] == "local":
        return None
    tb: Any = request.getfixturevalue("testbed")
    if request.node.callspec.params["cluster"] not in tb.clusters:
        pytest.fail("the testbed has no SLURM cluster: run the tests through scripts/test", pytrace=False)
    return Path(tb.config_path)
