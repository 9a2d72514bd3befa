"""Shared helpers for the report, history, compare and nightly tests: real runs through the CLI,
and headless Chromium. This module holds no tests itself."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from threshold_probe.cli.app import app

ASSETS = Path(__file__).parent / "assets"
#: Eight levels; memory_mb grows 50, 110, 170, ... MiB while everything else stays small.
MEMORY_LADDER = ASSETS / "ladders" / "memory.toml"
JUNIT_XSD = ASSETS / "junit-10.xsd"

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def probe(workdir: Path, *args: str, config: Path | None = None) -> Result:
    """Run `probe` in-process with its own reports folder and config (an empty one by default)."""
    if config is None:
        config = workdir / "probe.toml"
        if not config.exists():
            config.write_text("")
    runner = CliRunner()
    res = runner.invoke(
        app, ["--config", str(config), "--reports-dir", str(workdir / "reports"), *args], catch_exceptions=False
    )
    return Result(res.exit_code, res.stdout, res.stderr)


def real_sweep(workdir: Path, memory: str, *extra: str) -> dict[str, Any]:
    """A real sweep of the memory ladder on the local cluster under a real memory limit."""
    res = probe(workdir, "sweep", "--ladder", str(MEMORY_LADDER), "--memory", memory, "--json", "--quiet", *extra)
    assert res.code == 0, res.err
    data: dict[str, Any] = res.json()
    return data


def _limit_data(limit: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def probe_under_data_limit(
    workdir: Path, data_limit: int, *args: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`probe ARGS` in a child process whose probes inherit a real RLIMIT_DATA from it.

    The machine changed (as when an administrator lowers `ulimit -d`) while the command, the
    config and the interpreter did not: the same cell, a different result.
    """
    if config is None:
        config = workdir / "probe.toml"
        if not config.exists():
            config.write_text("")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "threshold_probe",
            "--config",
            str(config),
            "--reports-dir",
            str(workdir / "reports"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=workdir,
        preexec_fn=lambda: _limit_data(data_limit),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "COLUMNS": "200"},
    )


def sweep_under_data_limit(workdir: Path, memory: str, data_limit: int, *extra: str) -> dict[str, Any]:
    """real_sweep (dispatching every probe again) under a real RLIMIT_DATA: see probe_under_data_limit."""
    args = ("sweep", "--ladder", str(MEMORY_LADDER), "--memory", memory, "--json", "--quiet", "--fresh", *extra)
    done = probe_under_data_limit(workdir, data_limit, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def chromium() -> str:
    """The Chromium binary (Debian's `chromium` package; .ci/install-system.sh installs it)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("chromium is not installed: apt-get install --no-install-recommends chromium")


def chromium_dom(page: Path, profile: Path) -> str:
    """The page's DOM after Chromium loaded and laid it out (headless, no network)."""
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def chromium_screenshot(page: Path, png: Path, profile: Path, size: str = "1280,2400") -> bytes:
    """A PNG screenshot of the page taken by headless Chromium."""
    done = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={size}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return png.read_bytes()
