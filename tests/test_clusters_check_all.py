"""`probe clusters check` with no name: every configured cluster, in parallel, in one table."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app

pytestmark = pytest.mark.ssh


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a real connection refusal."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), "clusters", "check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_every_cluster_usable_exits_0(testbed: Testbed, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "probe.toml",
        {
            "one": testbed.cluster_table("ssh", workdir="~/tp-all-one"),
            "two": testbed.cluster_table("ssh2", workdir="~/tp-all-two"),
        },
    )
    code, out, err = run(config)
    assert code == 0, out + err
    assert "3 clusters" in out  # local is always there
    for name in ("local", "one", "two"):
        assert name in out
    assert "fail" not in out


def test_one_unusable_cluster_fails_the_whole_check_with_exit_3(testbed: Testbed, tmp_path: Path) -> None:
    port = closed_port()
    config = write_config(
        tmp_path / "probe.toml",
        {
            "good": testbed.cluster_table("ssh", workdir="~/tp-all-good"),
            "down": testbed.cluster_table("ssh", port=port, workdir="~/tp-all-down", retries=0),
        },
    )
    code, out, err = run(config)
    assert code == 3, out + err
    lines = [line for line in out.splitlines() if "│" in line]
    good = next(line for line in lines if " good " in line)
    down = next(line for line in lines if " down " in line)
    assert " ok " in good and " fail " in down
    assert "refused" in out
    assert err.strip().splitlines() == ["error: 1 of 3 clusters not usable: down"]

    code, out, _ = run(config, "--json")
    assert code == 3
    rows = {r["cluster"]: r for r in json.loads(out)}
    assert set(rows) == {"local", "good", "down"}
    assert rows["good"]["usable"] and rows["local"]["usable"] and not rows["down"]["usable"]
