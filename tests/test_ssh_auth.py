"""Authentication paths of SSH clusters: the SSH agent, and a password from a named env variable."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import SSHHost, Testbed, free_port
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.ssh import SSHCluster
from threshold_probe.config import load_config

pytestmark = pytest.mark.ssh


def cluster(tmp_path: Path, table: dict[str, object]) -> SSHCluster:
    c = make_cluster("c", load_config(write_config(tmp_path / "probe.toml", {"c": table})))
    assert isinstance(c, SSHCluster)
    return c


def connect_check(c: SSHCluster) -> tuple[str, str]:
    try:
        checks = c.preflight()
    finally:
        c.close()
    return checks[0].status, checks[0].detail


@pytest.fixture
def agent(testbed: Testbed, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real ssh-agent holding the testbed's client key; SSH_AUTH_SOCK points to it."""
    out = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True).stdout
    sock = re.search(r"SSH_AUTH_SOCK=([^;]+);", out)
    pid = re.search(r"SSH_AGENT_PID=(\d+);", out)
    assert sock and pid, out
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": sock.group(1)}
        subprocess.run(["ssh-add", "-q", str(testbed.client_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock.group(1))
        monkeypatch.setenv("HOME", str(testbed.state_dir))  # no default keys of this machine's user
        yield sock.group(1)
    finally:
        os.kill(int(pid.group(1)), signal.SIGTERM)


def test_the_ssh_agent_authenticates(testbed: Testbed, agent: str, tmp_path: Path) -> None:
    table = testbed.cluster_table("ssh", identity_file=None)
    assert "identity_file" not in table
    status, detail = connect_check(cluster(tmp_path, table))
    assert status == "ok", detail


def test_without_agent_or_key_auth_fails_once_with_a_fix(
    testbed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    c = cluster(tmp_path, testbed.cluster_table("ssh", identity_file=None))
    try:
        checks = c.preflight()
    finally:
        c.close()
    assert [(ch.name, ch.status) for ch in checks] == [("connect", "fail")]
    assert "authentication failed" in checks[0].detail
    assert checks[0].fix and "identity_file" in checks[0].fix


@pytest.fixture
def password_host(testbed: Testbed, tmp_path: Path) -> Iterator[tuple[SSHHost, str]]:
    """A spare sshd that accepts passwords, and the test user with a password for the test."""
    password = f"pw-{os.getpid()}-{os.urandom(4).hex()}"
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True
    ).stdout.strip()
    host = SSHHost("pw", tmp_path / "pw-sshd", "127.0.0.1", free_port(), testbed.host("ssh").authorized_keys)
    host.prepare()
    host.config_path.write_text(
        host.config_path.read_text().replace("PasswordAuthentication no", "PasswordAuthentication yes")
    )
    subprocess.run(["usermod", "-p", hashed, testbed.user], check=True)
    try:
        host.start()
        yield host, password
    finally:
        host.kill()
        # Back to "no password, keys only", as the testbed made the account.
        subprocess.run(["usermod", "-p", "*", testbed.user], check=True)


def test_password_comes_only_from_the_named_environment_variable(
    testbed: Testbed, password_host: tuple[SSHHost, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, password = password_host
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    known = tmp_path / "known_hosts"
    known.write_text(host.known_hosts_line())
    table = testbed.cluster_table(
        "ssh", port=host.port, identity_file=None, known_hosts=str(known), password_env="TP_TEST_SSH_PASSWORD"
    )
    monkeypatch.delenv("TP_TEST_SSH_PASSWORD", raising=False)
    status, detail = connect_check(cluster(tmp_path, table))
    assert status == "fail" and "authentication failed" in detail
    monkeypatch.setenv("TP_TEST_SSH_PASSWORD", password)
    c = cluster(tmp_path, table)
    status, detail = connect_check(c)
    assert status == "ok", detail
    # The password is never part of what a cluster describes or writes.
    assert password not in repr(c.describe()) and password not in (tmp_path / "probe.toml").read_text()
