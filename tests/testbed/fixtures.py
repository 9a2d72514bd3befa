"""Pytest fixtures for the loopback testbed (loaded with `pytest_plugins = ["tests.testbed.fixtures"]`).

`testbed` (session scope) yields a started Testbed: `.config_path` (a probe.toml naming
`testbed-ssh`, `testbed-ssh2` and, with SLURM, `testbed-slurm`), `.clusters`, `.hosts` (to kill,
pause or rekey an sshd), `.ssh_config`, `.known_hosts`, `.client_key`, `.python`.

When TP_TESTBED_CONFIG is set (a config written by `tests/testbed/up`), the running testbed is
reused and left running; its state folder is read from the config's header comment.
Otherwise a fresh testbed is started in a temporary state folder and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.testbed import Testbed, TestbedError, start, state_dir_of, stop, write_probe_toml


def _require_tools() -> None:
    tools = ("sshd", "ssh-keygen", "useradd")
    missing = [t for t in tools if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        pytest.fail(f"testbed needs {', '.join(missing)}: run .ci/install-system.sh", pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("the loopback testbed starts sshd and creates a user: run the tests as root", pytrace=False)


@pytest.fixture(scope="session")
def testbed() -> Iterator[Testbed]:
    """The running loopback testbed (reused from TP_TESTBED_CONFIG, or started for this session)."""
    reuse = os.environ.get("TP_TESTBED_CONFIG")
    if reuse:
        tb = Testbed.load(state_dir_of(Path(reuse)).resolve())
        if tb.config_path != Path(reuse).resolve():
            pytest.fail(
                f"TP_TESTBED_CONFIG={reuse} but the testbed in {tb.state_dir} wrote {tb.config_path}",
                pytrace=False,
            )
        yield tb
        return
    _require_tools()
    state_dir = Path(tempfile.mkdtemp(prefix="tp-testbed-"))
    try:
        tb = start(state_dir / "probe.toml", state_dir)
    except TestbedError as exc:
        shutil.rmtree(state_dir, ignore_errors=True)
        pytest.fail(f"testbed did not start: {exc}", pytrace=False)
    try:
        yield tb
    finally:
        stop(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def write_config(path: Path, clusters: dict[str, dict[str, Any]]) -> Path:
    """A probe.toml at `path` with the given cluster tables (for tests that need their own)."""
    write_probe_toml(path, clusters)
    return path


__all__ = ["testbed", "write_config"]
