"""`sweep|bisect --function FILE:FUNC --scale NAME=...`: one argument of a user's function as the ladder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.target import scale_values

SCALED = Path(__file__).parent / "assets" / "functions" / "scaled.py"
# 300 MB of address space: 100,000 KiB (98 MiB) fits beside the runner, 400,000 KiB (390 MiB) cannot.
VALUES = "1000,10000,50000,100000,400000,800000,1600000"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def run_json(cli: CliRunner, tmp_path: Path, *args: str) -> dict[str, Any]:
    code, out, err = invoke(cli, tmp_path, *args, "--json", "--quiet")
    assert code == 0, out + err
    data: dict[str, Any] = json.loads(out)
    return data


def test_steps_are_geometric_over_decades_and_linear_otherwise() -> None:
    name, values = scale_values("n=1000..10000000")
    assert name == "n" and values[0] == 1000 and values[-1] == 10_000_000
    assert 1_000_000 in values and 3_162_278 in values and len(values) == 9
    _, linear = scale_values("n=10..50", steps=5)
    assert linear == [10, 20, 30, 40, 50]
    _, given = scale_values("n", values="1,10,100")
    assert given == [1, 10, 100]


def test_scaled_bisect_finds_the_value_on_a_real_memory_limit(cli: CliRunner, tmp_path: Path) -> None:
    args = ("bisect", "-f", f"{SCALED}:allocate", "--scale", "kib", "--values", VALUES, "--memory", "300MB")
    data = run_json(cli, tmp_path, *args)
    assert data["scale"]["name"] == "kib"
    assert data["scale"]["first_fail_value"] == 400000
    assert data["scale"]["last_pass_value"] == 100000
    assert data["failure"]["class"] == "oom"
    assert "allocate fails from kib=400,000 (oom on local); kib=100,000 passes" in data["message"]
    # The terminal report speaks in values, not level numbers.
    code, out, err = invoke(cli, tmp_path, "report", data["run_id"])
    assert code == 0, err
    assert "fails from kib=400,000 (oom); kib=100,000 passes" in out
    assert "kib=1,600,000" in out
    code, out, err = invoke(cli, tmp_path, "report", data["run_id"], "--format", "md")
    assert code == 0, err
    assert "| **kib=400,000** |" in out
    # The same question again reuses every verdict (same function, arguments and values).
    again = run_json(cli, tmp_path, *args)
    assert again["scale"]["first_fail_value"] == 400000
    assert all(p["cached"] for p in again["probes"])


def test_scaled_sweep_and_a_bound_argument(cli: CliRunner, tmp_path: Path) -> None:
    data = run_json(
        cli,
        tmp_path,
        "sweep",
        "-f",
        f"{SCALED}:allocate",
        "--scale",
        "kib=1000..400000",
        "--steps",
        "3",
        "--arg",
        "fill=7",
        "--memory",
        "300MB",
    )
    assert data["scale"]["values"] == [1000, 20000, 400000]  # geometric: 400000 / 1000 >= 100
    assert [p["verdict"] for p in sorted(data["probes"], key=lambda p: p["level"])] == ["pass", "pass", "fail"]
    assert data["scale"]["first_fail_value"] == 400000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("bisect", "-f", f"{SCALED}:allocate"), "needs --scale"),
        (("bisect", "--scale", "kib=1..10"), "apply to --function"),
        (("bisect", "-f", f"{SCALED}:allocate", "--scale", "kib=10..1"), "must be below"),
        (("bisect", "-f", f"{SCALED}:allocate", "--scale", "kb=1..10"), "takes no argument 'kb'"),
        (("bisect", "-f", f"{SCALED}:allocate", "--scale", "kib", "--values", "3,2"), "must grow"),
        (("bisect", "-f", f"{SCALED}:allocate", "--scale", "kib=1..10", "--isolate"), "--isolate"),
    ],
)
def test_bad_scales_are_one_line_exit_2(cli: CliRunner, tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    code, _, err = invoke(cli, tmp_path, *args)
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], err
