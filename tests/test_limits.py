"""Limits are validated before any probe and enforced as the report says (local cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--memory", "0"], "--memory 0"),
        (["--memory", "0MB"], "--memory 0MB"),
        (["--memory", "-5"], "--memory -5"),
        (["--time", "0"], "--time 0"),
        (["--time", "0s"], "--time 0s"),
        (["--time", "-3s"], "--time -3s"),
        (["--cores", "0"], "--cores 0"),
        (["--cores", "-1"], "--cores -1"),
    ],
)
def test_zero_or_negative_limit_is_exit_2_before_any_probe(
    cli: CliRunner, tmp_path: Path, args: list[str], words: str
) -> None:
    for command in ("run", "bisect"):
        code, out, err = invoke(cli, tmp_path, command, *args, "--json", "--quiet")
        assert code == 2, (command, out, err)
        line = one_line(err)
        assert words in line, line
        assert "zero" in line or "at least 1" in line, line
    # Nothing was dispatched: no run was recorded.
    assert not list((tmp_path / "reports").glob("*/run.json"))


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ('memory = "0"', "memory 0"),
        ('memory = "-1GB"', "memory -1GB"),
        ('time = "0s"', "time 0s"),
        ('time = "-1m"', "time -1m"),
        ("cores = 0", "cores"),
    ],
)
def test_zero_or_negative_limit_in_probe_toml_is_exit_2(
    cli: CliRunner, tmp_path: Path, setting: str, words: str
) -> None:
    (tmp_path / "probe.toml").write_text(f'[clusters.box]\ntype = "local"\n{setting}\n')
    code, out, err = invoke(cli, tmp_path, "run", "--cluster", "box", "--json", "--quiet")
    assert code == 2, (out, err)
    line = one_line(err)
    assert "probe.toml" in line and "clusters.box" in line and words in line, line
