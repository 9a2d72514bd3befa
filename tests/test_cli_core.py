"""End-to-end tests of the core commands on the built-in local cluster, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.inprocess_cluster import InProcessCluster, Raise, first_fail
from threshold_probe.cli.app import app

ASSETS = Path(__file__).parent / "assets"
MEMORY_LADDER = str(ASSETS / "ladders" / "memory.toml")
FAULTS = ASSETS / "functions" / "faults.py"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def test_bisect_finds_real_memory_threshold(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli, tmp_path, "bisect", "--ladder", MEMORY_LADDER, "--memory", "300MB", "--json", "--quiet"
    )
    assert code == 0, err
    data = json.loads(out)
    for key in ("run_id", "cluster", "pipeline", "ladder", "last_pass", "first_fail", "failure", "probes"):
        assert key in data
    assert data["cluster"] == "local" and data["pipeline"] == "native" and data["ladder"] == "memory"
    first_fail, last_pass = data["first_fail"], data["last_pass"]
    assert first_fail is not None and last_pass == first_fail - 1
    # 50 + 60*(n-1) MiB: the limit of 300 MiB of address space lies between two levels.
    assert 50 + 60 * (last_pass - 1) < 300
    assert data["failure"]["class"] == "oom"
    assert any("MemoryError" in line for line in data["failure"]["evidence"])
    assert data["failure"]["signature"]
    for probe in data["probes"]:
        assert {"level", "verdict", "class", "timings", "peak_rss_mb"} <= set(probe)
    # Bisection: both ends and a binary search over 8 levels, within ceil(log2 8) + 2 probes,
    # then one confirmation probe of each boundary level (the default --confirm 1).
    assert data["search_probes"] <= 3 + 2
    assert data["confirm_probes"] == 2
    assert len(data["probes"]) == data["search_probes"] + data["confirm_probes"]

    # A sweep of the same ladder and limit agrees level by level with the bisect's boundary.
    code, out, err = invoke(
        cli, tmp_path, "sweep", "--ladder", MEMORY_LADDER, "--memory", "300MB", "--json", "--quiet", "--fresh"
    )
    assert code == 0, err
    sweep = json.loads(out)
    assert sweep["first_fail"] == first_fail
    verdicts = {p["level"]: p["verdict"] for p in sweep["probes"]}
    assert all(v == "pass" for lvl, v in verdicts.items() if lvl < first_fail)
    assert all(v == "fail" for lvl, v in verdicts.items() if lvl >= first_fail)

    # The report renders the run again, and `runs` lists both runs.
    code, out, err = invoke(cli, tmp_path, "report", data["run_id"])
    assert code == 0, err
    assert "oom" in out
    code, out, err = invoke(cli, tmp_path, "runs", "--json")
    assert code == 0, err
    assert {r["run_id"] for r in json.loads(out)} >= {data["run_id"], sweep["run_id"]}


def test_bisect_resumes_from_cache_without_new_probes(
    cli: CliRunner, tmp_path: Path, inprocess: Callable[..., InProcessCluster]
) -> None:
    # On the in-process cluster, which counts the jobs it is given: level 5 raises MemoryError.
    cluster = inprocess(first_fail(5, Raise("MemoryError")))
    args = ("bisect", "--ladder", MEMORY_LADDER, "--memory", "300MB", "--json", "--quiet")
    _, out, _ = invoke(cli, tmp_path, *args)
    first = json.loads(out)
    dispatched = len(cluster.jobs)
    assert first["first_fail"] == 5 and dispatched == len(first["probes"])
    _, out, _ = invoke(cli, tmp_path, *args)
    second = json.loads(out)
    assert second["first_fail"] == first["first_fail"]
    assert all(p["cached"] for p in second["probes"])
    assert len(cluster.jobs) == dispatched  # nothing dispatched again


def test_workload_that_raises_is_exception_with_traceback(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(cli, tmp_path, "run", "--function", f"{FAULTS}:raises", "--json", "--quiet")
    assert code == 1, err  # the probe failed
    data = json.loads(out)
    (probe,) = data["probes"]
    assert probe["verdict"] == "fail" and probe["class"] == "exception"
    assert data["failure"]["class"] == "exception"
    evidence = "\n".join(data["failure"]["evidence"])
    assert "ZeroDivisionError" in evidence
    assert "Traceback" in evidence or "line" in evidence


def test_exit_zero_without_result_is_no_result(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(cli, tmp_path, "run", "--function", f"{FAULTS}:exits_quietly", "--json", "--quiet")
    assert code == 1, err  # the probe failed
    (probe,) = json.loads(out)["probes"]
    assert probe["verdict"] == "fail" and probe["class"] == "no_result"
    assert probe["exit_code"] == 0


def test_run_shows_observation(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(cli, tmp_path, "run", "--level", "3", "--ladder", MEMORY_LADDER)
    assert code == 0, err
    assert "pass" in out and "execute" in out


def _one_line_error(code: int, err: str, expected_code: int, needle: str) -> None:
    assert code == expected_code
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0]
    assert "Traceback" not in err


def test_unknown_cluster_is_one_line_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "bisect", "--cluster", "nosuch")
    _one_line_error(code, err, 2, "unknown cluster 'nosuch'")


def test_malformed_ladder_is_one_line_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "levels", "--ladder", str(ASSETS / "ladders" / "malformed.toml"))
    _one_line_error(code, err, 2, "level 2")


def test_missing_file_is_one_line_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "sweep", "--ladder", str(tmp_path / "nope.toml"))
    _one_line_error(code, err, 2, "nope.toml")
    code, _, err = invoke(cli, tmp_path, "run", "--function", f"{tmp_path / 'nope.py'}:f")
    _one_line_error(code, err, 2, "nope.py")
    code, _, err = invoke(cli, tmp_path, "--config", str(tmp_path / "nope.toml"), "levels")
    _one_line_error(code, err, 2, "nope.toml")


def test_bad_config_is_one_line_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "probe.toml"
    cfg.write_text('[clusters.x]\ntype = "ssh"\nport = "not a port"\n')
    code, _, err = invoke(cli, tmp_path, "--config", str(cfg), "bisect", "--cluster", "x")
    _one_line_error(code, err, 2, "probe.toml")
    cfg.write_text("[clusters\n")
    code, _, err = invoke(cli, tmp_path, "--config", str(cfg), "levels")
    _one_line_error(code, err, 2, "not valid TOML")


def test_syntax_error_in_user_file(cli: CliRunner, tmp_path: Path) -> None:
    code, _, err = invoke(cli, tmp_path, "run", "--function", f"{ASSETS / 'functions' / 'broken.py'}:oops")
    _one_line_error(code, err, 2, "broken.py:1")
    code, out, err = invoke(cli, tmp_path, "measure", str(ASSETS / "functions"), "--json")
    data = json.loads(out)
    assert any(e["path"].endswith("broken.py") and e["lineno"] == 1 for e in data["errors"])
    assert {f["name"] for f in data["functions"]} >= {"raises", "fine"}


def test_unreachable_host_is_one_line_exit_3(cli: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "probe.toml"
    cfg.write_text('[clusters.gone]\ntype = "ssh"\nhost = "127.0.0.1"\nport = 1\nconnect_timeout = 2\n')
    code, _, err = invoke(cli, tmp_path, "--config", str(cfg), "bisect", "--cluster", "gone", "--quiet")
    _one_line_error(code, err, 3, "gone")


def test_version_and_help(cli: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(cli, tmp_path, "--version")
    assert code == 0 and out.startswith("threshold-probe ")
    code, out, _ = invoke(cli, tmp_path, "bisect", "--help")
    assert code == 0 and "--memory" in out and "first failing level" in out


def test_levels_writes_readable_sources_and_prints_json(cli: CliRunner, tmp_path: Path) -> None:
    out_dir = tmp_path / "sources"
    code, out, err = invoke(cli, tmp_path, "levels", "--ladder", "seed", "--write", str(out_dir), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["ladder"] == "seed" and [row["level"] for row in data["levels"]] == [1, 2, 3, 4, 5]
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == [f"level_{n:03d}.py" for n in range(1, 6)]
    for n, row in enumerate(data["levels"], start=1):
        source = (out_dir / f"level_{n:03d}.py").read_text()
        compile(source, f"level_{n}", "exec")
        assert f"def workload_{n}(" in source
        assert row["metrics"]["subprocess_calls"] == row["values"]["subprocess_calls"]


def test_measure_sorts_and_keeps_the_top(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(cli, tmp_path, "measure", str(FAULTS), "--json", "--sort", "loc", "--top", "2")
    assert code == 0, err
    funcs = json.loads(out)["functions"]
    assert len(funcs) == 2
    assert funcs[0]["loc"] >= funcs[1]["loc"]
    assert funcs[0]["name"] == "raises"
    code, out, err = invoke(cli, tmp_path, "measure", f"{FAULTS}:fine", "--json")
    assert code == 0, err
    assert [f["name"] for f in json.loads(out)["functions"]] == ["fine"]
    code, _, err = invoke(cli, tmp_path, "measure", str(FAULTS), "--sort", "colour")
    _one_line_error(code, err, 2, "cannot sort by 'colour'")
