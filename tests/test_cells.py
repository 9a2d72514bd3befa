"""The cache knows what it reuses, and compare/history only compare runs of one cell.

Real runs on the local cluster; the second interpreter is a real venv of this Python with the
same cloudpickle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from tests.test_report_support import MEMORY_LADDER, probe
from tests.test_runner import _cached_venv
from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed


def _config(path: Path, python: str, memory: str = "400MB") -> Path:
    path.write_text(f'[clusters.local]\ntype = "local"\npython = {json.dumps(python)}\nmemory = "{memory}"\n')
    return path


def _sweep(workdir: Path, config: Path, *extra: str) -> dict[str, Any]:
    res = probe(workdir, "sweep", "--ladder", str(MEMORY_LADDER), "--json", "--quiet", *extra, config=config)
    assert res.code == 0, res.err
    data: dict[str, Any] = res.json()
    return data


def test_another_interpreter_reuses_nothing_and_reuse_names_its_runs(tmp_path: Path) -> None:
    # The same Python version and cloudpickle, in another real interpreter: only the config differs.
    other = _cached_venv(sys.executable, f"cloudpickle=={cloudpickle.__version__}")
    assert Path(other) != Path(sys.executable)
    first_cfg = _config(tmp_path / "first.toml", sys.executable)
    other_cfg = _config(tmp_path / "other.toml", other)

    first = _sweep(tmp_path, first_cfg)
    assert not any(p["cached"] for p in first["probes"])
    # The same cluster as configured and seen: every verdict is reused.
    again = _sweep(tmp_path, first_cfg)
    assert again["probes"] and all(p["cached"] for p in again["probes"])

    # Another interpreter in [clusters.local] python: nothing is reused, all probes run.
    moved = _sweep(tmp_path, other_cfg)
    assert moved["probes"] and not any(p["cached"] for p in moved["probes"])

    # Each run says how many verdicts it reused, and from which runs.
    assert first["reuse"] == {"reused": 0, "probes": len(first["probes"]), "runs": [], "note": None}
    assert all(p["cached_from_run"] == first["run_id"] for p in again["probes"])
    assert again["reuse"]["reused"] == len(again["probes"]) and again["reuse"]["runs"] == [first["run_id"]]
    assert moved["reuse"]["reused"] == 0 and moved["reuse"]["runs"] == []
    assert moved["cell"]["fingerprint"]["config"]["python"] == other
    assert moved["cell"]["fingerprint"]["far_side"]["cloudpickle"] == cloudpickle.__version__

    # bisect (like run and isolate) reuses by default, from the run of the same fingerprint only.
    bis = probe(tmp_path, "bisect", "--ladder", str(MEMORY_LADDER), "--json", "--quiet", config=other_cfg).json()
    assert bis["reuse"]["reused"] > 0 and bis["reuse"]["runs"] == [moved["run_id"]]
    run = probe(tmp_path, "run", "--ladder", str(MEMORY_LADDER), "--level", "2", "--json", "--quiet", config=other_cfg)
    assert run.json()["reuse"]["runs"] == [moved["run_id"]]

    # Every report format says how many verdicts were reused and from which run.
    words = f"{len(again['probes'])} of {len(again['probes'])} verdicts reused from run {first['run_id']}"
    for fmt in ("md", "html", "rich"):
        rep = probe(tmp_path, "report", again["run_id"], "--format", fmt, config=first_cfg)
        assert rep.code == 0, rep.err
        assert words in " ".join(rep.out.split()), fmt
    rep = probe(tmp_path, "report", moved["run_id"], "--format", "md", config=other_cfg)
    assert f"none of {len(moved['probes'])} verdicts reused" in rep.out

    # Without the preflight the far side is unknown: nothing is reused, and the report says why.
    blind = _sweep(tmp_path, first_cfg, "--no-preflight")
    assert not any(p["cached"] for p in blind["probes"])
    assert "without the preflight" in (blind["reuse"]["note"] or "")


def test_compare_of_different_limits_is_not_comparable(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "probe.toml", sys.executable, "1GB")
    a = _sweep(tmp_path, cfg)
    b = _sweep(tmp_path, cfg, "--memory", "300MB")
    assert b["first_fail"] is not None and (a["first_fail"] is None or b["first_fail"] < a["first_fail"])

    res = probe(tmp_path, "compare", a["run_id"], b["run_id"], "--json", config=cfg)
    assert res.code == 0, res.err
    cmp = res.json()
    assert cmp["same_cell"] is False and cmp["regressed"] is False and cmp["regressions"] == []
    assert cmp["differences"][0] == "limits: memory 1GB, time 120s -> memory 300MB, time 120s"
    assert all(not f["regression"] for f in cmp["flipped"])

    text = probe(tmp_path, "compare", a["run_id"], b["run_id"], config=cfg)
    assert text.code == 0
    out = " ".join(text.out.split())
    assert "not comparable: limits: memory 1GB, time 120s -> memory 300MB, time 120s" in out
    assert "regression:" not in out
    # What differs comes first.
    assert out.index("not comparable") < out.index("threshold")


def test_history_groups_runs_by_cell(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "probe.toml", sys.executable, "400MB")
    loose = [_sweep(tmp_path, cfg, "--fresh") for _ in range(2)]
    tight = _sweep(tmp_path, cfg, "--memory", "250MB")
    part = _sweep(tmp_path, cfg, "--from", "2", "--to", "5")

    data = probe(tmp_path, "history", "--json", config=cfg).json()
    cells = data["cells"]
    assert len(cells) == 3
    by_runs = {tuple(c["run_ids"]): c for c in cells.values()}
    assert set(by_runs) == {(loose[0]["run_id"], loose[1]["run_id"]), (tight["run_id"],), (part["run_id"],)}
    assert "memory 250MB" in by_runs[(tight["run_id"],)]["label"]
    assert "levels 2..5" in by_runs[(part["run_id"],)]["label"]
    text = probe(tmp_path, "history", config=cfg)
    assert text.code == 0 and "levels 2..5" in " ".join(text.out.split())


@pytest.mark.ssh
def test_ssh_fingerprint_sees_the_far_side_and_a_config_change_reuses_nothing(testbed: Testbed, tmp_path: Path) -> None:
    config = write_config(tmp_path / "probe.toml", {"c": testbed.cluster_table("ssh", memory="400MB")})
    # The same cluster name, host and interpreter; another workdir: another resolved config.
    moved = write_config(
        tmp_path / "moved.toml",
        {"c": testbed.cluster_table("ssh", memory="400MB", workdir="~/.threshold-probe-other")},
    )
    args = ("sweep", "--ladder", str(MEMORY_LADDER), "--to", "3", "--cluster", "c", "--json", "--quiet")
    first = probe(tmp_path, *args, config=config).json()
    far = first["cell"]["fingerprint"]["far_side"]
    assert far["python"] and far["cloudpickle"] == cloudpickle.__version__ and far["hostname"]
    again = probe(tmp_path, *args, config=config).json()
    assert again["reuse"]["reused"] == 3 and again["reuse"]["runs"] == [first["run_id"]]
    assert again["cell"] == first["cell"]
    other = probe(tmp_path, *args, config=moved).json()
    assert other["reuse"]["reused"] == 0 and not any(p["cached"] for p in other["probes"])
    assert other["cell"]["fingerprint"]["config"]["workdir"] == "~/.threshold-probe-other"


def test_runs_of_user_functions_are_keyed_by_function(tmp_path: Path) -> None:
    funcs = tmp_path / "funcs.py"
    funcs.write_text("def small():\n    return 1\n\n\ndef other():\n    return 2\n")
    cfg = _config(tmp_path / "probe.toml", sys.executable)
    runs = {}
    for name in ("small", "other", "small"):
        res = probe(tmp_path, "run", "--function", f"{funcs}:{name}", "--json", "--quiet", "--fresh", config=cfg)
        assert res.code == 0, res.err
        runs.setdefault(name, []).append(res.json())
    a, b = runs["small"][0], runs["other"][0]
    cmp = probe(tmp_path, "compare", a["run_id"], b["run_id"], "--json", config=cfg).json()
    assert cmp["same_cell"] is False
    assert cmp["differences"] == [f"function: {funcs}:small -> {funcs}:other"]
    same = probe(tmp_path, "compare", a["run_id"], runs["small"][1]["run_id"], "--json", config=cfg).json()
    assert same["same_cell"] is True and same["differences"] == []
    cells = probe(tmp_path, "history", "--json", config=cfg).json()["cells"]
    assert sorted(len(c["run_ids"]) for c in cells.values()) == [1, 2]
