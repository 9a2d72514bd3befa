"""A 1,000-level ladder bisected through `probe bisect` on the in-process cluster.

The search alone is bounded in test_search_bisect.py; this proves the bound holds for the whole
command: the session's oracle, the journal and resume bookkeeping dispatch nothing beyond what the
search asks for, so the cluster runs at most ceil(log2 1000) + 2 = 12 search probes, plus one
confirmation probe of each boundary level.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.inprocess_cluster import InProcessCluster, Raise, first_fail
from tests.test_report_support import probe

BOUND = math.ceil(math.log2(1000)) + 2  # 12

LADDER = """\
name = "thousand"
description = "A thousand levels; only the line count grows."

[ramp]
count = 1000
loc = { start = 5, step = 1 }
"""


@pytest.mark.parametrize("threshold", [2, 333, 512, 999, 1000])
def test_a_thousand_level_ladder_is_bisected_within_log2_plus_two_search_probes(
    tmp_path: Path, inprocess: Callable[..., InProcessCluster], threshold: int
) -> None:
    ladder = tmp_path / "thousand.toml"
    ladder.write_text(LADDER)
    cluster = inprocess(first_fail(threshold, Raise("MemoryError")))
    res = probe(tmp_path, "bisect", "--ladder", str(ladder), "--fresh", "--json", "--quiet")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert (summary["last_pass"], summary["first_fail"]) == (threshold - 1, threshold)
    # Every job the cluster ran is counted: the search's own probes, then one confirmation per
    # boundary level (--confirm defaults to 1).
    assert summary["search_probes"] <= BOUND
    assert summary["confirm_probes"] == 2
    assert len(cluster.jobs) == summary["search_probes"] + summary["confirm_probes"]
    assert len(cluster.jobs) <= BOUND + 2
