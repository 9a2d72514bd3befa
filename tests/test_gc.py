"""`probe gc`: old runs go (folders and journal rows); a baseline nightly still uses stays."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from threshold_probe.cli.app import app


def invoke(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["--config", str(tmp_path / "probe.toml"), "--reports-dir", str(tmp_path / "r"), *args]
    )
    return result.exit_code, result.stdout, result.stderr


def three_runs(tmp_path: Path, config: str = "") -> list[str]:
    (tmp_path / "probe.toml").write_text(config)
    ids = []
    for _ in range(3):
        code, out, err = invoke(tmp_path, "run", "--level", "1", "--fresh", "--json")
        assert code == 0, err
        ids.append(json.loads(out)["run_id"])
    return ids


def run_ids(tmp_path: Path) -> set[str]:
    code, out, _ = invoke(tmp_path, "runs", "--json")
    assert code == 0
    return {r["run_id"] for r in json.loads(out)}


def test_gc_removes_old_runs_and_keeps_the_newest_of_each_series(tmp_path: Path) -> None:
    a, b, c = three_runs(tmp_path)
    for run in (a, b, c):
        assert (tmp_path / "r" / run).is_dir()

    code, out, _ = invoke(tmp_path, "gc", "--older-than", "0s", "--dry-run")
    assert code == 0
    assert f"would remove {a}" in out and f"would remove {b}" in out and "would remove 2 run(s)" in out
    assert run_ids(tmp_path) == {a, b, c}  # a dry run removes nothing
    assert (tmp_path / "r" / a).is_dir()

    code, out, _ = invoke(tmp_path, "gc", "--older-than", "0s", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {r["run_id"] for r in doc["removed"]} == {a, b}
    assert doc["freed_bytes"] > 0 and doc["freed_bytes"] == sum(r["bytes"] for r in doc["removed"])
    assert [k["run_id"] for k in doc["kept"]] == [c] and "baseline" in doc["kept"][0]["reason"]
    assert run_ids(tmp_path) == {c}
    assert not (tmp_path / "r" / a).exists() and not (tmp_path / "r" / b).exists()
    assert (tmp_path / "r" / c).is_dir()


def test_gc_never_removes_a_pinned_nightly_baseline(tmp_path: Path) -> None:
    (tmp_path / "probe.toml").write_text("")
    a = three_runs(tmp_path)[0]
    (tmp_path / "probe.toml").write_text(f'[nightly.baseline]\n"local/native/default" = "{a}"\n')
    code, out, err = invoke(tmp_path, "gc", "--older-than", "0s")
    assert code == 0, err
    assert f"kept {a}: pinned in [nightly.baseline]" in out
    assert "removed 1 run(s), freed" in out
    assert a in run_ids(tmp_path) and (tmp_path / "r" / a).is_dir()


def test_keep_n_keeps_the_newest_runs_whatever_their_age(tmp_path: Path) -> None:
    a, b, c = three_runs(tmp_path)
    code, out, _ = invoke(tmp_path, "gc", "--keep", "2")
    assert code == 0, out
    assert f"removed {a}" in out
    assert run_ids(tmp_path) == {b, c}


def test_bad_age_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "probe.toml").write_text("")
    code, _, err = invoke(tmp_path, "gc", "--older-than", "soon")
    assert code == 2 and "--older-than 'soon'" in err and len(err.strip().splitlines()) == 1
